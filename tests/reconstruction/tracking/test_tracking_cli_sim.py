"""`heplab tracking generate` and `heplab tracking score` end to end (Pythia, tiny runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import heplab.cli
from heplab.events.trackml import event_ids, iter_events, read_event


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(heplab.cli.cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``heplab.cli.main`` (which turns heplab errors into one line and exit 1)."""
    code = 0
    try:
        heplab.cli.main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trackml") / "run"
    code, text = _invoke(
        "tracking", "generate", "--events", "2", "--pileup", "0", "--out", str(out),
        "--seed", "5", "--events-per-chunk", "1", "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert code == 0, text
    assert "2 events of ttbar" in text
    return out


def test_generate_writes_trackml_events(run_dir: Path) -> None:
    assert event_ids(run_dir) == [1000, 1001]
    for event in iter_events(run_dir):
        assert event.truth is not None
        assert event.particles is not None
        assert event.cells is not None
        assert len(event) > 200  # a ttbar event leaves hundreds of hits
        assert event.truth["weight"].sum() == pytest.approx(1.0, abs=1e-4)
        real = event.truth["particle_id"] != 0
        # no pile-up: every particle comes from the hard scatter (interaction 0)
        assert np.all(event.truth["particle_id"][real] >> 28 == 1)
        # hits lie on the tracker: |z| < 3 m, r < 1.03 m
        r = np.hypot(event.hits["x"], event.hits["y"])
        assert r.max() < 1030
        assert np.abs(event.hits["z"]).max() < 3000
        # ~10 % noise (the geometry's setting)
        assert 0.05 < (~real).mean() < 0.15


def test_generate_resumes_and_refuses_other_settings(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hits = run_dir / "event000001001-hits.csv"
    before = hits.stat().st_mtime_ns
    code, text = _invoke(
        "tracking", "generate", "--events", "2", "--out", str(run_dir), "--seed", "5",
        "--events-per-chunk", "1", "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert code == 0, text
    assert hits.stat().st_mtime_ns == before
    code, text = _main(
        capsys, "tracking", "generate", "--events", "2", "--out", str(run_dir), "--seed", "6",
        "--events-per-chunk", "1", "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert code == 1
    assert "--force" in text
    assert hits.stat().st_mtime_ns == before
    code, text = _invoke(
        "tracking", "generate", "--events", "2", "--out", str(run_dir), "--seed", "6",
        "--events-per-chunk", "1", "--workers", "0", "--no-progress", "--force",
    )  # fmt: skip
    assert code == 0, text
    assert "hits/event" in text
    assert event_ids(run_dir) == [1000, 1001]
    assert hits.stat().st_mtime_ns != before


def test_score_command_on_perfect_and_bad_submissions(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["event_id,hit_id,track_id"]
    for eid in event_ids(run_dir):
        truth = read_event(run_dir, eid, parts=("truth",)).truth
        assert truth is not None
        track = np.unique(truth["particle_id"], return_inverse=True)[1]
        rows += [f"{eid},{h},{t}" for h, t in zip(truth["hit_id"], track, strict=True)]
    sub = tmp_path / "perfect.csv"
    sub.write_text("\n".join(rows) + "\n")
    code, text = _invoke("tracking", "score", str(sub), str(run_dir), "--json")
    assert code == 0, text
    assert json.loads(text) == {"score": pytest.approx(1.0, abs=1e-5), "events": 2}
    assert list(json.loads(text)) == ["score", "events"]
    code, text = _invoke("tracking", "score", str(sub), str(run_dir))
    assert code == 0
    assert "over 2 event(s)" in text
    sub.write_text("\n".join(rows[:-1]) + "\n")
    code, text = _main(capsys, "tracking", "score", str(sub), str(run_dir))
    assert code == 1
    assert "perfect.csv: event 1001" in text
    assert "missing" in text


@pytest.mark.slow
def test_generate_with_pileup(tmp_path: Path) -> None:
    out = tmp_path / "pu"
    code, text = _invoke(
        "tracking", "generate", "--events", "1", "--pileup", "3", "--out", str(out),
        "--process", "z-ll", "--seed", "2", "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert code == 0, text
    event = read_event(out, 1000)
    assert event.particles is not None
    interactions = np.unique(event.particles["particle_id"] >> 28)
    assert interactions[0] == 1  # the hard scatter
    assert len(interactions) > 1  # and pile-up vertices (Poisson(3) > 0 with p = 95 %)
