"""The heplab data model and all its I/O.

Events are awkward arrays of records (see :mod:`heplab.events.schema`) whose 4-momenta
carry the ``vector`` Momentum4D behaviour (:func:`with_vector`). On disk they live in
heplab run directories (chunked parquet + ``manifest.json``, :mod:`.manifest`), and are
read from or written to parquet, ROOT (NanoAOD- or Delphes-style), HDF5, LHE and CSV:

>>> events = read_events("runs/ttbar")                     # doctest: +SKIP
>>> write_events(events, "ttbar.root", "root", root_style="delphes")  # doctest: +SKIP

``heplab info PATH`` prints :func:`heplab.events.info.format_description` of
:func:`heplab.events.info.describe`.
"""

from __future__ import annotations

from heplab.events.calo import (
    ShowerSet,
    ShowerWriter,
    concatenate_showers,
    read_showers,
    write_showers,
)
from heplab.events.csvio import read_csv
from heplab.events.hdf5 import read_hdf5, write_hdf5
from heplab.events.info import describe, format_description
from heplab.events.io import detect_format, read_events, read_run, write_events
from heplab.events.lhe import count_lhe_events, lhe_to_events, read_lhe, read_lhe_init
from heplab.events.model import validate_events, with_vector
from heplab.events.parquet import read_parquet, write_parquet, write_parquet_chunk
from heplab.events.root import read_root, write_root
from heplab.events.trackml import TrackMLEvent, iter_events, read_event, write_event

__all__ = [
    "ShowerSet",
    "ShowerWriter",
    "TrackMLEvent",
    "concatenate_showers",
    "count_lhe_events",
    "describe",
    "detect_format",
    "format_description",
    "iter_events",
    "lhe_to_events",
    "read_csv",
    "read_event",
    "read_events",
    "read_hdf5",
    "read_lhe",
    "read_lhe_init",
    "read_parquet",
    "read_root",
    "read_run",
    "read_showers",
    "validate_events",
    "with_vector",
    "write_event",
    "write_events",
    "write_hdf5",
    "write_parquet",
    "write_parquet_chunk",
    "write_root",
    "write_showers",
]
