"""Classifier-based reweighting of generated showers toward a reference (DCTR-like).

Deep neural network using Classification for Tuning and Reweighting (DCTR,
arXiv:1907.08209): a classifier ``f(x)`` trained with binary cross-entropy to tell
reference showers (label 1) from generated ones (label 0), with the two classes weighted to
equal totals, converges to ``f = p_ref / (p_ref + p_gen)``; the likelihood ratio

    w(x) = f(x) / (1 - f(x)) = p_ref(x) / p_gen(x)

reweights the generated sample into the reference. Here ``x`` is the high-level feature set
of :mod:`heplab.simulation.evaluation_features` (``log10 E_inc`` included, so the ratio is
conditional on the incident energy where both samples share its spectrum), the classifier
the evaluation's DNN (:func:`heplab.simulation.evaluation_metrics.train_classifier`),
trained on 80 % of the given showers with early stopping on the other 20 %.
Weights are clipped to ``clip`` (default 1/20 to 20; a generator that never populates a
region of the reference cannot be repaired by weights) and normalised to mean 1 over the
sample they are computed for.

:func:`reweight_and_evaluate` measures the gain honestly: it fits the reweighter on one half
of each sample and runs :func:`heplab.simulation.evaluation.evaluate` on the other halves
without and with the weights (the evaluation trains its own, fresh classifiers there), so
the "after" AUC is that of a new classifier on showers the reweighter has never seen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from heplab.errors import ConfigError, DataError
from heplab.simulation.evaluation_features import high_level_features
from heplab.simulation.evaluation_metrics import (
    ClassifierConfig,
    TrainedClassifier,
    train_classifier,
)

if TYPE_CHECKING:
    from heplab.events.calo import ShowerSet

__all__ = ["DCTRReweighter", "reweight_and_evaluate"]


def _default_config() -> ClassifierConfig:
    return ClassifierConfig(hidden=(128, 128, 128), epochs=50, batch_size=256, patience=5)


@dataclass
class DCTRReweighter:
    """``fit(generated, reference)`` then ``weights(showers)`` (see the module doc).

    Attributes ending in ``_`` are set by :meth:`fit`.
    """

    config: ClassifierConfig = field(default_factory=_default_config)
    clip: tuple[float, float] = (0.05, 20.0)
    validation_fraction: float = 0.2
    threshold: float = 0.0
    seed: int = 0
    classifier_: TrainedClassifier | None = field(default=None, repr=False)
    feature_names_: tuple[str, ...] = ()
    geometry_: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        lo, hi = self.clip
        if not 0 < lo < 1 < hi:
            raise ConfigError(f"clip must be (low, high) with 0 < low < 1 < high, not {self.clip}")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError("validation_fraction must be in (0, 1)")

    def _inputs(self, showers: ShowerSet) -> np.ndarray:
        return high_level_features(showers, threshold=self.threshold).classifier_inputs()

    def fit(self, generated: ShowerSet, reference: ShowerSet) -> DCTRReweighter:
        """Train the classifier reference (1) vs generated (0); returns ``self``."""
        from heplab.simulation.evaluation import check_inputs

        check_inputs(generated, reference)
        if min(len(generated), len(reference)) < 50:
            raise DataError(
                f"too few showers to fit a reweighter ({len(generated)}, {len(reference)})"
            )
        x_gen, x_ref = self._inputs(generated), self._inputs(reference)
        rng = np.random.default_rng(self.seed)

        def cut(n: int) -> tuple[np.ndarray, np.ndarray]:
            order = rng.permutation(n)
            n_val = max(int(self.validation_fraction * n), 1)
            return order[n_val:], order[:n_val]

        (g_tr, g_va), (r_tr, r_va) = cut(len(x_gen)), cut(len(x_ref))

        def part(gi: np.ndarray, ri: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            x = np.concatenate([x_gen[gi], x_ref[ri]])
            y = np.concatenate([np.zeros(len(gi)), np.ones(len(ri))]).astype(np.float32)
            # equal class totals: the classifier then estimates p_ref / (p_ref + p_gen)
            w = np.concatenate([np.full(len(gi), len(ri) / len(gi)), np.ones(len(ri))])
            return x, y, w

        self.classifier_ = train_classifier(
            part(g_tr, r_tr), part(g_va, r_va), self.config, seed=self.seed
        )
        self.feature_names_ = high_level_features(reference[:1]).names
        self.geometry_ = reference.geometry.to_dict()
        return self

    def likelihood_ratio(self, showers: ShowerSet) -> np.ndarray:
        """Unclipped, unnormalised ``f / (1 - f)`` of every shower."""
        if self.classifier_ is None:
            raise ConfigError("the reweighter is not fitted: call fit(generated, reference)")
        if showers.geometry.to_dict() != self.geometry_:
            raise DataError(
                f"the reweighter was fitted on another geometry ({self.geometry_.get('name')!r}) "
                f"than these showers' ({showers.geometry.name!r})"
            )
        p = np.clip(self.classifier_.predict(self._inputs(showers)), 1e-7, 1.0 - 1e-7)
        return p / (1.0 - p)

    def weights(self, showers: ShowerSet) -> np.ndarray:
        """Clipped weights of ``showers`` (generated), normalised to mean 1."""
        w = np.clip(self.likelihood_ratio(showers), *self.clip)
        return w / w.mean()


def _weight_summary(w: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(w.mean()),
        "min": float(w.min()),
        "max": float(w.max()),
        "effective_fraction": float(w.sum() ** 2 / (len(w) * np.sum(w * w))),
    }


def reweight_and_evaluate(
    generated: ShowerSet,
    reference: ShowerSet,
    *,
    seed: int = 0,
    reweighter: DCTRReweighter | None = None,
    evaluate_options: dict[str, Any] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Fit a reweighter on half of each sample, evaluate the other halves before and after.

    ``evaluate_options`` go to :func:`heplab.simulation.evaluation.evaluate` (default
    ``floor=False``, ``progress=False``); with ``out_dir`` the "after" evaluation writes its
    report there. Returns ``auc_low``/``auc_high``/``fpd``/``kpd`` ``_before`` and
    ``_after``, the weights' summary (``effective_fraction = (sum w)^2 / (N sum w^2)``) and
    both evaluations' results.
    """
    from heplab.simulation.evaluation import check_inputs, evaluate

    check_inputs(generated, reference)
    rng = np.random.default_rng(seed)
    g_order, r_order = rng.permutation(len(generated)), rng.permutation(len(reference))
    g_half, r_half = len(generated) // 2, len(reference) // 2
    gen_fit, gen_eval = generated[np.sort(g_order[:g_half])], generated[np.sort(g_order[g_half:])]
    ref_fit, ref_eval = reference[np.sort(r_order[:r_half])], reference[np.sort(r_order[r_half:])]
    model = reweighter or DCTRReweighter(seed=seed)
    model.fit(gen_fit, ref_fit)
    weights = model.weights(gen_eval)
    options = {"floor": False, "progress": False, **(evaluate_options or {})}
    before = evaluate(gen_eval, ref_eval, None, seed=seed, **options)
    after = evaluate(
        gen_eval, ref_eval, out_dir, seed=seed, weights=weights, force=force, **options
    )
    out: dict[str, Any] = {}
    for key in ("auc_low", "auc_high", "fpd", "kpd"):
        out[f"{key}_before"] = before[key]
        out[f"{key}_after"] = after[key]
    out["weights"] = _weight_summary(weights)
    out["before"] = before
    out["after"] = after
    return out
