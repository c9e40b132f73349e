"""heplab.ml.metrics on distributions with known ROC curves."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from heplab.errors import DataError
from heplab.ml.metrics import auc, json_safe, rejection_at, roc, summary


def gaussians(d: float, n: int = 20000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = np.concatenate([rng.normal(d, 1, n), rng.normal(0, 1, n)])
    y = np.concatenate([np.ones(n, int), np.zeros(n, int)])
    return y, score


@pytest.mark.parametrize("d", [0.5, 1.0, 2.0])
def test_auc_of_two_gaussians_is_phi_d_over_sqrt2(d: float) -> None:
    y, s = gaussians(d)
    expected = norm.cdf(d / math.sqrt(2))
    # Hanley-McNeil-like bound: the AUC's standard error is below ~0.5/sqrt(n)
    assert auc(y, s) == pytest.approx(expected, abs=5 * 0.5 / math.sqrt(20000))


def test_rejection_matches_the_analytic_gaussian_roc() -> None:
    d = 1.5
    y, s = gaussians(d, n=50000)
    for eff in (0.3, 0.5):
        cut = d + norm.ppf(1 - eff)  # signal passes score >= cut with probability eff
        eff_b = norm.sf(cut)
        assert rejection_at(y, s, eff) == pytest.approx(1 / eff_b, rel=0.05)


def test_roc_is_monotone_and_ends_at_one() -> None:
    y, s = gaussians(1.0, n=500)
    es, eb, thr = roc(y, s)
    assert np.all(np.diff(es) >= 0)
    assert np.all(np.diff(eb) >= 0)
    assert es[-1] == 1
    assert eb[-1] == 1
    assert len(thr) == len(es)


def test_summary_and_perfect_separation() -> None:
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.8, 0.9])
    out = summary(y, s)
    assert out["auc"] == 1.0
    assert out["accuracy"] == 1.0
    assert math.isinf(out["rej30"])
    assert math.isinf(out["rej50"])
    safe = json_safe(out)
    assert safe["rej30"] is None
    json.dumps(safe, allow_nan=False)


def test_random_scores_give_rejection_near_inverse_efficiency() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 40000)
    s = rng.random(40000)
    assert auc(y, s) == pytest.approx(0.5, abs=0.02)
    assert rejection_at(y, s, 0.5) == pytest.approx(2.0, rel=0.05)
    assert summary(y, s)["accuracy"] == pytest.approx(0.5, abs=0.02)


def test_bad_input() -> None:
    with pytest.raises(DataError, match="single class"):
        auc([1, 1], [0.1, 0.2])
    with pytest.raises(DataError, match="differ in length"):
        auc([0, 1], [0.1])
    with pytest.raises(DataError, match="NaN"):
        auc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="eff_s"):
        rejection_at([0, 1], [0.1, 0.2], 0.0)
