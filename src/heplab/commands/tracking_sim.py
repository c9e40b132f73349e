"""``heplab tracking generate`` and ``heplab tracking score``: TrackML-like events and the score.

- ``generate``: Pythia events (hard process + Poisson(mu) minimum bias) through the
  TrackML-like silicon tracker of :mod:`heplab.detector.silicon`, written as TrackML CSV
  files ``event%09d-{hits,cells,particles,truth}.csv``.
- ``score``: the TrackML score (:mod:`heplab.reconstruction.tracking.score`) of a
  submission CSV ``event_id,hit_id,track_id`` against a folder of truth files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

__all__ = ["COMMANDS", "generate", "score"]


@click.command("generate")
@click.option("--events", "-n", type=int, required=True, help="Number of events.")
@click.option(
    "--pileup", "--mu", type=float, default=0.0, show_default=True, help="Mean pile-up mu."
)
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option(
    "--process", default="ttbar", show_default=True, help="Hard process (catalogue name)."
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--geometry",
    default="trackml",
    show_default=True,
    help="Tracker geometry: a built-in name or a YAML file.",
)
@click.option(
    "--workers",
    "-j",
    type=int,
    default=None,
    help="Local Dask worker processes (0: in this process) [default: cores, at most one per chunk].",
)
@click.option(
    "--events-per-chunk",
    type=int,
    default=10,
    show_default=True,
    help="Events per Pythia initialisation / pile-up pool.",
)
@click.option("--force", is_flag=True, help="Replace a run made with other settings.")
@click.option("--no-progress", is_flag=True)
def generate(
    events: int,
    pileup: float,
    out: Path,
    process: str,
    seed: int,
    geometry: str,
    workers: int | None,
    events_per_chunk: int,
    force: bool,
    no_progress: bool,
) -> None:
    """Generate TrackML-format events: Pythia + pile-up through a TrackML-like tracker.

    Re-running the same command resumes (finished events are kept).
    """
    from heplab.detector.silicon import generate as run_generate
    from heplab.generation.pythia import cpu_count

    if events_per_chunk < 1:
        raise click.BadParameter("must be >= 1", param_hint="--events-per-chunk")
    if workers is None:
        n_chunks = math.ceil(max(events, 1) / events_per_chunk)
        workers = 0 if n_chunks <= 1 else min(cpu_count(), n_chunks)
    manifest = run_generate(
        out,
        events,
        pileup,
        process=process,
        seed=seed,
        geometry=geometry,
        workers=workers,
        events_per_chunk=events_per_chunk,
        force=force,
        progress=not no_progress,
    )
    chunks = list(manifest.chunks.values())
    n = sum(c.events for c in chunks)
    made = [c for c in chunks if "simulation" in c.timing]  # chunks made by this call
    n_made = sum(c.events for c in made)
    line = f"{out}: {n} events of {process} at pile-up mu = {pileup:g}"
    if n_made:
        hits = sum(c.rows for c in made) / n_made
        ms = 1000 * sum(c.timing["simulation"] for c in made) / n_made
        line += f"; {hits:.0f} hits/event, tracker simulation {ms:.0f} ms/event"
    click.echo(line)


@click.command("score")
@click.argument("submission", type=click.Path(path_type=Path))
@click.argument("truth_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help='Print {"score": ..., "events": ...}.')
def score(submission: Path, truth_dir: Path, as_json: bool) -> None:
    """TrackML score of SUBMISSION (CSV event_id,hit_id,track_id) against TRUTH_DIR."""
    from heplab.reconstruction.tracking.score import score_submission

    result = score_submission(submission, truth_dir)
    if as_json:
        click.echo(json.dumps({"score": result["score"], "events": result["events"]}))
    else:
        click.echo(f"TrackML score {result['score']:.4f} over {result['events']} event(s)")


COMMANDS = {"tracking": [generate, score]}
