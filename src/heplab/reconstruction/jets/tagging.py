"""Train, evaluate and compare jet taggers on a ``heplab jets build`` dataset.

The dataset is a directory with ``train/``, ``val/`` and ``test/`` (each readable by
:func:`heplab.events.read_events`, e.g. ``jets.parquet``) holding jets records with an
int ``label`` column (1 = signal, 0 = background).

:func:`train` fits one tagger and writes a run directory::

    config.json    tagger name, configuration, seed, data dir + build.json hash, version
    model/         the saved tagger (tagger.json + the model's own files; no pickle)
    metrics.json   val and test summaries (auc, accuracy, rej30, rej50, n), n_params,
                   train_seconds, infer_jets_per_s
    roc.png        background rejection vs signal efficiency on the test split

:func:`landscape` trains every chosen tagger (``repeats`` times, seeds ``seed + r``) on
the same splits and writes ``landscape.json`` (one record per tagger), ``landscape.md``,
``landscape.html``, ``roc.png`` and ``config.json``; with ``train_sizes`` also
``learning_curves.json`` (one record per model and training-set size: ``model,
train_jets, auc, accuracy, rej30, rej50, train_seconds``) and ``learning_curves.png``. Metric definitions:
:mod:`heplab.ml.metrics`; rejections without any background passing are written as
``null``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import awkward as ak
import numpy as np

from heplab import __version__
from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.ml.metrics import json_safe, roc, summary
from heplab.reconstruction.jets.taggers import Tagger, get_tagger, tagger_class
from heplab.reconstruction.jets.taggers.base import labels

__all__ = [
    "LANDSCAPE_KEYS",
    "balanced_subset",
    "evaluate",
    "landscape",
    "load_config",
    "load_split",
    "load_splits",
    "run_binary",
    "select_binary",
    "train",
]

SPLITS: Final = ("train", "val", "test")
#: Keys every landscape record has (``*_std`` keys are added when repeats > 1).
LANDSCAPE_KEYS: Final = (
    "model",
    "auc",
    "accuracy",
    "rej30",
    "rej50",
    "params",
    "train_seconds",
    "infer_jets_per_s",
)
_STD_KEYS: Final = ("auc", "accuracy", "rej30", "rej50", "train_seconds", "infer_jets_per_s")


#: A binary task carved out of a multi-class dataset: (signal columns, background columns).
Binary = tuple[Sequence[str], Sequence[str]]


def select_binary(jets: ak.Array, binary: Binary, where: str = "jets") -> ak.Array:
    """Keep the jets of the signal or background one-hot ``label_*`` columns of
    ``binary``; ``label`` becomes 1 (signal) / 0 (background). :class:`DataError` naming
    a missing column, :class:`ConfigError` for a column on both sides."""
    signal, background = list(binary[0]), list(binary[1])
    if not signal or not background:
        raise ConfigError("give both the signal and the background label columns")
    both = sorted(set(signal) & set(background))
    if both:
        raise ConfigError(f"label column(s) {', '.join(both)} are on both sides")
    fields = ak.fields(jets)
    missing = [c for c in signal + background if c not in fields]
    if missing:
        known = ", ".join(f for f in fields if f.startswith("label_")) or "none"
        raise DataError(f"{where}: no label column(s) {', '.join(missing)} (there: {known})")

    def any_of(cols: list[str]) -> np.ndarray:
        return np.any([np.asarray(ak.to_numpy(jets[c])) != 0 for c in cols], axis=0)

    sig, bkg = any_of(signal), any_of(background)
    keep = sig | bkg
    if (sig & bkg).any():
        raise DataError(f"{where}: some jets carry a signal and a background label")
    out = jets[keep]
    return ak.with_field(out, sig[keep].astype(np.int8), "label")


def load_split(
    data_dir: str | os.PathLike[str], split: str, binary: Binary | None = None
) -> ak.Array:
    """The jets of ``data_dir/split``; :class:`DataError` naming a missing split or label.

    ``binary`` = (signal, background) one-hot columns turns a multi-class dataset
    (``jetclass``, ``flavour``) into a two-class task (:func:`select_binary`).
    """
    from heplab.events import read_events

    path = Path(data_dir) / split
    if not path.exists():
        raise DataError(f"{data_dir}: the {split!r} split is missing (no {path})")
    jets = read_events(path)
    if binary is not None:
        jets = select_binary(jets, binary, str(path))
    if "label" not in ak.fields(jets):
        raise DataError(f"{path}: the jets have no 'label' column (1 = signal, 0 = background)")
    y = np.asarray(ak.to_numpy(jets["label"]))
    if len(y) and not np.isin(y, (0, 1)).all():
        raise DataError(
            f"{path}: {len(np.unique(y))} classes in 'label'; the taggers are binary: choose "
            "the signal and background label columns (--signal / --background)"
        )
    if len(jets) == 0:
        raise DataError(f"{path}: the {split!r} split is empty")
    return jets


def load_splits(
    data_dir: str | os.PathLike[str], binary: Binary | None = None
) -> dict[str, ak.Array]:
    """``{"train", "val", "test"}`` jets of a dataset directory."""
    if not Path(data_dir).is_dir():
        raise DataError(f"{data_dir}: no such dataset directory")
    return {s: load_split(data_dir, s, binary) for s in SPLITS}


def load_config(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """A YAML (or JSON) mapping of hyper-parameters; {} for None."""
    if path is None:
        return {}
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the config must be a mapping of setting: value")
    return data


def _binary_info(binary: Binary | None) -> dict[str, Any]:
    if binary is None:
        return {}
    return {"signal": list(binary[0]), "background": list(binary[1])}


def run_binary(config: dict[str, Any]) -> Binary | None:
    """The (signal, background) columns a run's ``config.json`` records, or None."""
    if "signal" in config and "background" in config:
        return (list(config["signal"]), list(config["background"]))
    return None


def _data_info(data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    d = Path(data_dir)
    build = d / "build.json"
    info: dict[str, Any] = {"data": str(d.resolve())}
    if build.is_file():
        info["build_sha256"] = hashlib.sha256(build.read_bytes()).hexdigest()
    return info


def _timed_score(tagger: Tagger, jets: ak.Array) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    score = tagger.score(jets)
    dt = time.perf_counter() - t0
    return score, len(jets) / dt if dt > 0 else float("inf")


def _roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> Any:
    from heplab.report import hep_style

    hep_style()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6.5))
    # one distinct colour per tagger (tab10, then tab10 again dashed): the style's own
    # cycle repeats after a few curves
    cmap = plt.get_cmap("tab10")
    colours = [cmap(i) for i in range(10)]
    for k, (name, (es, eb)) in enumerate(curves.items()):
        keep = eb > 0
        ax.plot(
            es[keep],
            1.0 / eb[keep],
            label=name,
            color=colours[k % len(colours)],
            linestyle=("-", "--", "-.")[(k // len(colours)) % 3],
            linewidth=1.6,
        )
    grid = np.linspace(0.01, 1, 100)
    ax.plot(grid, 1.0 / grid, "k:", label="random")
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel(r"Signal efficiency $\varepsilon_S$")
    ax.set_ylabel(r"Background rejection $1/\varepsilon_B$")
    ax.set_title(title, fontsize=14)
    # beside the axes: with a dozen taggers a legend inside hides the curves
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


def _prepare_out(out: Path, config: dict[str, Any], force: bool, what: str) -> None:
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        cfg = out / "config.json"
        old = json.loads(cfg.read_text()) if cfg.is_file() else None
        same = old is not None and {k: v for k, v in old.items() if k != "heplab_version"} == {
            k: v for k, v in config.items() if k != "heplab_version"
        }
        if not same and not force:
            raise OutputExistsError(
                f"{out} holds another {what} (or foreign files); choose another --out, "
                "or pass --force to replace it"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def train(
    model: str,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    config: dict[str, Any] | None = None,
    seed: int = 0,
    binary: Binary | None = None,
    force: bool = False,
) -> Path:
    """Train tagger ``model`` on ``data_dir`` and write the run directory ``out_dir``.

    The same command re-run on the same ``out_dir`` replaces it; a different run there
    raises :class:`OutputExistsError` unless ``force``. Returns ``out_dir``.
    """
    cfg = dict(config or {})
    tagger = get_tagger(model, seed=seed, **cfg)  # validate before reading data
    out = Path(out_dir)
    run_config = {
        "model": model,
        "config": tagger.config,
        "seed": int(seed),
        **_binary_info(binary),
        **_data_info(data_dir),
        "heplab_version": __version__,
    }
    splits = load_splits(data_dir, binary)
    _prepare_out(out, run_config, force, "training run")
    t0 = time.perf_counter()
    tagger.fit(splits["train"], splits["val"])
    train_seconds = time.perf_counter() - t0
    tagger.save(out / "model")
    _write_json(out / "config.json", run_config)
    metrics = _evaluate_tagger(tagger, splits)
    metrics["train_seconds"] = train_seconds
    _write_json(out / "metrics.json", metrics)
    y = labels(splits["test"])
    es, eb, _ = roc(y, tagger.score(splits["test"]))
    from heplab.report import Report

    Report(model).figure(_roc_figure({model: (es, eb)}, f"{model}: test split"), "roc", "ROC", out)
    return out


def _evaluate_tagger(tagger: Tagger, splits: dict[str, ak.Array]) -> dict[str, Any]:
    out: dict[str, Any] = {"model": tagger.name, "params": tagger.n_params}
    for split in ("val", "test"):
        if split in splits:
            score, rate = _timed_score(tagger, splits[split])
            out[split] = summary(labels(splits[split]), score, threshold=tagger.threshold)
            if split == "test":
                out["infer_jets_per_s"] = rate
    return out


def evaluate(
    run_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Metrics of the tagger saved in ``run_dir`` on the val and test splits of
    ``data_dir`` (default: the dataset it was trained on)."""
    run = Path(run_dir)
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise DataError(f"{run}: not a tagger run (config.json missing)")
    cfg = json.loads(cfg_path.read_text())
    data = data_dir if data_dir is not None else cfg["data"]
    tagger = Tagger.load(run / "model")
    splits = {s: load_split(data, s, run_binary(cfg)) for s in ("val", "test")}
    return _evaluate_tagger(tagger, splits)


def _aggregate(model: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model}
    for key in LANDSCAPE_KEYS[1:]:
        values = np.array([r[key] for r in records], dtype=np.float64)
        out[key] = float(np.mean(values)) if np.isfinite(values).all() else float("inf")
        if key == "params":
            out[key] = round(out[key])
    if len(records) > 1:
        for key in _STD_KEYS:
            values = np.array([r[key] for r in records], dtype=np.float64)
            out[f"{key}_std"] = (
                float(np.std(values, ddof=1)) if np.isfinite(values).all() else float("nan")
            )
        out["params_std"] = float(np.std([r["params"] for r in records], ddof=1))
    out["repeats"] = len(records)
    out["seeds"] = [r["seed"] for r in records]
    out["n_test"] = records[0]["n_test"]
    out["threshold"] = records[0]["threshold"]
    return out


def landscape(
    data_dir: str | os.PathLike[str],
    models: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    repeats: int = 1,
    seed: int = 0,
    configs: dict[str, dict[str, Any]] | None = None,
    train_sizes: Sequence[int] = (),
    binary: Binary | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Train and evaluate every tagger of ``models`` on the same splits of ``data_dir``.

    ``repeats`` trainings per tagger with seeds ``seed, seed + 1, ...``; the records hold
    the mean (and, for ``repeats > 1``, the sample standard deviation as ``*_std``).
    ``configs`` maps a tagger name to its hyper-parameters. ``train_sizes`` adds learning
    curves: every tagger is also trained (once, seed ``seed``) on balanced random subsets
    of the training split of these sizes and evaluated on the same test split
    (``learning_curves.json`` / ``.png``; the full split is the last point). Writes
    ``out_dir`` (see the module docstring) and returns the records.
    """
    models = [m.strip() for m in models if m.strip()]
    if not models:
        raise ConfigError("landscape: give at least one model")
    if len(set(models)) != len(models):
        raise ConfigError(f"landscape: a model is listed twice ({', '.join(models)})")
    if repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, not {repeats}")
    configs = dict(configs or {})
    sizes = sorted({int(n) for n in train_sizes})
    if any(n < 2 for n in sizes):
        raise ConfigError(f"--train-sizes must be >= 2 jets each, not {sizes}")
    extra = sorted(set(configs) - set(models))
    if extra:
        raise ConfigError(f"landscape config names model(s) not run: {', '.join(extra)}")
    for m in models:  # validate names and configurations before any work
        tagger_class(m)
        get_tagger(m, seed=seed, **configs.get(m, {}))
    out = Path(out_dir)
    run_config = {
        "models": models,
        "configs": configs,
        "repeats": int(repeats),
        "seed": int(seed),
        "train_sizes": sizes,
        **_binary_info(binary),
        **_data_info(data_dir),
        "heplab_version": __version__,
    }
    splits = load_splits(data_dir, binary)
    too_big = [n for n in sizes if n >= len(splits["train"])]
    if too_big:
        raise ConfigError(
            f"--train-sizes {too_big} are not below the {len(splits['train'])} training jets"
        )
    _prepare_out(out, run_config, force, "landscape")
    y_test = labels(splits["test"])
    results: list[dict[str, Any]] = []
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for m in models:
        records = []
        for r in range(repeats):
            tagger = get_tagger(m, seed=seed + r, **configs.get(m, {}))
            t0 = time.perf_counter()
            tagger.fit(splits["train"], splits["val"])
            train_seconds = time.perf_counter() - t0
            score, rate = _timed_score(tagger, splits["test"])
            rec = summary(y_test, score, threshold=tagger.threshold)
            rec.update(
                params=tagger.n_params,
                train_seconds=train_seconds,
                infer_jets_per_s=rate,
                seed=seed + r,
                n_test=len(y_test),
                threshold=tagger.threshold,
            )
            records.append(rec)
            if r == 0:
                es, eb, _ = roc(y_test, score)
                curves[m] = (es, eb)
        results.append(_aggregate(m, records))
    points = _learning_curves(splits, models, configs, sizes, seed, results, out) if sizes else []
    _write_json(out / "config.json", run_config)
    _write_json(out / "landscape.json", results)
    _landscape_report(results, curves, out, run_config, points)
    safe: list[dict[str, Any]] = json_safe(results)
    return safe


def balanced_subset(jets: ak.Array, n: int, seed: int) -> ak.Array:
    """``n`` jets drawn without replacement, as evenly over the classes as they allow."""
    y = labels(jets)
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    take = []
    left = n
    for i, c in enumerate(classes):
        pool = np.flatnonzero(y == c)
        k = min(len(pool), left // (len(classes) - i))
        take.append(rng.choice(pool, k, replace=False))
        left -= k
    index = np.sort(np.concatenate(take))
    return jets[index]


def _learning_curves(
    splits: dict[str, ak.Array],
    models: Sequence[str],
    configs: dict[str, dict[str, Any]],
    sizes: Sequence[int],
    seed: int,
    full: list[dict[str, Any]],
    out: Path,
) -> list[dict[str, Any]]:
    y_test = labels(splits["test"])
    n_full = len(splits["train"])
    points: list[dict[str, Any]] = []
    for m, rec in zip(models, full, strict=True):
        for n in sizes:
            tagger = get_tagger(m, seed=seed, **configs.get(m, {}))
            t0 = time.perf_counter()
            tagger.fit(balanced_subset(splits["train"], n, seed), splits["val"])
            train_seconds = time.perf_counter() - t0
            point = summary(y_test, tagger.score(splits["test"]), threshold=tagger.threshold)
            points.append({"model": m, "train_jets": n, **point, "train_seconds": train_seconds})
        points.append(
            {
                "model": m,
                "train_jets": n_full,
                **{k: rec[k] for k in ("auc", "accuracy", "rej30", "rej50", "train_seconds")},
            }
        )
    _write_json(out / "learning_curves.json", points)
    return points


def _learning_figure(points: list[dict[str, Any]], models: Sequence[str]) -> Any:
    from heplab.report import hep_style

    hep_style()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6))
    for m in models:
        mine = [p for p in points if p["model"] == m]
        ax.plot([p["train_jets"] for p in mine], [p["auc"] for p in mine], "o-", label=m)
    ax.set_xscale("log")
    ax.set_xlabel("Training jets")
    ax.set_ylabel("AUC (test split)")
    ax.legend()
    return fig


def _fmt(value: Any, std: Any = None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "inf"
    text = f"{value:.{digits}g}" if isinstance(value, float) else str(value)
    if std is not None and np.isfinite(std):
        text += f" ± {std:.2g}"
    return text


def _landscape_report(
    results: list[dict[str, Any]],
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    out: Path,
    run_config: dict[str, Any],
    points: list[dict[str, Any]],
) -> None:
    from heplab.report import Report

    rep = Report("Jet-tagging landscape")
    rep.text(
        f"Data: `{run_config['data']}`; test split of {results[0]['n_test']} jets; "
        f"{run_config['repeats']} training(s) per model (seeds from {run_config['seed']}); "
        "mean ± sample standard deviation. rej30 / rej50: 1/eps_B at eps_S = 0.3 / 0.5 "
        "(inf: no background jet passes); accuracy at each model's working point; "
        "params: trainable parameters (cut values; BDT tree nodes)."
    )
    header = ["model", "AUC", "accuracy", "rej30", "rej50", "params", "train [s]", "jets/s"]
    rows = [
        [
            r["model"],
            _fmt(r["auc"], r.get("auc_std"), 4),
            _fmt(r["accuracy"], r.get("accuracy_std")),
            _fmt(r["rej30"], r.get("rej30_std")),
            _fmt(r["rej50"], r.get("rej50_std")),
            r["params"],
            _fmt(r["train_seconds"], r.get("train_seconds_std"), 2),
            _fmt(r["infer_jets_per_s"], None, 3),
        ]
        for r in results
    ]
    rep.table(header, rows)
    rep.figure(
        _roc_figure(curves, "test split (first repeat)"),
        "roc",
        "Background rejection vs signal efficiency on the test split",
        out,
    )
    if points:
        models = list(dict.fromkeys(p["model"] for p in points))
        rep.figure(
            _learning_figure(points, models),
            "learning_curves",
            "Learning curves: test AUC vs training jets (balanced subsets, one seed; "
            "learning_curves.json)",
            out,
        )
    (out / "landscape.md").write_text(rep.markdown())
    (out / "landscape.html").write_text(rep.html())
