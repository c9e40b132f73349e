"""``heplab tracking clusters``: the NN pixel-cluster classifier (1 / 2 / 3+ particles) and
the splitting of merged clusters, trained and evaluated on jet-core events.

The events come from the jet-core particle gun of
:mod:`heplab.reconstruction.tracking.clusters` (bundles of charged particles a few mrad
apart, through the TrackML-like tracker of :mod:`heplab.detector.silicon`), so that pixel
clusters merge at a useful rate; events are split by event number into training (2/3),
validation (1/12) and test (the rest). Written to ``--out``: the model (``best.pt`` +
``cluster_model.json``), ``metrics.json`` (confusion matrix, per-class efficiencies,
splitting residuals) and ``clusters.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

__all__ = ["COMMANDS", "clusters"]


@click.command("clusters")
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="Run folder.")
@click.option(
    "--events", "-n", type=int, default=24, show_default=True, help="Jet-core events to make."
)
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--force", is_flag=True, help="Replace an earlier run in --out.")
@click.option("--no-progress", is_flag=True)
def clusters(
    out: Path, events: int, epochs: int, seed: int, force: bool, no_progress: bool
) -> None:
    """Train and evaluate the pixel-cluster classifier and splitting on jet-core events."""
    import numpy as np

    from heplab.errors import ConfigError, OutputExistsError
    from heplab.events._util import atomic_output
    from heplab.ml.engine import TrainConfig
    from heplab.ml.metrics import json_safe
    from heplab.reconstruction.tracking import clusters as cl

    if events < 6:
        raise ConfigError(f"--events must be >= 6 (train / validation / test), not {events}")
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"{out}: not empty (pass --force to replace the run)")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sample = cl.cluster_sample(cl.simulate_jet_cores(events, seed=seed))
    n_train, n_val = (2 * events) // 3, max(1, events // 12)
    train = sample.subset(sample.event < n_train)
    val = sample.subset((sample.event >= n_train) & (sample.event < n_train + n_val))
    test = sample.subset(sample.event >= n_train + n_val)
    click.echo(
        f"{len(sample)} pixel clusters from {events} events "
        f"({time.perf_counter() - t0:.0f} s); train {len(train)}, val {len(val)}, test {len(test)}"
    )
    cfg = TrainConfig(
        epochs=epochs, batch_size=128, lr=3e-3, seed=seed, progress_bar=not no_progress
    )
    t0 = time.perf_counter()
    net = cl.train_cluster_classifier(train, val, out, config=cfg, seed=seed, force=True)
    t_train = time.perf_counter() - t0
    metrics = cl.evaluate_clusters(net, test)
    pred = cl.predict_clusters(net, test).argmax(1)
    merged = test.y > 0
    residuals = None
    if merged.any():
        multi = test.subset(merged)
        split = cl.split_clusters(multi, np.minimum(pred[merged] + 1, 3))
        residuals = cl.splitting_residuals(multi, split)
    cl.plot_cluster_performance(metrics, residuals, out / "clusters.png", force=True)
    result = {
        "events": events,
        "split_sizes": {"train": len(train), "val": len(val), "test": len(test)},
        "train_seconds": t_train,
        **metrics,
        # the scalar summaries (the per-crossing distances are in the figure)
        "splitting": None
        if residuals is None
        else {k: v for k, v in residuals.items() if not isinstance(v, np.ndarray)},
    }
    with atomic_output(out / "metrics.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(json_safe(result), indent=2))
    eff = ", ".join(f"{k} {v:.3f}" for k, v in metrics["efficiency"].items())
    click.echo(f"test accuracy {metrics['accuracy']:.3f}; efficiency per class: {eff}")
    if residuals is not None:
        click.echo(
            "merged clusters, median distance to the true crossings: "
            f"{1000 * residuals['merged_median_mm']:.0f} um unsplit, "
            f"{1000 * residuals['split_median_mm']:.0f} um split"
        )
    click.echo(f"wrote {out}/metrics.json, {out}/clusters.png")


COMMANDS = {"tracking": [clusters]}
