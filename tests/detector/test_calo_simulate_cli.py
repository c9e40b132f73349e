"""``heplab calo simulate`` end to end on tiny samples."""

from __future__ import annotations

import h5py
import numpy as np
from click.testing import CliRunner

from heplab.cli import cli
from heplab.events.calo import read_showers


def test_simulate_writes_the_public_layouts(tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "e.h5"
    args = ["calo", "simulate", "--particle", "e-", "--energy", "10:100", "--showers", "12",
            "--geometry", "calogan", "--out", str(out), "--seed", "3", "--no-progress"]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "12 e- showers" in result.output
    assert str(out) in result.output
    with h5py.File(out) as f:
        assert set(f) >= {"energy", "layer_0", "layer_1", "layer_2", "overflow"}
        assert f["layer_0"].shape == (12, 3, 96)
        # visible MeV in the cells: ~19 % sampling fraction of 10-100 GeV
        frac = (f["layer_0"][()].sum(axis=(1, 2)) + f["layer_1"][()].sum(axis=(1, 2))
                + f["layer_2"][()].sum(axis=(1, 2))) / (1000 * f["energy"][:, 0])  # fmt: skip
        assert np.all((frac > 0.15) & (frac < 0.22))
    back = read_showers(out)
    assert back.particle == "e-"
    assert back.metadata["seed"] == 3
    assert back.energies.min() >= 10
    assert back.energies.max() <= 100
    # refuses to overwrite without --force
    again = runner.invoke(cli, args)
    assert again.exit_code != 0
    assert runner.invoke(cli, [*args, "--force"]).exit_code == 0

    out2 = tmp_path / "pi.h5"
    result = runner.invoke(
        cli,
        [
            "calo",
            "simulate",
            "--particle",
            "pi+",
            "--energy",
            "50",
            "--showers",
            "5",
            "--geometry",
            "ds2",
            "--out",
            str(out2),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    with h5py.File(out2) as f:
        assert f["incident_energies"].shape == (5, 1)
        assert np.allclose(f["incident_energies"][()], 50_000.0)
        assert f["showers"].shape == (5, 6480)
    assert read_showers(out2).geometry.name == "ds2"


def test_simulate_usage_errors(tmp_path) -> None:
    runner = CliRunner()
    base = ["calo", "simulate", "--showers", "2", "--out", str(tmp_path / "x.h5")]
    assert runner.invoke(cli, [*base, "--particle", "mu-"]).exit_code == 2
    bad = runner.invoke(cli, [*base, "--particle", "e-", "--energy", "abc"])
    assert bad.exit_code != 0
    assert "EMIN:EMAX" in str(bad.exception or bad.output)
    bad = runner.invoke(cli, [*base, "--particle", "e-", "--geometry", "nope"])
    assert bad.exit_code != 0
