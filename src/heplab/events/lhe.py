"""Les Houches Event files (plain or gzipped) through pylhe.

:func:`read_lhe` returns pylhe's own awkward layout (``eventinfo``, ``particles`` with a
``vector`` Momentum4D of ``px, py, pz, e`` [GeV], ``id``, ``status``, ``mother1``, ...);
:func:`lhe_to_events` turns that into heplab events whose ``partons`` follow the data
model. :func:`count_lhe_events` counts events in one streaming pass without parsing
them, and :func:`read_lhe_init` reads the ``<init>`` block (beams, PDFs, processes and
their cross-sections in pb). Reference: Les Houches Event file format, hep-ph/0609017.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import awkward as ak
import numpy as np

from heplab.errors import DataError
from heplab.events._util import data_error, existing_path
from heplab.events.model import EVENT_FIELD_DTYPES, cast_fields, with_vector
from heplab.events.schema import EVENT_FIELDS, PARTON_FIELDS

__all__ = [
    "count_lhe_events",
    "lhe_to_events",
    "read_lhe",
    "read_lhe_init",
]

log = logging.getLogger(__name__)

_GZIP_MAGIC: Final = b"\x1f\x8b"
_EVENT_OPEN: Final = re.compile(rb"<event[\s>/]")
_EVENT_CLOSE: Final = re.compile(rb"</event>")
_END: Final = re.compile(rb"</LesHouchesEvents>")
_BLOCK: Final = 1 << 20


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == _GZIP_MAGIC


@contextlib.contextmanager
def _open_bytes(path: Path) -> Iterator[io.BufferedIOBase]:
    if _is_gzip(path):
        with gzip.GzipFile(path, "rb") as zipped:
            yield zipped
    else:
        with path.open("rb") as plain:
            yield plain


def _lhe_path(path: str | os.PathLike[str]) -> Path:
    p = existing_path(path)
    if p.is_dir():
        raise data_error(p, "is a directory, not an LHE file")
    return p


def count_lhe_events(path: str | os.PathLike[str]) -> int:
    """Count the ``<event>`` blocks of an LHE file in one streaming pass.

    The file is not parsed as XML, so this is fast (gzipped files are decompressed on
    the fly). The file must start with ``<LesHouchesEvents`` (or an XML declaration) and
    end with ``</LesHouchesEvents>``, and every ``<event>`` must be closed.

    Raises
    ------
    DataError
        If the file is missing, not LHE, or truncated.
    """
    p = _lhe_path(path)
    opened = closed = 0
    tail = b""
    ended = 0
    keep = 19  # longest pattern: a tag split between two blocks is counted in the next
    try:
        with _open_bytes(p) as f:
            first = True
            while True:
                block = f.read(_BLOCK)
                if first:
                    first = False
                    if not block:
                        raise data_error(p, "empty file")
                    head = block[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
                    if not head.startswith((b"<LesHouchesEvents", b"<?xml")) or (
                        b"<LesHouchesEvents" not in head
                    ):
                        raise data_error(p, "not an LHE file (no <LesHouchesEvents> at its start)")
                buffer = tail + block
                cut = max(len(buffer) - keep, 0) if block else len(buffer)
                opened += sum(1 for m in _EVENT_OPEN.finditer(buffer) if m.start() < cut)
                closed += sum(1 for m in _EVENT_CLOSE.finditer(buffer) if m.start() < cut)
                ended += sum(1 for m in _END.finditer(buffer) if m.start() < cut)
                tail = buffer[cut:]
                if not block:
                    break
    except DataError:
        raise
    except Exception as exc:
        raise data_error(p, "cannot read LHE file (corrupt or truncated?)", exc) from exc
    if not ended or opened != closed:
        raise data_error(
            p, f"truncated LHE file ({closed} complete events, no closing </LesHouchesEvents>)"
        )
    return opened


def _run_pylhe(p: Path, action: Any) -> Any:
    """Run ``action(pylhe)``, turning pylhe's parse warnings and errors into DataError."""
    import pylhe

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = action(pylhe)
        except DataError:
            raise
        except Exception as exc:
            raise data_error(p, "cannot parse LHE file (corrupt or truncated?)", exc) from exc
    for w in caught:
        if issubclass(w.category, RuntimeWarning) and "Parse Error" in str(w.message):
            raise data_error(p, f"corrupt or truncated LHE file ({w.message})")
        log.warning("%s: %s", p, w.message)
    return result


def read_lhe(path: str | os.PathLike[str], max_events: int | None = None) -> ak.Array:
    """Read the events of an LHE file (plain or gzipped) with pylhe.

    Parameters
    ----------
    path : path
        ``.lhe`` or ``.lhe.gz`` file.
    max_events : int, optional
        Read at most this many events (from the start).

    Returns
    -------
    ak.Array
        pylhe's layout: ``eventinfo`` (``nparticles, pid, weight, scale, aqed, aqcd``),
        optional ``weights``, and ``particles`` with ``vector`` (Momentum4D of ``px, py,
        pz, e`` [GeV]), ``id``, ``status``, ``mother1``, ``mother2``, ``color1``,
        ``color2``, ``m``, ``lifetime``, ``spin``. Mother indices are 1-based as in LHE.

    Raises
    ------
    DataError
        If the file is missing, not LHE, corrupt or truncated.
    """
    p = _lhe_path(path)
    if max_events is not None and max_events < 0:
        raise data_error(p, f"max_events must be >= 0, not {max_events}")

    def action(pylhe: Any) -> ak.Array:
        lhef = pylhe.LHEFile.fromfile(p)
        events = lhef.events
        try:
            if max_events is not None:
                events = itertools.islice(events, max_events)
            return pylhe.to_awkward(events)
        finally:
            lhef.events.close()

    return _run_pylhe(p, action)


def read_lhe_init(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the ``<init>`` block of an LHE file.

    Returns
    -------
    dict
        ``beams`` (PDG ids), ``energies`` [GeV], ``sqrt_s`` [GeV] (head-on beams),
        ``pdf_groups``, ``pdf_sets``, ``weighting_strategy`` (IDWTUP), ``processes`` (each
        ``id``, ``cross_section`` and ``error`` [pb], ``unit_weight``),
        ``total_cross_section`` [pb], ``generators`` (name, version) and ``version``.
        JSON-serialisable.

    Raises
    ------
    DataError
        If the file is missing, not LHE, or its init block is corrupt.
    """
    p = _lhe_path(path)

    def action(pylhe: Any) -> dict[str, Any]:
        lhef = pylhe.LHEFile.fromfile(p)
        lhef.events.close()
        info, processes = lhef.init.initInfo, lhef.init.procInfo
        return {
            "version": None if lhef.version is None else str(lhef.version),
            "beams": [int(info.beamA), int(info.beamB)],
            "energies": [float(info.energyA), float(info.energyB)],
            "sqrt_s": float(2.0 * np.sqrt(info.energyA * info.energyB)),
            "pdf_groups": [int(info.PDFgroupA), int(info.PDFgroupB)],
            "pdf_sets": [int(info.PDFsetA), int(info.PDFsetB)],
            "weighting_strategy": int(info.weightingStrategy),
            "processes": [
                {
                    "id": int(proc.procId),
                    "cross_section": float(proc.xSection),
                    "error": float(proc.error),
                    "unit_weight": float(proc.unitWeight),
                }
                for proc in processes
            ],
            "total_cross_section": float(sum(proc.xSection for proc in processes)),
            "generators": [{"name": g.name, "version": g.version} for g in lhef.init.generators],
        }

    return _run_pylhe(p, action)


# LHE status -> Pythia-like status of the data model (incoming, resonance, outgoing).
_STATUS_MAP: Final = {-1: -21, 2: -22, 1: 23}


def lhe_to_events(lhe: ak.Array) -> ak.Array:
    """Turn pylhe's awkward events (from :func:`read_lhe`) into heplab events.

    ``partons`` holds every LHE particle with ``px, py, pz, energy`` [GeV], ``pid``,
    ``status`` (LHE -1 -> -21 incoming, 2 -> -22 resonance, 1 -> 23 outgoing; others
    kept) and ``mother`` (0-based index of the parent resonance, -1 for none, so that
    hard-process outgoing partons and resonances produced directly point to nothing).
    Event scalars: ``event_id`` (0, 1, ...), ``weight`` (XWGTUP), ``id1``, ``id2`` (the
    incoming partons), ``process_code`` (IDPRUP); ``pthat`` and ``pv_z`` are 0.

    Returns
    -------
    ak.Array
        Events of the data model, without ``particles`` (LHE holds no shower).
    """
    n = len(lhe)
    if n == 0 or "particles" not in lhe.fields:
        raise DataError("no LHE events to convert")
    particles = lhe.particles
    status = particles.status
    new_status = status
    for lhe_code, code in _STATUS_MAP.items():
        new_status = ak.where(status == lhe_code, code, new_status)
    mother = particles.mother1 - 1
    safe = ak.where(mother >= 0, mother, 0)
    mother_is_resonance = (mother >= 0) & (status[safe] == 2)
    partons = cast_fields(
        ak.zip(
            {
                "px": particles.vector.px,
                "py": particles.vector.py,
                "pz": particles.vector.pz,
                "energy": particles.vector.e,
                "pid": particles.id,
                "status": new_status,
                "mother": ak.where(mother_is_resonance, mother, -1),
            }
        ),
        PARTON_FIELDS,
    )
    incoming = particles.id[status == -1]
    known: dict[str, Any] = {
        "event_id": np.arange(n),
        "weight": lhe.eventinfo.weight,
        "id1": ak.fill_none(ak.firsts(incoming), 0),
        "id2": ak.fill_none(ak.firsts(incoming[:, 1:]), 0),
    }
    fields: dict[str, Any] = {}
    for name in EVENT_FIELDS:
        dtype = np.dtype(EVENT_FIELD_DTYPES.get(name, "float32"))
        values = known.get(name, np.zeros(n))
        fields[name] = ak.values_astype(values, dtype)
    fields["process_code"] = ak.values_astype(lhe.eventinfo.pid, np.int32)
    fields["partons"] = partons
    return with_vector(ak.zip(fields, depth_limit=1))
