"""``heplab tracking train`` / ``heplab tracking run`` end to end on toy TrackML files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest
import torch
from click.testing import CliRunner
from tracktoys import make_events

import heplab.cli
from heplab.errors import ConfigError, OutputExistsError
from heplab.events.trackml import write_event
from heplab.reconstruction.tracking.score import score_submission


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread (much faster than two on a shared, busy CPU), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("toys")
    for ev in make_events(6, 120, seed=40):
        write_event(d, ev)
    return d


def invoke(args: list[str]) -> object:
    return CliRunner().invoke(heplab.cli.cli, args, catch_exceptions=True)


@pytest.mark.slow
def test_train_then_run_gnn_and_hough(data_dir: Path, tmp_path: Path, one_thread: None) -> None:
    run_dir = tmp_path / "run"
    args = ["tracking", "train", "--data", str(data_dir), "--out", str(run_dir)]
    res = invoke(
        [
            *args,
            "--epochs",
            "3",
            "--model",
            "filter",
            "--events",
            "5",
            "--seed",
            "1",
            "--no-progress",
        ]
    )
    assert res.exit_code == 0, res.output
    assert "graph efficiency" in res.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train_events"] == 4
    assert metrics["val_events"] == 1
    assert metrics["graph"]["efficiency_pt1"] > 0.95
    assert (run_dir / "efficiency_purity.png").stat().st_size > 1000
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["pipeline"]["model"] == "filter"
    assert cfg["pipeline"]["seed"] == 1
    # a second train into the same run is refused
    again = invoke([*args, "--no-progress"])
    assert isinstance(again.exception, OutputExistsError)

    sub = tmp_path / "gnn.csv"
    res = invoke(
        ["tracking", "run", str(data_dir), "--method", "gnn", "--model", str(run_dir),
         "--out", str(sub), "--no-progress", "--json"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.output.count("ms") >= 6  # per-event timings
    summary = json.loads(res.output.strip().splitlines()[-1])
    table = pacsv.read_csv(sub)
    assert table.column_names == ["event_id", "hit_id", "track_id"]
    assert sorted(set(table.column("event_id").to_pylist())) == [1, 2, 3, 4, 5, 6]
    # the printed score is the TrackML score of the file
    assert summary["score"] == pytest.approx(score_submission(sub, data_dir)["score"], abs=1e-9)
    assert summary["score"] > 0.5
    assert summary["track_efficiency"] > 0.7

    hough = tmp_path / "hough.csv"
    res = invoke(
        ["tracking", "run", str(data_dir), "--method", "hough", "--out", str(hough),
         "--events", "2", "--no-progress"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "TrackML score" in res.output
    assert np.unique(pacsv.read_csv(hough).column("event_id").to_numpy()).tolist() == [1, 2]

    hashed = tmp_path / "hashing.csv"
    res = invoke(
        ["tracking", "run", str(data_dir), "--method", "hashing", "--model", str(run_dir),
         "--out", str(hashed), "--no-progress", "--json"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    # the classifier trained on geometric graphs still finds most tracks on hashed ones
    assert summary["score"] == pytest.approx(score_submission(hashed, data_dir)["score"], abs=1e-9)
    assert summary["track_efficiency"] > 0.5

    seeds = tmp_path / "seeding.csv"
    res = invoke(
        ["tracking", "run", str(data_dir), "--method", "seeding", "--model", str(run_dir),
         "--out", str(seeds), "--no-progress", "--json"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert set(summary["ms_per_event"]) == {"graph", "seeding"}
    assert summary["track_efficiency"] > 0.9


def test_run_refuses_what_it_cannot_do(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    for method in ("gnn", "hashing", "seeding"):
        res = invoke(["tracking", "run", str(data_dir), "--method", method, "--out", str(out)])
        assert isinstance(res.exception, ConfigError)
        assert "--model" in str(res.exception)
    out.write_text("x")
    res = invoke(["tracking", "run", str(data_dir), "--method", "hough", "--out", str(out)])
    assert isinstance(res.exception, OutputExistsError)
    res = invoke(
        [
            "tracking",
            "train",
            "--data",
            str(data_dir),
            "--out",
            str(tmp_path / "r"),
            "--events",
            "1",
        ]
    )
    assert isinstance(res.exception, ConfigError)
