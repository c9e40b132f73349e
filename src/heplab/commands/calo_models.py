"""``heplab calo train`` and ``heplab calo sample``: the generative shower models.

``heplab calo train MODEL --data FILE.h5 --out RUN`` fits one of
:data:`heplab.simulation.generators.GENERATORS` (``gan``, ``vae``, ``flow``,
``flowmatch``) on a CaloGAN- or CaloChallenge-layout file and writes the run directory
(:mod:`heplab.simulation.runs`: ``config.json`` with the training time, ``weights.pt``,
``preprocessing.json``, ``history.json``, the engine's checkpoints under ``train/``).
``heplab calo sample RUN --showers N --energy 10:100 --out FILE.h5`` draws incident
energies [GeV] (flat or log-flat in the range) and writes generated showers in the same
file layout as the shower engine (:func:`heplab.events.calo.write_showers`); ``--energy`` and
``--spectrum`` mean what they mean for ``heplab calo simulate``
(:func:`heplab.detector.showers.sample_energies`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from heplab.errors import ConfigError

__all__ = ["COMMANDS", "sample", "train"]

_MODELS = ("gan", "vae", "flow", "flowmatch")


@click.command("train")
@click.argument("model", type=click.Choice(_MODELS))
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Training showers (CaloGAN or CaloChallenge HDF5).",
)
@click.option(
    "-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="Run directory."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML of the model's hyper-parameters.",
)
@click.option("--epochs", type=int, help="Override the config's epochs.")
@click.option("--seed", type=int, help="Override the config's seed (split and training).")
@click.option(
    "--val-fraction",
    type=float,
    default=0.1,
    show_default=True,
    help="Share of the file held out for early stopping.",
)
@click.option("--force", is_flag=True, help="Replace an existing run in --out.")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
def train(
    model: str,
    data: Path,
    out: Path,
    config_path: Path | None,
    epochs: int | None,
    seed: int | None,
    val_fraction: float,
    force: bool,
    progress: bool,
) -> None:
    """Train a generative shower MODEL (gan, vae, flow, flowmatch) on --data."""
    import numpy as np

    from heplab.events.calo import read_showers
    from heplab.simulation.generators import load_config, make_generator
    from heplab.simulation.runs import prepare_run_dir

    if not 0 < val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in (0, 1), not {val_fraction}")
    settings: dict[str, Any] = load_config(config_path) if config_path else {}
    if epochs is not None:
        settings["epochs"] = epochs
    if seed is not None:
        settings["seed"] = seed
    settings.setdefault("progress_bar", progress)
    gen = make_generator(model, None, settings)  # validates before any reading
    showers = read_showers(data)
    n_val = max(1, round(val_fraction * len(showers)))
    if len(showers) - n_val < 2:
        raise ConfigError(f"{data} holds {len(showers)} showers: too few to train")
    perm = np.random.default_rng(gen.config.seed).permutation(len(showers))
    train_set, val_set = showers[np.sort(perm[n_val:])], showers[np.sort(perm[:n_val])]
    run = prepare_run_dir(out, force=force)
    gen.fit(train_set, val_set, out_dir=run)
    gen.save(run)
    click.echo(
        f"trained {model} on {len(train_set)} {showers.particle} showers "
        f"({showers.geometry.name}, {len(val_set)} for validation) in {gen.train_time_s_:.1f} s; "
        f"{gen.n_parameters()} parameters; run in {run}"
    )


@click.command("sample")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("-n", "--showers", "n_showers", required=True, type=int, help="Number of showers.")
@click.option("--energy", required=True, help="Incident energy E or range EMIN:EMAX [GeV].")
@click.option(
    "--spectrum",
    type=click.Choice(["flat", "logflat"]),
    default="flat",
    show_default=True,
    help="Energy distribution in the range: uniform in E or in ln E.",
)
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output HDF5 file (the shower engine's layout).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--particle",
    help="For a model trained on a mixed set: one particle (e-, gamma, pi0, pi+) or "
    "'mixed' (uniform over the trained ones, the default).",
)
@click.option(
    "--batch-size", type=int, default=10_000, show_default=True, help="Showers per network call."
)
@click.option("--force", is_flag=True, help="Overwrite --out.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def sample(
    run: Path,
    n_showers: int,
    energy: str,
    spectrum: str,
    out: Path,
    seed: int,
    particle: str | None,
    batch_size: int,
    force: bool,
    progress: bool,
) -> None:
    """Generate showers with the trained generator in RUN and write them to --out."""
    import numpy as np

    from heplab.detector.showers import parse_energy, sample_energies
    from heplab.errors import OutputExistsError
    from heplab.events.calo import PDG_IDS, ShowerSet, write_showers
    from heplab.simulation.generators import load_generator

    if n_showers < 1:
        raise ConfigError(f"--showers must be >= 1, not {n_showers}")
    lo, hi = parse_energy(energy)
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; use --force to overwrite")
    gen = load_generator(run)
    if gen.geometry is None:
        raise ConfigError(f"run {run} names no known geometry ({gen.geometry_name!r})")
    rng = np.random.default_rng(seed)
    energies = sample_energies(energy, spectrum, n_showers, rng)
    prep = gen.prep_
    assert prep is not None
    pids = None
    label = gen.particle or "unknown"
    if len(prep.pids) > 1:
        if particle in (None, "mixed"):
            pids = rng.choice(np.asarray(prep.pids), n_showers)
            label = "mixed"
        elif particle in PDG_IDS and PDG_IDS[particle] in prep.pids:
            pids = np.full(n_showers, PDG_IDS[particle])
            label = particle
        else:
            raise ConfigError(f"--particle {particle!r} was not in the training set ({prep.pids})")
    elif particle is not None and particle != label:
        raise ConfigError(f"run {run} was trained on {label} only, not {particle}")
    showers = gen.sample(
        energies, seed=seed, batch_size=batch_size, pids=pids, progress_bar=progress
    )
    result = ShowerSet(
        energies=energies,
        showers=showers,
        geometry=gen.geometry,
        particle=label,
        pids=pids,
        metadata={
            "generator": gen.name,
            "run": str(run),
            "seed": seed,
            "energy": [lo, hi],
            "spectrum": spectrum,
        },
    )
    path = write_showers(out, result, force=force)
    click.echo(f"wrote {n_showers} {gen.name} showers ({gen.geometry_name}) to {path}")


COMMANDS = {"calo": [train, sample]}
