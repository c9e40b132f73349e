"""Chunked production: seeds, resume after a kill, refusal to mix runs, LHE chunking."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.events.manifest import read_manifest
from heplab.events.parquet import read_parquet
from heplab.generation.production import build_config, chunk_seeds, generate_chunk, produce


def _read_run(directory: Path) -> ak.Array:
    m = read_manifest(directory)
    return ak.concatenate([read_parquet(f) for f in m.files(directory)])


def test_chunk_seeds_are_distinct_and_reproducible() -> None:
    seeds = [chunk_seeds(7, i) for i in range(2000)]
    assert len({s["pythia"] for s in seeds}) == 2000
    assert len({s["pileup"] for s in seeds}) == 2000
    assert len({s["numpy"] for s in seeds}) == 2000
    assert chunk_seeds(7, 5) == seeds[5]
    assert chunk_seeds(8, 5) != seeds[5]
    assert all(0 <= s["pythia"] < 900_000_000 for s in seeds)


def test_killed_run_resumes_to_exactly_the_uninterrupted_events(tmp_path: Path) -> None:
    args = [
        "z-ll",
        "--events",
        "400",
        "--chunk-size",
        "100",
        "--workers",
        "0",
        "--detector",
        "none",
        "--seed",
        "5",
        "--no-progress",
    ]
    full = tmp_path / "full"
    subprocess.run(
        [sys.executable, "-m", "heplab", "generate", *args, "--out", str(full)],
        check=True,
        capture_output=True,
    )

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "heplab", "generate", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "chunk-000001.parquet").exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = read_manifest(killed)
    assert 1 <= len(partial.chunks) < 4, "the kill should land mid-run"

    done = subprocess.run(
        [sys.executable, "-m", "heplab", "generate", *args, "--out", str(killed)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert "400 events" in done.stdout
    a, b = _read_run(full), _read_run(killed)
    assert len(a) == len(b) == 400
    assert ak.array_equal(a.event_id, np.arange(400))
    assert ak.array_equal(a.event_id, b.event_id)
    assert ak.array_equal(a.particles, b.particles)
    assert ak.array_equal(a.partons, b.partons)
    assert not list(killed.glob("*.tmp")), "no temporary file may be left behind"


def test_dask_workers_make_the_same_events_as_in_process(tmp_path: Path) -> None:
    cfg = build_config("z-ll", events=200, chunk_size=50, seed=3, detector="none")
    produce(cfg, tmp_path / "sync", workers=0, progress=False)
    produce(cfg, tmp_path / "dask", workers=2, progress=False)
    a, b = _read_run(tmp_path / "sync"), _read_run(tmp_path / "dask")
    assert ak.array_equal(a.particles, b.particles)
    m = read_manifest(tmp_path / "dask")
    assert m.complete
    assert m.total_events == 200
    assert len({c.seed for c in m.chunks.values()}) == 4


def test_other_configuration_is_refused_and_force_replaces(tmp_path: Path) -> None:
    out = tmp_path / "run"
    produce(
        build_config("z-ll", events=20, chunk_size=10, seed=1, detector="none"),
        out,
        workers=0,
        progress=False,
    )
    other = build_config("z-ll", events=20, chunk_size=10, seed=2, detector="none")
    with pytest.raises(OutputExistsError, match=r"differs in: seed.*--force"):
        produce(other, out, workers=0, progress=False)
    before = _read_run(out)
    produce(other, out, workers=0, progress=False, force=True)
    after = _read_run(out)
    assert read_manifest(out).config["seed"] == 2
    assert not ak.array_equal(before.particles.px, after.particles.px)
    # a folder of somebody else's files is never touched
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(OutputExistsError, match="not a heplab run"):
        produce(other, foreign, workers=0, progress=False, force=True)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_impossible_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="--events"):
        build_config("z-ll", events=-5)
    with pytest.raises(ConfigError, match="--chunk-size"):
        build_config("z-ll", events=5, chunk_size=0)
    with pytest.raises(ConfigError, match="--pileup"):
        build_config("z-ll", events=5, pileup=-1)
    with pytest.raises(ConfigError, match="unknown process"):
        build_config("zz-top", events=5)
    with pytest.raises(ConfigError, match="--lhe"):
        build_config("thq", events=5)
    with pytest.raises(ConfigError, match="pp process"):
        build_config("ee-z", events=5, pileup=10)


def test_lhe_file_is_showered_in_chunks(tmp_path: Path, shared_data: Path) -> None:
    lhe = shared_data / "pylhe-testfile-pythia-6.413-ttbar.lhe"
    cfg = build_config(None, events=None, lhe=lhe, chunk_size=30, detector="none")
    assert cfg["events"] == 100
    assert cfg["beams"] == "pp"
    m = produce(cfg, tmp_path / "lhe", workers=0, progress=False)
    assert [m.chunks[i].events for i in range(4)] == [30, 30, 30, 10]
    ev = _read_run(tmp_path / "lhe")
    n_tops = ak.to_numpy(ak.sum(np.abs(ev.partons.pid) == 6, axis=1))
    assert (n_tops == 2).all()
    # Pythia showers each LHE event once: no event repeated across chunks
    lead = ak.to_numpy(ak.firsts(ev.partons.px))
    assert len(np.unique(lead)) == 100


def test_missing_lhe_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        build_config(None, events=None, lhe=tmp_path / "nope.lhe")


def test_pileup_chunks_do_not_depend_on_who_made_the_mpi_init_file(tmp_path: Path) -> None:
    cfg = build_config("z-ll", events=10, chunk_size=5, detector="none", pileup=5, pileup_pool=20)
    alone, _ = generate_chunk(cfg, 1)  # makes its own initialisation in a temporary folder
    produce(cfg, tmp_path / "run", workers=0, progress=False)
    assert len(list((tmp_path / "run").glob(".pileup-mpi-*.dat"))) == 1
    in_run = read_parquet(tmp_path / "run" / "chunk-000001.parquet")
    assert ak.array_equal(alone.particles, in_run.particles, check_parameters=False)
    assert ak.max(in_run.particles.pileup) >= 1
