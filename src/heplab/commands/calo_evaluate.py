"""``heplab calo evaluate``: the CaloChallenge evaluation of generated vs reference showers.

See :mod:`heplab.simulation.evaluation` for the protocol (features and separation powers,
the low- and high-level classifier tests, FPD, KPD) and the floor.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["COMMANDS", "evaluate"]


@click.command("evaluate")
@click.argument("generated", type=click.Path(path_type=Path))
@click.argument("reference", type=click.Path(path_type=Path))
@click.option(
    "--out", "-o", required=True, type=click.Path(path_type=Path), help="Report directory."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary numbers as one JSON line.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of splits and training.")
@click.option(
    "--max-showers",
    type=click.IntRange(min=1),
    default=None,
    help="Use at most N showers per file.",
)
@click.option("--no-floor", is_flag=True, help="Skip the reference-vs-reference floor.")
@click.option(
    "--classifier-hidden",
    default="512,512,512",
    show_default=True,
    help="Hidden layer sizes of the classifier test (comma separated).",
)
@click.option(
    "--classifier-epochs",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Most epochs of the classifier test (early stopping on the validation loss).",
)
@click.option("--force", is_flag=True, help="Replace a report already in --out.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def evaluate(
    generated: Path,
    reference: Path,
    out: Path,
    as_json: bool,
    seed: int,
    max_showers: int | None,
    no_floor: bool,
    classifier_hidden: str,
    classifier_epochs: int,
    force: bool,
    no_progress: bool,
) -> None:
    """Compare GENERATED.h5 with REFERENCE.h5 as the CaloChallenge does.

    Writes results.json, report.md / report.html and figures to --out; every number comes
    with its floor, the same metric between two independent halves of the reference.
    --json prints {"auc_low", "auc_high", "fpd", "kpd", "floor": {...}}.
    """
    from heplab.events.calo import read_showers
    from heplab.simulation.evaluation import evaluate as run_evaluation
    from heplab.simulation.evaluation import json_summary
    from heplab.simulation.evaluation_metrics import ClassifierConfig

    try:
        hidden = tuple(int(v) for v in classifier_hidden.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected sizes like 512,512,512, not {classifier_hidden!r}",
            param_hint="--classifier-hidden",
        ) from None
    classifier = ClassifierConfig(hidden=hidden, epochs=classifier_epochs)

    ref = read_showers(reference)
    gen = read_showers(generated, geometry=ref.geometry)
    results = run_evaluation(
        gen,
        ref,
        out,
        seed=seed,
        max_showers=max_showers,
        floor=not no_floor,
        classifier=classifier,
        force=force,
        progress=not no_progress and not as_json,
        names=(str(generated), str(reference)),
    )
    if as_json:
        click.echo(json.dumps(json_summary(results)))
        return
    floor = results["floor"] or {}

    def show(value: object) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    for key in ("auc_low", "auc_high", "fpd", "kpd"):
        click.echo(f"{key:9s} {show(results[key]):>10s}   floor {show(floor.get(key))}")
    click.echo(f"report: {out / 'report.md'}")


COMMANDS = {"calo": [evaluate]}
