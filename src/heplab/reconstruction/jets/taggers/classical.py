"""The classical taggers: a cut-based tagger (``cut``) and a boosted decision tree (``bdt``).

``cut``
    The classic top tagger of the top-tagging comparison's baseline (Kasieczka et al.,
    arXiv:1902.09914): a soft-drop mass window plus N-subjettiness ``tau32``. The score is
    ``1 - tau32`` inside the window, and ``1 - tau32 - 1e6`` outside (below every in-window
    score; the ROC beyond the window's efficiency still orders by ``tau32``). ``fit``
    chooses the window on the training split from a coarse grid (lower edge 100-160 GeV,
    upper edge 180-260 GeV, 10 GeV steps) as the one with the highest background rejection
    at the signal efficiency ``working_point``. For quark/gluon data (a ``label_q``
    column) ``variable: auto`` falls back to the constituent multiplicity without a window
    (quark = signal = fewer constituents, score ``1 - jet_nparticles``). The variable, its
    direction and the window are configurable. Its working point (where accuracy is
    measured) is the score threshold that keeps the fraction ``working_point`` of the
    training signal. ``n_params`` counts the cut values: window edges (2, when a window is
    used) plus the threshold (1).
``bdt``
    xgboost's ``XGBClassifier`` (Chen, Guestrin, arXiv:1603.02754; histogram method) on the
    high-level features of :mod:`.features`, early stopping on the validation split's log-
    loss, ``n_jobs = 2`` and a fixed ``random_state`` (the seed). The model is saved in
    xgboost's own UBJSON format (``model.ubj``), never pickled. ``n_params`` counts the
    tree nodes (internal splits + leaves) of the trees used for prediction (up to the
    best early-stopping iteration); working point: score (probability) 0.5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Final

import awkward as ak
import numpy as np

from heplab.errors import ConfigError, DataError
from heplab.ml.metrics import auc, rejection_at
from heplab.reconstruction.jets.taggers import register_tagger
from heplab.reconstruction.jets.taggers.base import Tagger, labels
from heplab.reconstruction.jets.taggers.features import FEATURES, feature_matrix, jet_column

__all__ = ["BDTTagger", "CutTagger"]

_OUT_OF_WINDOW: Final = 1.0e6
_LOWER_IS_SIGNAL: Final = ("tau21", "tau32", "c2", "d2", "jet_nparticles")
_WINDOW_LO: Final = tuple(float(x) for x in range(100, 161, 10))
_WINDOW_HI: Final = tuple(float(x) for x in range(180, 261, 10))


@register_tagger("cut")
class CutTagger(Tagger):
    """Mass window + one substructure variable (see the module docstring).

    Configuration: ``variable`` (``auto``, or a name of :data:`FEATURES`), ``direction``
    (``auto``, ``lower`` or ``higher``: which side is signal-like), ``mass_window``
    (``auto``: fitted for top-like data, ``none``, or ``[lo, hi]`` in GeV),
    ``working_point`` (signal efficiency of the window choice and of the threshold).
    """

    defaults: ClassVar[dict[str, Any]] = {
        "variable": "auto",
        "direction": "auto",
        "mass_window": None,
        "working_point": 0.5,
    }

    def validate(self) -> None:
        c = self.config
        if c["variable"] != "auto" and c["variable"] not in FEATURES:
            raise ConfigError(
                f"cut: variable must be auto or one of {', '.join(FEATURES)}, not {c['variable']!r}"
            )
        if c["direction"] not in ("auto", "lower", "higher"):
            raise ConfigError(
                f"cut: direction must be auto, lower or higher, not {c['direction']!r}"
            )
        w = c["mass_window"]
        ok = w in (None, "auto", "none") or (
            isinstance(w, (list, tuple))
            and len(w) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in w)
            and w[0] < w[1]
        )
        if not ok:
            raise ConfigError(f"cut: mass_window must be auto, none or [lo, hi] GeV, not {w!r}")
        if not 0 < c["working_point"] < 1:
            raise ConfigError(f"cut: working_point must be in (0, 1), not {c['working_point']}")

    # ---------------------------------------------------------------------------------
    def _raw(self, jets: ak.Array, variable: str, lower: bool) -> np.ndarray:
        x = jet_column(jets, variable)
        return 1.0 - x if lower else x

    @staticmethod
    def _apply(raw: np.ndarray, mass: np.ndarray | None, window: list[float] | None) -> np.ndarray:
        if window is None or mass is None:
            return raw
        inside = (mass >= window[0]) & (mass <= window[1])
        return np.where(inside, raw, raw - _OUT_OF_WINDOW)

    def fit(self, train: ak.Array, val: ak.Array | None = None) -> CutTagger:
        """Choose variable, window (on ``train``) and threshold; ``val`` is not used."""
        y = labels(train)
        c = self.config
        variable = c["variable"]
        qg = "label_q" in ak.fields(train)
        if variable == "auto":
            variable = "jet_nparticles" if qg else "tau32"
        direction = c["direction"]
        if direction == "auto":
            direction = "lower" if variable in _LOWER_IS_SIGNAL else "higher"
        lower = direction == "lower"
        raw = self._raw(train, variable, lower)
        w = c["mass_window"]
        window: list[float] | None
        if w == "none" or (w in (None, "auto") and qg):
            window = None
        elif isinstance(w, (list, tuple)):
            window = [float(w[0]), float(w[1])]
        else:
            mass = jet_column(train, "jet_sdmass")
            best: tuple[float, float] | None = None
            window = None
            for lo in _WINDOW_LO:
                for hi in _WINDOW_HI:
                    s = self._apply(raw, mass, [lo, hi])
                    key = (rejection_at(y, s, c["working_point"]), auc(y, s))
                    if best is None or key > best:
                        best, window = key, [lo, hi]
        in_mass = jet_column(train, "jet_sdmass") if window is not None else None
        s = self._apply(raw, in_mass, window)
        sig = s[y == 1]
        if sig.size == 0:
            raise DataError("cut: the training split holds no signal jets")
        self.variable_ = variable
        self.direction_ = direction
        self.window_ = window
        self.threshold = float(np.quantile(sig, 1.0 - c["working_point"]))
        return self

    def score(self, jets: ak.Array) -> np.ndarray:
        self._check_fitted()
        raw = self._raw(jets, self.variable_, self.direction_ == "lower")
        mass = jet_column(jets, "jet_sdmass") if self.window_ is not None else None
        return self._apply(raw, mass, self.window_)

    @property
    def n_params(self) -> int:
        """Cut values: the window's two edges (when used) and the score threshold."""
        self._check_fitted()
        return 1 + (2 if self.window_ is not None else 0)

    def state(self) -> dict[str, Any]:
        return {"variable": self.variable_, "direction": self.direction_, "window": self.window_}

    def set_state(self, state: dict[str, Any], directory: Path) -> None:
        try:
            self.variable_ = str(state["variable"])
            self.direction_ = str(state["direction"])
            self.window_ = None if state["window"] is None else [float(x) for x in state["window"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{directory}: incomplete cut-tagger state ({exc})") from exc


@register_tagger("bdt")
class BDTTagger(Tagger):
    """Gradient-boosted trees (xgboost) on high-level jet features (module docstring).

    Configuration: ``features`` (names of :data:`FEATURES`), and xgboost's
    ``n_estimators, max_depth, learning_rate, subsample, colsample_bytree,
    min_child_weight, reg_lambda, early_stopping_rounds, n_jobs``.
    """

    defaults: ClassVar[dict[str, Any]] = {
        "features": list(FEATURES),
        "n_estimators": 500,
        "max_depth": 4,
        "learning_rate": 0.1,
        "subsample": 0.8,
        "colsample_bytree": 1.0,
        "min_child_weight": 1.0,
        "reg_lambda": 1.0,
        "early_stopping_rounds": 20,
        "n_jobs": 2,
    }
    _MODEL_FILE: Final = "model.ubj"

    def validate(self) -> None:
        c = self.config
        bad = [f for f in c["features"] if f not in FEATURES]
        if bad or not c["features"]:
            raise ConfigError(
                f"bdt: features must be a non-empty list of {', '.join(FEATURES)} (bad: {bad})"
            )
        for key in ("n_estimators", "max_depth", "early_stopping_rounds", "n_jobs"):
            if c[key] < 1:
                raise ConfigError(f"bdt: {key} must be >= 1, not {c[key]}")
        if not 0 < c["learning_rate"] <= 1:
            raise ConfigError(f"bdt: learning_rate must be in (0, 1], not {c['learning_rate']}")
        for key in ("subsample", "colsample_bytree"):
            if not 0 < c[key] <= 1:
                raise ConfigError(f"bdt: {key} must be in (0, 1], not {c[key]}")

    def _classifier(self, early_stopping: bool) -> Any:
        from xgboost import XGBClassifier

        c = self.config
        return XGBClassifier(
            n_estimators=int(c["n_estimators"]),
            max_depth=int(c["max_depth"]),
            learning_rate=float(c["learning_rate"]),
            subsample=float(c["subsample"]),
            colsample_bytree=float(c["colsample_bytree"]),
            min_child_weight=float(c["min_child_weight"]),
            reg_lambda=float(c["reg_lambda"]),
            early_stopping_rounds=int(c["early_stopping_rounds"]) if early_stopping else None,
            n_jobs=int(c["n_jobs"]),
            random_state=self.seed,
            tree_method="hist",
            objective="binary:logistic",
            eval_metric="logloss",
            verbosity=0,
        )

    def fit(self, train: ak.Array, val: ak.Array | None = None) -> BDTTagger:
        """Fit on ``train``; stop early on ``val`` when given."""
        features = list(self.config["features"])
        x, y = feature_matrix(train, features), labels(train)
        model = self._classifier(early_stopping=val is not None)
        if val is not None:
            model.fit(x, y, eval_set=[(feature_matrix(val, features), labels(val))], verbose=False)
        else:
            model.fit(x, y, verbose=False)
        self.model_ = model
        self.features_ = features
        self.threshold = 0.5
        return self

    def score(self, jets: ak.Array) -> np.ndarray:
        self._check_fitted()
        return np.asarray(
            self.model_.predict_proba(feature_matrix(jets, self.features_))[:, 1], dtype=np.float64
        )

    @property
    def best_iteration_(self) -> int:
        self._check_fitted()
        try:
            return int(self.model_.best_iteration)
        except AttributeError:  # no early stopping: every tree
            return int(self.model_.get_booster().num_boosted_rounds()) - 1

    @property
    def n_params(self) -> int:
        """Tree nodes (splits + leaves) of the trees used for prediction."""
        booster = self.model_.get_booster()[: self.best_iteration_ + 1]
        return sum(len(tree.strip().splitlines()) for tree in booster.get_dump())

    def state(self) -> dict[str, Any]:
        return {"features": self.features_, "model_file": self._MODEL_FILE}

    def save_files(self, directory: Path) -> None:
        self.model_.save_model(directory / self._MODEL_FILE)

    def set_state(self, state: dict[str, Any], directory: Path) -> None:
        path = directory / str(state.get("model_file", self._MODEL_FILE))
        if not path.is_file():
            raise DataError(f"{directory}: the xgboost model file {path.name} is missing")
        model = self._classifier(early_stopping=False)
        try:
            model.load_model(path)
        except Exception as exc:  # xgboost raises its own XGBoostError
            raise DataError(f"{path}: cannot read the xgboost model ({exc})") from exc
        self.model_ = model
        self.features_ = list(state.get("features", self.config["features"]))
