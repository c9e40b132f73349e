"""Synthetic, physics-shaped top-like vs QCD-like jets for the tagger tests.

The jets are consistent: massless constituents with (px, py, pz, E) from (pT, eta, phi);
top-like signal = three hard prongs placed so that the jet mass is near 172 GeV; QCD-like
background = one hard core with a soft wide spray. 20-60 constituents per jet.
"""

from __future__ import annotations

import awkward as ak
import numpy as np


def synthetic_jets(n: int, seed: int) -> ak.Array:
    """``n`` jets, half signal (label 1), half background (label 0), shuffled."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) < n // 2).astype(np.int8)
    counts = rng.integers(20, 61, n)
    jet_of = np.repeat(np.arange(n), counts)
    total = int(counts.sum())
    pt_jet = rng.uniform(500, 700, n)
    sig = y == 1
    # signal: 3 prongs on a circle of radius r = m / pT (m^2 ~ pT^2 r^2 for equal shares)
    r = rng.normal(172, 10, n) / pt_jet
    ang = rng.uniform(0, 2 * np.pi, n)[:, None] + np.array([0, 2.1, 4.2])[None, :]
    prong_eta, prong_phi = r[:, None] * np.cos(ang), r[:, None] * np.sin(ang)
    prong_share = rng.dirichlet([6.0, 6.0, 6.0], n)
    prong = rng.integers(0, 3, total)
    # background: 80 % of the pT in a core (first half of the particles), the rest sprayed
    rank = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    core = rank < counts[jet_of] // 2
    w = rng.exponential(1.0, total)
    share_sig = (
        prong_share[jet_of, prong]
        * w
        / np.bincount(jet_of * 3 + prong, weights=w, minlength=3 * n)[jet_of * 3 + prong]
    )
    w_core = np.bincount(jet_of, weights=w * core, minlength=n)[jet_of]
    w_spray = np.bincount(jet_of, weights=w * ~core, minlength=n)[jet_of]
    share_bkg = np.where(core, 0.8 * w / w_core, 0.2 * w / w_spray)
    s = sig[jet_of]
    share = np.where(s, share_sig, share_bkg)
    width = np.where(s, 0.03, np.where(core, 0.03, 0.3))
    deta = np.where(s, prong_eta[jet_of, prong], 0.0) + rng.normal(0, 1, total) * width
    dphi = np.where(s, prong_phi[jet_of, prong], 0.0) + rng.normal(0, 1, total) * width
    pt = pt_jet[jet_of] * share
    eta0, phi0 = rng.uniform(-1.5, 1.5, n), rng.uniform(-np.pi, np.pi, n)
    eta, phi = eta0[jet_of] + deta, phi0[jet_of] + dphi
    px, py, pz, e = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)
    pid = rng.choice(np.array([211, -211, 22, 130, 11]), total)
    charge = np.where(pid == 211, 1, np.where((pid == -211) | (pid == 11), -1, 0))
    sums = [np.bincount(jet_of, weights=c, minlength=n) for c in (px, py, pz, e)]
    mass = np.sqrt(np.maximum(sums[3] ** 2 - sums[0] ** 2 - sums[1] ** 2 - sums[2] ** 2, 0))
    tau1 = rng.uniform(0.1, 0.3, n)
    tau21 = np.where(sig, rng.beta(4, 4, n), rng.beta(5, 3, n))
    tau32 = np.where(sig, rng.beta(3, 5, n), rng.beta(6, 3, n))
    fields: dict[str, object] = {
        "jet_pt": np.hypot(sums[0], sums[1]).astype(np.float32),
        "jet_eta": eta0.astype(np.float32),
        "jet_mass": mass.astype(np.float32),
        "jet_sdmass": mass.astype(np.float32),
        "jet_tau1": tau1.astype(np.float32),
        "jet_tau2": (tau1 * tau21).astype(np.float32),
        "jet_tau3": (tau1 * tau21 * tau32).astype(np.float32),
        "jet_nparticles": counts.astype(np.int32),
        "label": y,
    }
    for name, values in {
        "part_px": px,
        "part_py": py,
        "part_pz": pz,
        "part_energy": e,
        "part_deta": deta,
        "part_dphi": dphi,
        "part_charge": charge,
    }.items():
        fields[name] = ak.unflatten(values.astype(np.float32), counts)
    fields["part_pid"] = ak.unflatten(pid.astype(np.int32), counts)
    jets = ak.zip(fields, depth_limit=1)
    return jets[rng.permutation(n)]


def synthetic_splits() -> dict[str, ak.Array]:
    """The train (400) / val (150) / test (300) jets the tagger tests share."""
    return {
        "train": synthetic_jets(400, 1),
        "val": synthetic_jets(150, 2),
        "test": synthetic_jets(300, 3),
    }
