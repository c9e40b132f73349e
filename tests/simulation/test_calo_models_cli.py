"""``heplab calo train`` -> ``heplab calo sample`` on a toy shower file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from calo_model_toys import toy_showers
from click.testing import CliRunner

import heplab.cli
from heplab.events.calo import read_showers, write_showers


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "toy.h5"
    write_showers(path, toy_showers(300, 0))
    return path


def invoke(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(heplab.cli.cli, args, catch_exceptions=False)
    return res.exit_code, res.output


def test_train_then_sample_round_trip(data_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "vae.yaml"
    config.write_text("hidden: [32]\nlatent_dim: 4\nbatch_size: 64\n")
    run = tmp_path / "run"
    train = ["calo", "train", "vae", "--data", str(data_file), "--out", str(run)]
    opts = ["--config", str(config), "--epochs", "2", "--seed", "3", "--no-progress"]
    code, out = invoke([*train, *opts, "--val-fraction", "0.2"])
    assert code == 0, out
    assert "trained vae on 240 e- showers" in out
    meta = json.loads((run / "config.json").read_text())
    assert meta["model"] == "vae"
    assert meta["geometry"] == "toy3x4x4"
    assert meta["config"]["epochs"] == 2
    assert meta["config"]["seed"] == 3
    assert meta["config"]["hidden"] == [32]
    assert meta["train_time_s"] > 0
    assert len(json.loads((run / "history.json").read_text())["model"]["val_losses"]) == 2
    # an existing run is kept unless --force
    with pytest.raises(Exception, match="already holds a run"):
        invoke([*train, *opts])
    code, out = invoke(
        [*train, "--config", str(config), "--epochs", "1", "--no-progress", "--force"]
    )
    assert code == 0, out
    assert json.loads((run / "config.json").read_text())["config"]["epochs"] == 1

    gen_file = tmp_path / "gen.h5"
    sample = ["calo", "sample", str(run), "--showers", "50", "--energy", "20:40"]
    code, out = invoke([*sample, "--out", str(gen_file), "--seed", "7", "--no-progress"])
    assert code == 0, out
    generated = read_showers(gen_file)
    assert len(generated) == 50
    assert generated.geometry.name == "toy3x4x4"
    assert generated.particle == "e-"
    assert generated.metadata["generator"] == "vae"
    assert generated.energies.min() >= 20
    assert generated.energies.max() <= 40
    assert np.all(np.isfinite(generated.showers))
    assert generated.showers.min() >= 0
    # the same seed gives the same file contents; the file is not overwritten silently
    with pytest.raises(Exception, match="exists"):
        invoke([*sample, "--out", str(gen_file)])
    again = tmp_path / "again.h5"
    code, out = invoke([*sample, "--out", str(again), "--seed", "7", "--spectrum", "flat"])
    assert code == 0, out
    np.testing.assert_array_equal(read_showers(again).showers, generated.showers)


def test_cli_errors_are_one_line(
    data_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("latent_dims: 3\n")
    sample = f"calo sample {tmp_path} --showers 5 --out {tmp_path / 'x.h5'} --energy"
    train = f"calo train gan --data {data_file} --out {tmp_path / 'r'}"
    for args, message in [
        (f"{sample} 10:100", "not a trained generator run"),
        (f"{sample} 100:10", "EMIN <= EMAX"),
        (f"calo train gan --data {tmp_path / 'none.h5'} --out {tmp_path / 'r'}", "not found"),
        (f"{train} --val-fraction 1.5", "val-fraction"),
        (f"{train} --config {bad}", "unknown GANConfig keys ['latent_dims']"),
    ]:
        with pytest.raises(SystemExit) as exc:
            heplab.cli.main(args.split())
        assert exc.value.code == 1
        err = capsys.readouterr().err
        assert message in err
        assert "Traceback" not in err
