"""``heplab tracking clusters``: trains, evaluates and writes its run on a few jet-core events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from heplab.cli import cli


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.slow
def test_clusters_command_writes_a_consistent_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["tracking", "clusters", "--out", str(out), "--events", "6", "--epochs", "2"]
    res = CliRunner().invoke(cli, [*args, "--no-progress"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    # the confusion matrix covers exactly the held-out clusters
    assert sum(map(sum, m["confusion"])) == m["split_sizes"]["test"] == m["clusters"]
    assert (out / "clusters.png").stat().st_size > 0
    assert (out / "best.pt").is_file()
    # single-particle clusters dominate and are recognised even after a short training
    assert m["efficiency"][next(iter(m["efficiency"]))] > 0.5
    again = CliRunner().invoke(cli, [*args, "--no-progress"])
    assert again.exit_code != 0
    assert "not empty" in str(again.exception or again.output)


def test_clusters_command_refuses_too_few_events(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["tracking", "clusters", "--out", str(tmp_path), "-n", "3"])
    assert res.exit_code != 0
    assert ">= 6" in str(res.exception or res.output)
