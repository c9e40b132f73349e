"""Parquet chunks, parquet directories and heplab run directories."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import pyarrow.parquet as pq
import pytest

from heplab.errors import DataError, OutputExistsError
from heplab.events import read_events, read_parquet, write_parquet, write_parquet_chunk
from heplab.events.manifest import ChunkRecord, Manifest, chunk_filename, write_manifest


def _make_run(
    directory: Path, make_events: Callable[..., ak.Array], n_chunks: int, finished: list[int]
) -> list[ak.Array]:
    directory.mkdir()
    chunks = {}
    arrays = []
    for index in finished:
        events = make_events(n=20 + index, seed=100 + index)
        name = chunk_filename(index)
        write_parquet_chunk(events, directory / name)
        chunks[index] = ChunkRecord(index=index, file=name, events=len(events), rows=len(events))
        arrays.append(events)
    config = {"process": "ttbar", "events": 100, "seed": 7}
    write_manifest(
        directory, Manifest(kind="events", config=config, n_chunks=n_chunks, chunks=chunks)
    )
    return arrays


def test_chunk_round_trip_is_exact_and_zstd(tmp_path: Path, events: ak.Array) -> None:
    path = tmp_path / "chunk-000000.parquet"
    write_parquet_chunk(events, path)
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    back = read_parquet(path)
    assert back.tolist() == events.tolist()
    assert str(back.type) == str(events.type)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    # a chunk is rewritten in place when production redoes it
    write_parquet_chunk(events[:5], path)
    assert len(read_parquet(path)) == 5


def test_read_columns(tmp_path: Path, events: ak.Array) -> None:
    path = tmp_path / "events.parquet"
    write_parquet(events, path)
    back = read_parquet(path, columns=["met", "particles"])
    assert set(back.fields) == {"particles", "met"}
    assert back.particles.px.tolist() == events.particles.px.tolist()
    with pytest.raises(DataError, match=r"events\.parquet: no column\(s\) jets"):
        read_parquet(path, columns=["jets"])


def test_write_parquet_refuses_existing_file(tmp_path: Path, events: ak.Array) -> None:
    path = tmp_path / "events.parquet"
    write_parquet(events, path)
    with pytest.raises(OutputExistsError, match="already exists"):
        write_parquet(events[:3], path)
    write_parquet(events[:3], path, overwrite=True)
    assert len(read_parquet(path)) == 3


def test_directory_of_parquet_files_reads_in_name_order(
    tmp_path: Path, make_events: Callable[..., ak.Array]
) -> None:
    parts = [make_events(n=7, seed=s) for s in (1, 2, 3)]
    for i, part in enumerate(parts):
        write_parquet(part, tmp_path / f"part-{i}.parquet")
    (tmp_path / "notes.txt").write_text("not data")
    back = read_events(tmp_path)
    assert back.event_id.tolist() == ak.concatenate(parts).event_id.tolist()
    assert ak.flatten(back.particles.pt).tolist() == pytest.approx(
        ak.flatten(ak.concatenate(parts).particles.pt).tolist()
    )


def test_complete_run_directory(tmp_path: Path, make_events: Callable[..., ak.Array]) -> None:
    run = tmp_path / "run"
    arrays = _make_run(run, make_events, n_chunks=3, finished=[0, 1, 2])
    back = read_events(run)
    assert len(back) == sum(len(a) for a in arrays)
    assert back.tolist() == ak.concatenate(arrays).tolist()
    assert ak.parameters(back.particles.layout.content)["__record__"] == "Momentum4D"
    assert read_events(run, columns=["pv_z"]).fields == ["pv_z"]


def test_incomplete_run_reads_finished_chunks_and_warns(
    tmp_path: Path, make_events: Callable[..., ak.Array], caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    arrays = _make_run(run, make_events, n_chunks=4, finished=[2, 0])
    with caplog.at_level(logging.WARNING, logger="heplab.events"):
        back = read_events(run)
    assert "incomplete: 2 of 4 chunks" in caplog.text
    # chunk order, not the order they finished in
    assert back.event_id.tolist() == ak.concatenate(arrays[::-1]).event_id.tolist()


def test_run_errors(tmp_path: Path, make_events: Callable[..., ak.Array]) -> None:
    empty = tmp_path / "empty"
    _make_run(empty, make_events, n_chunks=2, finished=[])
    with pytest.raises(DataError, match="no finished chunk yet"):
        read_events(empty)
    run = tmp_path / "run"
    _make_run(run, make_events, n_chunks=2, finished=[0, 1])
    (run / chunk_filename(1)).unlink()
    with pytest.raises(DataError, match=r"not on disk: chunk-000001\.parquet"):
        read_events(run)
    (run / "manifest.json").write_text("{ not json")
    with pytest.raises(DataError, match="corrupt manifest"):
        read_events(run)


def test_truncated_parquet_is_a_data_error(tmp_path: Path, events: ak.Array) -> None:
    path = tmp_path / "events.parquet"
    write_parquet(events, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"events\.parquet: corrupt or truncated parquet"):
        read_events(path)
