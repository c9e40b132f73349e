"""The main job end to end on small samples: events, detector, jets, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from heplab.demo import histogram_peak, run_demo
from heplab.errors import OutputExistsError

pytestmark = pytest.mark.slow


def test_histogram_peak_finds_the_mode() -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(172.5, 8, 3000), rng.uniform(0, 300, 1000)])
    assert abs(histogram_peak(values, 100, 250, 5) - 172.5) < 5


def test_demo_writes_a_report_whose_checks_pass(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    report = run_demo(out, events=400, workers=0, progress=False)
    assert report == out / "report" / "report.md"
    text = report.read_text()
    assert "soft-drop" in text
    assert "Z -> l+l-" in text
    html = (out / "report" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "sdmass.png" in html
    for fig in ("sdmass", "subjet_pairs", "tau32", "mll", "tracker_resolution"):
        assert (out / "report" / f"{fig}.png").stat().st_size > 5000
    results = json.loads((out / "report" / "results.json").read_text())
    checks = {c["quantity"]: c for c in results["checks"]}
    assert checks["Z -> ll mass peak [GeV]"]["ok"]
    assert checks["QCD-jet soft-drop mass median [GeV]"]["ok"]
    assert checks["tracker sigma(pT)/pT vs card formula"]["ok"]
    assert checks["shower peak depth: X0 per e-fold of energy"]["ok"]
    assert checks["e / pi+ BDT AUC (held out)"]["ok"]
    # the trained GNN finds tracks; perfect edge scores on its graph do better still
    trk = results["tracking"]
    assert trk["gnn"]["score"] > 0.4
    assert trk["oracle: perfect edge scores"]["score"] > trk["gnn"]["score"]
    assert (out / "report" / "tracking_event.png").stat().st_size > 5000
    assert 150 < results["top"]["sdmass_peak"] < 195
    assert results["top"]["n_top"] > 100

    # the same demo again resumes (nothing to redo); other settings are refused
    run_demo(out, events=400, workers=0, progress=False)
    with pytest.raises(OutputExistsError, match="--force"):
        run_demo(out, events=500, workers=0, progress=False)
