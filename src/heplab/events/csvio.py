"""CSV tables (TrackML hits, cells, truth, particles, ...) read with :mod:`pyarrow.csv`.

TrackML's per-event files (``event000001000-hits.csv`` with ``hit_id, x, y, z,
volume_id, layer_id, module_id``; ``-truth.csv`` with ``hit_id, particle_id, tx, ty, tz,
tpx, tpy, tpz, weight``; positions in mm, momenta in GeV) read as one flat record per row.
Gzipped CSV (``.csv.gz``) is read directly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak

from heplab.events._util import data_error, existing_path

__all__ = ["csv_schema", "read_csv"]

log = logging.getLogger(__name__)


def _convert_options(columns: Sequence[str] | None, column_types: Mapping[str, str] | None) -> Any:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {name: pa.from_numpy_dtype(np.dtype(t)) for name, t in (column_types or {}).items()}
    return pacsv.ConvertOptions(
        include_columns=list(columns) if columns is not None else None, column_types=types
    )


def read_csv(
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    *,
    column_types: Mapping[str, str] | None = None,
) -> ak.Array:
    """Read a CSV file (header line, comma-separated) into an array of flat records.

    Parameters
    ----------
    path : path
        ``.csv`` or ``.csv.gz`` file.
    columns : list of str, optional
        Columns to read; all if None.
    column_types : mapping, optional
        numpy dtype names for some columns (e.g. ``{"x": "float32"}``); the others are
        inferred (int64, float64, bool, string).

    Returns
    -------
    ak.Array
        One record per row. Columns without empty cells are plain (not option) types.

    Raises
    ------
    DataError
        If the file is missing, malformed (ragged rows), or lacks a requested column.
    """
    import pyarrow.csv as pacsv

    p = existing_path(path)
    if p.is_dir():
        raise data_error(p, "is a directory, not a CSV file")
    try:
        table = pacsv.read_csv(p, convert_options=_convert_options(columns, column_types))
    except Exception as exc:
        raise data_error(p, "cannot read CSV file", exc) from exc
    if table.num_columns == 0:
        raise data_error(p, "CSV file has no columns")
    out = {}
    for name in table.column_names:
        column = table.column(name)
        values = ak.from_arrow(column)
        if column.null_count == 0:
            values = ak.drop_none(values)
        out[name] = values
    log.debug("%s: %d rows, %d columns", p, table.num_rows, table.num_columns)
    return ak.zip(out, depth_limit=1)


def csv_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Rows and inferred column types of a CSV file, read in a streaming pass."""
    import pyarrow.csv as pacsv

    p = existing_path(path)
    try:
        reader = pacsv.open_csv(p)
        schema = reader.schema
        rows = sum(batch.num_rows for batch in reader)
    except Exception as exc:
        raise data_error(p, "cannot read CSV file", exc) from exc
    return {
        "rows": int(rows),
        "columns": {field.name: str(field.type) for field in schema},
    }
