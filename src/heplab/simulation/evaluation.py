"""The CaloChallenge evaluation of a shower generator against a reference sample.

:func:`evaluate` reproduces the protocol of the Fast Calorimeter Simulation Challenge
(arXiv:2410.21611) on two :class:`~heplab.events.calo.ShowerSet` of one geometry:

1. high-level features per shower (energy per layer, E_tot / E_inc, centres of energy and
   widths per layer, sparsity per layer, longitudinal centre "depth" and its width, and
   CaloGAN's E_ratio of the two hottest cells; :mod:`.evaluation_features`), histogrammed
   with their separation powers ``S = 1/2 sum (p - q)^2 / (p + q)``;
2. the classifier test (a DNN trained generated vs reference) on low-level inputs
   (``E_i / E_inc`` per cell plus ``log10 E_inc``) and on the high-level features: AUC and
   the JSD estimated from the calibrated classifier (:mod:`.evaluation_metrics`);
3. FPD and KPD (arXiv:2211.10295) on the high-level features.

**The floor.** Every number is also measured between two independent halves of the
reference, at the same statistics, so a reader sees what a perfect generator would score.
Exactly: the reference is shuffled (``seed``) and cut into halves A and B; ``n = min(|A|,
|generated|)`` showers are kept of A, of B and of the generated sample (a random subset);
the generator's numbers compare the ``n`` generated showers with B, the floor compares A with
B, with the same classifier settings, seeds, feature binning and batch sizes. (``floor=False``
compares all generated with all reference showers, without a floor.)

Outputs in ``out_dir``: ``results.json`` (every number with its floor beside it),
``report.md`` / ``report.html`` (:class:`heplab.report.Report`: a table and the figures) and
the PNG figures (mplhep style, generated vs reference with the floor dashed and a ratio panel).
The directory appears atomically (written under a temporary name, then renamed).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.simulation.evaluation_features import (
    FeatureTable,
    feature_bins,
    high_level_features,
    histogram,
    plot_feature,
    separation_power,
)
from heplab.simulation.evaluation_metrics import (
    ClassifierConfig,
    ClassifierResult,
    classifier_test,
    fpd,
    kpd,
    low_level_inputs,
)

if TYPE_CHECKING:
    from heplab.events.calo import ShowerSet

__all__ = ["MIN_SHOWERS", "check_inputs", "evaluate", "json_summary"]

log = logging.getLogger(__name__)

#: The fewest showers a comparison may use (per sample, after halving for the floor).
MIN_SHOWERS = 100

_SUMMARY_KEYS = ("auc_low", "auc_high", "fpd", "kpd")


def check_inputs(
    generated: ShowerSet,
    reference: ShowerSet,
    *,
    weights: np.ndarray | None = None,
    names: Sequence[str] = ("generated", "reference"),
) -> None:
    """Raise :class:`DataError` unless the two sets can be compared: one geometry, finite
    values, positive incident energies, valid weights."""
    g_geo, r_geo = generated.geometry, reference.geometry
    if g_geo.to_dict() != r_geo.to_dict():
        raise DataError(
            f"{names[0]} and {names[1]} have different geometries: {g_geo.name!r} "
            f"({g_geo.n_voxels} cells) and {r_geo.name!r} ({r_geo.n_voxels} cells)"
        )
    for sample, name in ((generated, names[0]), (reference, names[1])):
        if not np.isfinite(sample.energies).all() or not np.isfinite(sample.showers).all():
            raise DataError(f"{name}: incident energies or cell energies contain NaN or inf")
        if len(sample) and sample.energies.min() <= 0:
            raise DataError(f"{name}: incident energies must be > 0 GeV")
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(generated),):
            raise DataError(f"{len(w)} weights for {len(generated)} generated showers")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise DataError("weights must be finite, non-negative, with a positive sum")


def _subsample(n: int, size: int | None, rng: np.random.Generator) -> np.ndarray:
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


def _prepare_out(out_dir: str | os.PathLike[str], force: bool) -> Path:
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"{out}: already holds files (use force=True / --force)")
    return out


def _pair_metrics(
    gen_hl: FeatureTable,
    ref_hl: FeatureTable,
    gen_low: np.ndarray | None,
    ref_low: np.ndarray | None,
    *,
    weights: np.ndarray | None,
    bins: dict[str, np.ndarray],
    classifier: ClassifierConfig,
    fpd_options: dict[str, Any],
    kpd_options: dict[str, Any],
    seed: int,
    timing: dict[str, float],
    step: Any,
    levels: Sequence[str],
) -> tuple[dict[str, Any], dict[str, ClassifierResult]]:
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    seps = {}
    for j, name in enumerate(ref_hl.names):
        seps[name] = separation_power(
            histogram(ref_hl.values[:, j], bins[name]),
            histogram(gen_hl.values[:, j], bins[name], weights),
        )
    out["separation_power"] = seps
    timing["separation_power"] = timing.get("separation_power", 0.0) + time.perf_counter() - t0
    step("separation powers")
    classifiers: dict[str, ClassifierResult] = {}
    for level in ("low", "high"):
        if level not in levels:
            out[f"auc_{level}"] = out[f"jsd_{level}"] = out[f"classifier_{level}"] = None
            step(f"classifier ({level} level) skipped")
            continue
        if level == "low":
            assert gen_low is not None
            assert ref_low is not None
            x_gen, x_ref = gen_low, ref_low
        else:
            x_gen, x_ref = gen_hl.classifier_inputs(), ref_hl.classifier_inputs()
        t0 = time.perf_counter()
        res = classifier_test(x_gen, x_ref, weights=weights, config=classifier, seed=seed)
        classifiers[level] = res
        out[f"auc_{level}"] = res.auc
        out[f"jsd_{level}"] = res.jsd
        out[f"classifier_{level}"] = res.summary()
        key = f"classifier_{level}"
        timing[key] = timing.get(key, 0.0) + time.perf_counter() - t0
        step(f"classifier ({level} level)")
    x_ref, x_gen = ref_hl.classifier_inputs(), gen_hl.classifier_inputs()
    t0 = time.perf_counter()
    out["fpd"], out["fpd_error"] = fpd(x_ref, x_gen, weights=weights, seed=seed, **fpd_options)
    timing["fpd"] = timing.get("fpd", 0.0) + time.perf_counter() - t0
    step("FPD")
    t0 = time.perf_counter()
    out["kpd"], out["kpd_error"] = kpd(x_ref, x_gen, weights=weights, seed=seed, **kpd_options)
    timing["kpd"] = timing.get("kpd", 0.0) + time.perf_counter() - t0
    step("KPD")
    return out, classifiers


def _fmt(value: Any, error: Any = None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    text = f"{value:.{digits}g}"
    if error is not None and isinstance(error, float) and math.isfinite(error):
        text += f" ± {error:.2g}"
    return text


def _figure_features(hl: FeatureTable, calogan: bool) -> list[str]:
    """The features drawn: the whole-shower ones and, for up to 3 layers spread over the
    shower (the reference's mean longitudinal profile), energy, x width and sparsity."""
    names = ["etot_einc", "depth", "depth_width"]
    e_cols = [j for j, k in enumerate(hl.kinds) if k == "e_layer"]
    mean_profile = hl.values[:, e_cols].mean(axis=0)
    lit = np.flatnonzero(mean_profile > 0.01 * mean_profile.max(initial=0.0))
    if lit.size:
        picks = sorted({int(lit[round(q * (lit.size - 1))]) for q in (0.0, 0.5, 1.0)})
    else:
        picks = []
    for layer in picks:
        names += [f"e_layer_{layer}", f"wx_layer_{layer}", f"sparsity_layer_{layer}"]
        if calogan:
            names.append(f"eratio_layer_{layer}")
    return names


def _write_report(
    tmp: Path,
    results: dict[str, Any],
    *,
    hl: dict[str, FeatureTable],
    bins: dict[str, np.ndarray],
    weights: np.ndarray | None,
    classifiers: dict[str, dict[str, ClassifierResult]],
) -> None:
    import matplotlib.pyplot as plt

    from heplab.report import Report, hep_style

    hep_style()
    geometry, particle = results["geometry"], results["particle"]
    report = Report(f"Shower generator evaluation: {geometry}, {particle}")
    have_floor = results["floor"] is not None
    report.text(
        "CaloChallenge protocol (arXiv:2410.21611): high-level feature histograms with "
        "separation powers, a DNN classifier generated vs reference on low-level (cells / "
        "E_inc) and high-level inputs (AUC, JSD), FPD and KPD (arXiv:2211.10295) on the "
        "high-level features. "
        + (
            f"Each sample holds {results['n_showers']} showers; the floor compares two "
            "independent halves of the reference in exactly the same way."
            if have_floor
            else f"{results['n_generated']} generated vs {results['n_reference']} reference "
            "showers, no floor."
        )
    )
    metrics = results["metrics"]
    header = ["metric", "generated vs reference", "floor (reference vs reference)"]
    rows = []
    labels = {
        "auc_low": "classifier AUC, low level",
        "auc_high": "classifier AUC, high level",
        "jsd_low": "JSD (bits), low level",
        "jsd_high": "JSD (bits), high level",
        "fpd": "FPD",
        "kpd": "KPD",
        "separation_power_mean": "mean separation power",
        "separation_power_max": "max separation power",
    }
    for key, label in labels.items():
        m = metrics[key]
        rows.append(
            [label, _fmt(m["value"], m.get("error")), _fmt(m.get("floor"), m.get("floor_error"))]
        )
    report.heading("Metrics")
    report.table(header, rows)
    worst = sorted(results["separation_power"].items(), key=lambda kv: -(kv[1]["value"] or 0.0))[
        :10
    ]
    report.heading("Largest separation powers")
    report.table(
        ["feature", "generated vs reference", "floor"],
        [[k, _fmt(v["value"]), _fmt(v.get("floor"))] for k, v in worst],
    )

    report.heading("Classifier outputs")
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    edges = np.linspace(0.0, 1.0, 41)
    for ax, level in zip(axes, ("low", "high"), strict=True):
        for which, style in (("main", "-"), ("floor", "--")):
            res = classifiers.get(which, {}).get(level)
            if res is None:
                continue
            for cls, colour in ((0, "tab:red"), (1, "black")):
                sel = res.test_labels == cls
                who = (
                    ("generated" if cls == 0 else "reference")
                    if which == "main"
                    else ("reference A" if cls == 0 else "reference B")
                )
                ax.hist(
                    res.test_scores[sel],
                    bins=edges,
                    weights=res.test_weights[sel],
                    histtype="step",
                    density=True,
                    color=colour if which == "main" else "gray",
                    linestyle=style,
                    label=f"{who} ({which})",
                )
        ax.set_xlabel(f"calibrated classifier output ({level} level)")
        ax.set_ylabel("density")
        ax.legend(fontsize="x-small")
    report.figure(fig, "classifier_outputs", "Calibrated classifier outputs on the test split", tmp)

    report.heading("Feature histograms")
    ref, gen = hl["reference"], hl["generated"]
    floor = hl.get("floor")
    calogan = any(k == "eratio" for k in ref.kinds)
    for name in _figure_features(ref, calogan):
        j = ref.names.index(name)
        sep = results["separation_power"][name]
        fig = plot_feature(
            name,
            ref.kinds[j],
            bins[name],
            ref.values[:, j],
            gen.values[:, j],
            generated_weights=weights,
            floor=None if floor is None else floor.values[:, j],
            annotation=f"S = {_fmt(sep['value'], digits=3)} (floor {_fmt(sep.get('floor'), digits=3)})",
        )
        report.figure(fig, f"feature_{name}", f"{name}: generated vs reference", tmp)

    # separation power per layer and feature family
    layered = sorted({k for k, lay in zip(ref.kinds, ref.layers, strict=True) if lay >= 0})
    if layered:
        fig, ax = plt.subplots(figsize=(9, 5))
        for kind in layered:
            cols = [n for n, k in zip(ref.names, ref.kinds, strict=True) if k == kind]
            layers = [ref.layers[ref.names.index(n)] for n in cols]
            ax.plot(layers, [results["separation_power"][n]["value"] for n in cols], label=kind)
            if have_floor:
                ax.plot(
                    layers,
                    [results["separation_power"][n]["floor"] for n in cols],
                    linestyle="--",
                    color="gray",
                    linewidth=0.8,
                )
        ax.set_xlabel("layer")
        ax.set_ylabel("separation power")
        ax.set_yscale("log")
        ax.legend(fontsize="x-small", ncol=2, title="dashed: floor", title_fontsize="x-small")
        report.figure(fig, "separation_power_layers", "Separation power per layer", tmp)

    report.results = results
    report.write(tmp)


def evaluate(
    generated: ShowerSet,
    reference: ShowerSet,
    out_dir: str | os.PathLike[str] | None,
    *,
    seed: int = 0,
    weights: np.ndarray | None = None,
    max_showers: int | None = None,
    floor: bool = True,
    classifier: ClassifierConfig | None = None,
    fpd_options: dict[str, Any] | None = None,
    kpd_options: dict[str, Any] | None = None,
    n_bins: int = 50,
    threshold: float = 0.0,
    force: bool = False,
    progress: bool = True,
    names: Sequence[str] = ("generated", "reference"),
    levels: Sequence[str] = ("low", "high"),
) -> dict[str, Any]:
    """Compare ``generated`` with ``reference`` (see the module doc); returns the results.

    Parameters
    ----------
    out_dir
        Directory for results.json, the report and figures (``None``: write nothing).
    seed
        Seeds the subsampling, the halves, the classifier splits and training, FPD and KPD.
    weights
        Per-shower weights of ``generated`` (e.g. :mod:`heplab.simulation.reweight`).
    max_showers
        Use at most this many showers of each input (a random subset).
    floor
        Also measure the floor (reference half vs reference half).
    classifier, fpd_options, kpd_options
        Settings of the classifier test, :func:`~.evaluation_metrics.fpd` and
        :func:`~.evaluation_metrics.kpd` (keyword arguments, e.g. ``num_batches``).
    n_bins, threshold
        Bins per feature histogram; cell threshold [GeV] of the sparsity.
    force
        Replace an ``out_dir`` that already holds files.
    names
        How errors name the two inputs (e.g. their file names).
    levels
        The classifier tests to run (``"low"``, ``"high"``); a skipped one reports ``None``.

    Returns
    -------
    dict
        ``auc_low``, ``auc_high``, ``fpd``, ``kpd`` (numbers), ``floor`` (the same four for
        the floor, or ``None``), ``metrics`` (every metric with ``value``, ``error``,
        ``floor``, ``floor_error``), ``separation_power`` (per feature, with its floor),
        ``classifier`` details, sample sizes, settings and ``timing_s``.

    Raises
    ------
    DataError
        Different geometries, NaNs, invalid weights, fewer than :data:`MIN_SHOWERS`
        showers per compared sample.
    OutputExistsError
        ``out_dir`` holds files and ``force`` is false.
    """
    start = time.perf_counter()
    out = None if out_dir is None else _prepare_out(out_dir, force)
    cfg = classifier or ClassifierConfig()
    if not set(levels) <= {"low", "high"}:
        raise ConfigError(f"levels must be among 'low' and 'high', not {list(levels)}")
    if max_showers is not None and max_showers < 1:
        raise ConfigError(f"max_showers must be >= 1, not {max_showers}")
    check_inputs(generated, reference, weights=weights, names=names)
    if generated.particle != reference.particle:
        log.warning(
            "comparing %s showers (%s) with %s showers (%s)",
            generated.particle,
            names[0],
            reference.particle,
            names[1],
        )
    rng = np.random.default_rng(seed)
    g_idx = _subsample(len(generated), max_showers, rng)
    r_idx = _subsample(len(reference), max_showers, rng)
    w_all = None if weights is None else np.asarray(weights, dtype=np.float64)[g_idx]
    gen = generated[g_idx]
    ref = reference[r_idx]
    if floor:
        half = len(ref) // 2
        n = min(half, len(gen))
        if n < MIN_SHOWERS:
            raise DataError(
                f"too few showers: {len(gen)} {names[0]} and {len(ref)} {names[1]} showers; "
                f"the floor needs >= {MIN_SHOWERS} generated and >= {2 * MIN_SHOWERS} reference"
            )
        order = rng.permutation(len(ref))
        a_idx, b_idx = np.sort(order[:n]), np.sort(order[half : half + n])
        pick = _subsample(len(gen), n, rng)
        gen, w = gen[pick], None if w_all is None else w_all[pick]
        ref_a, ref_b = ref[a_idx], ref[b_idx]
    else:
        if min(len(gen), len(ref)) < MIN_SHOWERS:
            raise DataError(
                f"too few showers: {len(gen)} {names[0]} and {len(ref)} {names[1]} "
                f"(need >= {MIN_SHOWERS} each)"
            )
        w, ref_a, ref_b = w_all, None, ref
    timing: dict[str, float] = {}

    from tqdm.auto import tqdm

    n_steps = 1 + 5 * (2 if floor else 1) + (1 if out is not None else 0)
    bar = tqdm(total=n_steps, desc="evaluate", disable=not progress, leave=False)

    def step(what: str) -> None:
        bar.set_postfix_str(what)
        bar.update(1)

    try:
        t0 = time.perf_counter()
        hl = {"generated": high_level_features(gen, threshold=threshold)}
        hl["reference"] = high_level_features(ref_b, threshold=threshold)
        if ref_a is not None:
            hl["floor"] = high_level_features(ref_a, threshold=threshold)
        timing["features"] = time.perf_counter() - t0
        step("features")
        bins = {
            name: feature_bins(*(t.values[:, j] for t in hl.values()), n_bins=n_bins)
            for j, name in enumerate(hl["reference"].names)
        }
        low = "low" in levels
        ref_low = low_level_inputs(ref_b.showers, ref_b.energies) if low else None
        common: dict[str, Any] = {
            "bins": bins,
            "classifier": cfg,
            "fpd_options": dict(fpd_options or {}),
            "kpd_options": dict(kpd_options or {}),
            "seed": seed,
            "timing": timing,
            "step": step,
            "levels": tuple(levels),
        }
        main, main_cls = _pair_metrics(
            hl["generated"],
            hl["reference"],
            low_level_inputs(gen.showers, gen.energies) if low else None,
            ref_low,
            weights=w,
            **common,
        )
        classifiers = {"main": main_cls}
        floor_res: dict[str, Any] | None = None
        if ref_a is not None:
            floor_res, floor_cls = _pair_metrics(
                hl["floor"],
                hl["reference"],
                low_level_inputs(ref_a.showers, ref_a.energies) if low else None,
                ref_low,
                weights=None,
                **common,
            )
            classifiers["floor"] = floor_cls

        def stat(res: dict[str, Any] | None, key: str) -> Any:
            return None if res is None else res[key]

        metrics: dict[str, dict[str, Any]] = {}
        for key in ("auc_low", "auc_high", "jsd_low", "jsd_high", "fpd", "kpd"):
            metrics[key] = {
                "value": main[key],
                "error": main.get(f"{key}_error"),
                "floor": stat(floor_res, key),
                "floor_error": None if floor_res is None else floor_res.get(f"{key}_error"),
            }
        seps = main["separation_power"]
        f_seps = None if floor_res is None else floor_res["separation_power"]
        worst = max(seps, key=lambda k: seps[k])
        metrics["separation_power_mean"] = {
            "value": float(np.mean(list(seps.values()))),
            "floor": None if f_seps is None else float(np.mean(list(f_seps.values()))),
        }
        metrics["separation_power_max"] = {
            "value": seps[worst],
            "feature": worst,
            "floor": None if f_seps is None else max(f_seps.values()),
        }
        results: dict[str, Any] = {key: main[key] for key in _SUMMARY_KEYS}
        results["floor"] = (
            None if floor_res is None else {key: floor_res[key] for key in _SUMMARY_KEYS}
        )
        results["metrics"] = metrics
        results["separation_power"] = {
            k: {"value": v, "floor": None if f_seps is None else f_seps[k]} for k, v in seps.items()
        }
        results["classifier"] = {
            "main": {lvl: main[f"classifier_{lvl}"] for lvl in ("low", "high")},
            "floor": None
            if floor_res is None
            else {lvl: floor_res[f"classifier_{lvl}"] for lvl in ("low", "high")},
            "config": asdict(cfg),
        }
        results.update(
            {
                "geometry": gen.geometry.name,
                "particle": gen.particle,
                "n_generated": len(g_idx),
                "n_reference": len(r_idx),
                "n_showers": len(gen) if floor else None,
                "weighted": weights is not None,
                "seed": seed,
                "protocol": (
                    "floor: reference shuffled and halved (A, B); n = min(|A|, |generated|) "
                    "showers of each; generator = generated vs B, floor = A vs B"
                    if floor
                    else "all generated vs all reference showers; no floor"
                ),
                "features": list(hl["reference"].names),
            }
        )
        if out is not None:
            t0 = time.perf_counter()
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
            try:
                timing["total"] = time.perf_counter() - start
                results["timing_s"] = dict(timing)
                _write_report(
                    tmp,
                    _json_ready(results),
                    hl=hl,
                    bins=bins,
                    weights=w,
                    classifiers=classifiers,
                )
                if out.exists():
                    if any(out.iterdir()) and not force:
                        raise OutputExistsError(f"{out}: already holds files")
                    shutil.rmtree(out)
                os.replace(tmp, out)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            timing["report"] = time.perf_counter() - t0
            step("report")
    finally:
        bar.close()
    timing["total"] = time.perf_counter() - start
    results["timing_s"] = dict(timing)
    return _json_ready(results)


def _json_ready(value: Any) -> Any:
    from heplab.ml.metrics import json_safe

    return json.loads(json.dumps(json_safe(value), default=float))


def json_summary(results: dict[str, Any]) -> dict[str, Any]:
    """The ``--json`` line: ``auc_low``, ``auc_high``, ``fpd``, ``kpd`` and ``floor``."""
    out: dict[str, Any] = {key: results[key] for key in _SUMMARY_KEYS}
    out["floor"] = results.get("floor")
    return out
