"""Tests of ``heplab jets build``: balanced, disjoint, resumable jet-tagging datasets."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from heplab.cli import main
from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.events import read_events
from heplab.events.manifest import read_manifest
from heplab.reconstruction.jets.datasets import (
    KINDS,
    SPLITS,
    build_dataset,
    impact_parameter_features,
    split_sizes,
)
from heplab.reconstruction.jets.labels import LABELS, label_jets_flat

#: A tiny build: 60 jets (48 / 6 / 6), small chunks, in this process.
TINY: dict[str, Any] = {"workers": 0, "chunk_size": 100, "min_events": 50, "progress": False}


@pytest.fixture(scope="module")
def top_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("top") / "build"
    t0 = time.perf_counter()
    build_dataset("top", 60, out, seed=3, **TINY)
    return out, time.perf_counter() - t0


@pytest.fixture(scope="module")
def qg_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("qg") / "build"
    build_dataset("qg", 40, out, seed=5, **TINY)
    return out


@pytest.fixture(scope="module")
def jetclass_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 jets: 4 / 1 / 1 per class and split."""
    out = tmp_path_factory.mktemp("jetclass") / "build"
    build_dataset(
        "jetclass", 60, out, seed=7, workers=0, chunk_size=50, min_events=10, progress=False
    )
    return out


@pytest.fixture(scope="module")
def flavour_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 jets: 24 / 3 / 3 per class and split."""
    out = tmp_path_factory.mktemp("flavour") / "build"
    build_dataset(
        "flavour", 90, out, seed=9, workers=0, chunk_size=100, min_events=20, progress=False
    )
    return out


def _heplab(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the ``heplab`` entry point; (exit status, stdout + stderr)."""
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def _splits(out: Path) -> dict[str, ak.Array]:
    return {s: read_events(out / s) for s in SPLITS}


def test_split_sizes() -> None:
    assert split_sizes(60) == {"train": 48, "val": 6, "test": 6}
    assert split_sizes(2000) == {"train": 1600, "val": 200, "test": 200}
    with pytest.raises(ConfigError, match="too small"):
        split_sizes(10)
    # more classes: every split a multiple of the class count
    assert split_sizes(60, n_classes=10) == {"train": 40, "val": 10, "test": 10}
    assert split_sizes(1000, n_classes=3) == {"train": 801, "val": 99, "test": 99}
    with pytest.raises(ConfigError, match="too small"):
        split_sizes(50, n_classes=10)
    with pytest.raises(ConfigError, match="at least two classes"):
        split_sizes(100, n_classes=1)


def test_bad_kinds_and_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="unknown dataset kind 'wz'; choose one of top, qg"):
        build_dataset("wz", 100, tmp_path / "x")
    with pytest.raises(ConfigError, match="10 classes"):
        build_dataset("jetclass", 50, tmp_path / "x")
    with pytest.raises(ConfigError, match="--seed must be >= 0"):
        build_dataset("flavour", 90, tmp_path / "x", seed=-1)
    assert not (tmp_path / "x").exists()  # refused before anything is written
    code, text = _heplab(["jets", "build", "flavour", "-n", "10", "-o", str(tmp_path)], capsys)
    assert code == 1
    assert "heplab: error: --jets 10 is too small" in text


@pytest.mark.slow
def test_top_layout_balance_selection(top_build: tuple[Path, float]) -> None:
    out, _ = top_build
    build = json.loads((out / "build.json").read_text())
    assert build["complete"]
    assert build["config"]["kind"] == "top"
    sizes = build["config"]["splits"]
    for split, jets in _splits(out).items():
        assert len(jets) == sizes[split]
        label = ak.to_numpy(jets.label)
        assert label.dtype == np.int8
        assert (label == 1).sum() == (label == 0).sum() == sizes[split] // 2
        assert np.array_equal(label, ak.to_numpy(jets.label_Tbqq))
        assert np.array_equal(1 - label, ak.to_numpy(jets.label_QCD))
        pt, eta = ak.to_numpy(jets.jet_pt), ak.to_numpy(jets.jet_eta)
        assert np.all((pt > 550) & (pt < 650))
        assert np.all(np.abs(eta) < 2)
        n = ak.to_numpy(ak.num(jets.part_px))
        assert n.max() <= 200
        assert np.array_equal(n, np.minimum(ak.to_numpy(jets.jet_nparticles), 200))
        cpt = np.hypot(jets.part_px, jets.part_py)
        assert ak.all(cpt[:, :-1] >= cpt[:, 1:])
        # shuffled: not all signal first
        assert not np.array_equal(label, np.sort(label)[::-1])
        assert (out / "runs" / split / "ttbar" / "events" / "manifest.json").is_file()
        assert (out / "runs" / split / "qcd" / "jets" / "manifest.json").is_file()


@pytest.mark.slow
def test_splits_are_disjoint(top_build: tuple[Path, float]) -> None:
    out, _ = top_build
    splits = _splits(out)
    keys = {
        s: set(zip(ak.to_list(j.gen_seed), ak.to_list(j.event_id), strict=True))
        for s, j in splits.items()
    }
    seeds = {s: set(ak.to_list(j.gen_seed)) for s, j in splits.items()}
    momenta = {s: {float(x) for x in ak.to_numpy(ak.flatten(j.part_px))} for s, j in splits.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not keys[a] & keys[b]
        assert not seeds[a] & seeds[b]
        assert not momenta[a] & momenta[b]
    runs = json.loads((out / "build.json").read_text())["runs"]
    pythia = [s for r in runs for s in r["pythia_seeds"]]
    assert len(pythia) == len(set(pythia))


@pytest.mark.slow
def test_resume_is_a_no_op_and_deterministic(top_build: tuple[Path, float]) -> None:
    out, first = top_build
    before = {s: (out / s / "jets.parquet").read_bytes() for s in SPLITS}
    manifests = {
        p: read_manifest(p.parent).to_json() for p in sorted(out.glob("runs/*/*/*/manifest.json"))
    }
    t0 = time.perf_counter()
    build_dataset("top", 60, out, seed=3, **TINY)
    assert time.perf_counter() - t0 < first / 3
    after = {p: read_manifest(p.parent).to_json() for p in manifests}
    assert after == manifests  # no chunk was regenerated (same seconds, same counts)
    for s in SPLITS:
        assert (out / s / "jets.parquet").read_bytes() == before[s]


@pytest.mark.slow
def test_other_configuration_refused(top_build: tuple[Path, float], tmp_path: Path) -> None:
    out, _ = top_build
    with pytest.raises(OutputExistsError, match="differs in: jets"):
        build_dataset("top", 80, out, seed=3, **TINY)
    with pytest.raises(OutputExistsError, match="differs in: seed"):
        build_dataset("top", 60, out, seed=4, **TINY)
    (tmp_path / "foreign.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="not a jets build"):
        build_dataset("top", 60, tmp_path, **TINY)


@pytest.mark.slow
def test_top_physics(top_build: tuple[Path, float]) -> None:
    """Signal jets carry the top mass and three prongs; QCD jets do not."""
    out, _ = top_build
    jets = ak.concatenate(list(_splits(out).values()))
    sig, bkg = jets[jets.label == 1], jets[jets.label == 0]
    assert np.mean(ak.to_numpy(sig.jet_sdmass)) > 120
    assert np.mean(ak.to_numpy(bkg.jet_sdmass)) < 100
    tau32 = jets.jet_tau3 / jets.jet_tau2
    assert np.median(ak.to_numpy(tau32[jets.label == 1])) < np.median(
        ak.to_numpy(tau32[jets.label == 0])
    )


@pytest.mark.slow
def test_qg_labels_and_window(qg_build: Path) -> None:
    for split, jets in _splits(qg_build).items():
        label = ak.to_numpy(jets.label)
        assert (label == 1).sum() == (label == 0).sum() == len(jets) // 2 > 0, split
        assert np.array_equal(ak.to_numpy(jets.label_q), label)
        assert np.array_equal(ak.to_numpy(jets.label_g), 1 - label)
        assert ak.to_numpy(jets.label_q).dtype == np.int8
        pid = ak.to_numpy(jets.jet_parton_pid)
        assert np.all(np.isin(np.abs(pid[label == 1]), (1, 2, 3)))
        assert np.all(pid[label == 0] == 21)
        pt, eta, energy = (
            ak.to_numpy(jets[f]).astype(float) for f in ("jet_pt", "jet_eta", "jet_energy")
        )
        pz = pt * np.sinh(eta)
        y = 0.5 * np.log((energy + pz) / (energy - pz))
        assert np.all((pt > 500) & (pt < 550))
        assert np.all(np.abs(y) < 2)
        assert "part_pid" in jets.fields


@pytest.mark.slow
def test_qg_physics(qg_build: Path) -> None:
    """Gluon jets have more constituents than quark jets (Casimir scaling)."""
    jets = ak.concatenate(list(_splits(qg_build).values()))
    n = ak.to_numpy(jets.jet_nparticles)
    label = ak.to_numpy(jets.label)
    assert n[label == 0].mean() > n[label == 1].mean() + 5


@pytest.mark.slow
def test_cli_build(
    top_build: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    args = ["jets", "build", "top", "-n", "20", "-o", str(out), "-j", "0", "--no-progress"]
    code, text = _heplab(args, capsys)
    assert code == 0, text
    assert "top jets (train 16, val 2, test 2)" in text
    assert len(read_events(out / "test")) == 2
    # the tiny build of the fixture used other chunking knobs: refused through the CLI too
    args = ["jets", "build", "top", "-n", "60", "-o", str(top_build[0]), "--seed", "3", "-j", "0"]
    code, text = _heplab(args, capsys)
    assert code == 1
    assert "differs in: chunk_size, min_events" in text


@pytest.mark.slow
def test_jetclass_balance_labels_window(jetclass_build: Path) -> None:
    build = json.loads((jetclass_build / "build.json").read_text())
    assert build["complete"]
    assert build["config"]["jets_per_class"] == {"train": 4, "val": 1, "test": 1}
    seeds = {}
    for split, jets in _splits(jetclass_build).items():
        label = ak.to_numpy(jets.label)
        assert label.dtype == np.int8
        assert np.array_equal(np.bincount(label, minlength=10), np.full(10, len(jets) // 10))
        onehot = np.stack([ak.to_numpy(jets[name]) for name in LABELS], axis=1)
        assert np.all(onehot.sum(axis=1) == 1)
        assert np.array_equal(onehot.argmax(axis=1), label)  # label = index in LABELS
        pt, eta = ak.to_numpy(jets.jet_pt), ak.to_numpy(jets.jet_eta)
        assert np.all((pt > 500) & (pt < 1000))
        assert np.all(np.abs(eta) < 2)
        assert ak.max(ak.num(jets.part_px)) <= 128
        seeds[split] = set(ak.to_list(jets.gen_seed))
    assert not seeds["train"] & seeds["val"]
    assert not seeds["val"] & seeds["test"]
    assert not seeds["train"] & seeds["test"]
    sources = {r["source"] for r in build["runs"]}
    assert sources == {s.name for s in KINDS["jetclass"].sources}


@pytest.mark.slow
def test_jetclass_physics(jetclass_build: Path) -> None:
    """Resonance jets carry their mass in the soft-drop mass; QCD jets are light."""
    jets = ak.concatenate(list(_splits(jetclass_build).values()))
    label = ak.to_numpy(jets.label)
    sdmass = ak.to_numpy(jets.jet_sdmass)
    med = {name[6:]: float(np.median(sdmass[label == k])) for k, name in enumerate(LABELS)}
    assert 90 < med["Hbb"] < 140, med  # 125 GeV less neutrinos of semi-leptonic b decays
    assert 100 < med["Hgg"] < 140, med
    assert 65 < med["Wqq"] < 95, med
    assert 75 < med["Zqq"] < 105, med
    assert 145 < med["Tbqq"] < 200, med
    assert med["QCD"] < 65, med
    # the H -> l q q jets hold their lepton or the tau's decay products
    lep = jets[label == 5]
    assert ak.sum(lep.part_isElectron + lep.part_isMuon) >= 0.5 * len(lep)


@pytest.mark.slow
def test_flavour_balance_labels_features(flavour_build: Path) -> None:
    build = json.loads((flavour_build / "build.json").read_text())
    assert build["config"]["selection"]["features"].startswith("signed impact parameters")
    for jets in _splits(flavour_build).values():
        label = ak.to_numpy(jets.label)
        assert np.array_equal(np.bincount(label, minlength=3), np.full(3, len(jets) // 3))
        for column, k in (("label_l", 0), ("label_c", 1), ("label_b", 2)):
            assert np.array_equal(ak.to_numpy(jets[column]), (label == k).astype(np.int8))
        pid = np.abs(ak.to_numpy(jets.jet_parton_pid))
        assert np.all(pid[label == 2] == 5)
        assert np.all(pid[label == 1] == 4)
        assert np.all(np.isin(pid[label == 0], (1, 2, 3, 21)))
        pt, eta = ak.to_numpy(jets.jet_pt), ak.to_numpy(jets.jet_eta)
        assert np.all((pt > 30) & (pt < 250))
        assert np.all(np.abs(eta) < 2.5)
        for name in ("part_sip2dval", "part_sip2dsig", "part_sip3dval", "part_sip3dsig"):
            assert np.array_equal(
                ak.to_numpy(ak.num(jets[name])), ak.to_numpy(ak.num(jets.part_px))
            )
        assert np.all(ak.to_numpy(jets.jet_sip2dsig_1) >= ak.to_numpy(jets.jet_sip2dsig_2))
        assert np.all(ak.to_numpy(jets.jet_ndisplaced) <= ak.to_numpy(jets.jet_ntracks))


@pytest.mark.slow
def test_flavour_physics(flavour_build: Path) -> None:
    """b-hadron decays displace tracks downstream along the jet: large, positive signed
    impact-parameter significances in b jets; light-jet tracks are prompt (symmetric)."""
    jets = ak.concatenate(list(_splits(flavour_build).values()))
    label = ak.to_numpy(jets.label)
    track = jets.part_d0err > 0
    absig = {
        k: float(np.mean(np.abs(ak.to_numpy(ak.flatten(jets.part_sip2dsig[track][label == k])))))
        for k in (0, 1, 2)
    }
    assert absig[2] > 2 * absig[0], absig
    assert absig[1] > absig[0], absig
    sig = ak.to_numpy(ak.flatten(jets.part_sip2dsig[track][label == 2]))
    assert (sig > 3).sum() > 3 * (sig < -3).sum()  # the sign follows the decay direction
    ndisp = ak.to_numpy(jets.jet_ndisplaced)
    assert ndisp[label == 2].mean() > ndisp[label == 0].mean() + 1
    svm = ak.to_numpy(jets.jet_sv_mass)
    assert svm[label == 2].mean() > 2 * svm[label == 0].mean()


def _one_jet(d0: list[float], dz: list[float], dphi: list[float], charge: list[float]) -> ak.Array:
    """A jet along x (eta 0, phi 0) with pions of 10 GeV at the given offsets."""
    n = len(d0)
    p = 10.0
    px = [p * np.cos(a) for a in dphi]
    py = [p * np.sin(a) for a in dphi]
    return ak.Array(
        [
            {
                "jet_eta": 0.0,
                "part_px": px,
                "part_py": py,
                "part_pz": [0.0] * n,
                "part_energy": [float(np.hypot(p, 0.13957))] * n,
                "part_dphi": dphi,
                "part_charge": charge,
                "part_d0val": d0,
                "part_d0err": [0.01 if q else 0.0 for q in charge],
                "part_dzval": dz,
                "part_dzerr": [0.02 if q else 0.0 for q in charge],
            }
        ]
    )


def test_impact_parameter_signs_and_vertex_features() -> None:
    """A decay vertex at L = 2 mm along the jet axis: its tracks (d0 = L sin dphi) get
    positive signs, a track whose closest approach lies behind the vertex a negative one."""
    L = 2.0
    dphi = [0.1, -0.15, 0.05, 0.2]
    d0 = [L * np.sin(a) for a in dphi[:3]] + [-0.05]
    jets = impact_parameter_features(_one_jet(d0, [0.0, 0.03, -0.04, 0.0], dphi, [1, -1, 1, 1]))
    sig = ak.to_numpy(jets.part_sip2dsig[0])
    assert np.allclose(
        sig,
        [L * np.sin(0.1) / 0.01, L * np.sin(0.15) / 0.01, L * np.sin(0.05) / 0.01, -5.0],
        rtol=1e-5,
    )
    val3 = ak.to_numpy(jets.part_sip3dval[0])
    assert np.allclose(np.abs(val3), np.hypot(d0, [0.0, 0.03, -0.04, 0.0]), rtol=1e-5)
    assert np.all(val3[:3] > 0)
    assert val3[3] < 0
    assert jets.jet_ntracks[0] == 4
    assert jets.jet_ndisplaced[0] == 3
    assert np.allclose(
        [jets.jet_sip2dsig_1[0], jets.jet_sip2dsig_2[0], jets.jet_sip2dsig_3[0]],
        np.sort(sig)[::-1][:3],
        rtol=1e-5,
    )
    # the vertex mass of the three displaced pions, and their share of the track energy
    p4 = np.array([[10 * np.cos(a), 10 * np.sin(a), 0.0, np.hypot(10, 0.13957)] for a in dphi[:3]])
    tot = p4.sum(axis=0)
    mass = np.sqrt(tot[3] ** 2 - (tot[:3] ** 2).sum())
    assert jets.jet_sv_mass[0] == pytest.approx(mass, rel=1e-4)
    assert jets.jet_sv_efrac[0] == pytest.approx(0.75, rel=1e-5)
    # a neutral constituent has no impact parameter; a jet without tracks has zeros
    empty = impact_parameter_features(_one_jet([0.0], [0.0], [0.1], [0]))
    assert ak.to_list(empty.part_sip2dsig[0]) == [0.0]
    assert empty.jet_ntracks[0] == 0
    assert empty.jet_sv_mass[0] == 0
    assert empty.jet_sip2dsig_1[0] == 0
    with pytest.raises(DataError, match="part_d0err"):
        impact_parameter_features(ak.Array([{"part_d0val": [0.0]}]))


def _parton(pid: int, mother: int, eta: float, phi: float, pt: float = 100.0) -> dict[str, Any]:
    return {
        "px": pt * np.cos(phi),
        "py": pt * np.sin(phi),
        "pz": pt * np.sinh(eta),
        "energy": pt * np.cosh(eta),
        "pid": pid,
        "status": -22 if pid in (6, 24, 25) else 23,
        "mother": mother,
    }


def test_flavour_and_jetclass_label_logic() -> None:
    """Hand-made decays: t -> b W+, W+ -> c s-bar (R = 0.4 flavour) and boosted H -> b b-bar,
    W -> q q' (R = 0.8) jets get the class their selection expects."""
    top = [
        _parton(6, -1, 0.0, 0.5, 300),
        _parton(5, 0, 0.0, 0.0),
        _parton(24, 0, 0.0, 1.2),
        _parton(4, 2, 0.0, 1.0),
        _parton(-3, 2, 0.0, 1.3),
        _parton(21, -1, 1.5, 2.5),  # a hard gluon (ISR of the hard process)
    ]
    # jets: at the b, at the c only, between c and s (both inside 0.4: a W jet), the gluon,
    # and nothing
    eta = np.array([0.05, -0.3, 0.0, 1.5, -1.0])
    phi = np.array([0.0, 0.85, 1.15, 2.45, -2.0])
    lab = label_jets_flat(np.zeros(5, np.int64), eta, phi, ak.Array([top]), 0.4)
    assert lab["jet_parton_pid"].tolist() == [5, 4, 24, 21, 0]
    assert lab["label_Wqq"].tolist() == [0, 0, 1, 0, 0]
    jets = ak.Array({"jet_parton_pid": lab["jet_parton_pid"]})
    select = {c.name: c.select(jets).tolist() for c in KINDS["flavour"].classes}
    assert select == {
        "light": [False, False, False, True, False],
        "c": [False, True, False, False, False],
        "b": [True, False, False, False, False],
    }
    higgs = [
        _parton(25, -1, 0.0, 0.0, 500),
        _parton(5, 0, 0.2, 0.2),
        _parton(-5, 0, -0.2, -0.2),
        _parton(24, -1, 1.0, 3.0, 500),
        _parton(2, 3, 1.0, 2.8),
        _parton(-1, 3, 1.0, 3.2),
    ]
    lab = label_jets_flat(
        np.zeros(3, np.int64),
        np.array([0.0, 1.0, 0.5]),
        np.array([0.0, 3.0, 0.5]),
        ak.Array([higgs]),
        0.8,
    )
    jets = ak.Array({k: lab[k] for k in LABELS})
    chosen = {c.name: c.select(jets).tolist() for c in KINDS["jetclass"].classes}
    assert chosen["Hbb"] == [True, False, False]
    assert chosen["Wqq"] == [False, True, False]
    assert not any(chosen[c][2] for c in chosen)  # only one b inside: no class
