"""Chunked, resumable work on Dask: the engine under event production and jet clustering.

A *run* is ``n_chunks`` independent tasks, each writing one file of a run directory (see
:mod:`heplab.events.manifest`). The tasks run on a ``dask.distributed`` cluster: a local
one (``workers`` processes, one thread each, since Pythia and FastJet hold the GIL) by
default, or any existing scheduler by address (a ``dask-jobqueue`` SLURM or HTCondor
cluster included). A task that dies with its worker is resubmitted by Dask (``retries``).

Re-running the same configuration into the same directory skips the finished chunks; a
different configuration is refused unless ``force`` is given, which removes the old run's
files (only heplab's own: the manifest and ``chunk-*.parquet``) first.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from heplab import __version__
from heplab.errors import ConfigError, HeplabError, OutputExistsError
from heplab.events.manifest import (
    MANIFEST_NAME,
    ChunkRecord,
    Manifest,
    read_manifest,
    write_manifest,
)

__all__ = ["local_cluster", "prepare_run_dir", "run_chunks"]

log = logging.getLogger(__name__)


def _config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


def _remove_temporaries(directory: Path) -> None:
    """Delete the half-written files a killed run leaves (chunk and manifest temporaries of
    the atomic writers: ``.chunk-NNNNNN.parquet.*.tmp.parquet``, ``.manifest.json.*.tmp``);
    the run's own writers are not running while its directory is being prepared."""
    for pattern in (".chunk-*.tmp*", f".{MANIFEST_NAME}.*.tmp"):
        for path in directory.glob(pattern):
            path.unlink(missing_ok=True)


def _remove_run_files(directory: Path) -> None:
    for path in directory.glob("chunk-*.parquet"):
        path.unlink()
    for path in directory.glob(".pileup-mpi-*.dat"):
        path.unlink()
    _remove_temporaries(directory)
    (directory / MANIFEST_NAME).unlink(missing_ok=True)


def prepare_run_dir(
    out_dir: str | os.PathLike[str],
    kind: str,
    config: Mapping[str, Any],
    n_chunks: int,
    *,
    force: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> Manifest:
    """Create or reopen the run directory ``out_dir`` for ``config``.

    Returns the manifest with the chunks already finished (empty for a new run). Raises
    :class:`OutputExistsError` if ``out_dir`` holds a different run (and ``force`` is not
    set) or files that are not a heplab run.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a directory")
    config = dict(config)
    if (out / MANIFEST_NAME).is_file():
        old = read_manifest(out)
        same = old.kind == kind and old.config == config and old.n_chunks == n_chunks
        if same:
            _remove_temporaries(out)
            # keep only chunks whose file is really there
            old.chunks = {i: c for i, c in old.chunks.items() if (out / c.file).is_file()}
            if extra:
                old.extra.update(extra)
            return old
        if not force:
            diff = ", ".join(_config_diff(old.config, config)) or "kind/chunking"
            raise OutputExistsError(
                f"{out} holds a {old.kind} run with a different configuration (differs in: "
                f"{diff}); choose another --out, or pass --force to delete that run's files"
            )
        log.warning("--force: removing the previous run in %s", out)
        _remove_run_files(out)
    elif out.is_dir() and any(out.iterdir()):
        raise OutputExistsError(
            f"{out} is not empty and is not a heplab run directory; choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(
        kind=kind,
        config=config,
        n_chunks=n_chunks,
        heplab_version=__version__,
        extra=dict(extra or {}),
    )
    write_manifest(out, manifest)
    return manifest


def _quiet_distributed() -> None:
    """Keep Dask's own INFO chatter (nannies starting and closing) out of the user's
    terminal: its loggers report warnings and errors only."""
    import distributed  # noqa: F401  (its import sets the levels we adjust)

    level = max(logging.WARNING, logging.getLogger().getEffectiveLevel())
    logging.getLogger("distributed").setLevel(level)


def _new_local_cluster(workers: int) -> Any:
    from dask.distributed import LocalCluster

    _quiet_distributed()
    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
        # loopback only: nothing outside this machine can reach the workers
        host="127.0.0.1",
    )


@contextmanager
def local_cluster(workers: int, scheduler: str | None = None) -> Iterator[str | None]:
    """The scheduler address for several runs in a row: ``scheduler`` if given, else one
    local cluster of ``workers`` processes kept for all of them, else (``workers = 0``)
    ``None``, which runs the chunks in this process."""
    if scheduler or workers == 0:
        yield scheduler
        return
    with _new_local_cluster(workers) as cluster:
        yield str(cluster.scheduler_address)


def _client(workers: int, scheduler: str | None, stack: ExitStack) -> Any:
    from dask.distributed import Client

    _quiet_distributed()
    if scheduler:
        try:
            return stack.enter_context(Client(scheduler, timeout="30s"))
        except (OSError, TimeoutError) as exc:
            raise HeplabError(
                f"cannot connect to the Dask scheduler at {scheduler}: {exc}"
            ) from exc
    cluster = stack.enter_context(_new_local_cluster(workers))
    return stack.enter_context(Client(cluster))


def run_chunks(
    out_dir: str | os.PathLike[str],
    manifest: Manifest,
    task: Callable[..., ChunkRecord],
    task_args: Callable[[int], Sequence[Any]],
    *,
    units_per_chunk: Callable[[int], int],
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    description: str = "chunks",
    unit: str = "ev",
) -> Manifest:
    """Run ``task(*task_args(i))`` for every unfinished chunk ``i`` and record the results.

    ``task`` must be a module-level function (it is pickled to the workers) that writes
    its chunk file atomically and returns its :class:`ChunkRecord`. ``workers = 0`` runs
    the chunks one after the other in this process (for debugging and tests). The manifest
    is rewritten after every finished chunk, so an interrupted run loses only the chunks in
    flight.
    """
    from tqdm.auto import tqdm

    if workers < 0:
        raise ConfigError(f"--workers must be >= 0, not {workers}")
    pending = [i for i in range(manifest.n_chunks) if i not in manifest.chunks]
    total = sum(units_per_chunk(i) for i in range(manifest.n_chunks))
    done_units = sum(units_per_chunk(i) for i in manifest.chunks)
    if not pending:
        log.info("%s: all %d chunks already done", out_dir, manifest.n_chunks)
        return manifest
    if manifest.chunks:
        log.info(
            "%s: resuming, %d of %d chunks already done",
            out_dir,
            len(manifest.chunks),
            manifest.n_chunks,
        )
    bar = tqdm(
        total=total,
        initial=done_units,
        unit=unit,
        desc=description,
        disable=not progress,
        dynamic_ncols=True,
        smoothing=0.1,
    )

    def record(rec: ChunkRecord) -> None:
        manifest.chunks[rec.index] = rec
        write_manifest(out_dir, manifest)
        bar.update(units_per_chunk(rec.index))

    start = time.perf_counter()
    with ExitStack() as stack:
        stack.callback(bar.close)
        if workers == 0 and not scheduler:
            for i in pending:
                record(task(*task_args(i)))
        else:
            from dask.distributed import as_completed

            client = _client(workers, scheduler, stack)
            # default (unique) task keys: two runs of one configuration into different
            # directories on one scheduler must never share a result
            futures = [client.submit(task, *task_args(i), pure=False, retries=2) for i in pending]
            try:
                for fut in as_completed(futures):
                    record(fut.result())
            except BaseException:
                client.cancel(futures)
                raise
    log.info("%s: %d chunks in %.1f s", out_dir, len(pending), time.perf_counter() - start)
    return manifest
