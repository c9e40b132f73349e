"""DCTR-like reweighting of generated showers toward the reference."""

from __future__ import annotations

import numpy as np
import pytest
from calo_eval_toys import scaled, toy_geometry, toy_showers

from heplab.errors import ConfigError, DataError
from heplab.simulation.evaluation_features import high_level_features
from heplab.simulation.evaluation_metrics import ClassifierConfig
from heplab.simulation.reweight import DCTRReweighter, reweight_and_evaluate

SMALL = ClassifierConfig(hidden=(32, 32), epochs=20, batch_size=128, patience=3)
REWEIGHTER = ClassifierConfig(hidden=(64, 64), epochs=40, batch_size=128, patience=5)


@pytest.mark.slow
def test_reweighting_moves_a_mismodelled_generator_toward_the_reference():
    geometry = toy_geometry()
    reference = toy_showers(geometry, 4000, 1)
    # E_tot / E_inc 3 % low (about one resolution): overlapping, but clearly mis-modelled
    generated = scaled(toy_showers(geometry, 4000, 2), 0.97)
    res = reweight_and_evaluate(
        generated,
        reference,
        seed=0,
        reweighter=DCTRReweighter(config=REWEIGHTER),
        evaluate_options={
            "classifier": SMALL,
            "levels": ("high",),
            "fpd_options": {"num_batches": 5, "num_points": 5},
            "kpd_options": {"batch_size": 1000, "num_batches": 5},
        },
    )
    assert res["auc_high_before"] > 0.62
    assert res["auc_high_after"] < res["auc_high_before"] - 0.05
    assert abs(res["auc_high_after"] - 0.5) < 0.1
    assert res["weights"]["mean"] == pytest.approx(1.0)
    assert res["weights"]["effective_fraction"] > 0.3
    # the weighted E_tot / E_inc of the held-out generated showers is back on the reference
    before = res["before"]["separation_power"]["etot_einc"]["value"]
    after = res["after"]["separation_power"]["etot_einc"]["value"]
    assert after < 0.5 * before


def test_weights_follow_the_likelihood_ratio():
    geometry = toy_geometry()
    reference = toy_showers(geometry, 1500, 3)
    generated = scaled(toy_showers(geometry, 1500, 4), 0.97)
    model = DCTRReweighter(config=REWEIGHTER).fit(generated, reference)
    w = model.weights(generated)
    assert w.shape == (len(generated),)
    assert w.mean() == pytest.approx(1.0)
    ratio = high_level_features(generated).column("etot_einc")
    # the generator is too low in E_tot / E_inc: its high showers get the large weights
    high = ratio > np.median(ratio)
    assert w[high].mean() > 1.5 * w[~high].mean()
    with pytest.raises(DataError, match="geometry"):
        model.weights(toy_showers(toy_geometry(n_layers=5), 200, 5))
    with pytest.raises(ConfigError, match="not fitted"):
        DCTRReweighter().weights(generated)
    with pytest.raises(ConfigError, match="clip"):
        DCTRReweighter(clip=(2.0, 3.0))
