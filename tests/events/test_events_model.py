"""with_vector and validate_events."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from heplab.errors import DataError
from heplab.events import validate_events, with_vector


def _strip_names(array: ak.Array) -> ak.Array:
    return ak.Array(ak.without_parameters(array))


def test_with_vector_gives_momentum4d_to_particle_lists(events: ak.Array) -> None:
    plain = _strip_names(events)
    with pytest.raises(AttributeError):
        _ = plain.particles.pt
    out = with_vector(plain)
    px, py = ak.flatten(out.particles.px), ak.flatten(out.particles.py)
    np.testing.assert_allclose(ak.flatten(out.particles.pt), np.hypot(px, py), rtol=1e-6)
    # pions at 0.1396 GeV (single masses suffer float32 rounding of E and p at high |eta|)
    pions = out.particles[abs(out.particles.pid) == 211]
    assert np.median(ak.to_numpy(ak.flatten(pions.mass))) == pytest.approx(0.13957, abs=1e-3)
    assert ak.parameters(out.pfcands.layout.content)["__record__"] == "Momentum4D"
    # scalars are untouched
    assert out.met.tolist() == plain.met.tolist()
    assert out.fields == plain.fields


def test_with_vector_recurses_into_nested_records() -> None:
    jets = ak.Array(
        [
            [
                {
                    "px": 30.0,
                    "py": 0.0,
                    "pz": 0.0,
                    "energy": 31.0,
                    "btag": 1,
                    "constituents": [{"px": 10.0, "py": 0.0, "pz": 0.0, "energy": 10.0}],
                }
            ]
        ]
    )
    out = with_vector(ak.zip({"jets": jets}, depth_limit=1))
    assert out.jets.pt.tolist() == [[30.0]]
    assert out.jets.constituents.pt.tolist() == [[[10.0]]]
    assert out.jets.btag.tolist() == [[1]]


def test_with_vector_leaves_ambiguous_and_other_records_alone() -> None:
    array = ak.Array(
        [
            {
                "cands": [{"px": 1.0, "py": 0.0, "pz": 0.0, "energy": 2.0, "pt": 1.0}],
                "hits": [{"x": 1.0, "y": 2.0}],
            }
        ]
    )
    out = with_vector(array)
    assert "__record__" not in ak.parameters(out.cands.layout.content)
    assert "__record__" not in ak.parameters(out.hits.layout.content)
    assert out.tolist() == array.tolist()


def test_validate_events_accepts_good_events(events: ak.Array) -> None:
    assert validate_events(events, require=("particles", "partons.px", "met")) is events


def test_validate_events_names_missing_fields(events: ak.Array) -> None:
    with pytest.raises(DataError, match=r"run\.parquet: missing required field\(s\) jets"):
        validate_events(events, require=("particles", "jets"), source="run.parquet")
    no_energy = ak.zip(
        {"particles": ak.zip({"px": events.particles.px, "py": events.particles.py})},
        depth_limit=1,
    )
    with pytest.raises(DataError, match="'particles' lacks pz, energy"):
        validate_events(no_energy)
    with pytest.raises(DataError, match="not an array of event records"):
        validate_events(ak.Array([1, 2, 3]))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_validate_events_finds_non_finite_momenta(events: ak.Array, bad: float) -> None:
    flat = ak.to_numpy(ak.flatten(events.pfcands.energy)).copy()
    flat[3] = bad
    broken = ak.with_field(
        events,
        ak.with_field(events.pfcands, ak.unflatten(flat, ak.num(events.pfcands)), "energy"),
        "pfcands",
    )
    with pytest.raises(DataError, match=r"1 NaN or infinite value\(s\) in pfcands\.energy"):
        validate_events(broken, source="x.root")
