"""TrackML per-event CSV files: read, write and iterate.

The TrackML Particle Tracking Challenge (Amrouche et al., arXiv:1904.06778; Kaggle 2018)
stores each event as up to four CSV files with a header row, named after the event id
written with nine digits:

- ``event000001000-hits.csv``: ``hit_id, x, y, z, volume_id, layer_id, module_id``;
  one row per measured space point, ``hit_id`` = 1..N in file order, global position
  ``x, y, z`` in mm.
- ``event000001000-cells.csv``: ``hit_id, ch0, ch1, value``; the sensor cells (pixel or
  strip channels ``ch0, ch1``) that make each hit, with their deposited charge ``value``.
- ``event000001000-particles.csv``: ``particle_id, vx, vy, vz, px, py, pz, q, nhits``;
  production vertex [mm], momentum [GeV], charge [e] and number of hits of each particle.
- ``event000001000-truth.csv``: ``hit_id, particle_id, tx, ty, tz, tpx, tpy, tpz,
  weight``; row i belongs to hit i: the particle that made it (0 = noise), the true
  crossing point [mm] and momentum [GeV] there, and the hit's scoring weight (the weights
  of an event sum to 1; see :mod:`heplab.reconstruction.tracking.score`).

Column dtypes follow the challenge files: positions, momenta, charges ``value`` and
weights float32; ``particle_id`` a 64-bit integer (int64 here: the challenge's ids are
below 2**63); ``hit_id`` int64; the other integer columns int32. Extra columns after the
standard ones (e.g. heplab's ``n_particles`` in truth: how many particles a merged pixel
cluster holds) are kept on read and written after the standard columns.

Files are read with :mod:`pyarrow.csv` (no per-row Python) and written with
``pyarrow.csv.write_csv`` through a temporary name + :func:`os.replace`. A writer writes
the hits file LAST, so an event whose hits file exists is complete (a resumable
producer can skip it). Gzipped files (``.csv.gz``) are read as well.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from heplab.errors import DataError

__all__ = [
    "CELL_COLUMNS",
    "HIT_COLUMNS",
    "PARTICLE_COLUMNS",
    "PARTS",
    "TRUTH_COLUMNS",
    "TrackMLEvent",
    "event_file",
    "event_ids",
    "iter_events",
    "read_event",
    "write_event",
]

HIT_COLUMNS: Final = ("hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id")
CELL_COLUMNS: Final = ("hit_id", "ch0", "ch1", "value")
PARTICLE_COLUMNS: Final = ("particle_id", "vx", "vy", "vz", "px", "py", "pz", "q", "nhits")
TRUTH_COLUMNS: Final = (
    "hit_id",
    "particle_id",
    "tx",
    "ty",
    "tz",
    "tpx",
    "tpy",
    "tpz",
    "weight",
)
#: The four per-event files, in the order a writer writes them (hits last).
PARTS: Final = ("hits", "truth", "particles", "cells")

_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "hits": HIT_COLUMNS,
    "cells": CELL_COLUMNS,
    "particles": PARTICLE_COLUMNS,
    "truth": TRUTH_COLUMNS,
}
_INT32: Final = frozenset({"volume_id", "layer_id", "module_id", "ch0", "ch1", "q", "nhits"})
_INT64: Final = frozenset({"hit_id", "particle_id"})
_EVENT_RE: Final = re.compile(r"^event(\d+)-hits\.csv(\.gz)?$")


def _dtype(column: str) -> np.dtype[Any]:
    if column in _INT64:
        return np.dtype(np.int64)
    if column in _INT32:
        return np.dtype(np.int32)
    return np.dtype(np.float32)


@dataclass
class TrackMLEvent:
    """One TrackML event: column dicts of flat numpy arrays (mm, GeV).

    ``hits`` always holds :data:`HIT_COLUMNS`; ``truth`` (row i <-> hits row i),
    ``particles`` and ``cells`` are None when absent.
    """

    event_id: int
    hits: dict[str, np.ndarray]
    truth: dict[str, np.ndarray] | None = None
    particles: dict[str, np.ndarray] | None = None
    cells: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        """Number of hits."""
        return len(self.hits["hit_id"])


def event_file(directory: str | os.PathLike[str], event_id: int, part: str) -> Path:
    """The path ``DIRECTORY/event%09d-PART.csv`` (``.csv.gz`` if only that exists)."""
    if part not in _COLUMNS:
        raise ValueError(f"unknown TrackML part {part!r}; expected one of {PARTS}")
    path = Path(directory) / f"event{int(event_id):09d}-{part}.csv"
    if not path.exists():
        gz = path.with_name(path.name + ".gz")
        if gz.exists():
            return gz
    return path


def event_ids(directory: str | os.PathLike[str]) -> list[int]:
    """Sorted event ids of the ``event%09d-hits.csv`` files in ``directory``.

    Raises
    ------
    DataError
        If ``directory`` is not a directory.
    """
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"{d}: not a directory of TrackML event files")
    ids = {int(m.group(1)) for p in d.iterdir() if (m := _EVENT_RE.match(p.name))}
    return sorted(ids)


def _read_table(path: Path, part: str) -> dict[str, np.ndarray]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    required = _COLUMNS[part]
    try:
        header = pacsv.open_csv(path).schema.names
    except Exception as exc:
        raise DataError(f"{path}: cannot read TrackML {part} CSV ({_one_line(exc)})") from exc
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path}: not a TrackML {part} file: missing column(s) {', '.join(missing)}"
        )
    types = {c: pa.from_numpy_dtype(_dtype(c)) for c in required}
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    except Exception as exc:
        raise DataError(f"{path}: cannot read TrackML {part} CSV ({_one_line(exc)})") from exc
    out: dict[str, np.ndarray] = {}
    for name in [*required, *(c for c in table.column_names if c not in required)]:
        column = table.column(name)
        if column.null_count:
            raise DataError(f"{path}: column {name} has {column.null_count} empty or NaN value(s)")
        values = column.to_numpy()
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            raise DataError(f"{path}: column {name} has {bad} NaN/inf value(s)")
        out[name] = np.ascontiguousarray(values)
    return out


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def read_event(
    directory: str | os.PathLike[str],
    event_id: int,
    parts: Sequence[str] = PARTS,
) -> TrackMLEvent:
    """Read one event's CSV files from ``directory``.

    Parameters
    ----------
    directory : path
        Folder with ``event%09d-{hits,cells,particles,truth}.csv``.
    event_id : int
        The event number.
    parts : sequence of str
        Which files to read besides ``hits`` (always read); a missing optional file gives
        None.

    Raises
    ------
    DataError
        Missing hits file, missing columns, empty cells or NaNs, hit ids not 1..N in order,
        or a truth file whose hit ids differ from the hits file (the message names the file).
    """
    unknown = [p for p in parts if p not in _COLUMNS]
    if unknown:
        raise ValueError(f"unknown TrackML part(s) {unknown}; expected some of {PARTS}")
    hits_path = event_file(directory, event_id, "hits")
    if not hits_path.is_file():
        raise DataError(f"{hits_path}: no such TrackML hits file")
    hits = _read_table(hits_path, "hits")
    n = len(hits["hit_id"])
    if not np.array_equal(hits["hit_id"], np.arange(1, n + 1)):
        raise DataError(f"{hits_path}: hit_id must run 1..{n} in file order")
    tables: dict[str, dict[str, np.ndarray] | None] = {}
    for part in ("truth", "particles", "cells"):
        path = event_file(directory, event_id, part)
        tables[part] = _read_table(path, part) if part in parts and path.is_file() else None
    truth = tables["truth"]
    if truth is not None:
        path = event_file(directory, event_id, "truth")
        if not np.array_equal(truth["hit_id"], hits["hit_id"]):
            order = np.argsort(truth["hit_id"], kind="stable")
            if not np.array_equal(truth["hit_id"][order], hits["hit_id"]):
                raise DataError(f"{path}: hit_id does not match the hits file one to one")
            truth = {k: v[order] for k, v in truth.items()}
    cells = tables["cells"]
    if cells is not None and len(cells["hit_id"]):
        lo, hi = int(cells["hit_id"].min()), int(cells["hit_id"].max())
        if lo < 1 or hi > n:
            path = event_file(directory, event_id, "cells")
            raise DataError(f"{path}: hit_id outside 1..{n}")
    return TrackMLEvent(int(event_id), hits, truth, tables["particles"], cells)


def _check_table(name: str, table: Mapping[str, np.ndarray], required: Sequence[str]) -> int:
    missing = [c for c in required if c not in table]
    if missing:
        raise ValueError(f"TrackML {name} table lacks column(s) {', '.join(missing)}")
    lengths = {len(np.asarray(v)) for v in table.values()}
    if len(lengths) > 1:
        raise ValueError(f"TrackML {name} table has columns of different lengths {lengths}")
    return lengths.pop() if lengths else 0


def _write_table(path: Path, table: Mapping[str, np.ndarray], required: Sequence[str]) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [*required, *(c for c in table if c not in required)]
    arrays = []
    for name in names:
        values = np.asarray(table[name])
        if name in required:
            values = values.astype(_dtype(name), copy=False)
        arrays.append(pa.array(values))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pacsv.write_csv(
            pa.table(arrays, names=names),
            tmp,
            write_options=pacsv.WriteOptions(quoting_style="none", quoting_header="none"),
        )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_event(directory: str | os.PathLike[str], event: TrackMLEvent) -> None:
    """Write ``event`` as ``DIRECTORY/event%09d-{cells,particles,truth,hits}.csv``.

    Each file is written under a temporary name and renamed; the hits file comes last,
    so its presence marks a complete event. Existing files of the event are replaced;
    parts that are None are not written (and a stale file of that part is removed).

    Raises
    ------
    ValueError
        If a table lacks a standard column or its columns differ in length, or if the
        truth table does not have one row per hit.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    n = _check_table("hits", event.hits, HIT_COLUMNS)
    tables = {"truth": event.truth, "particles": event.particles, "cells": event.cells}
    for part, table in tables.items():
        if table is not None:
            rows = _check_table(part, table, _COLUMNS[part])
            if part == "truth" and rows != n:
                raise ValueError(f"TrackML truth has {rows} rows for {n} hits")
    stem = f"event{int(event.event_id):09d}"
    hits_path = d / f"{stem}-hits.csv"
    hits_path.unlink(missing_ok=True)  # the event is incomplete until its hits file is back
    for part in ("cells", "particles", "truth"):
        table = tables[part]
        path = d / f"{stem}-{part}.csv"
        if table is None:
            path.unlink(missing_ok=True)
        else:
            _write_table(path, table, _COLUMNS[part])
    _write_table(hits_path, event.hits, HIT_COLUMNS)


def iter_events(
    directory: str | os.PathLike[str], parts: Sequence[str] = PARTS
) -> Iterator[TrackMLEvent]:
    """Read the events of ``directory`` one by one, in event-id order."""
    for event_id in event_ids(directory):
        yield read_event(directory, event_id, parts)
