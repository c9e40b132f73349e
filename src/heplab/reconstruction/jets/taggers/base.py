"""The :class:`Tagger` base class: the scikit-learn estimator shape on jets records.

A tagger is made with its hyper-parameters (validated against ``defaults``), learns from
the training jets with :meth:`Tagger.fit` (returning ``self``; fitted attributes end in
``_``), and gives every jet a signal-likeness with :meth:`Tagger.score` (higher = more
signal-like). :meth:`Tagger.save` writes a directory without pickle: ``tagger.json``
(name, configuration, seed, JSON-able fitted state) plus any model files of the tagger's
own format; :meth:`Tagger.load` reads it back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import awkward as ak
import numpy as np

from heplab import __version__
from heplab.errors import ConfigError, DataError

__all__ = ["TAGGER_FILE", "Tagger", "labels"]

TAGGER_FILE = "tagger.json"


def labels(jets: ak.Array) -> np.ndarray:
    """The ``label`` column (1 signal, 0 background) as int64; :class:`DataError` if absent."""
    if "label" not in ak.fields(jets):
        raise DataError("the jets have no 'label' column (1 = signal, 0 = background)")
    y = np.asarray(ak.to_numpy(jets["label"])).astype(np.int64)
    if not np.isin(y, (0, 1)).all():
        raise DataError("the 'label' column must hold only 0 (background) and 1 (signal)")
    return y


def _same_kind(default: Any, value: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    return isinstance(value, type(default))


class Tagger:
    """Base class of the jet taggers (subclasses register with ``register_tagger``).

    Parameters
    ----------
    seed
        Seed of every random choice of the fit.
    **config
        Hyper-parameters; the keys of the class's ``defaults``. Unknown keys or values of
        the wrong type raise :class:`ConfigError`.
    """

    name: ClassVar[str] = "tagger"
    #: Hyper-parameters and their defaults (the YAML config's keys).
    defaults: ClassVar[dict[str, Any]] = {}
    #: Score threshold of the tagger's working point (accuracy is measured there).
    threshold: float = 0.5

    def __init__(self, *, seed: int = 0, **config: Any) -> None:
        unknown = sorted(set(config) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(
                f"tagger {self.name!r}: unknown setting(s) {', '.join(unknown)} (known: {known})"
            )
        for key, value in config.items():
            if not _same_kind(self.defaults[key], value):
                raise ConfigError(
                    f"tagger {self.name!r}: {key} must be like {self.defaults[key]!r}, "
                    f"not {value!r}"
                )
        self.config: dict[str, Any] = {**self.defaults, **config}
        self.seed = int(seed)
        self.validate()

    def validate(self) -> None:
        """Check the values of ``self.config`` (raise :class:`ConfigError`)."""

    # -- the estimator API ------------------------------------------------------------
    def fit(self, train: ak.Array, val: ak.Array | None = None) -> Tagger:
        """Learn from ``train`` (with ``label``); ``val`` for early stopping. Returns self."""
        raise NotImplementedError

    def score(self, jets: ak.Array) -> np.ndarray:
        """Signal-likeness of every jet (float64, higher = more signal-like)."""
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        """Number of trainable parameters (the subclass documents what it counts)."""
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise ConfigError(f"tagger {self.name!r} is not fitted; call fit() first")

    # -- persistence (no pickle) ------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """JSON-able fitted state (subclasses)."""
        return {}

    def set_state(self, state: dict[str, Any], directory: Path) -> None:
        """Restore the fitted state written by :meth:`save` (subclasses)."""

    def save_files(self, directory: Path) -> None:
        """Write model files of the tagger's own format into ``directory`` (subclasses)."""

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the fitted tagger into ``directory`` (created); returns it."""
        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.save_files(d)
        meta = {
            "tagger": self.name,
            "config": self.config,
            "seed": self.seed,
            "threshold": self.threshold,
            "state": self.state(),
            "heplab_version": __version__,
        }
        (d / TAGGER_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Tagger:
        """Read a tagger written by :meth:`save` (any registered kind when called on
        :class:`Tagger`)."""
        from heplab.reconstruction.jets.taggers import tagger_class

        d = Path(directory)
        path = d / TAGGER_FILE
        if not path.is_file():
            raise DataError(f"{d}: no saved tagger ({TAGGER_FILE} missing)")
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: corrupt tagger file ({exc})") from exc
        kind = tagger_class(meta["tagger"])
        if cls is not Tagger and not issubclass(kind, cls):
            raise DataError(f"{d} holds a {meta['tagger']!r} tagger, not {cls.name!r}")
        obj = kind(seed=meta.get("seed", 0), **meta.get("config", {}))
        obj.threshold = float(meta.get("threshold", 0.5))
        obj.set_state(meta.get("state", {}), d)
        return obj

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items() if self.defaults[k] != v)
        return f"{type(self).__name__}({args})"
