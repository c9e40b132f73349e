"""describe() and format_description() for every kind of input (``heplab info``)."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot

from heplab.errors import DataError
from heplab.events import write_events, write_parquet_chunk
from heplab.events.info import describe, format_description
from heplab.events.manifest import ChunkRecord, Manifest, chunk_filename, write_manifest


def _check(desc: dict, kind: str) -> str:
    assert desc["kind"] == kind
    assert json.loads(json.dumps(desc)) == desc  # JSON-serialisable, unchanged by the trip
    text = format_description(desc)
    assert text.splitlines()[0].startswith(desc["path"])
    return text


def test_run_directory(tmp_path: Path, events: ak.Array) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_parquet_chunk(events, run / chunk_filename(0))
    config = {"process": "ttbar", "seed": 3, "chunk_size": 50}
    manifest = Manifest(
        kind="events",
        config=config,
        n_chunks=3,
        chunks={0: ChunkRecord(index=0, file=chunk_filename(0), events=50, rows=50, seed=11)},
        heplab_version="0.1.0",
    )
    write_manifest(run, manifest)
    desc = describe(run)
    text = _check(desc, "run")
    assert desc["chunks_finished"] == 1
    assert desc["chunks_total"] == 3
    assert desc["complete"] is False
    assert desc["events"] == 50
    assert desc["config"] == config
    assert desc["config_hash"] == manifest.config_hash
    assert desc["columns"]["met"] == "float32"
    assert desc["columns"]["particles"].startswith("var * ")
    assert "px: float32" in desc["columns"]["particles"]
    assert "1 of 3 finished (INCOMPLETE)" in text
    assert manifest.config_hash in text
    assert "'ttbar'" in text


def test_parquet_file_and_directory(tmp_path: Path, events: ak.Array) -> None:
    write_events(events, tmp_path / "a.parquet")
    write_events(events[:10], tmp_path / "b.parquet")
    desc = describe(tmp_path / "a.parquet")
    text = _check(desc, "parquet")
    assert desc["rows"] == len(events)
    assert desc["columns"]["event_id"] == "int64"
    assert "pfcands" in text
    d = describe(tmp_path)
    _check(d, "parquet_dir")
    assert d["rows"] == len(events) + 10
    assert d["files"] == ["a.parquet", "b.parquet"]


def test_root_file(tmp_path: Path, events: ak.Array) -> None:
    path = tmp_path / "a.root"
    write_events(events, path, "root", root_style="delphes")
    with uproot.update(path) as file:
        file["h_met"] = np.histogram(np.arange(10.0), bins=5)
    desc = describe(path)
    text = _check(desc, "root")
    (tree,) = desc["trees"]
    assert tree["name"] == "Delphes"
    assert tree["entries"] == len(events)
    branches = {b["name"]: b for b in tree["branches"]}
    assert branches["Particle.PT"]["type"] == "float[]"
    assert "AsJagged" in branches["Particle.PT"]["interpretation"]
    assert desc["objects"] == [{"name": "h_met", "class": "TH1D"}]
    assert "TTree 'Delphes'" in text
    assert "TH1D 'h_met'" in text


def test_hdf5_file(tmp_path: Path, events: ak.Array) -> None:
    path = tmp_path / "a.h5"
    write_events(events, path)
    with h5py.File(path, "a") as file:
        file.create_dataset(
            "meta/calo_images", data=np.zeros((4, 8, 8), dtype=np.float32), compression="gzip"
        )
    desc = describe(path)
    text = _check(desc, "hdf5")
    (array,) = desc["arrays"]
    assert array["group"] == "events"
    assert array["length"] == len(events)
    assert array["fields"]["weight"] == "float64"
    assert desc["datasets"] == [
        {"name": "meta/calo_images", "shape": [4, 8, 8], "dtype": "float32", "compression": "gzip"}
    ]
    assert "meta" in desc["groups"]
    assert "dataset meta/calo_images: 4x8x8 float32, gzip" in text


def test_lhe_file(shared_data: Path) -> None:
    desc = describe(shared_data / "pylhe-testfile-madgraph-2.2.1-Z-mlm.lhe.gz")
    text = _check(desc, "lhe")
    assert desc["events"] == 10000
    assert desc["energies"] == [3500.0, 3500.0]
    assert len(desc["processes"]) == 3
    assert "sqrt(s) = 7000 GeV" in text
    assert "events:         10000" in text


def test_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "hits.csv"
    path.write_text("hit_id,x,y,z,volume_id\n1,0.5,1.5,2.5,7\n2,1.0,2.0,3.0,8\n")
    desc = describe(path)
    text = _check(desc, "csv")
    assert desc["rows"] == 2
    assert desc["columns"] == {
        "hit_id": "int64",
        "x": "double",
        "y": "double",
        "z": "double",
        "volume_id": "int64",
    }
    assert "volume_id" in text


def test_describe_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        describe(tmp_path / "absent.root")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1" + bytes(100))
    with pytest.raises(DataError, match=r"broken\.parquet: corrupt or truncated parquet"):
        describe(broken)
