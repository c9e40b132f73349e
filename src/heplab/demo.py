"""``heplab demo``: the main job on built-in defaults.

It produces boosted ttbar, QCD dijet and Z -> l+l- events with Pythia 8 and the ATLAS-like
detector card, a charged-pion gun for the tracker, clusters anti-kt R = 0.8 jets, and
writes a report (Markdown, HTML, JSON, figures) whose checks show the physics is right:
the top mass peak in the soft-drop mass of top jets, the W among their subjet pairs, QCD
jets well below, the Z peak in the dilepton mass, and the tracker resolution against its
formula. Then the ML tasks of :mod:`heplab.demo_ml`: track finding with a GNN and the
Hough transform on the ttbar events in the TrackML-like tracker, and the calorimeter
shower engine against GFlash with an e / pi identification. It takes a few minutes on
two cores and resumes like every heplab run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from heplab import __version__
from heplab.errors import OutputExistsError
from heplab.parallel import local_cluster

__all__ = ["histogram_peak", "run_demo"]

log = logging.getLogger(__name__)

_MARKER = "heplab-demo.json"


def histogram_peak(values: np.ndarray, lo: float, hi: float, width: float) -> float:
    """The centre of the most populated bin (3-bin running sum) of ``values`` in [lo, hi) [GeV]."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    edges = np.arange(lo, hi + 0.5 * width, width)
    counts, _ = np.histogram(v, bins=edges)
    if counts.sum() == 0:
        return math.nan
    smooth = np.convolve(counts, np.ones(3), mode="same")
    i = int(np.argmax(smooth))
    return float(0.5 * (edges[i] + edges[i + 1]))


def _gauss_core(values: np.ndarray, centre: float, half_window: float) -> tuple[float, float]:
    """Mean and sigma of a Gaussian fit to the core of ``values`` (a window around ``centre``)."""
    from scipy.optimize import curve_fit

    v = values[np.isfinite(values) & (np.abs(values - centre) < half_window)]
    if len(v) < 20:
        return math.nan, math.nan
    counts, edges = np.histogram(v, bins=40)
    x = 0.5 * (edges[1:] + edges[:-1])

    def gauss(x: np.ndarray, a: float, mu: float, s: float) -> np.ndarray:
        return a * np.exp(-0.5 * ((x - mu) / s) ** 2)

    try:
        p, _ = curve_fit(gauss, x, counts, p0=[counts.max(), centre, half_window / 3])
    except RuntimeError:
        return float(np.mean(v)), float(np.std(v))
    return float(p[1]), float(abs(p[2]))


def _prepare(out: Path, settings: dict[str, Any], force: bool) -> None:
    marker = out / _MARKER
    if marker.is_file():
        old = json.loads(marker.read_text())
        if old != settings and not force:
            raise OutputExistsError(
                f"{out} holds a demo made with other settings ({old}); "
                "pass --force to replace it or choose another --out"
            )
    elif out.is_dir() and any(out.iterdir()):
        raise OutputExistsError(
            f"{out} is not empty and holds no heplab demo; choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(settings, indent=2) + "\n")


def run_demo(
    out: str | os.PathLike[str] = "heplab-demo",
    *,
    events: int = 3000,
    workers: int = 2,
    seed: int = 1,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Run the demo into ``out``; returns the path of ``report/report.md``."""
    from heplab.events import read_events
    from heplab.generation.production import build_config, produce
    from heplab.reconstruction.jets.production import cluster_run

    out = Path(out)
    settings = {"events": events, "seed": seed, "heplab": __version__}
    _prepare(out, settings, force)
    chunk = max(50, math.ceil(events / max(2, 2 * workers)))
    runs = {
        "ttbar-boosted": build_config("ttbar-boosted", events=events, seed=seed, chunk_size=chunk),
        "qcd-dijet": build_config("qcd-dijet", events=events, seed=seed, chunk_size=chunk),
        "z-ll": build_config("z-ll", events=events, seed=seed, chunk_size=chunk),
        "gun-pion": build_config(
            "gun",
            events=2000,
            seed=seed,
            chunk_size=1000,
            params={"pid": 211, "energy": 50, "eta_min": -1.0, "eta_max": 1.0},
        ),
    }
    timings: dict[str, dict[str, float]] = {}
    with local_cluster(workers) as scheduler:
        for name, config in runs.items():
            t0 = time.perf_counter()
            manifest = produce(
                config, out / "events" / name, scheduler=scheduler, force=force, progress=progress
            )
            timings[name] = _timing(manifest, time.perf_counter() - t0)
        for name in ("ttbar-boosted", "qcd-dijet"):
            t0 = time.perf_counter()
            jm = cluster_run(
                out / "events" / name,
                out / "jets" / name,
                R=0.8,
                ptmin=200.0,
                eta_max=2.0,
                scheduler=scheduler,
                force=force,
                progress=progress,
            )
            timings[name]["jets_wall_s"] = time.perf_counter() - t0
            timings[name]["jets"] = float(jm.total_rows)
            timings[name]["cluster_s"] = sum(
                c.timing.get("cluster", 0.0) for c in jm.chunks.values()
            )

    from heplab.report import Report, hep_style

    hep_style()
    report = Report("heplab demo: events, detector, jets, tracking, calorimetry")
    fig_dir = out / "report"
    fig_dir.mkdir(exist_ok=True)
    report.text(
        f"heplab {__version__}; Pythia 8 at 14 TeV with multi-parton interactions and "
        f"hadronisation; ATLAS-like detector card; {events} events per process, seed {seed}."
    )
    checks: list[tuple[str, str, str, bool]] = []
    _top_section(
        report,
        read_events(out / "jets" / "ttbar-boosted"),
        read_events(out / "jets" / "qcd-dijet"),
        fig_dir,
        checks,
    )
    _zll_section(report, read_events(out / "events" / "z-ll"), fig_dir, checks)
    _tracker_section(
        report, read_events(out / "events" / "gun-pion"), runs["gun-pion"], fig_dir, checks
    )
    from heplab.demo_ml import calo_section, tracking_section

    def check(
        name: str, value: float, fmt: str, expected: str, ok: Callable[[float], bool]
    ) -> None:
        _check(checks, name, value, fmt, expected, ok)

    tracking_section(
        report, read_events(out / "events" / "ttbar-boosted"), out / "ml", fig_dir, check, seed
    )
    calo_section(report, out / "ml", fig_dir, check, seed)
    _timing_section(report, timings)
    report.heading("Checks")
    report.table(
        ["quantity", "measured", "expected", "status"],
        [(q, m, e, "ok" if ok else "FAILED") for q, m, e, ok in checks],
    )
    report.results["checks"] = [
        {"quantity": q, "measured": m, "expected": e, "ok": ok} for q, m, e, ok in checks
    ]
    report.results["timing"] = timings
    path = report.write(fig_dir)
    n_bad = sum(not c[3] for c in checks)
    log.info("demo report: %s (%d of %d checks ok)", path, len(checks) - n_bad, len(checks))
    return path


def _timing(manifest: Any, wall: float) -> dict[str, float]:
    t: dict[str, float] = {"events": float(manifest.total_events), "wall_s": wall}
    for c in manifest.chunks.values():
        for k, v in c.timing.items():
            t[f"{k}_s"] = t.get(f"{k}_s", 0.0) + v
    return t


def _constituents(jets: ak.Array) -> ak.Array:
    return ak.zip(
        {
            "px": jets.part_px,
            "py": jets.part_py,
            "pz": jets.part_pz,
            "energy": jets.part_energy,
        },
        with_name="Momentum4D",
    )


def _hist_figure(
    series: list[tuple[np.ndarray, str]], bins: np.ndarray, xlabel: str, density: bool = True
) -> Any:
    import matplotlib.pyplot as plt
    import mplhep

    fig, ax = plt.subplots(figsize=(7, 5))
    for values, label in series:
        counts, edges = np.histogram(values[np.isfinite(values)], bins=bins)
        mplhep.histplot(counts, edges, ax=ax, label=label, density=density)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("normalised" if density else "entries")
    ax.legend(loc="best", fontsize="small")
    return fig


def _check(
    checks: list[tuple[str, str, str, bool]],
    name: str,
    value: float,
    fmt: str,
    expected: str,
    ok: Callable[[float], bool],
) -> None:
    checks.append((name, fmt.format(value), expected, bool(np.isfinite(value) and ok(value))))


def _top_section(
    report: Any,
    top_jets: ak.Array,
    qcd_jets: ak.Array,
    fig_dir: Path,
    checks: list[tuple[str, str, str, bool]],
) -> None:
    from heplab.reconstruction.jets.substructure import subjet_pair_masses

    def select(jets: ak.Array, label: str) -> ak.Array:
        keep = (jets.jet_pt > 400) & (np.abs(jets.jet_eta) < 2.0) & (jets[label] == 1)
        return jets[keep]

    top = select(top_jets, "label_Tbqq")
    qcd = select(qcd_jets, "label_QCD")
    n_lead = ak.sum(
        (top_jets.jet_index == 0) & (top_jets.jet_pt > 400) & (np.abs(top_jets.jet_eta) < 2)
    )
    frac_top = ak.sum(
        (top_jets.jet_index == 0)
        & (top_jets.jet_pt > 400)
        & (np.abs(top_jets.jet_eta) < 2)
        & (top_jets.label_Tbqq == 1)
    ) / max(int(n_lead), 1)
    report.heading("Boosted top jets (anti-kt R = 0.8, pT > 400 GeV, |eta| < 2)")
    top_sd = ak.to_numpy(top.jet_sdmass)
    qcd_sd = ak.to_numpy(qcd.jet_sdmass)
    peak = histogram_peak(top_sd, 100, 250, 5)
    report.figure(
        _hist_figure(
            [(top_sd, f"t -> bqq' jets ({len(top_sd)})"), (qcd_sd, f"QCD jets ({len(qcd_sd)})")],
            np.linspace(0, 300, 61),
            "soft-drop mass [GeV]",
        ),
        "sdmass",
        "Soft-drop mass (beta = 0, z_cut = 0.1) of top and QCD jets",
        fig_dir,
    )
    pairs_top = ak.to_numpy(ak.flatten(subjet_pair_masses(_constituents(top), n=3), axis=None))
    pairs_qcd = ak.to_numpy(ak.flatten(subjet_pair_masses(_constituents(qcd), n=3), axis=None))
    w_peak = histogram_peak(pairs_top, 40, 140, 4)
    in_w_top = float(np.mean((pairs_top > 65) & (pairs_top < 95))) if len(pairs_top) else math.nan
    in_w_qcd = float(np.mean((pairs_qcd > 65) & (pairs_qcd < 95))) if len(pairs_qcd) else math.nan
    report.figure(
        _hist_figure(
            [(pairs_top, "t -> bqq' jets"), (pairs_qcd, "QCD jets")],
            np.linspace(0, 200, 51),
            "mass of a pair of the 3 exclusive-kt subjets [GeV]",
        ),
        "subjet_pairs",
        "All three subjet-pair masses per jet: the W appears in top jets",
        fig_dir,
    )
    tau32_top = ak.to_numpy(top.jet_tau3 / np.maximum(top.jet_tau2, 1e-9))
    tau32_qcd = ak.to_numpy(qcd.jet_tau3 / np.maximum(qcd.jet_tau2, 1e-9))
    report.figure(
        _hist_figure(
            [(tau32_top, "t -> bqq' jets"), (tau32_qcd, "QCD jets")],
            np.linspace(0, 1, 41),
            "tau_3 / tau_2",
        ),
        "tau32",
        "N-subjettiness ratio tau32 (beta = 1)",
        fig_dir,
    )
    qcd_median = float(np.median(qcd_sd)) if len(qcd_sd) else math.nan
    report.table(
        ["quantity", "top jets", "QCD jets"],
        [
            ("jets", len(top_sd), len(qcd_sd)),
            ("soft-drop mass peak [GeV]", f"{peak:.1f}", f"median {qcd_median:.1f}"),
            ("median tau32", f"{np.median(tau32_top):.3f}", f"{np.median(tau32_qcd):.3f}"),
            ("subjet pairs in 65-95 GeV", f"{in_w_top:.1%}", f"{in_w_qcd:.1%}"),
        ],
    )
    report.results["top"] = {
        "n_top": len(top_sd),
        "n_qcd": len(qcd_sd),
        "sdmass_peak": peak,
        "qcd_sdmass_median": qcd_median,
        "w_peak": w_peak,
        "leading_jet_tbqq_fraction": float(frac_top),
        "tau32_median_top": float(np.median(tau32_top)) if len(tau32_top) else None,
        "tau32_median_qcd": float(np.median(tau32_qcd)) if len(tau32_qcd) else None,
    }
    _check(
        checks,
        "top-jet soft-drop mass peak [GeV]",
        peak,
        "{:.1f}",
        "160-185",
        lambda v: 160 <= v <= 185,
    )
    _check(
        checks,
        "W peak among subjet pairs of top jets [GeV]",
        w_peak,
        "{:.1f}",
        "65-95",
        lambda v: 65 <= v <= 95,
    )
    _check(
        checks,
        "QCD-jet soft-drop mass median [GeV]",
        qcd_median,
        "{:.1f}",
        "< 100",
        lambda v: v < 100,
    )
    _check(
        checks,
        "leading jets labelled t -> bqq'",
        float(frac_top),
        "{:.1%}",
        "> 40%",
        lambda v: v > 0.4,
    )


def _zll_section(
    report: Any, events: ak.Array, fig_dir: Path, checks: list[tuple[str, str, str, bool]]
) -> None:
    from heplab.analysis.resonances import dilepton_mass

    mass, flavour = dilepton_mass(events.pfcands)
    report.heading("Z -> l+l- after the detector response")
    ee, mm = mass[flavour == 11], mass[flavour == 13]
    report.figure(
        _hist_figure(
            [(ee, f"e+e- ({np.isfinite(ee).sum()})"), (mm, f"mu+mu- ({np.isfinite(mm).sum()})")],
            np.linspace(60, 120, 61),
            "dilepton mass [GeV]",
            density=False,
        ),
        "mll",
        "Mass of the opposite-sign same-flavour lepton pair (pT > 20 GeV, |eta| < 2.5)",
        fig_dir,
    )
    peak = histogram_peak(mass, 60, 120, 1)
    mu, sigma = _gauss_core(mass, peak, 6.0)
    eff = float(np.isfinite(mass).mean())
    met = ak.to_numpy(events.met)
    report.table(
        ["quantity", "value"],
        [
            ("events with a pair", f"{eff:.1%}"),
            ("peak [GeV]", f"{peak:.1f}"),
            ("Gaussian core mean / sigma [GeV]", f"{mu:.2f} / {sigma:.2f}"),
            ("median MET [GeV]", f"{np.median(met):.1f}"),
        ],
    )
    report.results["zll"] = {
        "pair_fraction": eff,
        "peak": peak,
        "core_mean": mu,
        "core_sigma": sigma,
        "met_median": float(np.median(met)),
    }
    _check(checks, "Z -> ll mass peak [GeV]", peak, "{:.1f}", "91 +- 3", lambda v: abs(v - 91) <= 3)


def _tracker_section(
    report: Any,
    events: ak.Array,
    config: dict[str, Any],
    fig_dir: Path,
    checks: list[tuple[str, str, str, bool]],
) -> None:
    from heplab.detector import load_card

    card = load_card(config["detector"])
    truth = events.partons[:, 0]
    true_pt = ak.to_numpy(np.hypot(truth.px, truth.py))
    true_eta = ak.to_numpy(np.arcsinh(truth.pz / true_pt))
    pf = events.pfcands
    charged = pf[np.abs(pf.pid) == 211]
    has = ak.num(charged) >= 1
    lead = ak.firsts(charged[ak.argmax(np.hypot(charged.px, charged.py), axis=1, keepdims=True)])
    reco_pt = ak.to_numpy(ak.fill_none(np.hypot(lead.px, lead.py), np.nan))
    ok = ak.to_numpy(has) & np.isfinite(reco_pt)
    response = reco_pt[ok] / true_pt[ok] - 1.0
    expected = float(
        np.sqrt(np.mean(np.asarray(card.tracker.pt_resolution(true_pt[ok], true_eta[ok])) ** 2))
    )
    measured = float(np.std(response))
    err = measured / math.sqrt(2 * max(len(response) - 1, 1))
    report.heading("Tracker: charged-pion gun (E = 50 GeV, |eta| < 1)")
    import matplotlib.pyplot as plt
    import mplhep

    fig, ax = plt.subplots(figsize=(7, 5))
    lim = 5 * expected
    counts, edges = np.histogram(response, bins=np.linspace(-lim, lim, 51))
    mplhep.histplot(counts, edges, ax=ax, label="pT(reco) / pT(true) - 1")
    x = np.linspace(-lim, lim, 200)
    ax.plot(
        x,
        len(response)
        * (edges[1] - edges[0])
        * np.exp(-0.5 * (x / expected) ** 2)
        / (expected * math.sqrt(2 * math.pi)),
        label=f"card formula, sigma = {expected:.4f}",
    )
    ax.set_xlabel("relative pT residual")
    ax.legend(loc="best", fontsize="small")
    report.figure(
        fig,
        "tracker_resolution",
        "Track pT residuals against the card's resolution formula",
        fig_dir,
    )
    report.table(
        ["quantity", "value"],
        [
            ("tracking efficiency", f"{np.mean(ak.to_numpy(has)):.1%}"),
            ("measured sigma(pT)/pT", f"{measured:.4f} +- {err:.4f}"),
            ("card formula", f"{expected:.4f}"),
        ],
    )
    report.results["tracker"] = {
        "measured": measured,
        "error": err,
        "expected": expected,
        "efficiency": float(np.mean(ak.to_numpy(has))),
    }
    _check(
        checks,
        "tracker sigma(pT)/pT vs card formula",
        measured / expected,
        "ratio {:.3f}",
        "1 within 5 sigma (stat.)",
        lambda v: abs(v - 1) < 5 * err / expected,
    )


def _timing_section(report: Any, timings: dict[str, dict[str, float]]) -> None:
    report.heading("Throughput (this machine, summed over workers)")
    rows = []
    for name, t in timings.items():
        n = t.get("events", 0.0)
        pythia = t.get("pythia_s", 0.0) + t.get("pileup_generation_s", 0.0)
        rest = t.get("detector_s", 0.0) + t.get("io_s", 0.0) + t.get("cluster_s", 0.0)
        rows.append(
            (
                name,
                int(n),
                f"{n / max(t['wall_s'], 1e-9):.0f}",
                f"{1e3 * pythia / max(n, 1):.2f}",
                f"{1e3 * t.get('detector_s', 0.0) / max(n, 1):.2f}",
                f"{1e3 * t.get('cluster_s', 0.0) / max(n, 1):.2f}",
                f"{1e3 * t.get('io_s', 0.0) / max(n, 1):.2f}",
                f"{rest / max(pythia, 1e-9):.1%}",
            )
        )
    report.table(
        [
            "sample",
            "events",
            "events/s (wall)",
            "Pythia ms/ev",
            "detector ms/ev",
            "jets ms/ev",
            "I/O ms/ev",
            "(detector+jets+I/O) / Pythia",
        ],
        rows,
    )
