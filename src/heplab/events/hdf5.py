"""Awkward arrays in HDF5 files (h5py), as :func:`awkward.to_buffers` lays them out.

One array is one HDF5 group: the group's attributes hold the array's form (JSON), its
length and a format marker (``heplab_awkward``), and each buffer is a gzip-compressed
dataset named by its form key (``node0-offsets``, ``node1-data``, ...). Any awkward array
round-trips exactly, record names and dtypes included; reading a few columns reads only
their buffers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import awkward as ak
import numpy as np

from heplab.errors import DataError
from heplab.events._util import atomic_output, data_error, existing_path
from heplab.events.model import with_vector

if TYPE_CHECKING:
    import h5py

__all__ = [
    "DEFAULT_KEY",
    "FORMAT_ATTR",
    "awkward_groups",
    "describe_hdf5",
    "read_hdf5",
    "write_hdf5",
]

log = logging.getLogger(__name__)

#: Group name that :func:`write_hdf5` uses unless told otherwise.
DEFAULT_KEY: Final = "events"
#: Attribute marking a group written by heplab (its value is the layout version).
FORMAT_ATTR: Final = "heplab_awkward"
_FORMAT_VERSION: Final = 1


def write_hdf5(
    events: ak.Array,
    path: str | os.PathLike[str],
    *,
    key: str = DEFAULT_KEY,
    overwrite: bool = False,
    compression_level: int = 4,
) -> None:
    """Write one awkward array into a new HDF5 file, atomically.

    Parameters
    ----------
    events : ak.Array
        Any awkward array (events, jets, hits, ...).
    path : path
        Output file (``.h5``).
    key : str
        Name of the group that holds the array.
    overwrite : bool
        Replace an existing file.
    compression_level : int
        gzip level of the buffer datasets (0-9).

    Raises
    ------
    heplab.errors.OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    import h5py

    if not isinstance(events, ak.Array):
        events = ak.Array(events)
    form, length, buffers = ak.to_buffers(ak.to_packed(events))
    with atomic_output(path, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as file:
        group = file.create_group(key)
        group.attrs[FORMAT_ATTR] = _FORMAT_VERSION
        group.attrs["form"] = form.to_json()
        group.attrs["length"] = int(length)
        for name, buffer in buffers.items():
            data = np.asarray(buffer)
            if data.size:
                group.create_dataset(
                    name,
                    data=data,
                    compression="gzip",
                    compression_opts=compression_level,
                    shuffle=True,
                )
            else:
                group.create_dataset(name, data=data)
    log.info("wrote %d entries to %s (group %s)", length, path, key)


def awkward_groups(file: h5py.File) -> list[str]:
    """Paths of the groups in ``file`` that hold a heplab-written awkward array."""
    import h5py

    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group) and FORMAT_ATTR in obj.attrs:
            found.append(name)

    if FORMAT_ATTR in file.attrs:
        found.append("/")
    file.visititems(visit)
    return found


class _LazyBuffers(Mapping[str, np.ndarray]):
    """Read a buffer dataset only when awkward asks for it."""

    def __init__(self, group: h5py.Group) -> None:
        self.group = group

    def __getitem__(self, key: str) -> np.ndarray:
        return np.asarray(self.group[key][()])

    def __iter__(self) -> Iterator[str]:
        return iter(self.group.keys())

    def __len__(self) -> int:
        return len(self.group)


def read_hdf5(
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    *,
    key: str | None = None,
) -> ak.Array:
    """Read an awkward array written by :func:`write_hdf5`.

    Parameters
    ----------
    path : path
        The HDF5 file.
    columns : list of str, optional
        Fields to read (``"particles.px"`` reads one sub-field); all if None.
    key : str, optional
        Group to read; default ``events`` if present, else the file's only heplab group.

    Raises
    ------
    DataError
        If the file is missing, corrupt or truncated, holds no heplab group, or lacks a
        requested column.
    """
    import h5py

    p = existing_path(path)
    try:
        file = h5py.File(p, "r")
    except Exception as exc:
        raise data_error(p, "not a readable HDF5 file (corrupt or truncated?)", exc) from exc
    with file:
        try:
            groups = awkward_groups(file)
            if key is None:
                if not groups:
                    raise data_error(
                        p, "HDF5 file holds no array written by heplab (no group with a form)"
                    )
                key = DEFAULT_KEY if DEFAULT_KEY in groups else groups[0]
                if len(groups) > 1 and key != DEFAULT_KEY:
                    raise data_error(p, f"several heplab arrays ({', '.join(groups)}); name one")
            elif key not in groups:
                raise data_error(
                    p, f"no heplab array {key!r} (arrays: {', '.join(groups) or 'none'})"
                )
            group = file[key]
            form = ak.forms.from_json(_text(group.attrs["form"]))
            length = int(group.attrs["length"])
            if columns is not None:
                fields = list(form.fields) if hasattr(form, "fields") else []
                missing = [c for c in columns if c.split(".", 1)[0] not in fields]
                if missing:
                    raise data_error(
                        p, f"no column(s) {', '.join(missing)} (present: {', '.join(fields)})"
                    )
                form = form.select_columns(list(columns))
            return with_vector(ak.from_buffers(form, length, _LazyBuffers(group)))
        except DataError:
            raise
        except Exception as exc:
            raise data_error(p, "corrupt or truncated HDF5 array", exc) from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def describe_hdf5(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Groups and datasets of an HDF5 file (shapes, dtypes; heplab arrays summarised)."""
    import h5py

    p = existing_path(path)
    try:
        file = h5py.File(p, "r")
    except Exception as exc:
        raise data_error(p, "not a readable HDF5 file (corrupt or truncated?)", exc) from exc
    arrays: list[dict[str, Any]] = []
    groups: list[str] = []
    datasets: list[dict[str, Any]] = []
    with file:
        heplab = set(awkward_groups(file))
        for name in sorted(heplab):
            group = file[name]
            form = ak.forms.from_json(_text(group.attrs["form"]))
            arrays.append(
                {
                    "group": name,
                    "length": int(group.attrs["length"]),
                    "type": str(form.type),
                    "fields": {f: str(form.content(f).type) for f in getattr(form, "fields", [])}
                    if form.is_record
                    else {},
                }
            )

        def inside_array(name: str) -> bool:
            return any(name == g or name.startswith(f"{g}/") for g in heplab if g != "/")

        def visit(name: str, obj: Any) -> None:
            if inside_array(name) or "/" in heplab:
                return
            if isinstance(obj, h5py.Dataset):
                datasets.append(
                    {
                        "name": name,
                        "shape": list(obj.shape),
                        "dtype": str(obj.dtype),
                        "compression": obj.compression,
                    }
                )
            else:
                groups.append(name)

        file.visititems(visit)
    return {"arrays": arrays, "groups": groups, "datasets": datasets}
