"""Jet taggers (registry, features, cut, bdt), training runs and the landscape.

The unit tests use synthetic, physics-shaped jets records (numpy/awkward, no event
generation): top-like signal (soft-drop mass ~ N(172, 15) GeV, low tau32, three prongs)
against QCD-like background (falling mass, high tau32, one prong).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplab.cli import main
from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.events import read_events
from heplab.events.parquet import write_parquet
from heplab.reconstruction.jets.taggers import Tagger, get_tagger, list_taggers
from heplab.reconstruction.jets.taggers.features import FEATURES, ecf_ratios, feature_matrix
from heplab.reconstruction.jets.tagging import (
    LANDSCAPE_KEYS,
    balanced_subset,
    evaluate,
    landscape,
    train,
)


def synthetic_jets(n: int, seed: int) -> ak.Array:
    """``n`` jets, half top-like signal (label 1), half QCD-like background (label 0)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.array([1, 0], np.int8), [n // 2, n - n // 2])
    sig = y == 1
    sdmass = np.where(sig, rng.normal(172, 15, n), 10 + rng.exponential(45, n))
    tau32 = np.where(sig, rng.beta(3, 5, n), rng.beta(6, 3, n))
    tau21 = np.where(sig, rng.beta(4, 4, n), rng.beta(5, 3, n))
    tau1 = rng.uniform(0.1, 0.3, n)
    pt = rng.uniform(550, 650, n)
    # constituents: three prongs (signal) or one (background) around the jet axis
    counts = np.where(sig, rng.integers(30, 70, n), rng.integers(15, 60, n))
    total = int(counts.sum())
    jet_of = np.repeat(np.arange(n), counts)
    nprong = np.where(sig, 3, 1)[jet_of]
    prong = rng.integers(0, 3, total) % nprong
    angle = rng.uniform(0, 2 * np.pi, (n, 3))
    radius = np.where(sig[:, None], 0.25, 0.0) * np.ones((n, 3))
    ceta = (radius * np.cos(angle))[jet_of, prong]
    cphi = (radius * np.sin(angle))[jet_of, prong]
    deta = ceta + rng.normal(0, 0.05, total)
    dphi = cphi + rng.normal(0, 0.05, total)
    w = rng.exponential(1.0, total)
    wsum = np.bincount(jet_of, weights=w)
    ppt = pt[jet_of] * w / wsum[jet_of]
    eta0, phi0 = rng.uniform(-2, 2, n), rng.uniform(-np.pi, np.pi, n)
    eta, phi = eta0[jet_of] + deta, phi0[jet_of] + dphi
    parts = {
        "part_px": ppt * np.cos(phi),
        "part_py": ppt * np.sin(phi),
        "part_pz": ppt * np.sinh(eta),
        "part_energy": ppt * np.cosh(eta),
        "part_deta": deta,
        "part_dphi": dphi,
    }
    fields: dict[str, object] = {
        "jet_pt": pt.astype(np.float32),
        "jet_eta": eta0.astype(np.float32),
        "jet_mass": (sdmass + rng.exponential(10, n)).astype(np.float32),
        "jet_sdmass": sdmass.astype(np.float32),
        "jet_tau1": tau1.astype(np.float32),
        "jet_tau2": (tau1 * tau21).astype(np.float32),
        "jet_tau3": (tau1 * tau21 * tau32).astype(np.float32),
        "jet_nparticles": counts.astype(np.int32),
        "label_Tbqq": y.copy(),
        "label_QCD": (1 - y).astype(np.int8),
        "label": y,
    }
    for name, values in parts.items():
        fields[name] = ak.unflatten(values.astype(np.float32), counts)
    jets = ak.zip(fields, depth_limit=1)
    return jets[rng.permutation(n)]


def write_dataset(root: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    for i, (split, n) in enumerate(sizes.items()):
        (root / split).mkdir(parents=True)
        write_parquet(synthetic_jets(n, seed + i), root / split / "jets.parquet")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic-top")
    return write_dataset(root, {"train": 1600, "val": 400, "test": 1000})


# ---------------------------------------------------------------------------- registry
def test_registry_lists_the_classical_taggers() -> None:
    assert {"cut", "bdt"} <= set(list_taggers())


def test_registry_holds_the_whole_zoo() -> None:
    # each of these learns held-out jets in its own test file (test_jets_tagging, _neural,
    # _cnn, _rnn_lorentz, _efp); a new tagger must join this list and get such a test
    assert set(list_taggers()) == {
        "cut",
        "bdt",
        "efp",
        "dnn",
        "pfn",
        "efn",
        "particlenet",
        "part",
        "transformer",
        "cnn",
        "resnext",
        "pcnn",
        "rnn",
        "lorentznet",
    }


def test_unknown_tagger_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown tagger 'nope'; choose one of") as exc:
        get_tagger("nope")
    assert {"bdt", "cut", "particlenet"} <= set(str(exc.value).split(" of ")[1].split(", "))


@pytest.mark.parametrize(
    ("name", "config", "match"),
    [
        ("bdt", {"max_dept": 3}, "unknown setting"),
        ("bdt", {"max_depth": "deep"}, "max_depth must be"),
        ("bdt", {"learning_rate": 0.0}, "learning_rate"),
        ("bdt", {"features": ["jet_colour"]}, "features"),
        ("cut", {"variable": "jet_colour"}, "variable"),
        ("cut", {"mass_window": [200, 100]}, "mass_window"),
        ("cut", {"working_point": 1.5}, "working_point"),
    ],
)
def test_bad_config_is_a_config_error(name: str, config: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        get_tagger(name, **config)


# ---------------------------------------------------------------------------- features
def test_ecf_ratios_match_a_brute_force_triplet_sum() -> None:
    jets = synthetic_jets(6, seed=5)
    c2, d2 = ecf_ratios(jets, max_constituents=20)
    for j in range(len(jets)):
        px, py = jets.part_px[j].to_numpy(), jets.part_py[j].to_numpy()
        pt = np.hypot(px, py)
        o = np.argsort(-pt)[:20]
        z = pt[o] / float(jets.jet_pt[j])
        e, p = jets.part_deta[j].to_numpy()[o], jets.part_dphi[j].to_numpy()[o]
        d = np.hypot(e[:, None] - e[None], p[:, None] - p[None])
        m = len(z)
        e2 = sum(z[a] * z[b] * d[a, b] for a in range(m) for b in range(a + 1, m))
        e3 = sum(
            z[a] * z[b] * z[c] * d[a, b] * d[a, c] * d[b, c]
            for a in range(m)
            for b in range(a + 1, m)
            for c in range(b + 1, m)
        )
        assert c2[j] == pytest.approx(e3 / e2**2, rel=1e-4)
        assert d2[j] == pytest.approx(e3 / e2**3, rel=1e-4)


def test_feature_matrix_shape_and_d2_separates_prongs() -> None:
    jets = synthetic_jets(400, seed=2)
    x = feature_matrix(jets)
    assert x.shape == (400, len(FEATURES))
    assert np.isfinite(x).all()
    y = jets.label.to_numpy()
    d2 = x[:, FEATURES.index("d2")]
    # three prongs against one: the energy-correlation ratios separate the classes
    assert abs(np.median(d2[y == 1]) - np.median(d2[y == 0])) > 0.1


def test_missing_column_is_a_data_error() -> None:
    jets = synthetic_jets(10, seed=1)
    with pytest.raises(DataError, match="jet_sdmass"):
        get_tagger("cut").fit(ak.without_field(jets, "jet_sdmass"))


# ---------------------------------------------------------------------------- taggers
@pytest.fixture(scope="module")
def splits(data: Path) -> dict[str, ak.Array]:
    from heplab.reconstruction.jets.tagging import load_splits

    return load_splits(data)


@pytest.mark.parametrize("name", ["cut", "bdt"])
def test_tagger_separates_and_reloads_identically(
    name: str, splits: dict[str, ak.Array], tmp_path: Path
) -> None:
    from heplab.ml.metrics import auc

    tagger = get_tagger(name, seed=3)
    assert tagger.fit(splits["train"], splits["val"]) is tagger
    assert tagger.is_fitted
    assert all(k.endswith("_") for k in vars(tagger) if k not in ("config", "seed", "threshold"))
    score = tagger.score(splits["test"])
    assert score.dtype == np.float64
    assert score.shape == (len(splits["test"]),)
    assert auc(splits["test"].label.to_numpy(), score) > 0.85
    assert tagger.n_params >= 1
    tagger.save(tmp_path / name)
    assert not list((tmp_path / name).glob("*.pkl"))
    again = Tagger.load(tmp_path / name)
    assert type(again) is type(tagger)
    np.testing.assert_array_equal(again.score(splits["test"]), score)
    assert again.n_params == tagger.n_params
    assert again.threshold == tagger.threshold


def test_cut_tagger_window_and_multiplicity_fallback(splits: dict[str, ak.Array]) -> None:
    cut = get_tagger("cut").fit(splits["train"])
    assert cut.variable_ == "tau32"
    assert cut.window_ is not None
    lo, hi = cut.window_
    assert 100 <= lo < 172 < hi <= 260
    assert cut.n_params == 3
    qg = ak.with_field(splits["train"], splits["train"].label, "label_q")
    mult = get_tagger("cut").fit(qg)
    assert mult.variable_ == "jet_nparticles"
    assert mult.window_ is None
    np.testing.assert_array_equal(
        mult.score(splits["test"]), 1.0 - splits["test"].jet_nparticles.to_numpy()
    )


def test_bdt_early_stopping_and_seed(splits: dict[str, ak.Array]) -> None:
    a = get_tagger("bdt", seed=1, n_estimators=300).fit(splits["train"], splits["val"])
    b = get_tagger("bdt", seed=1, n_estimators=300).fit(splits["train"], splits["val"])
    assert a.best_iteration_ < 299  # stopped early on this easy set
    np.testing.assert_array_equal(a.score(splits["test"]), b.score(splits["test"]))


# ---------------------------------------------------------------------------- runs
def test_train_writes_a_run_and_evaluate_reads_it(data: Path, tmp_path: Path) -> None:
    run = train("bdt", data, tmp_path / "run", config={"max_depth": 3, "n_estimators": 100}, seed=2)
    assert {p.name for p in run.iterdir()} == {"config.json", "metrics.json", "model", "roc.png"}
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"] == "bdt"
    assert cfg["config"]["max_depth"] == 3
    assert cfg["seed"] == 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["auc"] > 0.85
    again = evaluate(run)
    assert again["test"]["auc"] == pytest.approx(metrics["test"]["auc"])
    train(
        "bdt", data, run, config={"max_depth": 3, "n_estimators": 100}, seed=2
    )  # same run: replaced
    with pytest.raises(OutputExistsError):
        train("bdt", data, run, config={"max_depth": 4, "n_estimators": 100}, seed=2)
    train("bdt", data, run, config={"max_depth": 4, "n_estimators": 100}, seed=2, force=True)


def test_missing_split_and_label_are_data_errors(data: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    (partial / "train").mkdir(parents=True)
    write_parquet(synthetic_jets(20, 1), partial / "train" / "jets.parquet")
    with pytest.raises(DataError, match="'val' split is missing"):
        train("cut", partial, tmp_path / "r1")
    nolabel = tmp_path / "nolabel"
    for split in ("train", "val", "test"):
        (nolabel / split).mkdir(parents=True)
        write_parquet(
            ak.without_field(synthetic_jets(20, 1), "label"), nolabel / split / "jets.parquet"
        )
    with pytest.raises(DataError, match="'label' column"):
        train("cut", nolabel, tmp_path / "r2")


def test_landscape_records(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "land"
    results = landscape(data, ["cut", "bdt"], out, repeats=2, seed=4)
    assert [r["model"] for r in results] == ["cut", "bdt"]
    on_disk = json.loads((out / "landscape.json").read_text())
    assert on_disk == results
    for r in on_disk:
        assert set(LANDSCAPE_KEYS) <= set(r)
        assert {"auc_std", "rej30_std", "rej50_std"} <= set(r)
        assert 0.5 < r["auc"] <= 1
        assert r["rej50"] is None or r["rej50"] >= 2
        assert 0 < r["accuracy"] <= 1
        assert r["params"] >= 1
        assert r["train_seconds"] > 0
        assert r["infer_jets_per_s"] > 0
        assert r["seeds"] == [4, 5]
    cut, bdt = on_disk
    assert bdt["auc"] >= cut["auc"] - 0.02
    assert (out / "roc.png").stat().st_size > 1000
    md = (out / "landscape.md").read_text()
    assert "| cut |" in md
    assert "| bdt |" in md


def test_landscape_learning_curves(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "lc"
    n_train = len(read_events(data / "train"))
    landscape(data, ["bdt"], out, train_sizes=[20, 60], configs={"bdt": {"n_estimators": 30}})
    points = json.loads((out / "learning_curves.json").read_text())
    assert [p["train_jets"] for p in points] == [20, 60, n_train]
    assert all(p["model"] == "bdt" for p in points)
    # more training jets do not make the BDT worse (beyond noise) on the same test split
    assert points[-1]["auc"] >= points[0]["auc"] - 0.02
    assert points[-1]["auc"] > 0.8
    assert (out / "learning_curves.png").stat().st_size > 1000
    assert "learning_curves.png" in (out / "landscape.md").read_text()
    with pytest.raises(ConfigError, match="train-sizes"):
        landscape(data, ["cut"], tmp_path / "x", train_sizes=[10**9])


def test_balanced_subset_is_balanced(data: Path) -> None:
    jets = read_events(data / "train")
    sub = balanced_subset(jets, 40, seed=3)
    y = ak.to_numpy(sub["label"])
    assert len(sub) == 40
    assert (y == 1).sum() == 20


def test_landscape_single_repeat_has_no_std(data: Path, tmp_path: Path) -> None:
    (r,) = landscape(data, ["cut"], tmp_path / "l1")
    assert "auc_std" not in r
    assert math.isfinite(r["auc"])


def test_landscape_rejects_bad_models(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown tagger"):
        landscape(data, ["cut", "gnn9"], tmp_path / "x")
    with pytest.raises(ConfigError, match="unknown setting"):
        landscape(data, ["bdt"], tmp_path / "x", configs={"bdt": {"depth": 2}})
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------- CLI
def test_cli_train_and_landscape(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bdt.yaml"
    cfg.write_text("n_estimators: 50\nmax_depth: 3\n")
    main(
        [
            "jets",
            "train",
            "bdt",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "r"),
            "--config",
            str(cfg),
        ]
    )
    assert "test AUC" in capsys.readouterr().out
    lcfg = tmp_path / "land.yaml"
    lcfg.write_text("bdt:\n  n_estimators: 50\n")
    main(
        [
            "jets",
            "landscape",
            "--data",
            str(data),
            "--models",
            "cut,bdt",
            "--out",
            str(tmp_path / "l"),
            "--config",
            str(lcfg),
            "--repeats",
            "2",
        ]
    )
    assert (tmp_path / "l" / "landscape.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jets", "train", "nope", "--data", "D", "--out", "R"], "unknown tagger 'nope'"),
        (
            ["jets", "landscape", "--data", "D", "--models", "cut,zz", "--out", "R"],
            "unknown tagger",
        ),
        (
            ["jets", "train", "bdt", "--data", "D", "--out", "R", "--config", "BAD"],
            "unknown setting",
        ),
    ],
)
def test_cli_errors_are_one_line(
    args: list[str], message: str, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_dept: 3\n")
    args = [{"D": str(data), "R": str(tmp_path / "r"), "BAD": str(bad)}.get(a, a) for a in args]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("heplab: error:")
    assert message in err
    assert "\n" not in err


# ---------------------------------------------------------------------------- real jets
@pytest.mark.slow
def test_landscape_on_a_tiny_real_top_dataset(tmp_path: Path) -> None:
    from heplab.reconstruction.jets.datasets import build_dataset

    root = build_dataset(
        "top", 200, tmp_path / "top", workers=0, progress=False, chunk_size=200, min_events=100
    )
    results = landscape(root, ["cut", "bdt"], tmp_path / "land", seed=0)
    for r in results:
        assert r["auc"] > 0.7, r
