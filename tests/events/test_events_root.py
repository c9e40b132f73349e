"""ROOT I/O: NanoAOD- and Delphes-style round trips, foreign trees, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot

from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.events import read_events, read_root, write_events, write_root
from heplab.events.root import tree_to_events

FLOAT32_RTOL = 2e-6  # a few float32 ulps


def assert_events_close(got: ak.Array, expected: ak.Array, *, atol: float = 0.0) -> None:
    """Same fields, same counts, same values within float32 precision."""
    assert set(got.fields) == set(expected.fields)
    for name in expected.fields:
        a, b = got[name], expected[name]
        if b.fields:
            assert set(a.fields) == set(b.fields), name
            assert ak.num(a).tolist() == ak.num(b).tolist(), name
            pairs = [(f"{name}.{f}", ak.flatten(a[f]), ak.flatten(b[f])) for f in b.fields]
        elif b.ndim == 2:
            assert ak.num(a).tolist() == ak.num(b).tolist(), name
            pairs = [(name, ak.flatten(a), ak.flatten(b))]
        else:
            pairs = [(name, a, b)]
        for label, x, y in pairs:
            x, y = ak.to_numpy(x), ak.to_numpy(y)
            assert x.dtype == y.dtype, label
            if y.dtype.kind == "f":
                np.testing.assert_allclose(x, y, rtol=FLOAT32_RTOL, atol=atol, err_msg=label)
            else:
                np.testing.assert_array_equal(x, y, err_msg=label)


def test_nanoaod_round_trip(tmp_path: Path, events: ak.Array) -> None:
    path = tmp_path / "events.root"
    write_events(events, path, "root")
    with uproot.open(path) as file:
        tree = file["Events"]
        keys = set(tree.keys())
        assert {"nPart", "Part_px", "Part_energy", "Part_pid", "nPFCand", "PFCand_d0"} <= keys
        assert {"nParton", "Parton_mother", "event_id", "weight", "met"} <= keys
        assert tree["nPart"].array().tolist() == ak.num(events.particles).tolist()
    back = read_events(path)
    assert_events_close(back, events)
    # exact: Cartesian components are stored as they are
    assert back.particles.px.tolist() == events.particles.px.tolist()
    assert ak.flatten(back.particles.pt).tolist() == ak.flatten(events.particles.pt).tolist()


def test_delphes_round_trip(tmp_path: Path, events: ak.Array) -> None:
    path = tmp_path / "delphes.root"
    write_events(events, path, "root", root_style="delphes")
    with uproot.open(path) as file:
        tree = file["Delphes"]
        keys = set(tree.keys())
        expected = {
            "Particle_size",
            "Particle.PT",
            "Particle.Eta",
            "Particle.Phi",
            "Particle.E",
            "Particle.PID",
            "Particle.Charge",
            "Particle.Status",
            "ParticleFlowCandidate.PT",
            "ParticleFlowCandidate.D0",
            "ParticleFlowCandidate.IsRecoPU",
            "MissingET.MET",
            "MissingET.Phi",
            "Event.Number",
        }
        assert expected <= keys
        pt = ak.flatten(tree["Particle.PT"].array())
        np.testing.assert_allclose(pt, ak.flatten(events.particles.pt), rtol=1e-6)
        eta = ak.flatten(tree["Parton.Eta"].array())
        assert set(np.abs(ak.to_numpy(eta[abs(eta) > 100]))) == {np.float32(999.9)}  # beams
        assert ak.all(tree["MissingET_size"].array() == 1)
    back = read_root(path)
    assert_events_close(back, events)
    assert back.pfcands.from_pv.tolist() == events.pfcands.from_pv.tolist()


@pytest.mark.parametrize("style", ["nanoaod", "delphes"])
def test_columns_and_batches(
    tmp_path: Path, make_events: Any, style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = make_events(n=30, seed=5, pfcands=False)
    path = tmp_path / f"{style}.root"
    monkeypatch.setattr("heplab.events.root._BATCH", 7)  # several baskets via extend()
    write_root(events, path, style=style)  # type: ignore[arg-type]
    assert_events_close(read_root(path), events)
    back = read_root(path, columns=["particles.px", "pv_z"])
    assert back.fields == ["particles", "pv_z"]
    assert back.particles.fields == ["px"]
    assert back.particles.px.tolist() == events.particles.px.tolist()
    with pytest.raises(DataError, match=r"no column\(s\) pfcands"):
        read_root(path, columns=["pfcands"])


def test_extra_fields_round_trip(tmp_path: Path, events: ak.Array) -> None:
    """Fields outside the data model (labels, jets, lists of numbers) survive both styles."""
    rng = np.random.default_rng(3)
    n = len(events)
    counts = rng.integers(0, 4, n)
    jets = ak.unflatten(
        ak.zip(
            {
                "px": rng.normal(0, 50, counts.sum()).astype(np.float32),
                "py": rng.normal(0, 50, counts.sum()).astype(np.float32),
                "pz": rng.normal(0, 50, counts.sum()).astype(np.float32),
                "energy": rng.uniform(200, 300, counts.sum()).astype(np.float32),
                "btag": rng.random(counts.sum()) > 0.5,
            }
        ),
        counts,
    )
    extra = ak.with_field(events, jets, "jets")
    extra = ak.with_field(extra, rng.integers(0, 2, n).astype(np.int8), "label_top")
    extra = ak.with_field(extra, ak.unflatten(rng.random(counts.sum()), counts), "scores")
    for style in ("nanoaod", "delphes"):
        path = tmp_path / f"{style}.root"
        write_root(extra, path, style=style)
        assert_events_close(read_root(path), extra)


def test_unwritable_fields_and_options(tmp_path: Path, events: ak.Array) -> None:
    with_strings = ak.with_field(events, ak.Array([f"e{i}" for i in range(len(events))]), "tag")
    with pytest.raises(DataError, match="cannot write field 'tag' to ROOT: strings"):
        write_root(with_strings, tmp_path / "a.root")
    nested = ak.with_field(events, ak.Array([[[1, 2]]] * len(events)), "deep")
    with pytest.raises(DataError, match="'deep' to ROOT: nested lists"):
        write_root(nested, tmp_path / "b.root")
    assert not list(tmp_path.iterdir())  # nothing half-written left behind
    with pytest.raises(ConfigError, match="unknown ROOT style"):
        write_root(events, tmp_path / "c.root", style="cms")  # type: ignore[arg-type]
    write_root(events, tmp_path / "d.root")
    with pytest.raises(OutputExistsError):
        write_events(events, tmp_path / "d.root")
    write_events(events[:4], tmp_path / "d.root", overwrite=True)
    assert len(read_root(tmp_path / "d.root")) == 4


def _jagged(rng: np.random.Generator, counts: np.ndarray, low: float, high: float) -> ak.Array:
    return ak.unflatten(rng.uniform(low, high, counts.sum()).astype(np.float32), counts)


def test_foreign_delphes_tree(tmp_path: Path) -> None:
    """A tree laid out as Delphes writes it (without heplab's title) maps to the model."""
    rng = np.random.default_rng(11)
    n = 40
    n_gen = rng.integers(3, 10, n)
    status = ak.unflatten(rng.choice([1, 2, 62], n_gen.sum()).astype(np.int32), n_gen)
    particle = ak.zip(
        {
            "PT": _jagged(rng, n_gen, 1, 50),
            "Eta": _jagged(rng, n_gen, -3, 3),
            "Phi": _jagged(rng, n_gen, -3, 3),
            "Mass": ak.full_like(_jagged(rng, n_gen, 0, 1), 0.13957),
            "PID": ak.full_like(status, 211),
            "Status": status,
            "Charge": ak.full_like(status, 1),
        }
    )
    n_jet, n_trk, n_pho, n_nh = (rng.integers(0, 5, n) for _ in range(4))
    jet = ak.zip(
        {
            "PT": _jagged(rng, n_jet, 20, 200),
            "Eta": _jagged(rng, n_jet, -2.5, 2.5),
            "Phi": _jagged(rng, n_jet, -3, 3),
            "Mass": _jagged(rng, n_jet, 5, 20),
            "BTag": ak.values_astype(_jagged(rng, n_jet, 0, 2), np.uint32),
        }
    )

    def tower(counts: np.ndarray) -> ak.Array:
        return ak.zip(
            {
                "ET": _jagged(rng, counts, 1, 10),
                "Eta": _jagged(rng, counts, -2, 2),
                "Phi": _jagged(rng, counts, -3, 3),
                "E": _jagged(rng, counts, 40, 50),
            }
        )

    track = ak.zip(
        {
            "PT": _jagged(rng, n_trk, 1, 10),
            "Eta": _jagged(rng, n_trk, -2, 2),
            "Phi": _jagged(rng, n_trk, -3, 3),
            "PID": ak.values_astype(ak.full_like(_jagged(rng, n_trk, 0, 1), -211), np.int32),
            "Charge": ak.values_astype(ak.full_like(_jagged(rng, n_trk, 0, 1), -1), np.int32),
            "D0": _jagged(rng, n_trk, -0.1, 0.1),
        }
    )
    ones = np.ones(n, dtype=np.int64)
    met = ak.unflatten(
        ak.zip({"MET": rng.uniform(0, 100, n).astype(np.float32), "Phi": np.zeros(n, np.float32)}),
        ones,
    )
    event = ak.unflatten(
        ak.zip({"Number": np.arange(n) + 7, "Weight": np.full(n, 2.0, np.float32)}), ones
    )
    path = tmp_path / "real.root"
    with uproot.recreate(path) as file:
        file.mktree(
            "Delphes",
            {
                "Event": event,
                "Particle": particle,
                "Jet": jet,
                "EFlowTrack": track,
                "EFlowPhoton": tower(n_pho),
                "EFlowNeutralHadron": tower(n_nh),
                "MissingET": met,
            },
            counter_name=lambda c: f"{c}_size",
            field_name=lambda outer, inner: f"{outer}.{inner}",
        )
    events = read_events(path)
    assert events.event_id.tolist() == list(range(7, 7 + n))
    assert ak.all(events.weight == 2.0)
    assert ak.all(events.pthat == 0)  # absent: default
    # status-1 particles only, with their momenta back
    stable = particle[particle.Status == 1]
    assert ak.num(events.particles).tolist() == ak.num(stable).tolist()
    np.testing.assert_allclose(ak.flatten(events.particles.pt), ak.flatten(stable.PT), rtol=1e-5)
    np.testing.assert_allclose(
        ak.flatten(events.particles.mass), 0.13957, atol=2e-3 * ak.max(events.particles.energy)
    )
    np.testing.assert_allclose(ak.flatten(events.jets.mass), ak.flatten(jet.Mass), rtol=1e-3)
    assert ak.flatten(events.jets.btag).tolist() == ak.flatten(jet.BTag).tolist()
    # pfcands = tracks + photons + neutral hadrons
    assert ak.num(events.pfcands).tolist() == (n_trk + n_pho + n_nh).tolist()
    pid = ak.flatten(events.pfcands.pid)
    assert int(ak.sum(pid == -211)) == n_trk.sum()
    assert int(ak.sum(pid == 22)) == n_pho.sum()
    assert int(ak.sum(pid == 130)) == n_nh.sum()
    assert events.met.tolist() == pytest.approx(ak.flatten(met.MET).tolist())


def test_foreign_nanoaod_tree(tmp_path: Path) -> None:
    """Real NanoAOD names: pt/eta/phi/mass become px/py/pz/energy; MET_pt -> met."""
    rng = np.random.default_rng(2)
    n = 25
    counts = rng.integers(0, 6, n)
    genpart = ak.zip(
        {
            "pt": _jagged(rng, counts, 5, 50),
            "eta": _jagged(rng, counts, -2, 2),
            "phi": _jagged(rng, counts, -3, 3),
            "mass": _jagged(rng, counts, 0, 5),
            "pdgId": ak.values_astype(ak.full_like(_jagged(rng, counts, 0, 1), 13), np.int32),
        }
    )
    path = tmp_path / "nano.root"
    with uproot.recreate(path) as file:
        file.mktree(
            "Events",
            {
                "GenPart": genpart,
                "MET_pt": rng.uniform(0, 50, n).astype(np.float32),
                "event": np.arange(n, dtype=np.uint64) + 100,
            },
            counter_name=lambda c: f"n{c}",
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )
    events = read_events(path)
    assert events.event_id.tolist() == list(range(100, 100 + n))
    assert events.event_id.type.content.primitive == "int64"
    assert "met" in events.fields
    assert events.GenPart.fields == ["px", "py", "pz", "energy", "pid"]
    np.testing.assert_allclose(ak.flatten(events.GenPart.pt), ak.flatten(genpart.pt), rtol=1e-5)
    np.testing.assert_allclose(ak.flatten(events.GenPart.eta), ak.flatten(genpart.eta), atol=1e-4)
    np.testing.assert_allclose(ak.flatten(events.GenPart.mass), ak.flatten(genpart.mass), atol=2e-3)


class _FakeBranch:
    """Just enough of an uproot branch for the reader's mapping logic."""

    def __init__(self, name: str, data: ak.Array | None, children: list[_FakeBranch] | None = None):
        self.name = name
        self.data = data
        self.branches = children or []
        self.count_branch = None
        if data is None:
            self.interpretation: Any = None
        else:
            dtype = uproot.interpretation.numerical.AsDtype(
                ak.to_numpy(ak.flatten(data, axis=None)).dtype
            )
            self.interpretation = (
                uproot.interpretation.jagged.AsJagged(dtype) if data.ndim == 2 else dtype
            )

    def array(self, library: str = "ak") -> ak.Array:
        assert self.data is not None
        return self.data


class _FakeTree:
    """A tree with real Delphes' split TClonesArray names (``Particle/Particle.PT``)."""

    title = "Analysis tree"
    name = "Delphes"

    def __init__(self, collections: dict[str, dict[str, ak.Array]], n: int) -> None:
        self.num_entries = n
        self.index: dict[str, _FakeBranch] = {}
        for collection, fields in collections.items():
            size = _FakeBranch(f"{collection}_size", ak.num(next(iter(fields.values()))))
            children = [_FakeBranch(f"{collection}.{f}", v) for f, v in fields.items()]
            children.append(_FakeBranch("fUniqueID", fields[next(iter(fields))]))
            parent = _FakeBranch(collection, None, children)
            self.index[collection] = parent
            self.index[size.name] = size
            for child in children:
                self.index[f"{collection}/{child.name}"] = child

    def keys(self, recursive: bool = True) -> list[str]:
        return list(self.index)

    def __getitem__(self, key: str) -> _FakeBranch:
        return self.index[key]


def test_real_delphes_split_branch_names() -> None:
    rng = np.random.default_rng(4)
    n = 10
    counts = rng.integers(1, 5, n)
    muon = {
        "PT": _jagged(rng, counts, 10, 100),
        "Eta": _jagged(rng, counts, -2.4, 2.4),
        "Phi": _jagged(rng, counts, -3, 3),
        "Charge": ak.values_astype(ak.full_like(_jagged(rng, counts, 0, 1), -1), np.int32),
    }
    met = {
        "MET": ak.unflatten(np.arange(n, dtype=np.float32), 1),
        "Phi": ak.unflatten(np.zeros(n, np.float32), 1),
    }
    tree = _FakeTree({"Muon": muon, "MissingET": met}, n)
    events = tree_to_events(tree, source="fake.root")
    assert events.met.tolist() == list(range(n))
    assert ak.num(events.muons).tolist() == counts.tolist()
    pt, eta = (ak.to_numpy(ak.flatten(muon[f])).astype(np.float64) for f in ("PT", "Eta"))
    expected_energy = np.sqrt((pt * np.cosh(eta)) ** 2 + 0.1056584**2)
    np.testing.assert_allclose(ak.flatten(events.muons.energy), expected_energy, rtol=1e-6)
    np.testing.assert_allclose(ak.flatten(events.muons.pt), ak.flatten(muon["PT"]), rtol=1e-5)
    assert ak.all(events.muons.charge == -1)
    assert events.event_id.tolist() == list(range(n))  # defaults for absent scalars


def test_truncated_and_random_root_files(tmp_path: Path, events: ak.Array) -> None:
    path = tmp_path / "events.root"
    write_root(events, path)
    data = path.read_bytes()
    half = tmp_path / "half.root"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"half\.root: truncated ROOT file"):
        read_events(half)
    junk = tmp_path / "junk.root"
    junk.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(DataError, match=r"junk\.root: not a valid ROOT file"):
        read_events(junk)
    with pytest.raises(DataError, match=r"junk\.root: not a readable ROOT file"):
        read_root(junk)
    with pytest.raises(DataError, match="no TTree 'Other'"):
        read_root(path, tree="Other")
