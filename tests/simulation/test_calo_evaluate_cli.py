"""``heplab calo evaluate GENERATED.h5 REFERENCE.h5 --out DIR [--json]``."""

from __future__ import annotations

import json

import pytest
from calo_eval_toys import shifted_deeper, toy_geometry, toy_showers

from heplab.cli import main
from heplab.events.calo import write_showers


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("calo_eval")
    geometry = toy_geometry()
    paths = {
        "reference": write_showers(d / "reference.h5", toy_showers(geometry, 600, 1)),
        "same": write_showers(d / "same.h5", toy_showers(geometry, 300, 2)),
        "deeper": write_showers(d / "deeper.h5", shifted_deeper(toy_showers(geometry, 300, 3))),
        "other": write_showers(d / "other.h5", toy_showers(toy_geometry(n_layers=5), 300, 4)),
    }
    return paths


def test_json_contract_and_report(files, tmp_path, capsys):
    out = tmp_path / "eval"
    main(
        [
            "calo",
            "evaluate",
            str(files["deeper"]),
            str(files["reference"]),
            "--out",
            str(out),
            "--json",
            "--seed",
            "3",
            "--max-showers",
            "500",
            "--classifier-hidden",
            "32,32",
            "--classifier-epochs",
            "20",
        ]
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(line)
    assert list(summary) == ["auc_low", "auc_high", "fpd", "kpd", "floor"]
    for key in ("auc_low", "auc_high", "fpd", "kpd"):
        assert isinstance(summary[key], float), key
        assert isinstance(summary["floor"][key], float), key
    # showers one layer too deep: the classifiers separate them, the floor does not
    assert summary["auc_high"] > 0.9
    assert summary["auc_low"] > 0.9
    assert summary["floor"]["auc_high"] < 0.7
    assert summary["fpd"] > 10 * summary["floor"]["fpd"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["auc_high"] == pytest.approx(summary["auc_high"])
    assert saved["n_reference"] == 500  # --max-showers
    assert saved["n_showers"] == 250  # halves of the reference
    assert (out / "report.md").is_file()
    assert (out / "classifier_outputs.png").is_file()


def test_refuses_different_geometries_and_existing_output(files, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "calo",
                "evaluate",
                str(files["other"]),
                str(files["reference"]),
                "--out",
                str(tmp_path / "x"),
            ]
        )
    assert exc.value.code == 1
    assert "different geometries" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as exc:
        main(["calo", "evaluate", str(files["same"]), str(files["reference"]), "--out", str(full)])
    assert exc.value.code == 1
    assert "already holds files" in capsys.readouterr().err
    assert (full / "keep.txt").read_text() == "mine"
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "calo",
                "evaluate",
                str(tmp_path / "missing.h5"),
                str(files["reference"]),
                "--out",
                str(tmp_path / "y"),
            ]
        )
    assert exc.value.code == 1
    assert "not found" in capsys.readouterr().err
