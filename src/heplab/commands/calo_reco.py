"""``heplab calo pid | regress | cluster``: calorimeter reconstruction on shower files.

Each command trains on the data it is given (or generates, for ``cluster``), evaluates on
a held-out split and writes ``RUN/metrics.json`` plus figures and the trained model (a
``state_dict`` and a JSON config) into the run directory. See
:mod:`heplab.reconstruction.calorimetry`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

__all__ = ["COMMANDS", "cluster", "pid", "regress"]


def _prepare(out: Path, force: bool) -> None:
    from heplab.errors import OutputExistsError

    if out.exists() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"{out}: run directory is not empty (pass --force to reuse it)")
    out.mkdir(parents=True, exist_ok=True)


def _write_metrics(out: Path, metrics: dict[str, Any]) -> Path:
    from heplab.ml.metrics import json_safe

    path = out / "metrics.json"
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(json_safe(metrics), indent=2))
    os.replace(tmp, path)
    return path


def _train_config(epochs: int, batch_size: int, lr: float, seed: int, progress: bool) -> Any:
    from heplab.ml.engine import TrainConfig

    return TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=max(3, epochs // 4),
        seed=seed,
        progress_bar=progress,
        resume=False,
    )


_common = [
    click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True),
    click.option("--lr", type=float, default=2e-3, show_default=True, help="Learning rate."),
    click.option("--seed", type=int, default=0, show_default=True, help="Split / training seed."),
    click.option("--force", is_flag=True, help="Reuse a non-empty run directory."),
    click.option("--no-progress", is_flag=True, help="No progress bars."),
]


def _options(func: Any) -> Any:
    for opt in reversed(_common):
        func = opt(func)
    return func


@click.command("pid")
@click.option(
    "--data", required=True, type=click.Path(path_type=Path), help="Signal showers (HDF5)."
)
@click.option(
    "--background",
    required=True,
    type=click.Path(path_type=Path),
    help="Background showers (HDF5).",
)
@click.option("--model", type=click.Choice(["cnn", "dnn", "bdt"]), default="dnn", show_default=True)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--geometry", default=None, help="Geometry of files that do not name one.")
@_options
def pid(
    data: Path,
    background: Path,
    model: str,
    out: Path,
    batch_size: int,
    geometry: str | None,
    epochs: int,
    lr: float,
    seed: int,
    force: bool,
    no_progress: bool,
) -> None:
    """Train a particle-ID classifier (signal = --data, e.g. electrons, vs --background).

    \b
    heplab calo pid --data electrons.h5 --background pions.h5 --model cnn --out run_pid

    Writes RUN/metrics.json (AUC, rejection at 90 / 95 % signal efficiency on a held-out
    30 % test split), RUN/roc.png and the model (model.json + best.pt / bdt.json).
    """
    from heplab.events.calo import read_showers
    from heplab.reconstruction.calorimetry.pid import plot_roc, train_pid

    sig = read_showers(data, geometry)
    bkg = read_showers(background, geometry)
    _prepare(out, force)
    cfg = _train_config(epochs, batch_size, lr, seed, not no_progress)
    res = train_pid(sig, bkg, model=model, out_dir=out, config=cfg, seed=seed)
    metrics = {**res.metrics, "data": str(data), "background_file": str(background)}
    _write_metrics(out, metrics)
    plot_roc([res], out / "roc.png", title=f"{sig.particle} vs {bkg.particle}")
    m = res.metrics
    click.echo(
        f"{out}: {model} AUC {m['auc']:.4f}, background rejection {m['rej90']:.4g} at 90 % / "
        f"{m['rej95']:.4g} at 95 % signal efficiency ({m['n_test']} test showers, "
        f"{m['train_seconds']:.1f} s training)"
    )


@click.command("regress")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Showers (HDF5).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option(
    "--bins", type=click.IntRange(min=1), default=5, show_default=True, help="Energy bins."
)
@click.option("--geometry", default=None, help="Geometry of files that do not name one.")
@_options
def regress(
    data: Path,
    out: Path,
    batch_size: int,
    bins: int,
    geometry: str | None,
    epochs: int,
    lr: float,
    seed: int,
    force: bool,
    no_progress: bool,
) -> None:
    """Train an energy regression (DNN on shower shapes) beside the sum calibration.

    \b
    heplab calo regress --data pions.h5 --out run_reg

    Writes RUN/metrics.json (response and resolution, overall and per energy bin, of both)
    and RUN/response.png.
    """
    from heplab.events.calo import read_showers
    from heplab.reconstruction.calorimetry.regression import plot_regression, train_regression

    showers = read_showers(data, geometry)
    _prepare(out, force)
    cfg = _train_config(epochs, batch_size, lr, seed, not no_progress)
    res = train_regression(showers, out_dir=out, config=cfg, seed=seed, n_bins=bins)
    _write_metrics(out, {**res.metrics, "data": str(data)})
    plot_regression(res, out / "response.png")
    m = res.metrics
    click.echo(
        f"{out}: DNN response {m['dnn']['response']:.3f}, resolution {m['dnn']['resolution']:.3f}; "
        f"sum calibration {m['sum']['response']:.3f}, {m['sum']['resolution']:.3f}"
    )


def _time_per_event(events: list[Any], assign: Any, n: int = 10) -> float:
    """Mean wall time [s] of ``assign`` on the first ``n`` events."""
    import time

    sample = events[:n]
    start = time.perf_counter()
    for ev in sample:
        assign(ev)
    return (time.perf_counter() - start) / max(len(sample), 1)


@click.command("cluster")
@click.option("--events", "n_events", type=click.IntRange(min=10), default=600, show_default=True)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option(
    "--test-events", type=click.IntRange(min=5), default=200, show_default=True, help="Held out."
)
@click.option("--spread", type=float, default=30.0, show_default=True, help="Impact spread [mm].")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--model",
    "model_name",
    type=click.Choice(["oc", "fractions"]),
    default="oc",
    show_default=True,
    help="GravNet with object condensation or with energy-ordered fraction slots.",
)
@_options
def cluster(
    n_events: int,
    out: Path,
    test_events: int,
    spread: float,
    batch_size: int,
    model_name: str,
    epochs: int,
    lr: float,
    seed: int,
    force: bool,
    no_progress: bool,
) -> None:
    """Cluster overlapping showers on the endcap: GravNet vs topological clustering.

    \b
    heplab calo cluster --events 600 --out run_cluster

    Generates N training events (+ N/4 validation, --test-events held out) of 2-5 showers,
    trains GravNet (--model oc: object condensation, arXiv:2002.03605, the default;
    --model fractions: energy-ordered shower slots) and writes RUN/metrics.json (per-shower
    response and resolution of topo, nearest-seed and GravNet, under "gravnet") and
    RUN/response.png.
    """
    from heplab.detector.calogeometry import load_geometry
    from heplab.reconstruction.calorimetry.clustering import (
        compare_clusterings,
        make_overlap_events,
        nearest_seed,
        plot_cluster_response,
        topo_cluster,
    )
    from heplab.reconstruction.calorimetry.gravnet import GravNetConfig, train_gravnet

    _prepare(out, force)
    geo = load_geometry("endcap")
    train = make_overlap_events(n_events, spread=spread, seed=seed * 3 + 1)
    val = make_overlap_events(max(n_events // 4, 5), spread=spread, seed=seed * 3 + 2)
    test = make_overlap_events(test_events, spread=spread, seed=seed * 3 + 3)
    cfg = _train_config(epochs, batch_size, lr, seed, not no_progress)
    model, info = train_gravnet(
        train,
        val,
        out_dir=out,
        geometry=geo,
        config=GravNetConfig(model=model_name),
        train_config=cfg,
        seed=seed,
    )
    summary, responses = compare_clusterings(
        test,
        {
            "topo": lambda ev: topo_cluster(ev, geo, model.topo),
            "nearest_seed": lambda ev: nearest_seed(ev, geo, model.topo),
            "gravnet": model.assign,
        },
    )
    seconds = {
        name: _time_per_event(test, assign)
        for name, assign in (
            ("topo", lambda ev: topo_cluster(ev, geo, model.topo)),
            ("nearest_seed", lambda ev: nearest_seed(ev, geo, model.topo)),
            ("gravnet", model.assign),
        )
    }
    for name, sec in seconds.items():
        summary[name]["ms_per_event"] = 1e3 * sec
    metrics = {
        **summary,
        "gravnet_training": {**info, "model": model_name},
        "n_train_events": n_events,
        "n_test_events": test_events,
        "spread_mm": spread,
    }
    _write_metrics(out, metrics)
    plot_cluster_response(responses, out / "response.png")
    click.echo(
        f"{out}: per-shower resolution topo {summary['topo']['resolution']:.3f}, nearest seed "
        f"{summary['nearest_seed']['resolution']:.3f}, GravNet ({model_name}) "
        f"{summary['gravnet']['resolution']:.3f}"
    )


COMMANDS = {"calo": [pid, regress, cluster]}
