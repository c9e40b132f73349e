"""The command line: contracts (names, options) and one-line errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def heplab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heplab", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def assert_clean_error(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr


def test_generate_list_shows_the_catalogue() -> None:
    res = heplab("generate", "--list")
    assert res.returncode == 0
    for name in ("ttbar-boosted", "qcd-dijet", "wprime-xy", "gun", "ee-ttbar", "minbias"):
        assert name in res.stdout
    assert "--param pthat_min=400" in res.stdout


def test_help_names_the_contract_options() -> None:
    gen = heplab("generate", "--help").stdout
    for opt in (
        "--events",
        "--out",
        "--seed",
        "--chunk-size",
        "--workers",
        "--scheduler",
        "--detector",
        "--pileup",
        "--sqrts",
        "--lhe",
        "--list",
        "--force",
    ):
        assert opt in gen
    cl = heplab("jets", "cluster", "--help").stdout
    for opt in ("--out", "--algorithm", "--R", "--ptmin", "--max-constituents"):
        assert opt in cl
    assert "--out" in heplab("demo", "--help").stdout


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["generate", "top-quarks", "--events", "5", "--out", "x"],
            ["unknown process 'top-quarks'"],
        ),
        (["generate", "z-ll", "--events", "-5", "--out", "x"], ["--events must be a positive"]),
        (["generate", "z-ll", "--events", "5", "--out", "x", "--detector", "lhcb"], ["lhcb"]),
        (["generate", "--lhe", "missing.lhe", "--out", "x"], ["missing.lhe", "does not exist"]),
        (["info", "no/such/path"], ["no/such/path"]),
        (["jets", "cluster", "no/such/run", "--out", "j"], ["no/such/run"]),
    ],
)
def test_user_errors_are_one_clear_line(
    tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    res = heplab(*args, cwd=tmp_path)
    assert_clean_error(res, "heplab: error:", *needles)
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists(), "a failed command must not leave an output behind"


def test_debug_flag_shows_the_traceback(tmp_path: Path) -> None:
    res = heplab("--debug", "info", "no/such/path", cwd=tmp_path)
    assert res.returncode != 0
    assert "Traceback" in res.stderr


def test_impossible_jet_settings(tmp_path: Path) -> None:
    run = tmp_path / "ev"
    small = ["z-ll", "-n", "20", "--chunk-size", "10", "--workers", "0", "--detector", "none"]
    ok = heplab("generate", *small, "--out", str(run), "--no-progress")
    assert ok.returncode == 0, ok.stderr
    res = heplab("jets", "cluster", str(run), "--out", str(tmp_path / "j"), "--R", "0")
    assert_clean_error(res, "R must be positive")
    res = heplab(
        "jets", "cluster", str(run), "--out", str(tmp_path / "j"), "--max-constituents", "0"
    )
    assert_clean_error(res, "max-constituents")
    # a second generate with another configuration is refused, and the run survives
    res = heplab("generate", *small, "--seed", "9", "--out", str(run))
    assert_clean_error(res, "different configuration", "--force")
    assert len(list(run.glob("chunk-*.parquet"))) == 2
