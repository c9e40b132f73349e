"""The ``efp`` tagger: Energy Flow Polynomials (arXiv:1712.07124) + a linear discriminant.

The EFP values are checked against physics: IRC safety (zero-pT and infinitely soft
constituents, collinear splittings), invariance under rotations about the beam and boosts
along it, closed forms of the degree 1-3 graphs computed by hand (the hadrdot d = 1 EFP with
beta = 2 is exactly 2 m^2 / (sum pT)^2, its hadr twin approaches it for narrow jets), and the
batched engine against energyflow's own ``EFPSet.batch_compute``. The tagger must learn the
synthetic top/QCD jets of ``jetsamples`` and save/load to identical scores.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from jetsamples import synthetic_jets

from heplab.errors import ConfigError, DataError
from heplab.ml.metrics import auc
from heplab.reconstruction.jets.taggers import Tagger, get_tagger, list_taggers
from heplab.reconstruction.jets.taggers.efp import (
    EFPTagger,
    _MissingWasserstein,
    efp_set,
    efp_values,
    load_energyflow,
)


def _have_energyflow() -> bool:
    try:
        load_energyflow()
    except ConfigError:
        return False
    return True


needs_energyflow = pytest.mark.skipif(
    not _have_energyflow(), reason='needs energyflow: pip install --no-deps "energyflow==1.4.0"'
)

#: A toy jet: (pT [GeV], y, phi, m [GeV]) per constituent, 0.4 wide around (0.3, 3.0)
#: so that phi crosses +-pi.
TOY: list[tuple[float, float, float, float]] = [
    (210.0, 0.31, 3.02, 0.0),
    (95.0, 0.12, 3.11, 0.14),
    (60.0, 0.45, 2.85, 0.0),
    (33.0, 0.05, -3.05, 0.5),
    (12.0, 0.62, 2.70, 0.0),
    (4.5, -0.02, -2.95, 0.0),
    (1.2, 0.38, 3.25 - 2 * np.pi, 0.0),
]


def _jets(particles: Sequence[Sequence[Sequence[float]]]) -> ak.Array:
    """Jets from (pT, y, phi, m) constituents, with float64 four-momenta."""
    cols: dict[str, list[list[float]]] = {
        c: [] for c in ("part_px", "part_py", "part_pz", "part_energy")
    }
    for jet in particles:
        pt, y, phi, m = np.asarray(jet, dtype=np.float64).reshape(-1, 4).T
        mt = np.sqrt(pt**2 + m**2)
        cols["part_px"].append((pt * np.cos(phi)).tolist())
        cols["part_py"].append((pt * np.sin(phi)).tolist())
        cols["part_pz"].append((mt * np.sinh(y)).tolist())
        cols["part_energy"].append((mt * np.cosh(y)).tolist())
    return ak.zip({k: ak.Array(v) for k, v in cols.items()}, depth_limit=1)


def _column(efpset: Any, n: int, e: int, d: int, p: int = 1) -> int:
    """Index of the EFP with n vertices, e simple edges, degree d and p components."""
    specs = np.asarray(efpset.specs)
    # spec columns: n e d v k c p h
    hits = np.flatnonzero(
        (specs[:, 0] == n) & (specs[:, 1] == e) & (specs[:, 2] == d) & (specs[:, 6] == p)
    )
    assert len(hits) == 1, specs
    return int(hits[0])


def _z_theta(jet: Sequence[Sequence[float]], beta: float) -> tuple[np.ndarray, np.ndarray]:
    """By hand: z_i and the hadr theta_ij = dR_ij^beta of a toy jet."""
    pt, y, phi, _ = np.asarray(jet, dtype=np.float64).T
    dphi = np.angle(np.exp(1j * (phi[:, None] - phi[None, :])))
    dr2 = (y[:, None] - y[None, :]) ** 2 + dphi**2
    return pt / pt.sum(), dr2 ** (beta / 2)


@pytest.fixture(scope="module")
def splits() -> dict[str, ak.Array]:
    return {"train": synthetic_jets(400, 1), "test": synthetic_jets(300, 3)}


# -- registry and configuration -------------------------------------------------------
def test_registry_lists_the_efp_tagger() -> None:
    assert "efp" in list_taggers()
    assert isinstance(get_tagger("efp"), EFPTagger)


@pytest.mark.parametrize(
    "bad",
    [
        {"dmax": 0},
        {"dmax": 11},
        {"measure": "ee"},
        {"beta": 0.0},
        {"beta": -1},
        {"shrinkage": 1.5},
        {"shrinkage": "ledoit"},
        {"engine": "gpu"},
        {"cmax": 0},
        {"cmax": 2.5},
        {"batch_size": 0},
        {"n_jobs": 0},
        {"dmax": 5.0},
    ],
)
def test_bad_settings_are_config_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        get_tagger("efp", **bad)


@pytest.fixture
def _no_energyflow(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make ``import energyflow`` fail (as without the package) and undo it afterwards."""
    load_energyflow.cache_clear()
    efp_set.cache_clear()
    monkeypatch.setitem(sys.modules, "energyflow", None)
    yield
    monkeypatch.undo()
    load_energyflow.cache_clear()
    efp_set.cache_clear()


@pytest.mark.usefixtures("_no_energyflow")
def test_without_energyflow_the_error_says_how_to_install_it() -> None:
    with pytest.raises(ConfigError, match=r"pip install --no-deps .?energyflow==1\.4\.0"):
        load_energyflow()
    tagger = get_tagger("efp")  # configuring needs no energyflow; computing EFPs does
    jets = _jets([TOY, TOY])
    jets = ak.with_field(jets, np.array([0, 1]), "label")
    with pytest.raises(ConfigError, match="energyflow"):
        tagger.fit(jets)


@needs_energyflow
def test_missing_wasserstein_is_replaced_only_inside_energyflow() -> None:
    ef = load_energyflow()
    if not isinstance(ef.emd.wasserstein, _MissingWasserstein):
        pytest.skip("wasserstein is installed: no placeholder in use")
    assert "wasserstein" not in sys.modules  # the placeholder does not leak
    with pytest.raises(ImportError, match="wasserstein"):
        ef.emd.wasserstein.EMD  # noqa: B018


@needs_energyflow
def test_missing_columns_are_data_errors() -> None:
    jets = ak.zip({"part_px": ak.Array([[1.0]]), "part_py": ak.Array([[0.0]])})
    with pytest.raises(DataError, match="part_pz"):
        efp_values(jets, efp_set(2))


# -- EFP physics ----------------------------------------------------------------------
@needs_energyflow
@pytest.mark.parametrize(("measure", "beta"), [("hadr", 0.5), ("hadr", 1.0), ("hadrdot", 1.0)])
def test_efps_are_infrared_and_collinear_safe(measure: str, beta: float) -> None:
    efpset = efp_set(5, measure, beta)
    toy = [list(p) for p in TOY]
    zero = [*toy, [0.0, 0.0, 0.0, 0.0]]  # a null four-vector
    soft = [*toy, [1e-12, -0.4, 2.2, 0.0]]  # (nearly) infinitely soft at a wide angle
    k = 2  # split the massless third constituent 30/70 along its direction
    split = [p for i, p in enumerate(toy) if i != k]
    split += [[0.3 * toy[k][0], *toy[k][1:]], [0.7 * toy[k][0], *toy[k][1:]]]
    values = efp_values(_jets([toy, zero, soft, split]), efpset)
    assert np.isfinite(values).all()
    assert values.shape == (4, len(efpset.specs)) == (4, 101)
    assert (values[0] > 0).all()
    np.testing.assert_allclose(values[1], values[0], rtol=1e-13, atol=0)
    np.testing.assert_allclose(values[2], values[0], rtol=1e-10, atol=0)  # O(z_soft)
    np.testing.assert_allclose(values[3], values[0], rtol=1e-13, atol=0)
    # an IRC-unsafe check of the check: a hard particle at a wide angle does change them
    hard = efp_values(_jets([[*toy, [20.0, -0.4, 2.2, 0.0]]]), efpset)[0]
    assert np.max(np.abs(hard / values[0] - 1)) > 0.05


@needs_energyflow
@pytest.mark.parametrize("measure", ["hadr", "hadrdot"])
def test_efps_are_invariant_under_beam_rotations_and_boosts(measure: str) -> None:
    efpset = efp_set(4, measure, 1.0)
    # pion masses at least: a massless constituent's m^2 = E^2 - p^2 after a boost is
    # rounding noise, which hadrdot's theta_ii = (2 m^2 / pT^2)^(beta/2) would magnify
    toy = np.asarray([(pt, y, phi, max(m, 0.14)) for pt, y, phi, m in TOY])
    rotated = toy + np.array([0.0, 0.0, 2.5, 0.0])  # phi + 2.5: the jet crosses +-pi differently
    boosted = toy + np.array([0.0, 1.3, 0.0, 0.0])  # y + 1.3: a boost along the beam
    shuffled = toy[::-1]
    v = efp_values(_jets([toy, rotated, boosted, shuffled]), efpset)
    for other in v[1:]:
        np.testing.assert_allclose(other, v[0], rtol=1e-10, atol=0)


@needs_energyflow
def test_low_degree_efps_match_their_closed_forms() -> None:
    beta = 2.0
    # the first four constituents, massless, and the same squeezed 10 times closer to (0, 3.0)
    wide = [(p[0], p[1], p[2], 0.0) for p in TOY[:4]]
    narrow = [
        (p[0], 0.1 * p[1], 3.0 + 0.1 * float(np.angle(np.exp(1j * (p[2] - 3.0)))), 0.0)
        for p in TOY[:4]
    ]
    jets = [TOY, wide, narrow]
    hadr, dot = efp_set(3, "hadr", beta), efp_set(3, "hadrdot", beta)
    v, vdot = efp_values(_jets(jets), hadr), efp_values(_jets(jets), dot)
    line, double = _column(hadr, 2, 1, 1), _column(hadr, 2, 1, 2)
    path, pair = _column(hadr, 3, 2, 2), _column(hadr, 4, 2, 2, p=2)
    triangle = _column(hadr, 3, 3, 3)
    assert [line, double, path, pair, triangle] == [
        _column(dot, 2, 1, 1),
        _column(dot, 2, 1, 2),
        _column(dot, 3, 2, 2),
        _column(dot, 4, 2, 2, p=2),
        _column(dot, 3, 3, 3),
    ]
    for i, jet in enumerate(jets):
        z, theta = _z_theta(jet, beta)
        e1 = np.einsum("i,j,ij->", z, z, theta)
        np.testing.assert_allclose(v[i, line], e1, rtol=1e-12)
        np.testing.assert_allclose(v[i, double], np.einsum("i,j,ij->", z, z, theta**2), rtol=1e-12)
        np.testing.assert_allclose(v[i, path], np.sum(z * (theta @ z) ** 2), rtol=1e-12)
        np.testing.assert_allclose(v[i, pair], e1**2, rtol=1e-12)
        tri = np.einsum("i,j,k,ij,jk,ki->", z, z, z, theta, theta, theta)
        np.testing.assert_allclose(v[i, triangle], tri, rtol=1e-12)
        # the jet mass: sum_ij p_i.p_j = m^2, so the hadrdot d = 1 EFP (beta = 2) is exactly
        # 2 m^2 / (sum pT)^2 (any angles, massive constituents too) ...
        p = np.asarray(jet).T
        pt, y, phi, m = p
        mt = np.sqrt(pt**2 + m**2)
        e, px, py, pz = (
            (mt * np.cosh(y)).sum(),
            (pt * np.cos(phi)).sum(),
            (pt * np.sin(phi)).sum(),
            (mt * np.sinh(y)).sum(),
        )
        m2 = e**2 - px**2 - py**2 - pz**2
        np.testing.assert_allclose(vdot[i, line], 2 * m2 / pt.sum() ** 2, rtol=1e-11)
    # ... and its hadr twin sum_ij z_i z_j dR_ij^2 approaches it for narrow massless jets:
    # cosh dy - cos dphi = dR^2 / 2 (1 + O(dR^2)), so 10 times narrower is 100 times closer
    dev_wide, dev_narrow = (abs(v[i, line] / vdot[i, line] - 1) for i in (1, 2))
    assert dev_narrow < 1e-4
    assert 80 < dev_wide / dev_narrow < 120


@needs_energyflow
@pytest.mark.parametrize(
    ("measure", "beta", "rtol"),
    [("hadr", 0.5, 1e-12), ("hadr", 1.0, 1e-12), ("hadrdot", 1.0, 1e-6)],
)
def test_batched_engine_matches_energyflow(
    measure: str, beta: float, rtol: float, splits: dict[str, ak.Array]
) -> None:
    # energyflow's hadrdot dot products lose ~1e-8 to cancellation (module docstring)
    efpset = efp_set(5, measure, beta)
    jets = splits["test"][:40]
    ref = efp_values(jets, efpset, engine="energyflow")
    fast = efp_values(jets, efpset, engine="batched")
    np.testing.assert_allclose(fast, ref, rtol=rtol, atol=0)
    # chunking and threads do not change the numbers
    small = efp_values(jets, efpset, engine="batched", batch_size=7, n_jobs=2)
    np.testing.assert_allclose(small, fast, rtol=1e-13, atol=0)


@needs_energyflow
def test_jets_without_constituents_get_zero_efps() -> None:
    jets = _jets([TOY, [], TOY[:1]])
    v = efp_values(jets, efp_set(3))
    assert np.isfinite(v).all()
    assert (v[1] == 0).all()
    assert (v[2] == 0).all()  # one particle: no pairs, every theta_ii = 0
    assert (v[0] > 0).all()


# -- the tagger -----------------------------------------------------------------------
@needs_energyflow
def test_efp_tagger_learns_saves_and_loads(splits: dict[str, ak.Array], tmp_path: Path) -> None:
    tagger = get_tagger("efp", seed=0)
    tagger.fit(splits["train"])
    score = tagger.score(splits["test"])
    assert score.dtype == np.float64
    assert score.shape == (len(splits["test"]),)
    y = ak.to_numpy(splits["test"]["label"])
    assert auc(y, score) > 0.9
    assert tagger.n_params == 101 + 1
    assert tagger.threshold == 0.0
    saved = tagger.save(tmp_path / "model")
    assert sorted(p.name for p in saved.iterdir()) == ["tagger.json"]
    meta = json.loads((saved / "tagger.json").read_text())
    assert len(meta["state"]["coef"]) == 101
    loaded = Tagger.load(saved)
    assert isinstance(loaded, EFPTagger)
    np.testing.assert_array_equal(loaded.score(splits["test"]), score)
    assert loaded.n_params == tagger.n_params
    assert loaded.threshold == 0.0


@needs_energyflow
def test_a_tagger_saved_with_other_efps_is_refused(
    splits: dict[str, ak.Array], tmp_path: Path
) -> None:
    tagger = get_tagger("efp", dmax=2).fit(splits["train"][:100])
    saved = tagger.save(tmp_path / "model")
    meta = json.loads((saved / "tagger.json").read_text())
    meta["config"]["dmax"] = 3
    (saved / "tagger.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="differs"):
        Tagger.load(saved).score(splits["test"][:5])
