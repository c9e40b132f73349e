"""Pile-up overlay: Poisson counts, labels, conservation, vertices, rotation, errors."""

from __future__ import annotations

from collections.abc import Callable

import awkward as ak
import numpy as np
import pytest

from heplab.detector import load_card, overlay_pileup, simulate
from heplab.errors import ConfigError, DataError
from heplab.events.schema import PARTICLE_FIELDS


@pytest.fixture
def pool(build: Callable[..., ak.Array]) -> ak.Array:
    """40 minimum-bias events; event j has j + 1 particles (so a draw is recognisable by
    its size), produced at z = 7 mm (their own vertex) with a displaced one each."""
    rng = np.random.default_rng(41)
    counts = np.arange(1, 41)
    total = int(counts.sum())
    vx = np.zeros(total)
    vx[np.cumsum(counts) - 1] = 1.5  # the last particle of each event is displaced
    return build(
        rng.choice([211, -211, 22, 2212], total),
        rng.exponential(0.8, total) + 0.1,
        rng.uniform(-4, 4, total),
        rng.uniform(-np.pi, np.pi, total),
        counts,
        vx=vx,
        vz=7.0,
    )


@pytest.fixture
def hard(build: Callable[..., ak.Array]) -> ak.Array:
    n = 5000
    return build(211, 30.0, 0.5, 0.3, np.full(n, 2), vz=np.tile([2.0, 2.0], n))


def test_poisson_counts_labels_and_conservation(hard: ak.Array, pool: ak.Array) -> None:
    mu = 3.7
    rng = np.random.default_rng(42)
    out = overlay_pileup(hard, pool, mu, rng, beamspot_sigma_z_mm=45.0)
    n = len(hard)
    assert len(out) == n
    assert out.fields == list(PARTICLE_FIELDS)
    for field, dtype in PARTICLE_FIELDS.items():
        assert ak.to_numpy(ak.flatten(out[field])).dtype == np.dtype(dtype)
    # the hard scatter is untouched and first
    assert ak.array_equal(out[:, :2], hard)
    pu = out[:, 2:]
    assert ak.all(pu.pileup > 0)
    k = ak.to_numpy(ak.fill_none(ak.max(pu.pileup, axis=1), 0)).astype(np.int64)
    assert k.mean() == pytest.approx(mu, abs=4 * np.sqrt(mu / n))
    assert k.var() == pytest.approx(mu, rel=0.1)  # Poisson: variance = mean
    # labels 1..k, in order; each interaction is a whole pool event (j + 1 particles)
    flat_label = ak.to_numpy(ak.flatten(pu.pileup)).astype(np.int64)
    evt = np.repeat(np.arange(n), ak.to_numpy(ak.num(pu)))
    key = evt * 1000 + flat_label
    assert np.all(np.diff(key) >= 0)
    _, sizes = np.unique(key, return_counts=True)
    assert np.array_equal(np.unique(key) % 1000, np.concatenate([np.arange(1, kk + 1) for kk in k]))
    # every size 1..40 is a valid pool event; and the total number of particles adds up
    assert sizes.min() >= 1
    assert sizes.max() <= 40
    assert ak.sum(ak.num(out)) == ak.sum(ak.num(hard)) + sizes.sum()
    # rotation about the beam keeps pT, pz, E and pid of each pool particle
    pool_pt = {
        j + 1: np.sort(np.hypot(ak.to_numpy(pool[j].px), ak.to_numpy(pool[j].py)))
        for j in range(len(pool))
    }
    starts = np.concatenate([[0], np.cumsum(sizes)])
    pu_pt = np.hypot(ak.to_numpy(ak.flatten(pu.px)), ak.to_numpy(ak.flatten(pu.py)))
    for i in range(0, len(sizes), 97):
        got = np.sort(pu_pt[starts[i] : starts[i + 1]])
        np.testing.assert_allclose(got, pool_pt[int(sizes[i])], rtol=1e-5)


def test_vertices_follow_the_beam_spot(hard: ak.Array, pool: ak.Array) -> None:
    rng = np.random.default_rng(43)
    sigma = 45.0
    out = overlay_pileup(hard, pool, 5.0, rng, beamspot_sigma_z_mm=sigma)
    pu = ak.flatten(out[:, 2:])
    # one vertex z per interaction: its particles share it (the pool's own z = 7 removed)
    evt = np.repeat(np.arange(len(out)), ak.to_numpy(ak.num(out[:, 2:])))
    key = evt * 1000 + ak.to_numpy(pu.pileup).astype(np.int64)
    uniq, first = np.unique(key, return_index=True)
    vz = ak.to_numpy(pu.vz).astype(np.float64)
    _, inv = np.unique(key, return_inverse=True)
    np.testing.assert_allclose(vz, vz[first][inv], atol=1e-4)
    z = vz[first]
    assert z.mean() == pytest.approx(0.0, abs=4 * sigma / np.sqrt(len(z)))
    assert z.std() == pytest.approx(sigma, rel=4 / np.sqrt(2 * len(z)))
    # displaced production vertices turn with the momenta: d0 and |r_xy| are kept
    vx, vy = ak.to_numpy(pu.vx).astype(np.float64), ak.to_numpy(pu.vy).astype(np.float64)
    disp = np.hypot(vx, vy) > 0.1
    assert disp.sum() == len(uniq)  # one displaced particle per interaction
    np.testing.assert_allclose(np.hypot(vx, vy)[disp], 1.5, rtol=1e-5)
    px, py = ak.to_numpy(pu.px).astype(np.float64), ak.to_numpy(pu.py).astype(np.float64)
    d0 = (vx * py - vy * px) / np.hypot(px, py)
    flat_pool = ak.flatten(pool)
    ppx, ppy = ak.to_numpy(flat_pool.px), ak.to_numpy(flat_pool.py)
    pool_d0 = np.sort(np.abs(1.5 * ppy / np.hypot(ppx, ppy))[ak.to_numpy(flat_pool.vx) > 0])
    got = np.abs(d0[disp])
    idx = np.clip(np.searchsorted(pool_d0, got), 1, len(pool_d0) - 1)
    nearest = np.minimum(np.abs(pool_d0[idx] - got), np.abs(pool_d0[idx - 1] - got))
    assert nearest.max() < 1e-4
    # azimuths are randomised: the pile-up particles' phi is uniform
    phi = np.arctan2(py, px)
    assert np.abs(np.mean(np.cos(phi))) < 0.05
    assert np.abs(np.mean(np.sin(phi))) < 0.05


def test_mu_zero_is_identity_and_errors(hard: ak.Array, pool: ak.Array) -> None:
    rng = np.random.default_rng(44)
    state = rng.bit_generator.state
    assert overlay_pileup(hard, pool, 0.0, rng) is hard
    assert rng.bit_generator.state == state  # no draws
    for mu in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="mu must be"):
            overlay_pileup(hard, pool, mu, rng)
    with pytest.raises(ConfigError, match="sigma_z"):
        overlay_pileup(hard, pool, 1.0, rng, beamspot_sigma_z_mm=-5.0)
    with pytest.raises(DataError, match="pool is empty"):
        overlay_pileup(hard, pool[:0], 1.0, rng)
    with pytest.raises(DataError, match="missing field"):
        overlay_pileup(hard, pool[["px", "py"]], 1.0, rng)


def test_events_records_and_determinism(hard: ak.Array, pool: ak.Array) -> None:
    events = ak.zip({"particles": hard, "pv_z": np.full(len(hard), 2.0)}, depth_limit=1)
    a = overlay_pileup(events, pool, 2.0, np.random.default_rng(5))
    b = overlay_pileup(hard, pool, 2.0, np.random.default_rng(5))
    assert a.fields == ["particles", "pv_z"]
    assert ak.array_equal(a.particles, b)


def test_pileup_then_detector_flags_pileup_tracks(hard: ak.Array, pool: ak.Array) -> None:
    card = load_card("atlas")
    rng = np.random.default_rng(45)
    merged = overlay_pileup(hard[:2000], pool, 10.0, rng, beamspot_sigma_z_mm=50.0)
    reco = simulate(merged, card, rng, pv_z=np.full(2000, 2.0))
    c = ak.flatten(reco.pfcands)
    charged = ak.to_numpy(c.charge) != 0
    from_pv = ak.to_numpy(c.from_pv)
    pt = np.hypot(ak.to_numpy(c.px), ak.to_numpy(c.py))
    hs = charged & (pt > 20)  # the two 30 GeV hard-scatter pions
    assert from_pv[hs].mean() > 0.99
    soft = charged & (pt < 5)  # pile-up tracks: mostly far from z = 2 mm
    # |dz| < ~1 mm out of a 50 mm Gaussian spread: a few per cent pass
    assert from_pv[soft].mean() < 0.1
