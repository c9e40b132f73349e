"""TrackML CSV reading and writing."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from heplab.errors import DataError
from heplab.events.trackml import (
    CELL_COLUMNS,
    HIT_COLUMNS,
    PARTICLE_COLUMNS,
    TRUTH_COLUMNS,
    TrackMLEvent,
    event_ids,
    iter_events,
    read_event,
    write_event,
)


def _event(event_id: int = 1000, n: int = 6) -> TrackMLEvent:
    rng = np.random.default_rng(event_id)
    hits: dict[str, np.ndarray] = {
        "hit_id": np.arange(1, n + 1),
        "x": rng.normal(size=n).astype(np.float32) * 100,
        "y": rng.normal(size=n).astype(np.float32) * 100,
        "z": rng.normal(size=n).astype(np.float32) * 100,
        "volume_id": np.full(n, 8),
        "layer_id": np.arange(n) * 2 + 2,
        "module_id": np.arange(n) + 10,
    }
    big = np.int64(4_503_668_346_847_232)  # a real-looking TrackML id, > 2**52
    pid = np.array([big, big, big + 1, 0, big + 1, big][:n], dtype=np.int64)
    truth: dict[str, np.ndarray] = {
        "hit_id": np.arange(1, n + 1),
        "particle_id": pid,
        **{k: rng.normal(size=n).astype(np.float32) for k in ("tx", "ty", "tz", "tpx", "tpy")},
        "tpz": rng.normal(size=n).astype(np.float32),
        "weight": np.full(n, 1.0 / n, np.float32),
        "n_particles": np.ones(n, np.int32),
    }
    particles: dict[str, np.ndarray] = {
        "particle_id": np.array([big, big + 1]),
        **{k: np.array([0.1, -0.2], np.float32) for k in ("vx", "vy", "vz", "px", "py", "pz")},
        "q": np.array([1, -1]),
        "nhits": np.array([3, 2]),
    }
    cells: dict[str, np.ndarray] = {
        "hit_id": np.array([1, 1, 2, 3]),
        "ch0": np.array([10, 11, 5, 7]),
        "ch1": np.array([3, 3, 9, 1]),
        "value": np.array([0.5, 0.25, 1.0, 0.125], np.float32),
    }
    return TrackMLEvent(event_id, hits, truth, particles, cells)


def test_roundtrip_exact(tmp_path: Path) -> None:
    event = _event()
    write_event(tmp_path, event)
    header = (tmp_path / "event000001000-hits.csv").read_text().splitlines()[0]
    assert header == ",".join(HIT_COLUMNS)
    truth_header = (tmp_path / "event000001000-truth.csv").read_text().splitlines()[0]
    assert truth_header == ",".join((*TRUTH_COLUMNS, "n_particles"))
    back = read_event(tmp_path, 1000)
    assert len(back) == 6
    assert back.event_id == 1000
    assert back.truth is not None
    assert back.particles is not None
    assert back.cells is not None
    for mine, theirs, cols in (
        (event.hits, back.hits, HIT_COLUMNS),
        (event.truth, back.truth, (*TRUTH_COLUMNS, "n_particles")),
        (event.particles, back.particles, PARTICLE_COLUMNS),
        (event.cells, back.cells, CELL_COLUMNS),
    ):
        assert mine is not None
        assert list(theirs) == list(cols)
        for c in cols:
            np.testing.assert_array_equal(theirs[c], mine[c])
    assert back.hits["x"].dtype == np.float32
    assert back.hits["hit_id"].dtype == np.int64
    assert back.truth["particle_id"].dtype == np.int64
    assert back.truth["particle_id"][0] == 4_503_668_346_847_232  # no float round-off
    assert back.hits["volume_id"].dtype == np.int32


def test_event_ids_iter_and_optional_parts(tmp_path: Path) -> None:
    write_event(tmp_path, _event(1001))
    write_event(tmp_path, TrackMLEvent(7, _event(7).hits))
    (tmp_path / "notes.txt").write_text("x")
    assert event_ids(tmp_path) == [7, 1001]
    events = list(iter_events(tmp_path, parts=("hits", "truth")))
    assert [e.event_id for e in events] == [7, 1001]
    assert events[0].truth is None
    assert events[1].truth is not None
    assert events[1].cells is None  # not requested


def test_rewrite_without_part_removes_stale_file(tmp_path: Path) -> None:
    write_event(tmp_path, _event(3))
    write_event(tmp_path, TrackMLEvent(3, _event(3).hits))
    assert read_event(tmp_path, 3).truth is None


def test_gzip_and_truth_order(tmp_path: Path) -> None:
    write_event(tmp_path, _event(5))
    truth = tmp_path / "event000000005-truth.csv"
    lines = truth.read_text().splitlines()
    truth.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    hits = tmp_path / "event000000005-hits.csv"
    with gzip.open(hits.with_name(hits.name + ".gz"), "wb") as f:
        f.write(hits.read_bytes())
    hits.unlink()
    assert event_ids(tmp_path) == [5]
    event = read_event(tmp_path, 5)
    assert event.truth is not None
    np.testing.assert_array_equal(event.truth["hit_id"], np.arange(1, 7))
    np.testing.assert_array_equal(event.truth["particle_id"], _event(5).truth["particle_id"])  # type: ignore[index]


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"event000000009-hits\.csv"):
        read_event(tmp_path, 9)
    with pytest.raises(DataError, match="not a directory"):
        event_ids(tmp_path / "nope")
    write_event(tmp_path, _event(1))
    hits = tmp_path / "event000000001-hits.csv"
    text = hits.read_text()
    hits.write_text(text.replace("module_id", "module"))
    with pytest.raises(DataError, match=r"hits.csv.*module_id"):
        read_event(tmp_path, 1)
    lines = text.splitlines()
    row = lines[1].split(",")
    row[1] = "nan"
    hits.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=r"hits.csv.*NaN"):
        read_event(tmp_path, 1)
    hits.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=r"hits.csv.*1\.\.5"):
        read_event(tmp_path, 1)
    hits.write_text(text)
    truth = tmp_path / "event000000001-truth.csv"
    truth.write_text("\n".join(truth.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match=r"truth\.csv"):
        read_event(tmp_path, 1)
    hits.write_text(lines[0] + "\n" + "1,2,3\n")
    with pytest.raises(DataError, match=r"hits\.csv"):
        read_event(tmp_path, 1)


def test_write_rejects_ragged_tables(tmp_path: Path) -> None:
    event = _event()
    assert event.truth is not None
    event.truth["weight"] = event.truth["weight"][:-1]
    with pytest.raises(ValueError, match="different lengths"):
        write_event(tmp_path, event)
