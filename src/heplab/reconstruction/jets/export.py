"""Deploy a trained neural tagger: ONNX / TorchScript export with a numeric check, and
``predict`` on a user's jets files.

:func:`export` writes, into ``RUN/export/`` (or ``out``):

``model.onnx`` or ``model.pt`` (TorchScript)
    The network wrapped for inference engines in weaver's layout: named float32 inputs,
    channels first, dynamic batch axis ``N`` and a fixed particle axis of
    ``max_particles`` (padding with zeros behind the real particles, as in training):

    - ``pf_features`` ``(N, 13, P)``: the standardised particle features
      (``heplab.ml.data.PARTICLE_FEATURES``);
    - ``pf_vectors`` ``(N, 4, P)``: (px, py, pz, E) [GeV];
    - ``pf_points`` ``(N, 2, P)``: (deta, dphi);
    - ``pf_mask`` ``(N, 1, P)``: 1 for a real particle, 0 for padding;
    - ``jet_features`` ``(N, H)``: standardised high-level features (``dnn``);
    - ``jet_image`` ``(N, C, npix, npix)``: jet images (image CNNs);

    only those the network uses, in that order. Output ``softmax`` ``(N, 2)``:
    (background, signal) probabilities (weaver's convention; the signal column is the
    tagger's ``score``). Flat float32 buffers with these shapes are what CMSSW's
    ``cms::Ort::ONNXRuntime`` takes.
``preprocess.json``
    weaver's preprocessing description: ``input_names``, ``output_names`` (the class
    labels) and per input ``var_names``, ``var_length`` and ``var_infos`` (``median`` =
    centre, ``norm_factor`` = 1 / std, so the network sees ``(value - median) *
    norm_factor``; ``replace_inf_value``, ``lower_bound``, ``upper_bound``, ``pad``), plus
    heplab's ``definitions`` of every raw variable.
``export.json``
    format, file, opset / torch version, the inputs with shapes and dtypes, and the
    numeric check: the exported model (ONNX Runtime, or the TorchScript module reloaded)
    against the PyTorch network on real jets of the run's dataset (test split; random
    standardised inputs if the dataset is gone), at two batch sizes; the export fails if
    the largest absolute difference of the probabilities exceeds ``atol`` (1e-4).

:func:`predict` tags the jets of each input file and writes them, with a ``score``
column, to ``out/<file name>`` in the input's format (parquet for ``.npz`` and
directories), plus ``predict.json`` listing what was done.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import awkward as ak
import numpy as np

from heplab import __version__
from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.reconstruction.jets.taggers import Tagger

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["EXPORT_INPUTS", "ExportFormat", "export", "predict"]

ExportFormat = Literal["onnx", "torchscript"]

#: heplab batch key -> (exported input name, layout description).
EXPORT_INPUTS: Final[dict[str, tuple[str, str]]] = {
    "x": ("pf_features", "(N, C, P) standardised particle features"),
    "v": ("pf_vectors", "(N, 4, P) px, py, pz, E [GeV]"),
    "coords": ("pf_points", "(N, 2, P) deta, dphi to the jet axis"),
    "mask": ("pf_mask", "(N, 1, P) 1 real particle, 0 padding"),
    "hl": ("jet_features", "(N, H) standardised high-level jet features"),
    "img": ("jet_image", "(N, C, npix, npix) jet images"),
}
_PARTICLE_KEYS: Final = ("x", "v", "coords", "mask")
_FILES: Final = {"onnx": "model.onnx", "torchscript": "model.pt"}
_OPSET: Final = 18
ATOL: Final = 1e-4

#: Definitions of the raw variables written to preprocess.json.
DEFINITIONS: Final[dict[str, str]] = {
    "log_pt": "ln(pT / GeV) of the particle",
    "log_e": "ln(E / GeV) of the particle",
    "log_pt_rel": "ln(pT / jet pT), jet = sum of all constituents",
    "log_e_rel": "ln(E / jet E)",
    "deta": "eta - jet eta",
    "dphi": "phi - jet phi, wrapped to [-pi, pi)",
    "dr": "sqrt(deta^2 + dphi^2)",
    "charge": "electric charge",
    "is_electron": "|pid| == 11",
    "is_muon": "|pid| == 13",
    "is_photon": "|pid| == 22",
    "is_charged_hadron": "charged and not e / mu / photon",
    "is_neutral_hadron": "neutral and not e / mu / photon",
    "px": "GeV",
    "py": "GeV",
    "pz": "GeV",
    "energy": "GeV",
    "mask": "1 real particle, 0 padding",
    "ip_d0": "sign(u) ln(1 + |u|), u = part_d0val in micrometres",
    "ip_d0sig": "sign(u) ln(1 + |u|), u = part_d0val / part_d0err",
    "ip_dz": "sign(u) ln(1 + |u|), u = part_dzval in micrometres",
    "ip_dzsig": "sign(u) ln(1 + |u|), u = part_dzval / part_dzerr",
}


def _load_neural(run_dir: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    from heplab.reconstruction.jets.taggers.neural import NeuralTagger

    run = Path(run_dir)
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise DataError(f"{run}: not a tagger run (config.json missing; see `heplab jets train`)")
    config = json.loads(cfg_path.read_text())
    tagger = Tagger.load(run / "model")
    if not isinstance(tagger, NeuralTagger):
        raise ConfigError(
            f"{run}: export handles the neural taggers; {tagger.name!r} is classical "
            "(its model directory is already a portable JSON / xgboost file)"
        )
    return tagger, config


def _deployed(net: nn.Module) -> nn.Module:
    """The inference module: weaver layout in, (background, signal) probabilities out."""
    import torch
    from torch import nn

    names = tuple(getattr(net, "input_names", ("x", "mask")))

    class Deployed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            args = []
            for key, value in zip(names, inputs, strict=True):
                if key == "mask":
                    args.append(value[:, 0, :] > 0.5)
                elif key in _PARTICLE_KEYS:
                    args.append(value.transpose(1, 2))
                else:
                    args.append(value)
            logits = self.net(*args)
            if logits.dim() == 1:
                p = torch.sigmoid(logits)
                return torch.stack([1.0 - p, p], dim=-1)
            return torch.softmax(logits, dim=-1)

    return Deployed().eval()


def _example_inputs(tagger: Any, config: dict[str, Any], n: int) -> tuple[dict[str, Any], str]:
    """Standardised inputs (heplab layout, numpy) of up to ``n`` jets and their origin."""
    data = Path(str(config.get("data", ""))) / "test"
    arrays: dict[str, np.ndarray]
    if data.exists():
        from heplab.reconstruction.jets.tagging import load_split, run_binary

        jets = load_split(data.parent, "test", run_binary(config))[:n]
        arrays = tagger.standardiser_.apply(tagger._arrays(jets))
        origin = f"{len(jets)} jets of {data}"
    else:
        rng = np.random.default_rng(0)
        p = int(tagger.config["max_particles"])
        counts = rng.integers(1, p + 1, n)
        mask = np.arange(p)[None, :] < counts[:, None]
        pt = rng.exponential(20.0, (n, p)) + 1.0
        phi = rng.uniform(-np.pi, np.pi, (n, p))
        eta = rng.normal(0, 0.3, (n, p))
        v = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)], -1)
        arrays = {
            "x": rng.normal(0, 1, (n, p, tagger.inputs_["n_x"])),
            "v": v,
            "coords": np.stack([eta, phi * 0.2], -1),
            "mask": mask,
            "hl": rng.normal(0, 1, (n, tagger.inputs_["n_hl"])),
        }
        for key in ("x", "v", "coords"):
            arrays[key] = np.where(mask[..., None], arrays[key], 0.0)
        origin = f"{n} random jets (the run's dataset {data} is not there)"
    return arrays, origin


def _layout(arrays: dict[str, np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
    out = []
    for key in names:
        if key not in arrays:
            raise DataError(f"the network needs the input {key!r}, which the jets do not give")
        a = np.asarray(arrays[key], dtype=np.float32)
        if key == "mask":
            a = a[:, None, :]
        elif key in _PARTICLE_KEYS:
            a = np.ascontiguousarray(np.swapaxes(a, 1, 2))
        out.append(np.ascontiguousarray(a))
    return out


def _run_torch(module: nn.Module, inputs: list[np.ndarray]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return module(*[torch.from_numpy(a) for a in inputs]).numpy()


def _export_onnx(module: nn.Module, inputs: list[np.ndarray], names: list[str], path: Path) -> None:
    import torch

    batch = torch.export.Dim("N", min=1)
    example = tuple(torch.from_numpy(a) for a in inputs)
    quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed" notes
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # torch.export's pytree helper and the exporter's notes on shared axis names
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message=r".*axis name.*will not be used.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            program = torch.onnx.export(
                module,
                example,
                dynamo=True,
                input_names=names,
                output_names=["softmax"],
                dynamic_shapes=(tuple({0: batch} for _ in example),),
                opset_version=_OPSET,
                optimize=True,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    if program is None:  # pragma: no cover - dynamo=True always returns a program
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path))


def _run_onnx(path: Path, names: list[str], inputs: list[np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    got = [i.name for i in session.get_inputs()]
    if got != names:
        raise RuntimeError(f"the ONNX model's inputs are {got}, expected {names}")
    out = session.run(["softmax"], dict(zip(names, inputs, strict=True)))[0]
    return np.asarray(out)


def _export_torchscript(module: nn.Module, inputs: list[np.ndarray], path: Path) -> None:
    import torch

    example = tuple(torch.from_numpy(a) for a in inputs)
    with warnings.catch_warnings():
        # the particle axis is fixed, so the traced Python branches on shapes are constant
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, str(path))


def _run_torchscript(path: Path, inputs: list[np.ndarray]) -> np.ndarray:
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")
    return _run_torch(loaded, inputs)


def _preprocess_json(tagger: Any, names: Sequence[str], classes: list[str]) -> dict[str, Any]:
    from heplab.ml.data import PARTICLE_FEATURES

    std = tagger.standardiser_
    p = int(tagger.config["max_particles"])
    out: dict[str, Any] = {
        "output_names": classes,
        "input_names": [EXPORT_INPUTS[k][0] for k in names],
    }

    def infos(var_names: Sequence[str], mean: Sequence[float], sd: Sequence[float]) -> Any:
        return {
            v: {
                "median": float(m),
                "norm_factor": 1.0 / float(s),
                "replace_inf_value": 0,
                "lower_bound": -1e32,
                "upper_bound": 1e32,
                "pad": 0,
            }
            for v, m, s in zip(var_names, mean, sd, strict=True)
        }

    for key in names:
        name = EXPORT_INPUTS[key][0]
        if key == "x":
            var = list(PARTICLE_FEATURES)
            extra = len(std.x_mean) - len(var)
            if extra > 0:  # the rnn's impact-parameter features (order: d0sig)
                from heplab.reconstruction.jets.taggers.sequence import IP_FEATURES

                more = list(IP_FEATURES) if extra == len(IP_FEATURES) else []
                var += more or [f"x{i}" for i in range(len(var), len(std.x_mean))]
            entry = {"var_length": p, "var_infos": infos(var, std.x_mean, std.x_std)}
        elif key == "hl":
            var = list(tagger.config.get("features", []))
            entry = {"var_length": 1, "var_infos": infos(var, std.hl_mean, std.hl_std)}
        elif key == "v":
            var = ["px", "py", "pz", "energy"]
            entry = {"var_length": p, "var_infos": infos(var, [0] * 4, [1] * 4)}
        elif key == "coords":
            var = ["deta", "dphi"]
            entry = {"var_length": p, "var_infos": infos(var, [0] * 2, [1] * 2)}
        elif key == "mask":
            var = ["mask"]
            entry = {"var_length": p, "var_infos": infos(var, [0], [1])}
        else:
            var = [key]
            entry = {"var_length": 1, "var_infos": {}}
        out[name] = {"var_names": var, **entry}
    out["definitions"] = {
        v: d
        for v, d in DEFINITIONS.items()
        if any(v in out[EXPORT_INPUTS[k][0]]["var_names"] for k in names)
    }
    return out


def _classes(config: dict[str, Any]) -> list[str]:
    """(background, signal) class names: the dataset's truth-label columns (weaver's
    ``output_names``, e.g. ``label_QCD, label_Tbqq``) when its build.json names them."""
    if "signal" in config and "background" in config:
        return ["+".join(config["background"]), "+".join(config["signal"])]
    build = Path(str(config.get("data", ""))) / "build.json"
    if build.is_file():
        try:
            classes = json.loads(build.read_text())["selection"]["classes"]
            names = {}
            for name, c in classes.items():
                column = str(c.get("jets", "")).split(" ")[0]
                names[int(c["label"])] = column if column.startswith("label_") else name
            if set(names) == {0, 1}:
                return [names[0], names[1]]
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    return ["background", "signal"]


def export(
    run_dir: str | os.PathLike[str],
    format: ExportFormat = "onnx",
    *,
    out: str | os.PathLike[str] | None = None,
    n_check: int = 256,
    atol: float = ATOL,
    force: bool = False,
) -> Path:
    """Export the neural tagger of ``run_dir`` (see the module docstring); returns the
    model file. :class:`OutputExistsError` if it exists and not ``force``;
    :class:`DataError` if the numeric check fails (nothing is left behind then)."""
    import torch

    if format not in _FILES:
        raise ConfigError(f"export format must be onnx or torchscript, not {format!r}")
    if n_check < 2:
        raise ConfigError(f"the numeric check needs at least 2 jets, not {n_check}")
    tagger, config = _load_neural(run_dir)
    out_dir = Path(out) if out is not None else Path(run_dir) / "export"
    target = out_dir / _FILES[format]
    if target.exists() and not force:
        raise OutputExistsError(f"{target} exists; pass --force to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(getattr(tagger.net_, "input_names", ("x", "mask")))
    onnx_names = [EXPORT_INPUTS[k][0] for k in names]
    module = _deployed(tagger.net_)
    arrays, origin = _example_inputs(tagger, config, n_check)
    inputs = _layout(arrays, names)
    torch.manual_seed(0)
    tmp = out_dir / f".{target.name}.tmp"
    t0 = time.perf_counter()
    try:
        if format == "onnx":
            try:
                _export_onnx(module, [a[:2] for a in inputs], onnx_names, tmp)
            except Exception as exc:  # torch's exporter raises many kinds
                text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # no terminal colours
                first = text.splitlines()[0] if text else repr(exc)
                raise ConfigError(
                    f"torch {torch.__version__} cannot export the {tagger.name} network to "
                    f"ONNX ({type(exc).__name__}: {first}); --format torchscript works for "
                    "every heplab network"
                ) from exc

            def run(batch: list[np.ndarray]) -> np.ndarray:
                return _run_onnx(tmp, onnx_names, batch)
        else:
            _export_torchscript(module, [a[:2] for a in inputs], tmp)

            def run(batch: list[np.ndarray]) -> np.ndarray:
                return _run_torchscript(tmp, batch)

        seconds = time.perf_counter() - t0
        diffs = []
        for n in (len(inputs[0]), min(3, len(inputs[0]))):
            batch = [a[:n] for a in inputs]
            diffs.append(float(np.max(np.abs(run(batch) - _run_torch(module, batch)))))
        max_diff = max(diffs)
        if not np.isfinite(max_diff) or max_diff > atol:
            raise DataError(
                f"the exported {format} model differs from PyTorch by {max_diff:.3g} "
                f"(tolerance {atol:g}); nothing was written"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    shapes = {
        EXPORT_INPUTS[k][0]: {
            "shape": ["N", *a.shape[1:]],
            "dtype": "float32",
            "layout": EXPORT_INPUTS[k][1],
        }
        for k, a in zip(names, inputs, strict=True)
    }
    classes = _classes(config)
    (out_dir / "preprocess.json").write_text(
        json.dumps(_preprocess_json(tagger, names, classes), indent=2) + "\n"
    )
    meta = {
        "format": format,
        "file": target.name,
        "tagger": tagger.name,
        "run": str(Path(run_dir).resolve()),
        "inputs": shapes,
        "outputs": {"softmax": {"shape": ["N", 2], "dtype": "float32", "classes": classes}},
        "opset": _OPSET if format == "onnx" else None,
        "torch_version": torch.__version__,
        "heplab_version": __version__,
        "export_seconds": seconds,
        "check": {
            "jets": origin,
            "batch_sizes": [len(inputs[0]), min(3, len(inputs[0]))],
            "max_abs_diff": max(diffs),
            "atol": atol,
            "passed": True,
        },
    }
    (out_dir / "export.json").write_text(json.dumps(meta, indent=2) + "\n")
    return target


def predict(
    run_dir: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    column: str = "score",
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Tag the jets of every file in ``files`` with the tagger of ``run_dir``; write each
    with the score column to ``out_dir`` (module docstring). Returns the written files.

    Every input is checked before anything is written; an output that exists raises
    :class:`OutputExistsError` unless ``force``.
    """
    from tqdm.auto import tqdm

    from heplab.reconstruction.jets.jetfiles import jet_file_format, read_jets, write_jets

    if not files:
        raise ConfigError("predict: give at least one jets file")
    run = Path(run_dir)
    if not (run / "model").is_dir():
        raise DataError(f"{run}: not a tagger run (no model/ directory; see `heplab jets train`)")
    tagger = Tagger.load(run / "model")
    out = Path(out_dir)
    plan: list[tuple[Path, Path, str]] = []
    seen: set[Path] = set()
    for f in files:
        src = Path(f)
        if not src.exists():
            raise DataError(f"{src}: no such file or directory")
        fmt = jet_file_format(src)
        suffix = {"parquet": ".parquet", "root": ".root", "hdf5": ".h5"}[fmt]
        dst = out / (src.stem + suffix)
        if dst in seen:
            raise ConfigError(f"two inputs would both be written to {dst}; rename one")
        seen.add(dst)
        if dst.exists() and not force:
            raise OutputExistsError(f"{dst} exists; choose another --out or pass --force")
        plan.append((src, dst, fmt))
    written, records = [], []
    for src, dst, fmt in tqdm(plan, desc="predict", unit="file", disable=not progress):
        jets = read_jets(src)
        if column in ak.fields(jets):
            raise DataError(f"{src}: the jets already have a {column!r} column; pass --column")
        t0 = time.perf_counter()
        score = tagger.score(jets)
        seconds = time.perf_counter() - t0
        write_jets(ak.with_field(jets, score.astype(np.float32), column), dst, fmt, overwrite=force)
        written.append(dst)
        records.append(
            {"input": str(src), "output": str(dst), "jets": len(jets), "seconds": seconds}
        )
    summary = {
        "run": str(run.resolve()),
        "tagger": tagger.name,
        "column": column,
        "files": records,
        "heplab_version": __version__,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "predict.json").write_text(json.dumps(summary, indent=2) + "\n")
    return written
