"""Parquet, heplab's native on-disk format (one file per chunk of a run).

Files are written with :func:`awkward.to_parquet` (zstd compression) through a temporary
name and an atomic rename, and read back with :func:`awkward.from_parquet`; record names
(``Momentum4D``) and dtypes survive the round trip.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak

from heplab.errors import DataError
from heplab.events._util import atomic_output, data_error, existing_path
from heplab.events.model import with_vector

__all__ = [
    "PARQUET_SUFFIXES",
    "parquet_files",
    "parquet_metadata",
    "read_parquet",
    "write_parquet",
    "write_parquet_chunk",
]

log = logging.getLogger(__name__)

#: File-name suffixes taken as parquet when a directory is scanned.
PARQUET_SUFFIXES = (".parquet", ".pq")

_COMPRESSION = "zstd"


def _to_parquet(events: ak.Array, destination: Path) -> None:
    if not isinstance(events, ak.Array):
        events = ak.Array(events)
    ak.to_parquet(events, destination, compression=_COMPRESSION)


def write_parquet_chunk(events: ak.Array, path: str | os.PathLike[str]) -> None:
    """Write one chunk of a run atomically (zstd-compressed parquet).

    A chunk that already exists is replaced: production redoes a chunk only when its
    manifest entry is missing, and a chunk's content is fixed by its seed.

    Parameters
    ----------
    events : ak.Array
        The chunk's records (events or jets).
    path : path
        The final file name, e.g. ``run/chunk-000003.parquet``.
    """
    with atomic_output(path, overwrite=True) as tmp:
        _to_parquet(events, tmp)


def write_parquet(
    events: ak.Array, path: str | os.PathLike[str], *, overwrite: bool = False
) -> None:
    """Write ``events`` to one parquet file, atomically.

    Raises
    ------
    heplab.errors.OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    with atomic_output(path, overwrite=overwrite) as tmp:
        _to_parquet(events, tmp)


def parquet_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The parquet files directly inside ``directory``, sorted by name (hidden ones skipped)."""
    return sorted(
        p
        for p in Path(directory).iterdir()
        if p.is_file() and p.suffix in PARQUET_SUFFIXES and not p.name.startswith(".")
    )


def parquet_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Rows, row groups and awkward form of one parquet file (footer only, no data read).

    Raises
    ------
    DataError
        If the file is missing, truncated or not parquet.
    """
    p = existing_path(path)
    try:
        meta = ak.metadata_from_parquet(p)
    except Exception as exc:
        raise data_error(p, "corrupt or truncated parquet file", exc) from exc
    return {
        "num_rows": int(meta["num_rows"]),
        "num_row_groups": int(meta["num_row_groups"]),
        "form": meta["form"],
    }


def _check_columns(path: Path, form: Any, columns: Sequence[str]) -> None:
    fields = list(form.fields) if hasattr(form, "fields") else []
    missing = [c for c in columns if c.split(".", 1)[0] not in fields]
    if missing:
        raise data_error(path, f"no column(s) {', '.join(missing)} (present: {', '.join(fields)})")


def _read_one(path: Path, columns: Sequence[str] | None) -> ak.Array:
    if columns is not None:
        _check_columns(path, parquet_metadata(path)["form"], columns)
    try:
        return ak.from_parquet(path, columns=list(columns) if columns is not None else None)
    except DataError:
        raise
    except Exception as exc:
        raise data_error(path, "corrupt or truncated parquet file", exc) from exc


def read_parquet(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    columns: Sequence[str] | None = None,
) -> ak.Array:
    """Read a parquet file, a directory of parquet files, or a list of files, in order.

    Parameters
    ----------
    path : path or list of paths
        A ``.parquet`` file, a directory (its ``*.parquet`` files in name order), or
        files to concatenate in the order given.
    columns : list of str, optional
        Top-level fields to read (``"particles.px"`` reads one sub-field); all if None.

    Returns
    -------
    ak.Array
        The records of all files, concatenated (4-momenta as ``vector`` Momentum4D).

    Raises
    ------
    DataError
        If a path is missing, a directory holds no parquet file, a file is corrupt or
        truncated, or a requested column is absent.
    """
    if isinstance(path, (str, os.PathLike)):
        p = existing_path(path)
        if p.is_dir():
            files = parquet_files(p)
            if not files:
                raise data_error(p, "directory holds no parquet files")
        else:
            files = [p]
    else:
        files = [existing_path(f) for f in path]
        if not files:
            raise DataError("read_parquet: no files given")
    arrays = [_read_one(f, columns) for f in files]
    if len(arrays) > 1:
        log.debug("concatenating %d parquet files", len(arrays))
    return with_vector(arrays[0] if len(arrays) == 1 else ak.concatenate(arrays))
