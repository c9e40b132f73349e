"""The CaloChallenge evaluation: features, separation power, JSD, FPD/KPD, evaluate()."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from calo_eval_toys import scaled, shifted_deeper, toy_geometry, toy_showers
from scipy import integrate, stats

from heplab.detector.calogeometry import geometry_from_dict
from heplab.errors import DataError, OutputExistsError
from heplab.events.calo import ShowerSet
from heplab.simulation.evaluation import evaluate, json_summary
from heplab.simulation.evaluation_features import (
    feature_bins,
    high_level_features,
    histogram,
    separation_power,
    separation_powers,
)
from heplab.simulation.evaluation_metrics import (
    ClassifierConfig,
    classifier_test,
    fpd,
    frechet_distance,
    kpd,
)

# a small network keeps the tests in seconds; evaluate() defaults to the challenge's 3 x 512
SMALL = ClassifierConfig(hidden=(32, 32), epochs=20, batch_size=512, patience=3)
FAST_DISTANCES = {
    "fpd_options": {"num_batches": 5, "num_points": 5},
    "kpd_options": {"batch_size": 1000, "num_batches": 5},
}


@pytest.fixture(scope="module")
def geometry():
    return toy_geometry()


# ---------------------------------------------------------------------------- features
def test_separation_power_limits():
    h = np.array([3.0, 5.0, 2.0, 0.0])
    assert separation_power(h, 2 * h) == pytest.approx(0.0, abs=1e-15)
    assert separation_power([1, 2, 0, 0], [0, 0, 4, 1]) == pytest.approx(1.0)
    # half of the mass shared: S = 1/2 (0.25/0.5 + 0 + 0.25/0.5) = 0.5
    assert separation_power([1, 1, 0], [0, 1, 1]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="positive content"):
        separation_power([0, 0], [1, 1])


def test_feature_histograms_of_disjoint_samples_separate_fully(geometry):
    a = toy_showers(geometry, 500, 1)
    b = scaled(toy_showers(geometry, 500, 2), 3.0)
    seps = separation_powers(high_level_features(a), high_level_features(b))
    # every energy is three times larger: E_tot / E_inc (~1 +- 3 %) histograms do not
    # overlap; layer energies (spread by the 10-100 GeV spectrum) overlap partly
    assert seps["etot_einc"] == pytest.approx(1.0)
    assert min(seps[f"e_layer_{i}"] for i in (2, 3, 4)) > 0.2
    # the shapes (centres, widths, depth) do not change with a global scale
    assert seps["depth"] < 0.05


def test_features_of_a_hand_made_shower(geometry):
    n = geometry.n_voxels
    layer = geometry.layers[3]
    x, y = layer.cell_centres()
    start = geometry.layer_slices()[3].start
    cells = np.zeros((2, n), np.float32)
    # shower 0: 2 GeV in one cell of layer 3; shower 1: two equal cells of layer 3
    cells[0, start + 7] = 2.0
    i, j = 2, 2 + layer.shape[1] * 4  # same radius, alpha bins 4 apart (opposite sides)
    cells[1, start + i] = cells[1, start + j] = 1.5
    shower_set = ShowerSet(np.array([4.0, 6.0]), cells, geometry, "e-")
    f = high_level_features(shower_set)
    assert f.column("etot_einc") == pytest.approx([0.5, 0.5])
    assert f.column("e_layer_3") == pytest.approx([2.0, 3.0])
    assert f.column("cx_layer_3")[0] == pytest.approx(x[7])
    assert f.column("cy_layer_3")[0] == pytest.approx(y[7])
    assert f.column("wx_layer_3")[0] == pytest.approx(0.0, abs=1e-9)
    # two equal deposits: centre half way, width half the distance
    assert f.column("cx_layer_3")[1] == pytest.approx(0.5 * (x[i] + x[j]), abs=1e-9)
    assert f.column("wx_layer_3")[1] == pytest.approx(0.5 * abs(x[i] - x[j]), rel=1e-6)
    assert f.column("depth") == pytest.approx([layer.depth_x0] * 2)
    assert f.column("depth_width") == pytest.approx([0.0, 0.0], abs=1e-9)
    assert f.column("sparsity_layer_3") == pytest.approx([1 / layer.n_cells, 2 / layer.n_cells])
    assert f.column("e_layer_0") == pytest.approx([0.0, 0.0])
    assert f.column("wx_layer_0") == pytest.approx([0.0, 0.0])


def test_calogan_eratio_of_the_two_hottest_cells():
    geo = geometry_from_dict(
        {
            "name": "calogan",
            "layout": "calogan",
            "moliere_radius": 30.0,
            "radiation_length": 5.6,
            "layers": [
                {"kind": "cartesian", "shape": [3, 4], "thickness_x0": 3.0, "cell_size": [10, 5]},
                {"kind": "cartesian", "shape": [2, 2], "thickness_x0": 16.0, "cell_size": [40, 40]},
            ],
        }
    )
    cells = np.zeros((1, geo.n_voxels), np.float32)
    cells[0, [0, 5, 9]] = [3.0, 1.0, 0.5]
    cells[0, 12] = 2.0
    f = high_level_features(ShowerSet(np.array([10.0]), cells, geo, "gamma"))
    assert f.column("eratio_layer_0")[0] == pytest.approx((3.0 - 1.0) / 4.0)
    assert f.column("eratio_layer_1")[0] == pytest.approx(1.0)  # one cell only
    assert f.column("depth")[0] == pytest.approx((4.5 * 1.5 + 2.0 * 11.0) / 6.5)


def test_feature_bins_cover_both_samples():
    bins = feature_bins(np.zeros(100), np.ones(100), n_bins=10)
    counts = histogram(np.array([-5.0, 0.0, 1.0, 9.0]), bins)
    assert counts.sum() == 4  # out-of-range values folded into the end bins
    assert counts[0] == 2
    assert counts[-1] == 2


# ---------------------------------------------------------------------------- FPD, KPD
def test_frechet_distance_of_one_dimensional_gaussians():
    # FD of N(m1, s1^2) and N(m2, s2^2) = (m1 - m2)^2 + (s1 - s2)^2
    value = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([0.0]), np.array([[1.0]]))
    assert value == pytest.approx(1.0 + 1.0)
    s = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert frechet_distance(np.zeros(2), s, np.zeros(2), s) == pytest.approx(0.0, abs=1e-9)


def test_fpd_and_kpd_same_and_shifted_distributions():
    rng = np.random.default_rng(3)
    cov = np.array([[1.0, 0.6, 0.0], [0.6, 1.0, 0.2], [0.0, 0.2, 1.0]])
    ref = rng.multivariate_normal(np.zeros(3), cov, 5000)
    same = rng.multivariate_normal(np.zeros(3), cov, 5000)
    shifted = rng.multivariate_normal([0.5, 0.0, 0.0], cov, 5000)
    options = {"num_batches": 10, "num_points": 5, "normalise": "none"}
    f_same, e_same = fpd(ref, same, **options)
    f_shift, _e_shift = fpd(ref, shifted, **options)
    # the shift of 0.5 in the mean gives FD = 0.25 (covariances equal)
    assert f_shift == pytest.approx(0.25, abs=0.03)
    assert 0.0 <= f_same < 0.005  # finite-sample noise only (~ d / N)
    assert f_shift > 20 * (f_same + e_same)
    k_same, ke_same = kpd(ref, same, batch_size=2000, num_batches=20)
    k_shift, ke_shift = kpd(ref, shifted, batch_size=2000, num_batches=20)
    assert abs(k_same) < 3 * ke_same + 1e-4  # unbiased MMD^2: ~0 within errors
    assert k_shift > 8 * ke_shift
    assert k_shift > 50 * abs(k_same)


# ---------------------------------------------------------------------------- classifier
def _jsd_bits(shift: float) -> float:
    """JSD [bits] of N(0, 1) and N(shift, 1)."""

    def integrand(x: float) -> float:
        p, q = stats.norm.pdf(x), stats.norm.pdf(x, shift)
        m = 0.5 * (p + q)
        return 0.5 * (p * math.log2(p / m) + q * math.log2(q / m))

    return integrate.quad(integrand, -12, 12 + shift)[0]


def test_classifier_auc_and_jsd_match_the_analytic_values():
    rng = np.random.default_rng(5)
    shift = 1.0
    ref = rng.normal(0.0, 1.0, (4000, 1))
    gen = rng.normal(shift, 1.0, (4000, 1))
    res = classifier_test(gen, ref, config=SMALL, seed=1)
    # optimal classifier: AUC = Phi(shift / sqrt 2), JSD from the densities
    assert res.auc == pytest.approx(stats.norm.cdf(shift / math.sqrt(2.0)), abs=0.03)
    # (0.161 bits; a trained classifier's estimate is a lower bound, up to test-split noise)
    assert _jsd_bits(shift) - 0.07 < res.jsd < _jsd_bits(shift) + 0.03
    assert res.n_test == 1600
    same = classifier_test(rng.normal(size=(4000, 1)), ref, config=SMALL, seed=1)
    assert abs(same.auc - 0.5) < 0.05
    assert abs(same.jsd) < 0.03
    quick = ClassifierConfig(hidden=(32, 32), epochs=3, batch_size=512, patience=1)
    disjoint = classifier_test(ref[:1000] + 20.0, ref[:1000], config=quick, seed=1)
    assert disjoint.auc > 0.999
    assert disjoint.jsd > 0.95


# ---------------------------------------------------------------------------- evaluate
@pytest.mark.slow
def test_evaluate_same_distribution_is_at_the_floor(geometry, tmp_path):
    reference = toy_showers(geometry, 6000, 11)
    generated = toy_showers(geometry, 3000, 12)
    out = tmp_path / "eval"
    res = evaluate(
        generated,
        reference,
        out,
        seed=2,
        classifier=SMALL,
        progress=False,
        **FAST_DISTANCES,
    )
    floor = res["floor"]
    for key in ("auc_low", "auc_high"):
        assert abs(res[key] - 0.5) < 0.06, key
        assert abs(floor[key] - 0.5) < 0.06, key
    assert res["fpd"] < 5 * floor["fpd"] + 0.01
    assert res["kpd"] < 3 * res["metrics"]["kpd"]["error"] + abs(floor["kpd"]) + 1e-3
    assert res["metrics"]["separation_power_mean"]["value"] < 0.02
    assert res["n_showers"] == 3000
    saved = json.loads((out / "results.json").read_text())
    assert saved["auc_low"] == pytest.approx(res["auc_low"])
    assert saved["metrics"]["fpd"]["floor"] == pytest.approx(floor["fpd"])
    assert set(saved["separation_power"]["depth"]) == {"value", "floor"}
    report = (out / "report.md").read_text()
    assert "floor" in report
    assert (out / "feature_etot_einc.png").stat().st_size > 1000
    assert (out / "report.html").is_file()
    summary = json_summary(res)
    assert list(summary)[:4] == ["auc_low", "auc_high", "fpd", "kpd"]
    with pytest.raises(OutputExistsError):
        evaluate(generated, reference, out, progress=False)


@pytest.mark.slow
def test_evaluate_flags_an_obviously_wrong_generator(geometry):
    reference = toy_showers(geometry, 3000, 21)
    deeper = shifted_deeper(toy_showers(geometry, 3000, 22))
    res = evaluate(
        deeper,
        reference,
        None,
        seed=0,
        floor=False,
        classifier=SMALL,
        progress=False,
        **FAST_DISTANCES,
    )
    assert res["auc_low"] > 0.95
    assert res["auc_high"] > 0.95
    assert res["metrics"]["jsd_high"]["value"] > 0.8
    assert res["fpd"] > 100 * res["metrics"]["fpd"]["error"]
    assert res["kpd"] > 10 * res["metrics"]["kpd"]["error"]
    assert res["floor"] is None
    # energies scaled by 1.5: the high-level classifier alone sees it at once
    res = evaluate(
        scaled(toy_showers(geometry, 3000, 23), 1.5),
        reference,
        None,
        floor=False,
        classifier=SMALL,
        progress=False,
        levels=("high",),
        **FAST_DISTANCES,
    )
    assert res["auc_high"] > 0.95
    assert res["auc_low"] is None
    assert res["metrics"]["separation_power_max"]["value"] > 0.99


def test_evaluate_refuses_bad_inputs(geometry, tmp_path):
    reference = toy_showers(geometry, 300, 1)
    other = toy_geometry(n_layers=6)
    wrong_geo = toy_showers(other, 300, 2)
    with pytest.raises(DataError, match="different geometries"):
        evaluate(wrong_geo, reference, tmp_path / "a", progress=False)
    with pytest.raises(DataError, match="too few showers"):
        evaluate(toy_showers(geometry, 50, 3), reference, tmp_path / "b", progress=False)
    with pytest.raises(DataError, match="too few showers"):
        evaluate(reference, toy_showers(geometry, 150, 3), None, progress=False)
    bad = toy_showers(geometry, 300, 4)
    bad.showers[5, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        evaluate(bad, reference, None, progress=False)
    with pytest.raises(DataError, match="weights"):
        evaluate(reference, reference, None, weights=np.ones(3), progress=False)
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
def test_evaluate_on_two_engine_samples():
    from heplab.detector.showers import simulate_showers

    reference = simulate_showers("e-", "10:100", n=1200, geometry="ds2", seed=31)
    generated = simulate_showers("e-", "10:100", n=600, geometry="ds2", seed=32)
    res = evaluate(
        generated, reference, None, seed=1, classifier=SMALL, progress=False, **FAST_DISTANCES
    )
    # 600 vs 600 showers: the AUC's statistical spread is ~0.035 on the 240-shower test split
    for key in ("auc_low", "auc_high"):
        assert abs(res[key] - 0.5) < 0.12, key
        assert abs(res["floor"][key] - 0.5) < 0.12, key
    assert (
        res["metrics"]["separation_power_mean"]["value"]
        < 3 * (res["metrics"]["separation_power_mean"]["floor"])
    )
    wrong = evaluate(
        scaled(generated, 1.5),
        reference,
        None,
        floor=False,
        classifier=SMALL,
        progress=False,
        levels=("high",),
        **FAST_DISTANCES,
    )
    # E_tot / E_inc 50 % high is ~10 resolutions away: its histograms do not overlap; the
    # small test network on 360 + 360 training showers already reaches AUC ~0.85
    assert wrong["separation_power"]["etot_einc"]["value"] > 0.95
    assert wrong["auc_high"] > 0.75
