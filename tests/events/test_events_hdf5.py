"""HDF5 storage of awkward arrays (ak.to_buffers layout)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest

from heplab.errors import DataError, OutputExistsError
from heplab.events import read_events, read_hdf5, write_events, write_hdf5
from heplab.events.hdf5 import FORMAT_ATTR


def test_round_trip_is_exact(tmp_path: Path, events: ak.Array) -> None:
    path = tmp_path / "events.h5"
    write_events(events, path, "hdf5")
    with h5py.File(path, "r") as file:
        group = file["events"]
        assert group.attrs[FORMAT_ATTR] == 1
        assert int(group.attrs["length"]) == len(events)
        datasets = [group[name] for name in group]
        assert datasets
        assert all(ds.compression == "gzip" for ds in datasets if ds.size)
    back = read_events(path)
    assert back.tolist() == events.tolist()
    assert str(back.type) == str(events.type)  # dtypes and Momentum4D names survive
    assert ak.flatten(back.particles.eta).tolist() == ak.flatten(events.particles.eta).tolist()


def test_columns_read_only_their_buffers(tmp_path: Path, events: ak.Array) -> None:
    path = tmp_path / "events.h5"
    write_hdf5(events, path)
    back = read_hdf5(path, columns=["met", "particles.pid"])
    assert set(back.fields) == {"met", "particles"}
    assert back.particles.fields == ["pid"]
    assert back.particles.pid.tolist() == events.particles.pid.tolist()
    with pytest.raises(DataError, match=r"no column\(s\) jets"):
        read_hdf5(path, columns=["jets"])


def test_any_array_and_named_groups(tmp_path: Path) -> None:
    hits = ak.zip(
        {
            "hit_id": np.arange(5),
            "x": np.linspace(0, 1, 5).astype(np.float32),
            "cells": ak.Array([[1], [], [2, 3], [4], []]),
        }
    )
    path = tmp_path / "hits.h5"
    write_hdf5(hits, path, key="hits")
    assert read_hdf5(path).tolist() == hits.tolist()
    assert read_hdf5(path, key="hits").tolist() == hits.tolist()
    with pytest.raises(DataError, match="no heplab array 'events'"):
        read_hdf5(path, key="events")
    with pytest.raises(OutputExistsError):
        write_hdf5(hits, path)
    empty = tmp_path / "empty.h5"
    write_hdf5(hits[:0], empty)
    assert len(read_hdf5(empty)) == 0


def test_foreign_and_broken_hdf5(tmp_path: Path, events: ak.Array) -> None:
    foreign = tmp_path / "jets.h5"
    with h5py.File(foreign, "w") as file:
        file.create_dataset("table", data=np.zeros((3, 4)))
    with pytest.raises(DataError, match=r"jets\.h5: HDF5 file holds no array written by heplab"):
        read_events(foreign)
    path = tmp_path / "events.h5"
    write_hdf5(events, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"events\.h5: not a readable HDF5 file"):
        read_events(path)
