"""Behaviours, dtypes and validation for the heplab event data model.

The data model itself is described in :mod:`heplab.events.schema`. This module gives the
4-momenta their ``vector`` behaviour (:func:`with_vector`), casts records read from foreign
files to the model's dtypes (:func:`cast_fields`), and checks that an array can be used as
events (:func:`validate_events`). Units: GeV, mm, ns.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any, Final

import awkward as ak
import numpy as np
import vector

from heplab.errors import DataError
from heplab.events.schema import EVENT_FIELD_DTYPES, PARTICLE_FIELDS, PARTON_FIELDS, PFCAND_FIELDS

__all__ = [
    "COLLECTION_FIELDS",
    "EVENT_FIELD_DTYPES",
    "MOMENTUM_FIELDS",
    "cast_fields",
    "validate_events",
    "with_vector",
]

log = logging.getLogger(__name__)

vector.register_awkward()

#: The Cartesian 4-momentum fields of every particle-like record [GeV].
MOMENTUM_FIELDS: Final = ("px", "py", "pz", "energy")

#: Field dtypes of the list-of-records fields of the data model.
COLLECTION_FIELDS: Final[dict[str, dict[str, str]]] = {
    "particles": dict(PARTICLE_FIELDS),
    "partons": dict(PARTON_FIELDS),
    "pfcands": dict(PFCAND_FIELDS),
}

# Field names that ``vector`` reads as coordinates: a record with px, py, pz, energy and
# any other of these (say ``pt``) is ambiguous to vector and is left without behaviour.
_VECTOR_COORDINATES: Final = frozenset(
    {"E", "M", "e", "eta", "m", "mass", "phi", "pt", "rho", "t", "tau", "theta", "x", "y", "z"}
)


def _name_momenta(layout: ak.contents.Content) -> ak.contents.Content:
    """Recursively name every record with px, py, pz, energy ``Momentum4D``."""
    if layout.is_record:
        assert isinstance(layout, ak.contents.RecordArray)
        contents = [_name_momenta(c) for c in layout.contents]
        parameters = dict(layout.parameters)
        fields = set(layout.fields)
        qualifies = False
        if not layout.is_tuple and set(MOMENTUM_FIELDS) <= fields:
            clash = fields & _VECTOR_COORDINATES
            if clash:
                log.debug(
                    "record with fields %s keeps no vector behaviour: %s clash with px..energy",
                    sorted(fields),
                    sorted(clash),
                )
            else:
                qualifies = True
        if qualifies:
            parameters["__record__"] = "Momentum4D"
        elif parameters.get("__record__") == "Momentum4D":
            # e.g. a column selection that kept only ``pid`` of a stored Momentum4D record
            del parameters["__record__"]
        return ak.contents.RecordArray(
            contents,
            None if layout.is_tuple else layout.fields,
            length=layout.length,
            parameters=parameters,
        )
    if layout.is_union:
        assert isinstance(layout, ak.contents.UnionArray)
        return layout.copy(contents=[_name_momenta(c) for c in layout.contents])
    if layout.is_list or layout.is_option or layout.is_indexed:
        return layout.copy(content=_name_momenta(layout.content))
    return layout


def with_vector(array: ak.Array) -> ak.Array:
    """Give the 4-momentum records of ``array`` the ``vector`` ``Momentum4D`` behaviour.

    Every record (at any depth: lists of records, records nested in those, a record array
    itself) that has the fields ``px, py, pz, energy`` [GeV] is named ``Momentum4D``, so
    ``events.particles.pt``, ``.eta``, ``.mass``, ``.deltaR(...)`` work. Other fields are
    left alone, and so is a record whose other fields ``vector`` would read as competing
    coordinates (``pt``, ``eta``, ``mass``, ...). A record named ``Momentum4D`` that lacks
    the four fields (say after reading only ``particles.pid``) loses the name, which
    ``vector`` would otherwise reject.

    Parameters
    ----------
    array : ak.Array
        Events (or any awkward array).

    Returns
    -------
    ak.Array
        The same data with the behaviour attached; the input is not modified.
    """
    if not isinstance(array, ak.Array):
        array = ak.Array(array)
    layout = _name_momenta(ak.to_layout(array))
    return ak.Array(layout, attrs=array.attrs)


def cast_fields(records: ak.Array, dtypes: Mapping[str, str]) -> ak.Array:
    """Cast the fields of ``records`` named in ``dtypes`` to those numpy dtypes.

    Fields absent from ``records`` are skipped; fields not named in ``dtypes`` are kept.
    """
    if not records.fields:
        return records
    out = {}
    for name in records.fields:
        values = records[name]
        if name in dtypes and values.fields == []:
            values = ak.values_astype(values, np.dtype(dtypes[name]))
        out[name] = values
    return ak.zip(out, depth_limit=records.ndim, with_name=None)


def _momentum_columns(array: ak.Array, prefix: str = "") -> Iterable[tuple[str, ak.Array]]:
    """(dotted name, values) of every px, py, pz, energy field at any depth."""
    for name in array.fields:
        values = array[name]
        path = f"{prefix}{name}"
        if values.fields:
            yield from _momentum_columns(values, prefix=f"{path}.")
        elif name in MOMENTUM_FIELDS:
            yield path, values


def _has_field(array: ak.Array, dotted: str) -> bool:
    current: Any = array
    for part in dotted.split("."):
        if part not in current.fields:
            return False
        current = current[part]
    return True


def validate_events(
    events: ak.Array,
    require: Iterable[str] = ("particles",),
    *,
    source: str | os.PathLike[str] | None = None,
) -> ak.Array:
    """Check that ``events`` can be used as heplab events; raise :class:`DataError` if not.

    Checks, in order: that ``events`` is an array of records; that every field named in
    ``require`` is present (dotted names such as ``"particles.px"`` reach into records);
    that the required list-of-records fields of the data model (``particles``,
    ``partons``, ``pfcands``) have their 4-momentum fields ``px, py, pz, energy``; and that
    no 4-momentum field anywhere holds NaN or infinity.

    Parameters
    ----------
    events : ak.Array
        The events to check.
    require : iterable of str
        Fields that must be present.
    source : path, optional
        Where the events came from; named in the error message.

    Returns
    -------
    ak.Array
        ``events`` unchanged, for chaining.

    Raises
    ------
    DataError
        With a one-line message naming the missing fields or the non-finite values.
    """
    where = f"{os.fspath(source)}: " if source is not None else ""
    if not isinstance(events, ak.Array) or not events.fields:
        raise DataError(f"{where}not an array of event records")
    required = list(require)
    missing = [name for name in required if not _has_field(events, name)]
    if missing:
        raise DataError(
            f"{where}missing required field(s) {', '.join(missing)}"
            f" (present: {', '.join(events.fields)})"
        )
    for name in required:
        if name in COLLECTION_FIELDS:
            lacking = [f for f in MOMENTUM_FIELDS if f not in events[name].fields]
            if lacking:
                raise DataError(f"{where}field {name!r} lacks {', '.join(lacking)}")
    for path, values in _momentum_columns(events):
        flat = ak.to_numpy(ak.flatten(values, axis=None))
        if flat.dtype.kind == "f":
            bad = int(np.count_nonzero(~np.isfinite(flat)))
            if bad:
                raise DataError(f"{where}{bad} NaN or infinite value(s) in {path}")
    return events
