"""One entry point to read and write events, whatever the format.

:func:`read_events` looks at what a path is (a heplab run directory, a parquet file or
directory, a ROOT, HDF5, LHE or CSV file; by content first, by suffix second) and returns
awkward records in the data model of :mod:`heplab.events.schema`, 4-momenta with the
``vector`` Momentum4D behaviour. :func:`write_events` writes parquet, ROOT or HDF5
atomically.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal

import awkward as ak

from heplab.errors import ConfigError, DataError
from heplab.events._util import data_error, existing_path
from heplab.events.csvio import read_csv
from heplab.events.hdf5 import read_hdf5, write_hdf5
from heplab.events.lhe import lhe_to_events, read_lhe
from heplab.events.manifest import is_run_dir, read_manifest
from heplab.events.model import with_vector
from heplab.events.parquet import parquet_files, read_parquet, write_parquet
from heplab.events.root import RootStyle, read_root, write_root

__all__ = [
    "FORMAT_NAMES",
    "FileKind",
    "OutputFormat",
    "detect_format",
    "read_events",
    "read_run",
    "write_events",
]

log = logging.getLogger(__name__)

FileKind = Literal["run", "parquet", "parquet_dir", "root", "hdf5", "lhe", "csv"]
OutputFormat = Literal["parquet", "root", "hdf5"]

#: What each kind of input is called in messages.
FORMAT_NAMES: Final[dict[str, str]] = {
    "run": "heplab run directory",
    "parquet": "parquet",
    "parquet_dir": "directory of parquet files",
    "root": "ROOT",
    "hdf5": "HDF5",
    "lhe": "LHE",
    "csv": "CSV",
}

_SUFFIXES: Final = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".root": "root",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".he5": "hdf5",
    ".lhe": "lhe",
    ".lhef": "lhe",
    ".csv": "csv",
}
_MAGIC: Final = ((b"PAR1", "parquet"), (b"root", "root"), (b"\x89HDF\r\n\x1a\n", "hdf5"))
_GZIP_MAGIC: Final = b"\x1f\x8b"


def _suffix_kind(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return _SUFFIXES.get(suffixes[-1]) if suffixes else None


def detect_format(path: str | os.PathLike[str]) -> str:
    """What ``path`` holds: one of ``run``, ``parquet``, ``parquet_dir``, ``root``,
    ``hdf5``, ``lhe``, ``csv``.

    Files are recognised by their leading bytes (parquet ``PAR1``, ROOT ``root``, HDF5's
    signature, LHE's ``<LesHouchesEvents``, also inside gzip); CSV by its suffix
    (``.csv``, ``.csv.gz``).

    Raises
    ------
    DataError
        If nothing is at ``path``, the file is empty, its content does not match its
        suffix (say random bytes named ``.root``), or the type is unknown.
    """
    p = existing_path(path)
    if p.is_dir():
        if is_run_dir(p):
            return "run"
        if parquet_files(p):
            return "parquet_dir"
        raise data_error(p, "directory holds neither a heplab manifest.json nor parquet files")
    expected = _suffix_kind(p)
    try:
        with p.open("rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise data_error(p, "cannot read file", exc) from exc
    if not head:
        raise data_error(p, "empty file")
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    text = head
    if head.startswith(_GZIP_MAGIC):
        try:
            with gzip.open(p, "rb") as f:
                text = f.read(4096)
        except Exception as exc:
            raise data_error(p, "corrupt gzip file", exc) from exc
    stripped = text.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<LesHouchesEvents") or (
        stripped.startswith(b"<?xml") and b"<LesHouchesEvents" in stripped
    ):
        return "lhe"
    if expected == "csv":
        return "csv"
    if expected == "hdf5":
        import h5py

        if h5py.is_hdf5(p):  # an HDF5 file with a user block
            return "hdf5"
    if expected is not None:
        raise data_error(
            p,
            f"not a valid {FORMAT_NAMES[expected]} file (it starts with {head[:8]!r})",
        )
    raise data_error(
        p,
        "unknown file type (expected a heplab run directory, parquet, ROOT, HDF5, LHE or CSV)",
    )


def read_run(directory: str | os.PathLike[str], columns: Sequence[str] | None = None) -> ak.Array:
    """Read the finished chunks of a heplab run directory, in chunk order.

    A run whose manifest lists fewer finished chunks than it has in all is read as far as
    it goes, with a logged warning.

    Raises
    ------
    DataError
        If the manifest is missing or corrupt, no chunk is finished, a chunk file listed
        in the manifest is absent, or a chunk file is corrupt.
    """
    d = existing_path(directory)
    manifest = read_manifest(d)
    files = manifest.files(d)
    absent = [f.name for f in files if not f.is_file()]
    if absent:
        raise data_error(
            d,
            f"manifest lists chunk file(s) that are not on disk: {', '.join(absent[:5])}"
            + (" ..." if len(absent) > 5 else ""),
        )
    if not files:
        raise data_error(d, f"run has no finished chunk yet (0 of {manifest.n_chunks})")
    if not manifest.complete:
        log.warning(
            "%s: run is incomplete: %d of %d chunks finished; reading the finished ones "
            "(%d events)",
            d,
            len(files),
            manifest.n_chunks,
            manifest.total_events,
        )
    return read_parquet(files, columns)


def read_events(path: str | os.PathLike[str], columns: Sequence[str] | None = None) -> ak.Array:
    """Read events (or any heplab table) from whatever ``path`` is.

    Parameters
    ----------
    path : path
        A heplab run directory (``manifest.json`` + chunk files), a parquet file, a
        directory of parquet files, a ROOT file (NanoAOD-style ``Events`` or Delphes
        tree), an HDF5 file written by :func:`write_events`, an LHE file (hard-process
        ``partons`` only) or a CSV file (flat records).
    columns : list of str, optional
        Top-level fields to read (``"particles.px"`` reads one sub-field); all if None.

    Returns
    -------
    ak.Array
        Records in the data model (GeV, mm, ns); every record with ``px, py, pz,
        energy`` carries the ``vector`` Momentum4D behaviour.

    Raises
    ------
    DataError
        With a one-line message naming the path and the problem: missing path, unknown
        file type, corrupt or truncated file, missing column.
    """
    kind = detect_format(path)
    p = Path(path)
    log.debug("reading %s as %s", p, FORMAT_NAMES[kind])
    if kind == "run":
        events = read_run(p, columns)
    elif kind in ("parquet", "parquet_dir"):
        events = read_parquet(p, columns)
    elif kind == "root":
        events = read_root(p, columns)
    elif kind == "hdf5":
        events = read_hdf5(p, columns)
    elif kind == "lhe":
        events = lhe_to_events(read_lhe(p))
        if columns is not None:
            missing = [c for c in columns if c.split(".", 1)[0] not in events.fields]
            if missing:
                raise data_error(p, f"no column(s) {', '.join(missing)} in LHE events")
            events = events[list(dict.fromkeys(c.split(".", 1)[0] for c in columns))]
    elif kind == "csv":
        events = read_csv(p, columns)
    else:  # pragma: no cover - detect_format returns only the kinds above
        raise DataError(f"{p}: cannot read {kind}")
    return with_vector(events)


def write_events(
    events: ak.Array,
    path: str | os.PathLike[str],
    format: OutputFormat | None = None,
    *,
    root_style: RootStyle = "nanoaod",
    overwrite: bool = False,
) -> Path:
    """Write events to parquet, ROOT or HDF5, atomically (temporary name + rename).

    Parameters
    ----------
    events : ak.Array
        Events (or any heplab table).
    path : path
        Output file.
    format : {"parquet", "root", "hdf5"}, optional
        Output format; by default taken from the suffix of ``path`` (``.parquet``,
        ``.root``, ``.h5``/``.hdf5``).
    root_style : {"nanoaod", "delphes"}
        Branch naming of a ROOT file (see :mod:`heplab.events.root`).
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    heplab.errors.OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    ConfigError
        For an unknown format (or none given and none implied by the suffix).
    DataError
        If the events cannot be stored in the format (e.g. strings in a ROOT tree).
    """
    p = Path(path)
    fmt: str | None = format
    if fmt is None:
        fmt = _suffix_kind(p)
        if fmt not in ("parquet", "root", "hdf5"):
            raise ConfigError(
                f"{p}: cannot tell the output format from the suffix; "
                "give format='parquet', 'root' or 'hdf5'"
            )
    if fmt == "parquet":
        write_parquet(events, p, overwrite=overwrite)
    elif fmt == "root":
        write_root(events, p, style=root_style, overwrite=overwrite)
    elif fmt == "hdf5":
        write_hdf5(events, p, overwrite=overwrite)
    else:
        raise ConfigError(f"unknown output format {fmt!r} (choose 'parquet', 'root' or 'hdf5')")
    return p
