"""``heplab jets cluster``: cluster every chunk of an events run into a jets run.

The jets run directory mirrors the events run: one parquet file of jets per events chunk
(a single parquet dataset, one row per jet) and a manifest whose configuration names the
events run (its directory and configuration hash) and the clustering settings. It is
resumable and refuses to mix runs exactly like event production (:mod:`heplab.parallel`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from heplab.errors import ConfigError, DataError
from heplab.events.manifest import ChunkRecord, Manifest, chunk_filename, read_manifest
from heplab.parallel import prepare_run_dir, run_chunks

__all__ = ["cluster_run"]


def _cluster_chunk(
    events_file: str, settings: Mapping[str, Any], index: int, out_dir: str
) -> ChunkRecord:
    """Dask task: cluster one events chunk and write its jets atomically."""
    from heplab.events.parquet import read_parquet, write_parquet_chunk
    from heplab.reconstruction.jets.cluster import cluster_events

    t_start = time.perf_counter()
    events = read_parquet(events_file)
    t_read = time.perf_counter() - t_start
    t0 = time.perf_counter()
    jets = cluster_events(events, **settings)
    t_cluster = time.perf_counter() - t0
    t0 = time.perf_counter()
    name = chunk_filename(index)
    write_parquet_chunk(jets, Path(out_dir) / name)
    return ChunkRecord(
        index=index,
        file=name,
        events=len(events),
        rows=len(jets),
        seconds=time.perf_counter() - t_start,
        timing={"read": t_read, "cluster": t_cluster, "io": time.perf_counter() - t0},
    )


def cluster_run(
    events_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    algorithm: str = "antikt",
    R: float = 0.8,
    ptmin: float = 20.0,
    max_constituents: int = 128,
    eta_max: float | None = None,
    inputs: str = "auto",
    chs: bool = True,
    workers: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Manifest:
    """Cluster the events run in ``events_dir`` into the jets run ``out_dir``."""
    if not R > 0:
        raise ConfigError(f"--R must be positive, not {R}")
    if max_constituents < 1:
        raise ConfigError(f"--max-constituents must be >= 1, not {max_constituents}")
    if not ptmin >= 0:
        raise ConfigError(f"--ptmin must be >= 0, not {ptmin}")
    src = Path(events_dir)
    if not src.exists():
        raise DataError(f"{src} does not exist")
    events_manifest = read_manifest(src)
    if events_manifest.kind != "events":
        raise DataError(f"{src} is a {events_manifest.kind} run, not an events run")
    if not events_manifest.chunks:
        raise DataError(f"{src}: the events run has no finished chunks yet")
    if not events_manifest.complete:
        raise DataError(
            f"{src}: the events run is unfinished ({len(events_manifest.chunks)} of "
            f"{events_manifest.n_chunks} chunks); re-run its `heplab generate` command first"
        )
    if Path(out_dir).resolve() == src.resolve():
        raise ConfigError("--out must differ from the events directory")
    settings = {
        "algorithm": algorithm,
        "R": float(R),
        "ptmin": float(ptmin),
        "max_constituents": int(max_constituents),
        "eta_max": eta_max,
        "inputs": inputs,
        "chs": bool(chs),
    }
    config = {
        "events_dir": str(src.resolve()),
        "events_config_hash": events_manifest.config_hash,
        "events_process": events_manifest.config.get("process"),
        "jets": settings,
    }
    indices = sorted(events_manifest.chunks)
    manifest = prepare_run_dir(out_dir, "jets", config, len(indices), force=force)
    files = {k: str(src / events_manifest.chunks[i].file) for k, i in enumerate(indices)}
    return run_chunks(
        out_dir,
        manifest,
        _cluster_chunk,
        lambda k: (files[k], settings, k, str(out_dir)),
        units_per_chunk=lambda k: events_manifest.chunks[indices[k]].events,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        description="cluster jets",
    )
