"""Event production: catalogue process or LHE file -> Pythia 8 -> pile-up -> detector -> parquet.

:func:`build_config` turns the user's choices into a complete, JSON-serialisable run
configuration (the Pythia settings in full, the detector card in full), so that a run
directory says exactly what produced it and a re-run can tell whether it is the same run.
:func:`produce` runs the chunks on Dask (:mod:`heplab.parallel`); :func:`generate_chunk`
makes one chunk and is a pure function of (configuration, chunk index): every chunk has its
own seeds derived from (run seed, chunk index), so a killed and resumed run ends with
exactly the events of an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from heplab.errors import ConfigError, DataError
from heplab.events.manifest import ChunkRecord, Manifest, chunk_filename
from heplab.generation.catalogue import get_process
from heplab.generation.pythia import generate_gun, generate_pythia, make_pythia
from heplab.parallel import prepare_run_dir, run_chunks

__all__ = [
    "DEFAULT_BEAMSPOT_MM",
    "build_config",
    "chunk_events",
    "chunk_seeds",
    "generate_chunk",
    "pileup_init_file",
    "produce",
]

log = logging.getLogger(__name__)

#: Gaussian beam-spot length sigma_z [mm] by beam type (LHC ~ 45-50 mm; FCC-ee ~ 0.3 mm).
DEFAULT_BEAMSPOT_MM = {"pp": 50.0, "ee": 0.3, "gun": 0.0}
_PILEUP_SETTINGS = ["SoftQCD:inelastic = on"]


def chunk_seeds(run_seed: int, index: int) -> dict[str, int]:
    """The seeds of chunk ``index`` of a run with seed ``run_seed``.

    Pythia seeds are ``1 + (offset + index) mod 9e8`` with an offset hashed from the run
    seed, so no two chunks of a run share a seed; the numpy seed (detector smearing, beam
    spot, pile-up sampling) is drawn from ``SeedSequence([run_seed, index])``.
    """
    base = np.random.SeedSequence(run_seed).generate_state(2, dtype=np.uint32)
    return {
        "pythia": int((int(base[0]) + index) % 900_000_000),
        "pileup": int((int(base[1]) + index) % 900_000_000),
        "numpy": int(np.random.SeedSequence([run_seed, index]).generate_state(1)[0]),
    }


def _lhe_info(path: Path) -> dict[str, Any]:
    from heplab.events.lhe import count_lhe_events, read_lhe_init

    if not path.is_file():
        raise DataError(f"LHE file {path} does not exist")
    n = count_lhe_events(path)
    if n == 0:
        raise DataError(f"{path}: no <event> blocks (empty or not a Les Houches file)")
    init = read_lhe_init(path)
    return {
        "path": str(path.resolve()),
        "size": path.stat().st_size,
        "events": n,
        "beams": init["beams"],
        "sqrt_s": init["sqrt_s"],
    }


def build_config(
    process: str | None,
    *,
    events: int | None,
    seed: int = 1,
    chunk_size: int = 1000,
    detector: str = "auto",
    pileup: float = 0.0,
    sqrts: float | None = None,
    params: Mapping[str, Any] | None = None,
    lhe: str | os.PathLike[str] | None = None,
    pythia: Sequence[str] = (),
    pileup_pool: int = 500,
    beamspot_sigma_z: float | None = None,
) -> dict[str, Any]:
    """The complete configuration of a production run (see the module docstring)."""
    if events is not None and events <= 0:
        raise ConfigError(f"--events must be a positive number, not {events}")
    if chunk_size < 1:
        raise ConfigError(f"--chunk-size must be >= 1, not {chunk_size}")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, not {seed}")
    if not pileup >= 0 or not math.isfinite(pileup):
        raise ConfigError(f"--pileup must be a number >= 0, not {pileup}")
    if sqrts is not None and not sqrts > 0:
        raise ConfigError(f"--sqrts must be positive, not {sqrts}")
    if pileup_pool < 1:
        raise ConfigError("the pile-up pool needs at least one event")
    if process is None and lhe is None:
        raise ConfigError("give a PROCESS (see `heplab generate --list`) or --lhe FILE")

    entry = get_process(process) if process else None
    lhe_info = _lhe_info(Path(lhe)) if lhe is not None else None
    if entry is not None and entry.requires_lhe and lhe_info is None:
        raise ConfigError(
            f"process {entry.name!r} has no internal Pythia 8 matrix element: "
            f"give its events as a Les Houches file with --lhe FILE ({entry.description})"
        )
    if entry is not None and entry.generator == "gun" and lhe_info is not None:
        raise ConfigError("the particle gun cannot shower an LHE file")

    values = entry.resolve_params(params) if entry is not None else {}
    if entry is None and params:
        raise ConfigError("--param needs a catalogue PROCESS")
    if lhe_info is not None:
        beams = "ee" if {abs(b) for b in lhe_info["beams"]} == {11} else "pp"
        if entry is not None and entry.beams != beams:
            raise ConfigError(
                f"the LHE file has {beams} beams but {entry.name!r} is a {entry.beams} process"
            )
        n_events = lhe_info["events"] if events is None else min(events, lhe_info["events"])
    else:
        assert entry is not None
        beams = entry.beams
        if events is None:
            raise ConfigError("--events is required")
        n_events = events

    settings: list[str] = []
    energy = None
    if beams != "gun":
        if lhe_info is not None:
            if sqrts is not None:
                raise ConfigError("--sqrts does not apply to LHE input (the file sets the beams)")
            energy = float(lhe_info["sqrt_s"])
            settings += ["Beams:frameType = 4", f"Beams:LHEF = {lhe_info['path']}"]
            if entry is not None:
                # the entry's decay and shower settings, not its hard process
                settings += [s for s in entry.pythia_settings(values) if not _is_process_switch(s)]
        else:
            assert entry is not None
            energy = float(sqrts if sqrts is not None else entry.sqrts)  # type: ignore[arg-type]
            if beams == "ee":
                settings += ["Beams:idA = 11", "Beams:idB = -11"]
            settings += [f"Beams:eCM = {energy:g}", *entry.pythia_settings(values)]
    elif sqrts is not None:
        raise ConfigError("--sqrts does not apply to the particle gun")
    settings += list(pythia)

    if pileup > 0 and beams != "pp":
        raise ConfigError("--pileup overlays pp minimum-bias events; it needs a pp process")
    card_dict = None
    card_name = detector
    if detector == "auto":
        card_name = "ee" if beams == "ee" else "atlas"
    if card_name != "none":
        from heplab.detector import load_card

        card_dict = load_card(card_name).to_dict()
    if pileup > 0 and card_dict is None:
        log.warning("pile-up without a detector: only the truth particles get the overlay")

    return {
        "process": entry.name if entry is not None else "lhe",
        "generator": entry.generator if entry is not None else "pythia",
        "beams": beams,
        "sqrts": energy,
        "params": values,
        "lhe": lhe_info,
        "pythia_settings": settings,
        "events": int(n_events),
        "chunk_size": int(chunk_size),
        "seed": int(seed),
        "beamspot_sigma_z": float(
            DEFAULT_BEAMSPOT_MM[beams] if beamspot_sigma_z is None else beamspot_sigma_z
        ),
        "pileup": float(pileup),
        "pileup_pool": int(pileup_pool),
        "pileup_settings": [f"Beams:eCM = {energy or 14000:g}", *_PILEUP_SETTINGS]
        if pileup > 0
        else None,
        "detector": card_name,
        "detector_card": card_dict,
    }


def _is_process_switch(setting: str) -> bool:
    """Whether a Pythia setting switches on an internal hard process (not wanted with LHE)."""
    key = setting.split("=")[0].strip()
    group = key.split(":")[0]
    return group in {
        "HardQCD",
        "SoftQCD",
        "Top",
        "WeakSingleBoson",
        "WeakDoubleBoson",
        "WeakBosonAndParton",
        "HiggsSM",
        "HiggsBSM",
        "NewGaugeBoson",
        "PhaseSpace",
    }


def chunk_events(config: Mapping[str, Any], index: int) -> int:
    """Number of events in chunk ``index``."""
    size = int(config["chunk_size"])
    return max(0, min(size, int(config["events"]) - index * size))


def n_chunks(config: Mapping[str, Any]) -> int:
    """Number of chunks of a run."""
    return math.ceil(int(config["events"]) / int(config["chunk_size"]))


def pileup_init_file(config: Mapping[str, Any], directory: str | os.PathLike[str]) -> Path:
    """The minimum-bias MPI initialisation of a run's pile-up, made once and read by every chunk.

    Initialising Pythia's multi-parton interactions for inelastic (diffractive included)
    events takes about 8 s; Pythia can save those tables and read them back
    (``MultipartonInteractions:reuseInit``). The file is made from the run's settings and
    seed alone, written atomically, and every chunk reads it, so a chunk's events do not
    depend on which process made the file.
    """
    from heplab.events.manifest import atomic_write_bytes, config_hash

    settings = list(config["pileup_settings"])
    path = (
        Path(directory) / f".pileup-mpi-{config_hash({'s': settings, 'seed': config['seed']})}.dat"
    )
    if path.is_file():
        return path
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        make_pythia(
            [
                *settings,
                "MultipartonInteractions:reuseInit = 1",
                f"MultipartonInteractions:initFile = {tmp}",
            ],
            int(config["seed"]),
        )
        atomic_write_bytes(path, tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)
    return path


def generate_chunk(
    config: Mapping[str, Any], index: int, workdir: str | os.PathLike[str] | None = None
) -> tuple[ak.Array, dict[str, float]]:
    """Make chunk ``index`` of a run: events (schema of :mod:`heplab.events.schema`) and timings.

    ``workdir`` holds the run's shared pile-up initialisation (:func:`pileup_init_file`;
    default: a temporary folder, made anew, which costs its initialisation time).
    """
    n = chunk_events(config, index)
    seeds = chunk_seeds(int(config["seed"]), index)
    rng = np.random.default_rng(seeds["numpy"])
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    if config["generator"] == "gun":
        events = generate_gun(config["params"], n, seeds["pythia"])
    else:
        settings = list(config["pythia_settings"])
        if config["lhe"] is not None:
            settings.append(f"Beams:nSkipLHEFatInit = {index * int(config['chunk_size'])}")
        events = generate_pythia(
            settings, n, seeds["pythia"], beamspot_sigma_z=float(config["beamspot_sigma_z"])
        )
        if len(events) < n and config["lhe"] is None:
            raise DataError(f"chunk {index}: Pythia made {len(events)} of {n} events")
    timing["pythia"] = time.perf_counter() - t0
    first = index * int(config["chunk_size"])
    events = ak.with_field(
        events, np.arange(first, first + len(events), dtype=np.int64), "event_id"
    )

    mu = float(config["pileup"])
    if mu > 0:
        from heplab.detector import overlay_pileup

        t0 = time.perf_counter()
        # a pool of minimum-bias events per chunk, sampled with replacement (each draw gets
        # its own vertex and a random azimuthal rotation): the experiments' pile-up library
        pool_size = min(int(config["pileup_pool"]), max(1, math.ceil(mu * n)))
        with ExitStack() as stack:
            where = workdir or stack.enter_context(tempfile.TemporaryDirectory())
            init = pileup_init_file(config, where)
            pool = generate_pythia(
                [
                    *config["pileup_settings"],
                    "MultipartonInteractions:reuseInit = 2",
                    f"MultipartonInteractions:initFile = {init}",
                ],
                pool_size,
                seeds["pileup"],
            )
        timing["pileup_generation"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        merged = overlay_pileup(
            events.particles, pool.particles, mu, rng, float(config["beamspot_sigma_z"])
        )
        events = ak.with_field(events, merged, "particles")
        timing["pileup_overlay"] = time.perf_counter() - t0

    if config["detector_card"] is not None:
        from heplab.detector import card_from_dict, simulate

        t0 = time.perf_counter()
        # the card as recorded in the configuration (a user's YAML file may change later)
        card = card_from_dict(config["detector_card"])
        reco = simulate(events.particles, card, rng, pv_z=ak.to_numpy(events.pv_z))
        for name in reco.fields:
            events = ak.with_field(events, reco[name], name)
        timing["detector"] = time.perf_counter() - t0
    order = ["event_id", *[f for f in events.fields if f != "event_id"]]
    return events[order], timing


def _produce_chunk(config: Mapping[str, Any], index: int, out_dir: str) -> ChunkRecord:
    """Dask task: make chunk ``index`` and write it atomically."""
    from heplab.events.parquet import write_parquet_chunk

    t_start = time.perf_counter()
    events, timing = generate_chunk(config, index, out_dir)
    t0 = time.perf_counter()
    name = chunk_filename(index)
    write_parquet_chunk(events, Path(out_dir) / name)
    timing["io"] = time.perf_counter() - t0
    return ChunkRecord(
        index=index,
        file=name,
        events=len(events),
        rows=len(events),
        seed=chunk_seeds(int(config["seed"]), index)["pythia"],
        seconds=time.perf_counter() - t_start,
        timing=timing,
    )


def produce(
    config: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Manifest:
    """Produce (or finish) the run ``config`` in ``out_dir``; returns its manifest."""
    manifest = prepare_run_dir(out_dir, "events", config, n_chunks(config), force=force)
    if float(config["pileup"]) > 0 and not manifest.complete:
        # made here, once, before the chunks run in parallel and read it
        pileup_init_file(config, out_dir)
    return run_chunks(
        out_dir,
        manifest,
        _produce_chunk,
        lambda i: (dict(config), i, str(out_dir)),
        units_per_chunk=lambda i: chunk_events(config, i),
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        description=f"generate {config['process']}",
    )
