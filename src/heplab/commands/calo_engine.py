"""``heplab calo simulate``: single-particle showers from heplab's parametrised engine.

The file layout follows the geometry: the CaloGAN layout for ``calogan``, the
CaloChallenge layout for ``ds2``/``ds3``/``endcap`` (see :mod:`heplab.events.calo`).
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["COMMANDS", "simulate"]

_PARTICLES = ["e-", "gamma", "pi0", "pi+"]


@click.command("simulate")
@click.option("--particle", required=True, type=click.Choice(_PARTICLES), help="Incident particle.")
@click.option(
    "--energy",
    default="10:100",
    show_default=True,
    help="Incident energy [GeV]: E (fixed) or EMIN:EMAX.",
)
@click.option(
    "--spectrum",
    type=click.Choice(["flat", "logflat"]),
    default="flat",
    show_default=True,
    help="Energy spectrum between EMIN and EMAX.",
)
@click.option("--showers", "-n", required=True, type=click.IntRange(min=1), help="Showers.")
@click.option(
    "--geometry",
    default="calogan",
    show_default=True,
    help="calogan, ds2, ds3, endcap, or a geometry YAML file.",
)
@click.option(
    "--out", "-o", required=True, type=click.Path(path_type=Path), help="Output HDF5 file."
)
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
@click.option(
    "--noise-mev", type=float, default=None, help="Cell noise sigma [MeV] (default: geometry's)."
)
@click.option(
    "--threshold-mev",
    type=float,
    default=None,
    help="Zero-suppression threshold [MeV] (default: geometry's).",
)
@click.option(
    "--position-spread", type=float, default=0.0, show_default=True, help="Impact spread [mm]."
)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def simulate(
    particle: str,
    energy: str,
    spectrum: str,
    showers: int,
    geometry: str,
    out: Path,
    seed: int,
    noise_mev: float | None,
    threshold_mev: float | None,
    position_spread: float,
    force: bool,
    no_progress: bool,
) -> None:
    """Simulate single-particle calorimeter showers and write them as HDF5.

    \b
    heplab calo simulate --particle e- --energy 10:100 --showers 10000 \\
        --geometry calogan --out eplus.h5
    heplab calo simulate --particle pi+ --energy 1:1000 --spectrum logflat \\
        --showers 1000 --geometry ds2 --out pions.h5

    A GFlash-style engine (much simpler than Geant4); see heplab.detector.showers.
    """
    import time

    import numpy as np
    from tqdm.auto import tqdm

    from heplab.detector.calogeometry import load_geometry
    from heplab.detector.showers import ShowerConfig, parse_energy, sample_energies
    from heplab.detector.showers import simulate as run_engine
    from heplab.errors import OutputExistsError
    from heplab.events.calo import ShowerWriter

    if out.exists() and not force:
        raise OutputExistsError(f"{out}: already exists (pass --force to replace it)")
    parse_energy(energy)
    geo = load_geometry(geometry)
    config = ShowerConfig.from_dict(
        {
            "noise": None if noise_mev is None else noise_mev / 1000.0,
            "threshold": None if threshold_mev is None else threshold_mev / 1000.0,
            "position_spread": position_spread,
        }
    )
    rng = np.random.default_rng(seed)
    energies = sample_energies(energy, spectrum, showers, rng)
    # chunks of <= ~200 MB of cells, so that any sample size fits in memory
    chunk = max(1, min(2000, int(5e7 // geo.n_voxels)))
    metadata = {
        "engine": "heplab.detector.showers",
        "particle": particle,
        "geometry": geo.name,
        "config": config.to_dict(),
        "seed": seed,
        "energy": energy,
        "spectrum": spectrum,
        "n": showers,
    }
    start = time.perf_counter()
    writer = ShowerWriter(out, geo, particle, metadata=metadata, force=force)
    with writer, tqdm(total=showers, unit="shower", disable=no_progress, desc=particle) as bar:
        for lo in range(0, showers, chunk):
            part = run_engine(particle, energies[lo : lo + chunk], geo, rng, config=config)
            writer.append(part)
            bar.update(len(part))
    elapsed = time.perf_counter() - start
    click.echo(
        f"{writer.path}: {showers} {particle} showers, {energies.min():.4g}-{energies.max():.4g} "
        f"GeV ({spectrum}), geometry {geo.name} ({geo.n_voxels} cells, {geo.layout} layout); "
        f"{1000 * elapsed / showers:.2f} ms/shower"
    )


COMMANDS = {"calo": [simulate]}
