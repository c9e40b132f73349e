"""The ``heplab`` command line: ``heplab <stage-or-task> <verb>``.

Every user error (missing file, impossible setting, ...) ends with one line on stderr,
``heplab: error: ...``, and exit status 1 (2 for command-line usage errors), without a
Python traceback; ``heplab --debug ...`` shows the traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from heplab import __version__
from heplab.errors import ConfigError, HeplabError

__all__ = ["main"]

log = logging.getLogger("heplab")


def _parse_params(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        if "=" not in item:
            raise ConfigError(f"--param takes NAME=VALUE, not {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _default_workers() -> int:
    from heplab.generation.pythia import cpu_count

    return cpu_count()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="heplab")
@click.option("--debug", is_flag=True, help="Show Python tracebacks of errors.")
@click.option("-v", "--verbose", count=True, help="More log messages (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int) -> None:
    """heplab: machine learning along the whole collider data path.

    \b
    heplab demo                       the main job on built-in defaults
    heplab generate --list            the process catalogue
    heplab generate ttbar-boosted --events 1000 --out runs/tt
    heplab jets cluster runs/tt --out runs/tt-jets
    heplab info runs/tt
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s"
    )


# ---------------------------------------------------------------------------- generate
@cli.command()
@click.argument("process", required=False)
@click.option("--list", "list_", is_flag=True, help="List the process catalogue and exit.")
@click.option("--events", "-n", type=int, help="Number of events (for --lhe: default all).")
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Output run directory.")
@click.option("--seed", type=int, default=1, show_default=True, help="Run seed.")
@click.option(
    "--chunk-size", type=int, default=1000, show_default=True, help="Events per chunk file."
)
@click.option(
    "--workers", "-j", type=int, default=None, help="Local Dask worker processes [default: cores]."
)
@click.option("--scheduler", help="Address of an existing dask.distributed scheduler.")
@click.option(
    "--detector",
    default="auto",
    show_default=True,
    help="atlas, cms, ee, none, or a YAML card; auto = ee for e+e- beams, else atlas.",
)
@click.option("--pileup", type=float, default=0.0, show_default=True, help="Mean pile-up mu.")
@click.option("--sqrts", type=float, help="Centre-of-mass energy [GeV] (default: the entry's).")
@click.option("--param", "-p", "params", multiple=True, help="Process parameter NAME=VALUE.")
@click.option(
    "--pythia", "pythia_settings", multiple=True, help="Extra Pythia setting 'Key = value'."
)
@click.option(
    "--lhe", type=click.Path(path_type=Path), help="Shower a Les Houches file (.lhe, .lhe.gz)."
)
@click.option("--force", is_flag=True, help="Replace a different run already in --out.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def generate(
    process: str | None,
    list_: bool,
    events: int | None,
    out: Path | None,
    seed: int,
    chunk_size: int,
    workers: int | None,
    scheduler: str | None,
    detector: str,
    pileup: float,
    sqrts: float | None,
    params: tuple[str, ...],
    pythia_settings: tuple[str, ...],
    lhe: Path | None,
    force: bool,
    no_progress: bool,
) -> None:
    """Generate PROCESS events with Pythia 8 (+ pile-up + detector) as parquet chunks.

    Re-running the same command resumes: finished chunks are kept. Batch systems: start a
    dask-jobqueue cluster (SLURMCluster, HTCondorCluster) and pass its scheduler address.
    """
    from heplab.generation.catalogue import list_processes

    if list_:
        _print_catalogue(list_processes())
        return
    if out is None:
        raise click.UsageError("--out DIR is required")
    from heplab.generation.production import build_config, produce

    if workers is not None and scheduler:
        raise click.UsageError("give --workers or --scheduler, not both")
    config = build_config(
        process,
        events=events,
        seed=seed,
        chunk_size=chunk_size,
        detector=detector,
        pileup=pileup,
        sqrts=sqrts,
        params=_parse_params(params),
        lhe=lhe,
        pythia=pythia_settings,
    )
    manifest = produce(
        config,
        out,
        workers=_default_workers() if workers is None else workers,
        scheduler=scheduler,
        force=force,
        progress=not no_progress,
    )
    click.echo(
        f"{out}: {manifest.total_events} events of {config['process']} in "
        f"{len(manifest.chunks)} chunks (detector: {config['detector']}, pile-up mu = {config['pileup']:g})"
    )


def _print_catalogue(entries: dict[str, Any]) -> None:
    import textwrap

    for name in sorted(entries):
        e = entries[name]
        energy = "" if e.sqrts is None else f" at {e.sqrts:g} GeV"
        click.echo(click.style(name, bold=True) + f"  [{e.beams}{energy}]")
        click.echo(textwrap.indent(textwrap.fill(e.description, 88), "    "))
        for p in e.parameters.values():
            click.echo(f"      --param {p.name}={p.default}   {p.doc}")
    click.echo(
        "\nAdd your own entries as YAML files in a folder named by HEPLAB_PROCESS_PATH "
        "(copy one from heplab/generation/catalogue/), or pass a YAML file as PROCESS."
    )


# ---------------------------------------------------------------------------- jets
@cli.group()
def jets() -> None:
    """Jets: clustering, substructure, labels (and the tagging tasks)."""


@jets.command("cluster")
@click.argument("events_dir", type=click.Path(path_type=Path))
@click.option(
    "--out", "-o", required=True, type=click.Path(path_type=Path), help="Output jets directory."
)
@click.option(
    "--algorithm", type=click.Choice(["antikt", "kt", "ca"]), default="antikt", show_default=True
)
@click.option("--R", "R", type=float, default=0.8, show_default=True, help="Jet radius.")
@click.option("--ptmin", type=float, default=20.0, show_default=True, help="Minimum jet pT [GeV].")
@click.option("--max-constituents", type=int, default=128, show_default=True)
@click.option("--eta-max", type=float, default=None, help="Keep jets with |eta| below this.")
@click.option(
    "--inputs",
    type=click.Choice(["auto", "pfcands", "particles"]),
    default="auto",
    show_default=True,
    help="Cluster particle-flow candidates or truth particles (auto: pfcands if present).",
)
@click.option("--no-chs", is_flag=True, help="Keep charged pile-up candidates (no CHS).")
@click.option(
    "--workers", "-j", type=int, default=None, help="Local Dask workers [default: cores]."
)
@click.option("--scheduler", help="Address of an existing dask.distributed scheduler.")
@click.option("--force", is_flag=True, help="Replace a different jets run already in --out.")
@click.option("--no-progress", is_flag=True)
def jets_cluster(
    events_dir: Path,
    out: Path,
    algorithm: str,
    R: float,
    ptmin: float,
    max_constituents: int,
    eta_max: float | None,
    inputs: str,
    no_chs: bool,
    workers: int | None,
    scheduler: str | None,
    force: bool,
    no_progress: bool,
) -> None:
    """Cluster the events of EVENTS_DIR into jets with FastJet (one parquet dataset)."""
    from heplab.reconstruction.jets.production import cluster_run

    manifest = cluster_run(
        events_dir,
        out,
        algorithm=algorithm,
        R=R,
        ptmin=ptmin,
        max_constituents=max_constituents,
        eta_max=eta_max,
        inputs=inputs,
        chs=not no_chs,
        workers=_default_workers() if workers is None else workers,
        scheduler=scheduler,
        force=force,
        progress=not no_progress,
    )
    click.echo(f"{out}: {manifest.total_rows} jets from {manifest.total_events} events")


@jets.command("build")
@click.argument("kind", type=click.Choice(["top", "qg", "jetclass", "flavour"]))
@click.option("--jets", "-n", "n_jets", type=int, required=True, help="Total jets (all splits).")
@click.option(
    "--out", "-o", required=True, type=click.Path(path_type=Path), help="Build directory."
)
@click.option(
    "--workers", "-j", type=int, default=None, help="Local Dask workers [default: cores]."
)
@click.option("--scheduler", help="Address of an existing dask.distributed scheduler.")
@click.option("--seed", type=int, default=1, show_default=True, help="Build seed.")
@click.option("--force", is_flag=True, help="Replace a different build already in --out.")
@click.option("--no-progress", is_flag=True)
def jets_build(
    kind: str,
    n_jets: int,
    out: Path,
    workers: int | None,
    scheduler: str | None,
    seed: int,
    force: bool,
    no_progress: bool,
) -> None:
    """Build a balanced jet-tagging dataset (train/val/test) in the published setting.

    \b
    top       top tagging, arXiv:1902.09914 (ttbar vs QCD, R = 0.8, pT 550-650 GeV)
    qg        quark/gluon, arXiv:1810.05165 (Z + jet, R = 0.4, pT 500-550 GeV)
    jetclass  the 10 JetClass classes, arXiv:2202.03772 (R = 0.8, pT 500-1000 GeV)
    flavour   b / c / light (ttbar, QCD; R = 0.4, pT 30-250 GeV), impact parameters
    """
    from heplab.reconstruction.jets.datasets import SPLITS, build_dataset

    root = build_dataset(
        kind,
        n_jets,
        out,
        workers=_default_workers() if workers is None else workers,
        scheduler=scheduler,
        seed=seed,
        force=force,
        progress=not no_progress,
    )
    build = json.loads((root / "build.json").read_text())
    sizes = ", ".join(f"{s} {build['config']['splits'][s]}" for s in SPLITS)
    click.echo(f"{root}: {kind} jets ({sizes})")


def _int_list(text: str, option: str) -> list[int]:
    """``"1000, 4000"`` -> ``[1000, 4000]``; ConfigError naming ``option`` otherwise."""
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"{option} takes comma-separated integers, not {text!r}") from exc


def _binary_options(command: Callable[..., None]) -> Callable[..., None]:
    """The ``--signal`` / ``--background`` options of the training commands."""
    command = click.option(
        "--background",
        default="",
        help="Multi-class data: comma-separated background label columns (label_l,label_c).",
    )(command)
    return click.option(
        "--signal",
        default="",
        help="Multi-class data (jetclass, flavour): comma-separated signal label columns "
        "(label_b).",
    )(command)


def _binary(signal: str, background: str) -> tuple[list[str], list[str]] | None:
    """``--signal`` / ``--background`` as the (signal, background) columns, or None."""
    sig = [c.strip() for c in signal.split(",") if c.strip()]
    bkg = [c.strip() for c in background.split(",") if c.strip()]
    if not sig and not bkg:
        return None
    if not sig or not bkg:
        raise ConfigError("--signal and --background go together (label columns, e.g. label_b)")
    return sig, bkg


def _rej(value: float | None) -> str:
    """A background rejection for printing (``None`` in JSON: no background passes)."""
    return "inf" if value is None else f"{value:.1f}"


@jets.command("train")
@click.argument("model")
@click.option(
    "--data", "-d", required=True, type=click.Path(path_type=Path), help="Dataset directory."
)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="YAML hyper-parameters."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Training seed.")
@_binary_options
@click.option("--force", is_flag=True, help="Replace a different run already in --out.")
def jets_train(
    model: str,
    data: Path,
    out: Path,
    config_file: Path | None,
    seed: int,
    signal: str,
    background: str,
    force: bool,
) -> None:
    """Train the tagger MODEL (cut, bdt, ...) on DATA (train/val/test) into a run directory."""
    from heplab.reconstruction.jets.tagging import load_config, train

    run = train(
        model,
        data,
        out,
        config=load_config(config_file),
        seed=seed,
        binary=_binary(signal, background),
        force=force,
    )
    test = json.loads((run / "metrics.json").read_text())["test"]
    click.echo(
        f"{run}: {model} test AUC {test['auc']:.4f}, accuracy {test['accuracy']:.3f}, "
        f"rej30 {_rej(test['rej30'])}, rej50 {_rej(test['rej50'])}"
    )


@jets.command("landscape")
@click.option(
    "--data", "-d", required=True, type=click.Path(path_type=Path), help="Dataset directory."
)
@click.option("--models", "-m", required=True, help="Comma-separated tagger names (cut,bdt).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="YAML mapping MODEL: {hyper-parameters}.",
)
@click.option("--repeats", type=int, default=1, show_default=True, help="Trainings per model.")
@click.option("--seed", type=int, default=0, show_default=True, help="First training seed.")
@click.option(
    "--train-sizes",
    default="",
    help="Comma-separated training-set sizes for learning curves (e.g. 1000,4000).",
)
@_binary_options
@click.option("--force", is_flag=True, help="Replace a different landscape already in --out.")
def jets_landscape(
    data: Path,
    models: str,
    out: Path,
    config_file: Path | None,
    repeats: int,
    seed: int,
    train_sizes: str,
    signal: str,
    background: str,
    force: bool,
) -> None:
    """Train and compare taggers on the same splits: landscape.json/.md and ROC curves."""
    from heplab.reconstruction.jets.tagging import landscape, load_config

    configs = load_config(config_file)
    if not all(isinstance(v, dict) for v in configs.values()):
        raise ConfigError("the landscape --config maps each model name to its settings")
    results = landscape(
        data,
        models.split(","),
        out,
        repeats=repeats,
        seed=seed,
        configs=configs,
        train_sizes=_int_list(train_sizes, "--train-sizes"),
        binary=_binary(signal, background),
        force=force,
    )
    for r in results:
        click.echo(
            f"{r['model']:>8}: AUC {r['auc']:.4f}  rej30 {_rej(r['rej30'])}  "
            f"rej50 {_rej(r['rej50'])}  "
            f"params {r['params']}"
        )
    click.echo(f"{out / 'landscape.md'}")


@jets.command("evaluate")
@click.argument("run", type=click.Path(path_type=Path))
@click.option(
    "--data",
    "-d",
    type=click.Path(path_type=Path),
    help="Dataset directory (default: the one the run was trained on).",
)
def jets_evaluate(run: Path, data: Path | None) -> None:
    """Metrics of a trained tagger RUN on the val and test splits (JSON on stdout)."""
    from heplab.ml.metrics import json_safe
    from heplab.reconstruction.jets.tagging import evaluate

    click.echo(json.dumps(json_safe(evaluate(run, data)), indent=2))


@jets.command("export")
@click.argument("run", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "torchscript"]),
    default="onnx",
    show_default=True,
    help="ONNX (ONNX Runtime, CMSSW) or TorchScript (libtorch).",
)
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), help="Output folder (default: RUN/export)."
)
@click.option(
    "--check-jets",
    type=int,
    default=256,
    show_default=True,
    help="Jets of the numeric check against PyTorch.",
)
@click.option("--force", is_flag=True, help="Replace an exported model already there.")
def jets_export(run: Path, fmt: str, out: Path | None, check_jets: int, force: bool) -> None:
    """Export the neural tagger of RUN (weaver layout, dynamic batch, numeric check)."""
    from heplab.reconstruction.jets.export import export

    path = export(run, fmt, out=out, n_check=check_jets, force=force)  # type: ignore[arg-type]
    meta = json.loads((path.parent / "export.json").read_text())
    inputs = ", ".join(f"{k}{tuple(v['shape'])}" for k, v in meta["inputs"].items())
    click.echo(
        f"{path}: inputs {inputs} -> softmax(N, 2); "
        f"max |exported - PyTorch| = {meta['check']['max_abs_diff']:.2g}"
    )


@jets.command("predict")
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--column", default="score", show_default=True, help="Name of the score column.")
@click.option("--force", is_flag=True, help="Replace output files already there.")
def jets_predict(run: Path, files: tuple[Path, ...], out: Path, column: str, force: bool) -> None:
    """Tag the jets in FILES (parquet, ROOT, HDF5, .npz) with the tagger of RUN."""
    from heplab.reconstruction.jets.export import predict

    for path in predict(run, files, out, column=column, force=force):
        click.echo(str(path))


# ---------------------------------------------------------------------------- info / convert
@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(path: Path, as_json: bool) -> None:
    """Describe a run directory, parquet, ROOT, HDF5, LHE or CSV file."""
    from heplab.events.info import describe, format_description

    desc = describe(path)
    click.echo(json.dumps(desc, indent=2, default=str) if as_json else format_description(desc))


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("target", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "root", "hdf5"]),
    default=None,
    help="Output format [default: from TARGET's suffix].",
)
@click.option(
    "--root-style", type=click.Choice(["nanoaod", "delphes"]), default="nanoaod", show_default=True
)
@click.option("--force", is_flag=True, help="Overwrite TARGET.")
def convert(source: Path, target: Path, fmt: str | None, root_style: str, force: bool) -> None:
    """Convert events between parquet (or a run directory), ROOT and HDF5."""
    from heplab.events import read_events, write_events

    if fmt is None:
        suffix = target.suffix.lower()
        fmt = {".root": "root", ".h5": "hdf5", ".hdf5": "hdf5", ".parquet": "parquet"}.get(suffix)
        if fmt is None:
            raise ConfigError(f"cannot tell the format of {target}; give --format")
    events = read_events(source)
    write_events(events, target, fmt, root_style=root_style, overwrite=force)  # type: ignore[arg-type]
    click.echo(f"{target}: {len(events)} events ({fmt})")


# ---------------------------------------------------------------------------- demo
@cli.command()
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), default=Path("heplab-demo"), show_default=True
)
@click.option(
    "--events",
    "-n",
    type=int,
    default=3000,
    show_default=True,
    help="Events per process (ttbar-boosted, qcd-dijet, z-ll).",
)
@click.option(
    "--workers", "-j", type=int, default=None, help="Local Dask workers [default: cores]."
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--force", is_flag=True, help="Replace a demo made with other settings.")
@click.option("--no-progress", is_flag=True)
def demo(
    out: Path, events: int, workers: int | None, seed: int, force: bool, no_progress: bool
) -> None:
    """The main job: events, detector, jets and a physics report, on built-in defaults."""
    from heplab.demo import run_demo

    report = run_demo(
        out,
        events=events,
        workers=_default_workers() if workers is None else workers,
        seed=seed,
        force=force,
        progress=not no_progress,
    )
    click.echo(f"report: {report}")


# ---------------------------------------------------------------------------- tracking, calo
@cli.group()
def tracking() -> None:
    """Track finding: a TrackML-like silicon tracker, GNN pipeline, classical baselines, score."""


@cli.group()
def calo() -> None:
    """Calorimetry: shower engine, generative fast simulation, its evaluation, particle ID."""


def _register_subcommands() -> None:
    """Attach the commands of :mod:`heplab.commands` (one module per topic) to their group."""
    from heplab.commands import (
        calo_engine,
        calo_evaluate,
        calo_models,
        calo_reco,
        tracking_clusters,
        tracking_pipeline,
        tracking_sim,
    )

    groups = {"calo": calo, "tracking": tracking}
    for module in (
        tracking_sim,
        tracking_pipeline,
        tracking_clusters,
        calo_engine,
        calo_models,
        calo_evaluate,
        calo_reco,
    ):
        for group, commands in module.COMMANDS.items():
            for command in commands:
                groups[group].add_command(command)


_register_subcommands()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``heplab`` command."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="heplab", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("heplab: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo(
            "heplab: interrupted; finished chunks are kept, re-run the same command to resume",
            err=True,
        )
        sys.exit(130)
    except HeplabError as exc:
        if debug:
            raise
        click.echo(f"heplab: error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        click.echo(
            f"heplab: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
