"""Deployment: `heplab jets export` (ONNX / TorchScript) and `heplab jets predict`."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
import uproot
from jetsamples import synthetic_jets

from heplab.cli import main
from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.events.hdf5 import write_hdf5
from heplab.events.parquet import write_parquet
from heplab.ml.data import jet_arrays
from heplab.ml.metrics import auc
from heplab.reconstruction.jets.export import export, predict
from heplab.reconstruction.jets.jetfiles import read_jets
from heplab.reconstruction.jets.taggers import Tagger
from heplab.reconstruction.jets.tagging import evaluate, load_split, train

FAST = {"epochs": 2, "batch_size": 64, "lr": 3e-3, "progress_bar": False}
SMALL = {
    "part": {"layers": 1, "dim": 16, "pair_dims": [8]},
    "transformer": {"layers": 1, "dim": 16},
    "particlenet": {"channels": [[16, 16]]},
}


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("data")
    for i, (split, n) in enumerate((("train", 240), ("val", 80), ("test", 120))):
        (d / split).mkdir()
        write_parquet(synthetic_jets(n, 10 + i), d / split / "jets.parquet")
    return d


@pytest.fixture(scope="module")
def runs(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for model in ("dnn", "pfn", "efn", "particlenet", "part", "transformer", "rnn", "cut"):
        # pfn and cut are scored in predict's physics check; the others need no accuracy
        epochs = {"epochs": 2 if model == "pfn" else 1}
        cfg = {} if model == "cut" else {**FAST, **epochs, **SMALL.get(model, {})}
        out[model] = train(model, dataset, root / model, config=cfg)
    return out


def _deployed_inputs(export_dir: Path, jets: ak.Array) -> dict[str, np.ndarray]:
    """The exported model's inputs built from raw jets with preprocess.json alone (what
    a C++ producer does), not with heplab's Standardiser."""
    pre = json.loads((export_dir / "preprocess.json").read_text())
    meta = json.loads((export_dir / "export.json").read_text())
    length = pre[pre["input_names"][0]]["var_length"]
    raw = jet_arrays(jets, max_particles=length, hl_features=None)
    mask = raw["mask"]
    feeds = {}
    for name in pre["input_names"]:
        spec = pre[name]
        infos = spec["var_infos"]
        centre = np.array([infos[v]["median"] for v in spec["var_names"]], np.float32)
        scale = np.array([infos[v]["norm_factor"] for v in spec["var_names"]], np.float32)
        if name == "pf_mask":
            feeds[name] = mask[:, None, :].astype(np.float32)
            continue
        if name == "jet_features":
            from heplab.reconstruction.jets.taggers.features import feature_matrix

            values = feature_matrix(jets, spec["var_names"])
            feeds[name] = ((values - centre) * scale).astype(np.float32)
            continue
        key = {"pf_features": "x", "pf_vectors": "v", "pf_points": "coords"}[name]
        values = np.where(mask[..., None], (raw[key] - centre) * scale, 0.0)
        feeds[name] = np.ascontiguousarray(np.swapaxes(values, 1, 2)).astype(np.float32)
    assert list(feeds) == list(meta["inputs"])
    return feeds


@pytest.mark.parametrize("model", ["dnn", "efn", "particlenet", "part"])
def test_onnx_export_reproduces_the_tagger_from_raw_jets(
    model: str, runs: dict[str, Path], dataset: Path
) -> None:
    import onnxruntime as ort

    path = export(runs[model], "onnx", n_check=64)
    assert path == runs[model] / "export" / "model.onnx"
    meta = json.loads((path.parent / "export.json").read_text())
    assert meta["check"]["passed"]
    assert meta["check"]["max_abs_diff"] < 1e-4
    assert "jets of" in meta["check"]["jets"]  # real jets of the test split
    pre = json.loads((path.parent / "preprocess.json").read_text())
    assert pre["output_names"] == ["background", "signal"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    assert [i.name for i in inputs] == pre["input_names"]
    assert all(i.type == "tensor(float)" and not isinstance(i.shape[0], int) for i in inputs)
    # a batch size never seen at export, inputs made from preprocess.json only
    jets = read_jets(dataset / "test")[:37]
    probs = session.run(["softmax"], _deployed_inputs(path.parent, jets))[0]
    assert probs.shape == (37, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    expected = Tagger.load(runs[model] / "model").score(jets)
    np.testing.assert_allclose(probs[:, 1], expected, atol=2e-4)


@pytest.mark.parametrize(
    "model", ["dnn", "pfn", "efn", "particlenet", "part", "transformer", "rnn"]
)
def test_torchscript_export_round_trips(model: str, runs: dict[str, Path], dataset: Path) -> None:
    out = runs[model] / "ts"
    path = export(runs[model], "torchscript", out=out, n_check=32)
    assert path == out / "model.pt"
    with warnings.catch_warnings():  # PyTorch deprecates TorchScript; libtorch still reads it
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path))
    jets = read_jets(dataset / "test")[:20]
    feeds = _deployed_inputs(out, jets)
    with torch.inference_mode():
        probs = module(*[torch.from_numpy(a) for a in feeds.values()]).numpy()
    expected = Tagger.load(runs[model] / "model").score(jets)
    np.testing.assert_allclose(probs[:, 1], expected, atol=2e-4)
    with pytest.raises(OutputExistsError, match="exists"):
        export(runs[model], "torchscript", out=out)


def test_export_refuses_what_it_cannot_do(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="classical"):
        export(runs["cut"], "onnx")
    with pytest.raises(DataError, match="not a tagger run"):
        export(tmp_path, "onnx")
    # packed LSTM sequences do not pass torch.export: a clear refusal, nothing written
    with pytest.raises(ConfigError, match=r"cannot export the rnn network to ONNX.*torchscript"):
        export(runs["rnn"], "onnx", out=tmp_path / "rnn")
    assert not (tmp_path / "rnn" / "model.onnx").exists()
    with pytest.raises(ConfigError, match="onnx or torchscript"):
        export(runs["pfn"], "tflite")  # type: ignore[arg-type]


def _write_inputs(jets: ak.Array, d: Path) -> dict[str, Path]:
    d.mkdir()
    files = {
        "parquet": d / "a.parquet",
        "hdf5": d / "b.h5",
        "rntuple": d / "c.root",
        "ttree": d / "d.root",
    }
    write_parquet(jets, files["parquet"])
    write_hdf5(jets, files["hdf5"], key="jets")
    with uproot.recreate(files["rntuple"]) as f:  # uproot's default for a dict: RNTuple
        f["tree"] = {k: jets[k] for k in ak.fields(jets)}
    part = [k for k in ak.fields(jets) if k.startswith("part_")]
    branches = {k: ak.to_numpy(jets[k]) for k in ak.fields(jets) if k not in part}
    branches["part"] = ak.zip({k[5:]: jets[k] for k in part})
    with uproot.recreate(files["ttree"]) as f:
        f.mktree(
            "Jets", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()}
        )
        f["Jets"].extend(branches)
    return files


@pytest.mark.parametrize("model", ["pfn", "cut"])
def test_predict_writes_scores_beside_the_jets(
    model: str, runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jets = synthetic_jets(150, 99)
    files = _write_inputs(jets, tmp_path / "in")
    out = tmp_path / "out"
    main(["jets", "predict", str(runs[model]), *map(str, files.values()), "--out", str(out)])
    assert str(out / "a.parquet") in capsys.readouterr().out
    expected = Tagger.load(runs[model] / "model").score(jets)
    y = ak.to_numpy(jets["label"])
    names = {"parquet": "a.parquet", "hdf5": "b.h5", "rntuple": "c.root", "ttree": "d.root"}
    for kind, name in names.items():
        tagged = read_jets(out / name)
        assert len(tagged) == len(jets), kind
        np.testing.assert_allclose(ak.to_numpy(tagged["score"]), expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(ak.to_numpy(tagged["label"]), y)
        assert ak.all(ak.num(tagged["part_px"]) == ak.num(jets["part_px"]))
    assert auc(y, expected) > 0.9
    summary = json.loads((out / "predict.json").read_text())
    assert [f["jets"] for f in summary["files"]] == [150] * 4
    # a second run does not overwrite what is there
    with pytest.raises(SystemExit) as exc:
        main(["jets", "predict", str(runs[model]), str(files["parquet"]), "--out", str(out)])
    assert exc.value.code == 1
    assert "exists" in capsys.readouterr().err


def test_predict_refuses_files_without_jets(runs: dict[str, Path], tmp_path: Path) -> None:
    events = tmp_path / "events.parquet"
    write_parquet(ak.Array({"met": [1.0, 2.0]}), events)
    with pytest.raises(DataError, match="no jets with constituents"):
        predict(runs["pfn"], [events], tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="no such file"):
        predict(runs["pfn"], [tmp_path / "nope.root"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_evaluate_command_prints_the_metrics(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    main(["jets", "evaluate", str(runs["pfn"])])
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["model"] == "pfn"
    assert metrics["test"]["auc"] > 0.9


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flavour-like dataset: label 0 light / 1 c / 2 b with one-hot columns; the b jets
    are the top-like synthetic jets, c and light share the QCD-like ones."""
    d = tmp_path_factory.mktemp("three")
    for i, (split, n) in enumerate((("train", 300), ("val", 90), ("test", 150))):
        jets = synthetic_jets(n, 40 + i)
        top = ak.to_numpy(jets["label"]) == 1
        flavour = np.where(top, 2, np.arange(n) % 2)
        jets = ak.with_field(jets, flavour.astype(np.int8), "label")
        for k, name in enumerate(("label_l", "label_c", "label_b")):
            jets = ak.with_field(jets, (flavour == k).astype(np.int8), name)
        (d / split).mkdir()
        write_parquet(jets, d / split / "jets.parquet")
    return d


def test_binary_task_from_a_multiclass_dataset(
    three_classes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["jets", "train", "bdt", "--data", str(three_classes), "--out", str(tmp_path / "x")])
    assert "--signal / --background" in capsys.readouterr().err
    run = tmp_path / "b-vs-l"
    args = ["--signal", "label_b", "--background", "label_l"]
    main(
        [
            "jets",
            "train",
            "dnn",
            "--data",
            str(three_classes),
            "--out",
            str(run),
            *args,
            "--config",
            str(_yaml(tmp_path, {**FAST, "epochs": 3})),
        ]
    )
    config = json.loads((run / "config.json").read_text())
    assert (config["signal"], config["background"]) == (["label_b"], ["label_l"])
    metrics = json.loads((run / "metrics.json").read_text())
    # only b and light jets are scored: half of the QCD-like test jets are c jets
    test = read_jets(three_classes / "test")
    n_bl = int(np.isin(ak.to_numpy(test["label"]), (0, 2)).sum())
    assert metrics["test"]["n"] == n_bl
    assert metrics["test"]["auc"] > 0.9
    assert evaluate(run)["test"]["n"] == n_bl
    export(run, "torchscript", n_check=16)
    pre = json.loads((run / "export" / "preprocess.json").read_text())
    assert pre["output_names"] == ["label_l", "label_b"]
    with pytest.raises(DataError, match="no label column"):
        load_split(three_classes, "test", (["label_bb"], ["label_l"]))
    with pytest.raises(ConfigError, match="both sides"):
        load_split(three_classes, "test", (["label_b"], ["label_b", "label_l"]))


def _yaml(tmp_path: Path, config: dict[str, object]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in config.items()))
    return path
