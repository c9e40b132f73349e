"""``heplab tracking train`` and ``heplab tracking run``: the track-finding pipeline.

- ``train``: learn the layer-pair map from the truth of TrackML events, build their
  geometric graphs and train an edge classifier (``gnn``: Interaction Network; ``filter``:
  edge MLP; ``chain``: the Exa.TrkX filter MLP -> Interaction Network, trained in sequence,
  the filter cut keeping ``--filter-efficiency`` of the training true edges; ``hetrkx``:
  the HEP.TrkX edge / node network) through heplab's training engine; writes
  RUN/config.json, RUN/weights.pt (+ RUN/filter_weights.pt for the chain),
  RUN/metrics.json (graph and edge efficiency / purity for pT > 0.5 and > 1 GeV on the
  validation events) and RUN/efficiency_purity.png.
- ``run``: track finding on every event of a folder (``gnn`` with a trained RUN;
  ``hashing``: the same classifier and building on the similarity-hashing graph; the
  ``hough`` baseline; or ``seeding``: triplet seeds + track following on the geometric
  graph of RUN's learned layer map), written as a TrackML submission CSV
  ``event_id,hit_id,track_id``;
  prints ms per event per stage and, where the folder has truth, the TrackML score and the
  track efficiency / fake / duplicate rates.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import numpy as np

    from heplab.events.trackml import TrackMLEvent

__all__ = ["COMMANDS", "run", "train"]


def _read_events(data: Path, n: int | None, parts: tuple[str, ...]) -> list[TrackMLEvent]:
    from heplab.errors import DataError
    from heplab.events.trackml import event_ids, read_event

    ids = event_ids(data)
    if not ids:
        raise DataError(f"{data}: no TrackML events (event*-hits.csv)")
    if n is not None:
        ids = ids[:n]
    return [read_event(data, i, parts) for i in ids]


@click.command("train")
@click.option(
    "--data", type=click.Path(path_type=Path), required=True, help="TrackML event folder."
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder.")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option(
    "--model",
    type=click.Choice(["gnn", "filter", "chain", "hetrkx"]),
    default="gnn",
    show_default=True,
    help="Interaction Network, edge MLP, filter -> GNN chain (Exa.TrkX), HEP.TrkX network.",
)
@click.option("--events", type=int, default=None, help="Use the first N events [default: all].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--val-fraction", type=float, default=0.2, show_default=True, help="Events kept for validation."
)
@click.option("--hidden", type=int, default=32, show_default=True, help="Hidden width.")
@click.option(
    "--filter-efficiency",
    type=float,
    default=0.995,
    show_default=True,
    help="chain: fraction of the training true edges that the filter cut keeps.",
)
@click.option("--force", is_flag=True, help="Replace an existing run.")
@click.option("--no-progress", is_flag=True)
def train(
    data: Path,
    out: Path,
    epochs: int,
    model: str,
    events: int | None,
    seed: int,
    val_fraction: float,
    hidden: int,
    filter_efficiency: float,
    force: bool,
    no_progress: bool,
) -> None:
    """Train an edge classifier (GNN, edge filter, chain, HEP.TrkX) on the events in --data."""
    from heplab.errors import ConfigError
    from heplab.reconstruction.tracking.pipeline import PipelineConfig, train_pipeline

    if events is not None and events < 2:
        raise ConfigError(f"--events must be >= 2 (training + validation), not {events}")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in (0, 1), not {val_fraction}")
    evs = _read_events(data, events, ("hits", "truth", "particles"))
    if len(evs) < 2:
        raise ConfigError(f"{data}: training needs >= 2 events, found {len(evs)}")
    n_val = min(max(1, math.ceil(val_fraction * len(evs))), len(evs) - 1)
    cfg = PipelineConfig(
        model=model, epochs=epochs, seed=seed, hidden=hidden, filter_efficiency=filter_efficiency
    )
    res = train_pipeline(
        evs[:-n_val], evs[-n_val:], out, cfg, force=force, progress=not no_progress
    )
    g, e = res.metrics["graph"], res.metrics["edge_classifier"]
    click.echo(
        f"{out}: {model} on {len(evs) - n_val} events ({n_val} validation), "
        f"{res.metrics['layer_pairs']} layer pairs"
    )
    if "filter" in res.metrics:
        f = res.metrics["filter"]["selection"]
        click.echo(
            f"  filter cut {res.metrics['filter']['cut']:.4g}: keeps {f['edges']:.0f} edges, "
            f"efficiency (pT > 1 GeV) {f['efficiency_pt1']:.4f} purity {f['purity_pt1']:.4f}"
        )
    for tag in ("pt1", "pt0.5"):
        cut = tag.removeprefix("pt")
        click.echo(
            f"  pT > {cut} GeV: graph efficiency {g[f'efficiency_{tag}']:.4f} purity "
            f"{g[f'purity_{tag}']:.4f} | edges efficiency {e[f'efficiency_{tag}']:.4f} "
            f"purity {e[f'purity_{tag}']:.4f}"
        )


def _write_submission(path: Path, rows: list[tuple[int, dict[str, np.ndarray]]]) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    event = np.concatenate([np.full(len(s["hit_id"]), e, np.int64) for e, s in rows])
    hit = np.concatenate([s["hit_id"] for _, s in rows]).astype(np.int64)
    track = np.concatenate([s["track_id"] for _, s in rows]).astype(np.int64)
    table = pa.table([event, hit, track], names=["event_id", "hit_id", "track_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pacsv.write_csv(
            table,
            tmp,
            write_options=pacsv.WriteOptions(quoting_style="none", quoting_header="none"),
        )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@click.command("run")
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option(
    "--method",
    type=click.Choice(["gnn", "hough", "seeding", "hashing"]),
    required=True,
    help="gnn, hashing (the GNN on the similarity-hashing graph) or seeding (need --model "
    "RUN), or hough.",
)
@click.option(
    "--model", type=click.Path(path_type=Path), default=None, help="Run folder of `train`."
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Submission CSV.")
@click.option("--events", type=int, default=None, help="Only the first N events.")
@click.option(
    "--builder",
    type=click.Choice(["cc", "walk"]),
    default=None,
    help="Track building: connected components or walk-through [default: the run's, walk].",
)
@click.option("--edge-cut", type=float, default=None, help="Edge score cut [default: the run's].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end.")
@click.option("--force", is_flag=True, help="Replace an existing submission file.")
@click.option("--no-progress", is_flag=True)
def run(
    data_dir: Path,
    method: str,
    model: Path | None,
    out: Path,
    events: int | None,
    builder: str | None,
    edge_cut: float | None,
    as_json: bool,
    force: bool,
    no_progress: bool,
) -> None:
    """Find the tracks of every event in DATA_DIR and write a TrackML submission CSV."""
    import numpy as np
    from tqdm import tqdm

    from heplab.errors import ConfigError, OutputExistsError
    from heplab.events.trackml import event_ids, read_event
    from heplab.reconstruction.tracking.metrics import TrackTally, tally_tracks
    from heplab.reconstruction.tracking.pipeline import EdgePipeline, reconstruct
    from heplab.reconstruction.tracking.score import score_event

    if method in ("gnn", "hashing", "seeding") and model is None:
        raise ConfigError(
            f"--method {method} needs --model RUN (a run folder of `heplab tracking train`; "
            "seeding uses its learned layer-pair map)"
        )
    if out.exists() and not force:
        raise OutputExistsError(f"{out}: exists (use --force to replace it)")
    pipe = EdgePipeline.load(model) if model is not None and method != "hough" else None
    if pipe is not None and method in ("gnn", "hashing"):
        pipe.warm_up()  # one-off initialisation, not charged to the first event
    ids = event_ids(data_dir)
    if events is not None:
        ids = ids[:events]
    if not ids:
        raise ConfigError(f"{data_dir}: no TrackML events to run on")
    rows = []
    scores: list[float] = []
    tally = TrackTally()
    stage_ms: dict[str, list[float]] = {}
    for eid in tqdm(ids, desc=f"tracking ({method})", disable=no_progress):
        ev = read_event(data_dir, eid, ("hits", "truth", "particles"))
        sub, ms = reconstruct(ev, method, pipe, builder=builder, edge_cut=edge_cut)
        rows.append((eid, sub))
        for k, v in ms.items():
            stage_ms.setdefault(k, []).append(v)
        line = f"event {eid}: {len(ev)} hits, " + ", ".join(
            f"{k} {v:.1f} ms" for k, v in ms.items()
        )
        if ev.truth is not None:
            s = score_event(ev.truth, sub, name=f"event {eid}")
            scores.append(s)
            tally = tally + tally_tracks(ev, sub["track_id"])
            line += f", score {s:.4f}"
        click.echo(line)
    _write_submission(out, rows)
    ms_mean = {k: float(np.mean(v)) for k, v in stage_ms.items()}
    summary: dict[str, object] = {
        "method": method,
        "events": len(ids),
        "ms_per_event": ms_mean,
        "submission": str(out),
    }
    if scores:
        summary["score"] = float(np.mean(scores))
        summary.update(tally.summary())
    if as_json:
        click.echo(json.dumps(summary))
    else:
        per = ", ".join(f"{k} {v:.1f}" for k, v in ms_mean.items())
        click.echo(f"{out}: {len(ids)} event(s) by {method}; ms/event: {per}")
        if scores:
            click.echo(
                f"TrackML score {summary['score']:.4f}; track efficiency (pT > 1 GeV) "
                f"{summary['track_efficiency']:.4f}, fake rate {summary['fake_rate']:.4f}, "
                f"duplicate rate {summary['duplicate_rate']:.4f}"
            )


COMMANDS = {"tracking": [train, run]}
