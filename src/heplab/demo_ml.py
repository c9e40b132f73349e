"""The tracking and calorimetry parts of ``heplab demo`` (small, a few tens of seconds).

- Tracking: the demo's boosted-ttbar events (mu = 0) through the TrackML-like tracker
  (:mod:`heplab.detector.silicon`); an Interaction Network trained on 30 events and the
  Hough transform find the tracks of ten held-out events, beside the oracle of perfect
  edge scores on the same graph (the graph's ceiling); TrackML score and track efficiency
  (pT > 1 GeV, >= 5 hits); an event display. Dense boosted-top jets are hard: the short
  CPU training reaches about 0.6 of the score (the oracle about 0.9).
- Calorimetry: the shower engine's longitudinal profile of electrons on the ds2-like
  geometry against GFlash's peak depth T = ln(E / E_c) - 0.858 (hep-ex/0001020), and an
  e / pi+ BDT on shower shapes (CaloGAN geometry) with its held-out AUC and pion rejection.

Each function adds a report section and its checks (``check(name, value, fmt, expected,
ok)``, as :func:`heplab.demo._check` without the list).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["calo_section", "tracking_section"]

Check = Callable[[str, float, str, str, Callable[[float], bool]], None]


def tracking_section(
    report: Any, events: Any, work_dir: Path, fig_dir: Path, check: Check, seed: int
) -> dict[str, Any]:
    """Track finding on the demo's ttbar events; returns the numbers it reports."""
    import matplotlib.pyplot as plt

    from heplab.detector.silicon import simulate_events
    from heplab.reconstruction.tracking.metrics import TrackTally, tally_tracks
    from heplab.reconstruction.tracking.pipeline import (
        PipelineConfig,
        reconstruct,
        reconstruct_event,
        train_pipeline,
    )
    from heplab.reconstruction.tracking.score import score_event

    if len(events) < 15:
        report.heading("Tracking")
        report.text(f"Skipped: {len(events)} ttbar events, the tracking part needs 15 or more.")
        return {}
    # 30 / 3 / 10 events for training / validation / test, fewer for a small demo
    n_test = min(10, len(events) // 4)
    n_val = max(1, min(3, len(events) // 10))
    n_train = min(30, len(events) - n_test - n_val)
    t0 = time.perf_counter()
    tml = list(simulate_events(events[: n_train + n_val + n_test], seed=seed))
    t_sim = (time.perf_counter() - t0) / max(len(tml), 1) * 1e3
    train, val, test = tml[:n_train], tml[n_train : n_train + n_val], tml[n_train + n_val :]
    t0 = time.perf_counter()
    trained = train_pipeline(
        # per-pair cut windows overfit a few dozen events: plain cuts here
        train,
        val,
        work_dir / "gnn",
        PipelineConfig(epochs=12, seed=seed, pair_windows=False),
        force=True,
    )
    t_train = time.perf_counter() - t0
    results: dict[str, Any] = {"sim_ms_per_event": t_sim, "train_seconds": t_train}
    display = None
    methods = ("gnn", "hough", "oracle: perfect edge scores")
    for method in methods:
        tally, scores, ms = TrackTally(), [], 0.0
        for ev in test:
            if method.startswith("oracle"):
                sub, stage_ms = reconstruct_event(ev, trained.pipeline, scores="perfect")
            else:
                sub, stage_ms = reconstruct(ev, method, trained.pipeline)
            assert ev.truth is not None
            scores.append(score_event(ev.truth, sub, name=f"event {ev.event_id}"))
            tally = tally + tally_tracks(ev, sub["track_id"])
            ms += sum(stage_ms.values())
            if display is None and method == "gnn":
                display = (ev, sub["track_id"])
        results[method] = {
            "score": float(np.mean(scores)),
            **tally.summary(),
            "ms_per_event": ms / len(test),
        }
    hits = float(np.mean([len(ev) for ev in test]))
    report.heading("Tracking: boosted ttbar (mu = 0) in the TrackML-like tracker")
    report.text(
        f"{len(tml)} events through the silicon tracker ({t_sim:.0f} ms/event, {hits:.0f} "
        f"hits/event); an Interaction Network trained on {n_train} events ({t_train:.0f} s) "
        f"and the Hough transform, on {len(test)} held-out events. Track efficiency: "
        "particles with pT > 1 GeV and at least 5 hits."
    )
    report.table(
        ["method", "TrackML score", "track efficiency", "fake rate", "duplicate rate", "ms/event"],
        [
            (
                name,
                f"{r['score']:.3f}",
                f"{r['track_efficiency']:.3f}",
                f"{r['fake_rate']:.3f}",
                f"{r['duplicate_rate']:.3f}",
                f"{r['ms_per_event']:.0f}",
            )
            for name, r in ((m, results[m]) for m in methods)
        ],
    )
    if display is not None:
        ev, track = display
        fig, ax = plt.subplots(figsize=(6.5, 6.5))
        x, y = ev.hits["x"], ev.hits["y"]
        ids, counts = np.unique(track, return_counts=True)
        long = np.isin(track, ids[counts >= 5])
        ax.scatter(x[~long], y[~long], s=1, c="0.75", label="other hits")
        rng = np.random.default_rng(0)
        colours = rng.permutation(len(ids))[np.searchsorted(ids, track[long])]
        ax.scatter(x[long], y[long], s=2, c=colours, cmap="tab20", label="GNN tracks")
        ax.set_xlabel("x [mm]")
        ax.set_ylabel("y [mm]")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize="small", markerscale=4)
        report.figure(
            fig,
            "tracking_event",
            f"Event {ev.event_id}: hits in x-y coloured by GNN track (>= 5 hits)",
            fig_dir,
        )
    report.results["tracking"] = results
    check(
        "GNN TrackML score (ttbar, mu = 0)",
        results["gnn"]["score"],
        "{:.3f}",
        "> 0.5",
        lambda v: v > 0.5,
    )
    check(
        "GNN track efficiency (pT > 1 GeV)",
        results["gnn"]["track_efficiency"],
        "{:.3f}",
        "> 0.7",
        lambda v: v > 0.7,
    )
    return results


def _gamma_profile(t: np.ndarray, a: float, b: float, norm: float) -> np.ndarray:
    from scipy.special import gammaln

    return norm * np.exp((a - 1) * np.log(b * t) + np.log(b) - b * t - gammaln(a))


def calo_section(
    report: Any, work_dir: Path, fig_dir: Path, check: Check, seed: int
) -> dict[str, Any]:
    """Shower-engine profiles against GFlash and an e / pi BDT; returns the numbers."""
    import matplotlib.pyplot as plt
    from scipy.optimize import curve_fit

    from heplab.detector.calogeometry import load_geometry
    from heplab.detector.showers import simulate_showers
    from heplab.reconstruction.calorimetry.pid import train_pid

    geo = load_geometry("ds2")
    depth = np.array([layer.depth_x0 for layer in geo.layers])
    energies = (10.0, 100.0, 1000.0)
    fig, ax = plt.subplots(figsize=(7, 5))
    peaks = []
    t0 = time.perf_counter()
    for i, energy in enumerate(energies):
        showers = simulate_showers("e-", energy, "flat", 300, geo, seed=seed + i)
        profile = showers.layer_energies().mean(axis=0) / geo.layers[0].thickness_x0
        (a, b, _), _ = curve_fit(_gamma_profile, depth, profile, p0=(4.0, 0.5, profile.sum()))
        peaks.append((a - 1) / b)
        ax.plot(depth, profile / profile.sum(), marker=".", label=f"e-, {energy:.0f} GeV")
    t_profiles = time.perf_counter() - t0
    ax.set_xlabel("depth [X0]")
    ax.set_ylabel("fraction of visible energy per layer")
    ax.legend(loc="best", fontsize="small")
    report.heading("Calorimetry: the shower engine (GFlash-style, simpler than Geant4)")
    report.figure(
        fig,
        "calo_profiles",
        "Mean longitudinal profiles of electron showers (ds2-like geometry)",
        fig_dir,
    )
    expected = [float(np.log(e / geo.critical_energy) - 0.858) for e in energies]
    report.table(
        ["energy [GeV]", "fitted peak depth [X0]", "GFlash ln(E/E_c) - 0.858 [X0]"],
        [
            (f"{e:.0f}", f"{p:.2f}", f"{x:.2f}")
            for e, p, x in zip(energies, peaks, expected, strict=True)
        ],
    )
    slope = float(np.polyfit(np.log(energies), peaks, 1)[0])

    t0 = time.perf_counter()
    electrons = simulate_showers("e-", "10:100", "flat", 800, "calogan", seed=seed + 10)
    pions = simulate_showers("pi+", "10:100", "flat", 800, "calogan", seed=seed + 11)
    pid = train_pid(electrons, pions, model="bdt", out_dir=work_dir / "pid", seed=seed)
    t_pid = time.perf_counter() - t0
    m = pid.metrics
    n_pions = int(np.sum(pid.labels == 0))
    rej90 = (
        f"{m['rej90']:.0f}"
        if np.isfinite(m["rej90"])
        else f"above {n_pions} (none of the {n_pions} held-out pions passes)"
    )
    report.text(
        f"Electron / charged-pion identification on the CaloGAN geometry (10-100 GeV, "
        f"800 + 800 showers, BDT on shower shapes, {t_pid:.0f} s with the simulation): "
        f"held-out AUC {m['auc']:.4f}, pion rejection at 90 % electron efficiency "
        f"{rej90}."
    )
    results = {
        "peak_depths": dict(zip([str(e) for e in energies], peaks, strict=True)),
        "gflash_peak_depths": dict(zip([str(e) for e in energies], expected, strict=True)),
        "peak_slope_per_efold": slope,
        "profile_seconds": t_profiles,
        "pid_auc": float(m["auc"]),
        "pid_rej90": float(m["rej90"]),
    }
    report.results["calorimetry"] = results
    check(
        "shower peak depth: X0 per e-fold of energy",
        slope,
        "{:.2f}",
        "1 (GFlash) within 0.15",
        lambda v: abs(v - 1.0) < 0.15,
    )
    check("e / pi+ BDT AUC (held out)", float(m["auc"]), "{:.4f}", "> 0.99", lambda v: v > 0.99)
    return results
