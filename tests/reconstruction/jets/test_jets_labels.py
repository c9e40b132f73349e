"""Unit tests of the JetClass truth labels on hand-made parton records."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from heplab.errors import ConfigError, DataError
from heplab.reconstruction.jets import LABELS, cluster_events, label_jets

# partons: (pid, pt, eta, phi, mass, mother[, status])


def _top(b_at=(0.3, 0.1), q1_at=(-0.2, 0.25), q2_at=(0.1, -0.35), w_decay=(2, -1), t_pid=6):
    sign = 1 if t_pid > 0 else -1
    return [
        (t_pid, 500.0, 0.0, 0.0, 173.0, -1, -62),
        (5 * sign, 150.0, *b_at, 4.8, 0),
        (24 * sign, 350.0, 0.0, 0.0, 80.4, 0),
        (w_decay[0], 200.0, *q1_at, 0.0, 2),
        (w_decay[1], 150.0, *q2_at, 0.0, 2),
    ]


def _labels(jets_eta, jets_phi, partons_rows, partons_factory, R=0.8):
    out = label_jets(ak.Array(jets_eta), ak.Array(jets_phi), partons_factory(partons_rows), R)
    names = [[name for name in LABELS if out[name][i]] for i in range(len(out["jet_parton_pid"]))]
    return names, out["jet_parton_pid"].tolist(), out


def test_hadronic_top(partons_factory):
    names, pid, out = _labels([[0.0, 2.0]], [[0.0, 2.0]], [_top()], partons_factory)
    assert names == [["label_Tbqq"], ["label_QCD"]]
    assert pid == [6, 0]
    assert out["label_Tbqq"].dtype == np.int8
    assert out["jet_parton_pid"].dtype == np.int32


@pytest.mark.parametrize(("eta_q", "inside"), [(0.79, True), (0.81, False)])
def test_radius_boundary(partons_factory, eta_q, inside):
    names, pid, _ = _labels([[0.0]], [[0.0]], [_top(q1_at=(eta_q, 0.0))], partons_factory)
    if inside:
        assert names == [["label_Tbqq"]]
        assert pid == [6]
    else:
        # a top jet missing one quark: no label, and not QCD either; the nearest parton
        assert names == [[]]
        assert pid == [5]


def test_w_from_top_with_b_outside_is_wqq(partons_factory):
    names, pid, _ = _labels(
        [[0.0]],
        [[0.0]],
        [_top(b_at=(1.5, 1.0), q1_at=(0.2, 0.2), q2_at=(-0.2, -0.1))],
        partons_factory,
    )
    assert names == [["label_Wqq"]]
    assert pid == [24]


@pytest.mark.parametrize(("lepton", "neutrino"), [(-11, 12), (-13, 14), (-15, 16)])
def test_leptonic_top(partons_factory, lepton, neutrino):
    names, pid, _ = _labels([[0.0]], [[0.0]], [_top(w_decay=(lepton, neutrino))], partons_factory)
    assert names == [["label_Tbl"]]
    assert pid == [6]


def test_antitop_and_two_tops(partons_factory):
    anti = [
        (p[0], p[1], p[2] + 0.0, p[3] + 3.0, p[4], p[5] + 5 if p[5] >= 0 else -1, *p[6:])
        for p in _top(t_pid=-6, w_decay=(1, -2))
    ]
    names, pid, _ = _labels([[0.0, 0.0]], [[0.0, 3.0]], [_top() + anti], partons_factory)
    assert names == [["label_Tbqq"], ["label_Tbqq"]]
    assert pid == [6, -6]


@pytest.mark.parametrize(
    ("daughters", "label"),
    [((5, -5), "label_Hbb"), ((4, -4), "label_Hcc"), ((21, 21), "label_Hgg")],
)
def test_higgs_two_body(partons_factory, daughters, label):
    rows = [
        [
            (25, 400.0, 0.0, 0.0, 125.0, -1, -62),
            (daughters[0], 200.0, 0.2, 0.1, 0.0, 0),
            (daughters[1], 200.0, -0.2, -0.1, 0.0, 0),
        ]
    ]
    names, pid, _ = _labels([[0.0]], [[0.0]], rows, partons_factory)
    assert names == [[label]]
    assert pid == [25]


def _h_vv(v: int, decay1, decay2, shift2=0.0):
    """H -> V V*, V -> decay1, V* -> decay2 (moved by ``shift2`` in eta)."""
    return [
        (25, 600.0, 0.0, 0.0, 125.0, -1, -62),
        (v, 300.0, 0.1, 0.1, 80.0, 0),
        (-v if v == 24 else v, 300.0, -0.1, -0.1, 40.0, 0),
        (decay1[0], 150.0, 0.2, 0.2, 0.0, 1),
        (decay1[1], 150.0, 0.0, 0.2, 0.0, 1),
        (decay2[0], 150.0, -0.2 + shift2, -0.2, 0.0, 2),
        (decay2[1], 150.0, -0.1 + shift2, -0.2, 0.0, 2),
    ]


def test_higgs_four_quarks_and_qql(partons_factory):
    rows = [
        _h_vv(24, (2, -1), (1, -2)),
        _h_vv(23, (2, -2), (1, -1)),
        _h_vv(24, (2, -1), (13, -14)),
        _h_vv(23, (2, -2), (13, -13)),  # H -> Z Z* -> q q l l: no JetClass label
        _h_vv(24, (2, -1), (1, -2), shift2=-1.5),  # the W* quarks outside the jet
    ]
    names, pid, _ = _labels([[0.0]] * 5, [[0.0]] * 5, rows, partons_factory)
    assert names[0] == ["label_H4q"]
    assert names[1] == ["label_H4q"]
    assert names[2] == ["label_Hqql"]
    assert names[3] == []
    # the W from an H never counts as Wqq, even with both of its quarks inside
    assert "label_Wqq" not in names[4]
    assert "label_QCD" not in names[4]
    assert pid[:3] == [25, 25, 25]


def test_z_to_quarks(partons_factory):
    rows = [
        [
            (23, 300.0, 0.0, 0.0, 91.2, -1, -62),
            (1, 150.0, 0.1, 0.1, 0.0, 0),
            (-1, 150.0, -0.1, -0.1, 0.0, 0),
        ]
    ]
    names, pid, _ = _labels([[0.0, 0.0]], [[0.0, 3.0]], rows, partons_factory)
    assert names == [["label_Zqq"], ["label_QCD"]]
    assert pid == [23, 0]


def test_qcd_jets_get_the_nearest_hard_parton(partons_factory):
    rows = [
        [(21, 500.0, 0.1, 0.0, 0.0, -1, 23), (2, 480.0, -0.5, 3.1, 0.0, -1, 23)],
        [],  # an event without hard-process record entries
    ]
    names, pid, _ = _labels(
        [[0.0, -0.4, 2.5], [0.0]], [[0.05, -3.1, 1.0], [0.0]], rows, partons_factory
    )
    assert names == [["label_QCD"]] * 4
    assert pid == [21, 2, 0, 0]


def test_argument_checks(partons_factory):
    partons = partons_factory([_top()])
    with pytest.raises(DataError):
        label_jets(ak.Array([[0.0], [1.0]]), ak.Array([[0.0], [1.0]]), partons, 0.8)
    with pytest.raises(ConfigError):
        label_jets(ak.Array([[0.0]]), ak.Array([[0.0]]), partons, 0.0)
    out = label_jets(ak.Array([[]]), ak.Array([[]]), partons, 0.8)
    assert all(len(v) == 0 for v in out.values())


def test_cluster_events_labels(events_factory, spray_factory):
    rng = np.random.default_rng(10)
    top = _top()
    # particles: sprays along the b and the two W quarks, and a recoiling gluon jet
    particles = spray_factory(150, 0.3, 0.1, 10, 0.02, rng)
    particles += spray_factory(200, -0.2, 0.25, 10, 0.02, rng)
    particles += spray_factory(150, 0.1, -0.35, 10, 0.02, rng)
    particles += spray_factory(480, 0.2, np.pi, 15, 0.05, rng)
    partons = [[*top, (21, 480.0, 0.2, np.pi, 0.0, -1, 23)]]
    jets = cluster_events(events_factory([particles], partons=partons))
    assert len(jets) == 2
    assert jets.label_Tbqq.tolist() == [1, 0]
    assert jets.label_QCD.tolist() == [0, 1]
    assert jets.jet_parton_pid.tolist() == [6, 21]
    assert 150 < float(jets.jet_sdmass[0]) < 200
    # without partons no label is set
    plain = cluster_events(events_factory([particles]))
    assert sum(int(ak.sum(plain[name])) for name in LABELS) == 0
