"""Binary-classifier metrics of tagging tasks: ROC, AUC, background rejection.

All curves and areas come from :mod:`sklearn.metrics` (``roc_curve``, ``roc_auc_score``);
this module only renames them into the HEP vocabulary of the tagging papers (e.g. the top-
tagging comparison, arXiv:1902.09914):

- signal efficiency ``eff_s`` = true-positive rate, background efficiency (mistag rate)
  ``eff_b`` = false-positive rate, at every threshold of the score;
- background rejection at a signal efficiency, ``1 / eff_b(eff_s)``, with ``eff_b``
  interpolated linearly along the ROC curve.

Labels are 1 for signal and 0 for background; scores are signal-like when high.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_auc_score, roc_curve

from heplab.errors import DataError

__all__ = ["auc", "json_safe", "rejection_at", "roc", "summary"]


def _check(y: ArrayLike, score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    yy = np.asarray(y).astype(np.int64).ravel()
    ss = np.asarray(score, dtype=np.float64).ravel()
    if yy.shape != ss.shape:
        raise DataError(f"labels ({yy.size}) and scores ({ss.size}) differ in length")
    if not np.isin(yy, (0, 1)).all():
        raise DataError("labels must be 0 (background) or 1 (signal)")
    if yy.min(initial=1) == yy.max(initial=0):
        raise DataError("labels hold a single class; ROC metrics need signal and background")
    if not np.isfinite(ss).all():
        raise DataError("scores contain NaN or infinite values")
    return yy, ss


def roc(y: ArrayLike, score: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve as ``(eff_s, eff_b, thresholds)`` (:func:`sklearn.metrics.roc_curve`).

    ``eff_s`` and ``eff_b`` are non-decreasing; a jet is tagged when ``score >= threshold``.
    """
    yy, ss = _check(y, score)
    fpr, tpr, thr = roc_curve(yy, ss, drop_intermediate=False)
    return np.asarray(tpr), np.asarray(fpr), np.asarray(thr)


def auc(y: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve (:func:`sklearn.metrics.roc_auc_score`)."""
    yy, ss = _check(y, score)
    return float(roc_auc_score(yy, ss))


def rejection_at(y: ArrayLike, score: ArrayLike, eff_s: float) -> float:
    """Background rejection ``1 / eff_b`` at signal efficiency ``eff_s`` (0 < eff_s <= 1).

    ``eff_b`` is interpolated linearly in ``eff_s`` along the ROC curve. Returns
    ``math.inf`` when no background jet passes at that efficiency (``eff_b == 0``, which
    happens with small or perfectly separated test sets); :func:`json_safe` writes it as
    ``null``.
    """
    if not 0 < eff_s <= 1:
        raise ValueError(f"eff_s must be in (0, 1], not {eff_s}")
    es, eb, _ = roc(y, score)
    # es is non-decreasing; np.interp takes the last point of a run of equal es values
    # on the left and the first on the right, which is the ROC's step interpolation.
    b = float(np.interp(eff_s, es, eb))
    return math.inf if b <= 0 else 1.0 / b


def summary(y: ArrayLike, score: ArrayLike, *, threshold: float = 0.5) -> dict[str, float]:
    """``auc``, ``accuracy`` (tagged = ``score >= threshold``), ``rej30``, ``rej50`` and
    the number of jets ``n``. Rejections may be ``math.inf`` (see :func:`rejection_at`)."""
    yy, ss = _check(y, score)
    return {
        "auc": auc(yy, ss),
        "accuracy": float(np.mean((ss >= threshold) == (yy == 1))),
        "rej30": rejection_at(yy, ss, 0.3),
        "rej50": rejection_at(yy, ss, 0.5),
        "n": int(yy.size),
    }


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by ``None`` (JSON ``null``), recursively;
    numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
