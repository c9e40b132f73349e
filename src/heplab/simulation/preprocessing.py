"""Preprocessing shared by the generative shower models: GeV <-> network space.

Every model of :mod:`heplab.simulation` works on standardised logarithms of energy
fractions, fit on the training showers and inverted exactly back to GeV.

Conditions
    ``c_E = (ln E_inc - ln E_min) / (ln E_max - ln E_min)`` with ``E_min, E_max`` [GeV] the
    training range (so ``c_E`` lies in [0, 1] inside it), followed, for a mixed set, by the
    one-hot of the particle type (PDG ids in the order :attr:`Preprocessor.pids`).

Voxels (``gan``, ``vae``, ``flowmatch``)
    ``u_i = e_i / E_inc`` (the fraction of the incident energy in voxel ``i``),
    ``x_i = (ln(u_i + eps) - mu_i) / sigma_i``, with ``mu_i, sigma_i`` the per-voxel mean
    and standard deviation of ``ln(u_i + eps)`` on the training set (``sigma_i`` floored at
    :data:`SIGMA_FLOOR` so that voxels that are always empty stay finite). ``eps`` is half
    the :data:`LOW_QUANTILE` quantile of the non-zero fractions of the training set (a
    quantile, not the minimum, so that one stray 1e-12 GeV deposit does not stretch the
    scale): an empty voxel sits at ``ln eps``, apart from nearly every deposit, and the
    logarithm spreads the orders of magnitude of the deposits over a range a network can
    fit. The map is exact for any ``eps``.

Layers and normalised voxels (``flow``, CaloFlow arXiv:2106.05285)
    stage 1: ``y_l = (ln(E_l / E_inc + eps_l) - mu_l) / sigma_l`` for the layer energies
    ``E_l``; stage 2: ``f_i = e_i / E_l(i)`` (the fraction of its layer's energy; sums to 1
    in every non-empty layer), ``x_i = (ln(f_i + eps_f) - mu_i) / sigma_i``.

Inverse
    ``u = max(exp(sigma x + mu) - eps, 0)``, ``e = u E_inc`` [GeV] (stage 2: the ``f`` of
    every layer are renormalised to sum to 1 and multiplied by the generated ``E_l``);
    then zero suppression as the reference: deposits below :attr:`Preprocessor.threshold`
    [GeV] are set to 0. The threshold is the :data:`LOW_QUANTILE` quantile of the non-zero
    voxel energies of the training set (its readout threshold where it has one; a robust
    floor where it has none), less 1e-5 relative for float32 rounding; without it every
    generated voxel would be a tiny non-zero deposit and the occupancy (sparsity) wrong.

The fitted statistics travel as JSON (:meth:`Preprocessor.to_json` /
:meth:`Preprocessor.from_json`) beside the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from heplab.errors import ConfigError, DataError

__all__ = ["LOW_QUANTILE", "SIGMA_FLOOR", "Preprocessor"]

#: Smallest standard deviation used to standardise a feature (empty voxels have none).
SIGMA_FLOOR: Final = 1e-2
#: Quantile of the non-zero deposits that sets ``eps`` and the zero-suppression threshold.
LOW_QUANTILE: Final = 1e-3
_EPS_FLOOR: Final = 1e-12
_ROUNDING: Final = 1e-5


def _low(values: np.ndarray) -> float:
    positive = values[values > 0]
    return float(np.quantile(positive, LOW_QUANTILE)) if positive.size else 0.0


def _eps(values: np.ndarray) -> float:
    low = _low(values)
    return max(0.5 * low, _EPS_FLOOR) if low > 0 else 1e-6


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), np.maximum(x.std(axis=0), SIGMA_FLOOR)


@dataclass
class Preprocessor:
    """Fitted map between showers [GeV] and the network variables (see the module doc)."""

    layer_sizes: list[int] = field(default_factory=list)
    log_e_min: float = 0.0
    log_e_max: float = 1.0
    pids: list[int] = field(default_factory=list)
    threshold: float = 0.0
    eps: float = 1e-6
    mu: list[float] = field(default_factory=list)
    sigma: list[float] = field(default_factory=list)
    eps_layer: float = 1e-6
    mu_layer: list[float] = field(default_factory=list)
    sigma_layer: list[float] = field(default_factory=list)
    eps_norm: float = 1e-6
    mu_norm: list[float] = field(default_factory=list)
    sigma_norm: list[float] = field(default_factory=list)

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        energies: np.ndarray,
        showers: np.ndarray,
        layer_sizes: list[int],
        pids: np.ndarray | None = None,
    ) -> Preprocessor:
        """Fit every statistic on the training set (energies [GeV], showers [GeV])."""
        energies = np.asarray(energies, dtype=np.float64)
        showers = np.asarray(showers, dtype=np.float64)
        if len(energies) < 2 or showers.shape != (len(energies), sum(layer_sizes)):
            raise DataError(
                f"need >= 2 showers of {sum(layer_sizes)} voxels, got {showers.shape} "
                f"for {len(energies)} energies"
            )
        if not (np.all(np.isfinite(showers)) and np.all(energies > 0)):
            raise DataError("showers must be finite and incident energies > 0")
        log_e = np.log(energies)
        lo, hi = float(log_e.min()), float(log_e.max())
        if hi - lo < 1e-6:
            hi = lo + 1.0  # a single energy: c_E = 0 for it
        prep = cls(layer_sizes=[int(n) for n in layer_sizes], log_e_min=lo, log_e_max=hi)
        if pids is not None:
            prep.pids = sorted(int(p) for p in np.unique(pids))
        prep.threshold = _low(showers)
        u = showers / energies[:, None]
        prep.eps = _eps(u)
        mu, sigma = _stats(np.log(u + prep.eps))
        prep.mu, prep.sigma = mu.tolist(), sigma.tolist()
        layers = prep.layer_energies(showers)
        lu = layers / energies[:, None]
        prep.eps_layer = _eps(lu)
        mu, sigma = _stats(np.log(lu + prep.eps_layer))
        prep.mu_layer, prep.sigma_layer = mu.tolist(), sigma.tolist()
        f = prep._fractions(showers, layers)
        prep.eps_norm = _eps(f)
        mu, sigma = _stats(np.log(f + prep.eps_norm))
        prep.mu_norm, prep.sigma_norm = mu.tolist(), sigma.tolist()
        return prep

    # ------------------------------------------------------------------ helpers
    @property
    def n_voxels(self) -> int:
        """Voxels per shower."""
        return int(sum(self.layer_sizes))

    @property
    def n_layers(self) -> int:
        """Layers per shower."""
        return len(self.layer_sizes)

    @property
    def condition_dim(self) -> int:
        """Length of the condition vector: 1 (energy) + the particle one-hot when mixed."""
        return 1 + (len(self.pids) if len(self.pids) > 1 else 0)

    def _bounds(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.layer_sizes)])

    def layer_energies(self, showers: np.ndarray) -> np.ndarray:
        """``(N, n_layers)`` energy per layer [GeV]."""
        return np.add.reduceat(np.asarray(showers, dtype=np.float64), self._bounds()[:-1], axis=1)

    def _fractions(self, showers: np.ndarray, layers: np.ndarray) -> np.ndarray:
        per_voxel = np.repeat(layers, self.layer_sizes, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(per_voxel > 0, showers / np.where(per_voxel > 0, per_voxel, 1.0), 0.0)
        return f

    def _suppress(self, showers: np.ndarray) -> np.ndarray:
        # the smallest training deposit itself survives its float32 round trip
        out = np.where(showers >= self.threshold * (1 - _ROUNDING), showers, 0.0)
        return np.ascontiguousarray(out, dtype=np.float32)

    # ------------------------------------------------------------------ conditions
    def condition(self, energies: np.ndarray, pids: np.ndarray | None = None) -> np.ndarray:
        """``(N, condition_dim)`` float32 conditions of incident energies [GeV] (+ PDG ids)."""
        energies = np.asarray(energies, dtype=np.float64).reshape(-1)
        if not np.all(energies > 0):
            raise ConfigError("incident energies must be > 0 GeV")
        c = (np.log(energies) - self.log_e_min) / (self.log_e_max - self.log_e_min)
        cols = [c[:, None]]
        if len(self.pids) > 1:
            if pids is None:
                raise ConfigError(
                    f"this model was trained on a mixed set (PDG ids {self.pids}): give pids"
                )
            pids = np.asarray(pids).reshape(-1)
            if len(pids) != len(energies):
                raise ConfigError(f"{len(pids)} pids for {len(energies)} energies")
            unknown = set(np.unique(pids).tolist()) - set(self.pids)
            if unknown:
                raise ConfigError(f"PDG ids {sorted(unknown)} unknown to the model ({self.pids})")
            cols.append((pids[:, None] == np.asarray(self.pids)[None, :]).astype(np.float64))
        return np.concatenate(cols, axis=1).astype(np.float32)

    # ------------------------------------------------------------------ voxels / E_inc
    def encode(self, showers: np.ndarray, energies: np.ndarray) -> np.ndarray:
        """Showers [GeV] -> standardised ``ln(e / E_inc + eps)`` (float32)."""
        u = np.asarray(showers, dtype=np.float64) / np.asarray(energies, dtype=np.float64)[:, None]
        x = (np.log(u + self.eps) - np.asarray(self.mu)) / np.asarray(self.sigma)
        return x.astype(np.float32)

    def decode(self, x: np.ndarray, energies: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`encode`: non-negative, zero-suppressed showers [GeV] (float32)."""
        z = np.asarray(x, dtype=np.float64) * np.asarray(self.sigma) + np.asarray(self.mu)
        u = np.maximum(np.exp(np.minimum(z, 0.0)) - self.eps, 0.0)  # a voxel holds <= E_inc
        return self._suppress(u * np.asarray(energies, dtype=np.float64)[:, None])

    # ------------------------------------------------------------------ two stages (flow)
    def encode_layers(self, showers: np.ndarray, energies: np.ndarray) -> np.ndarray:
        """Stage 1: showers [GeV] -> standardised ``ln(E_l / E_inc + eps_l)`` (float32)."""
        lu = self.layer_energies(showers) / np.asarray(energies, dtype=np.float64)[:, None]
        y = (np.log(lu + self.eps_layer) - np.asarray(self.mu_layer)) / np.asarray(self.sigma_layer)
        return y.astype(np.float32)

    def decode_layers(self, y: np.ndarray, energies: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`encode_layers`: ``(N, n_layers)`` layer energies [GeV]."""
        z = np.asarray(y, dtype=np.float64) * np.asarray(self.sigma_layer) + np.asarray(
            self.mu_layer
        )
        lu = np.maximum(np.exp(np.minimum(z, 0.0)) - self.eps_layer, 0.0)
        return lu * np.asarray(energies, dtype=np.float64)[:, None]

    def encode_normalised(self, showers: np.ndarray) -> np.ndarray:
        """Stage 2: showers [GeV] -> standardised ``ln(e / E_layer + eps_f)`` (float32)."""
        showers = np.asarray(showers, dtype=np.float64)
        f = self._fractions(showers, self.layer_energies(showers))
        x = (np.log(f + self.eps_norm) - np.asarray(self.mu_norm)) / np.asarray(self.sigma_norm)
        return x.astype(np.float32)

    def decode_normalised(self, x: np.ndarray, layers: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`encode_normalised` given layer energies [GeV]: showers [GeV]."""
        z = np.asarray(x, dtype=np.float64) * np.asarray(self.sigma_norm) + np.asarray(self.mu_norm)
        f = np.maximum(np.exp(np.minimum(z, 0.0)) - self.eps_norm, 0.0)
        sums = np.add.reduceat(f, self._bounds()[:-1], axis=1)
        per_voxel = np.repeat(np.where(sums > 0, sums, 1.0), self.layer_sizes, axis=1)
        energy = np.repeat(np.asarray(layers, dtype=np.float64), self.layer_sizes, axis=1)
        return self._suppress(f / per_voxel * energy)

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> str:
        """The fitted statistics as JSON text."""
        return json.dumps(self.__dict__, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Preprocessor:
        """Rebuild from :meth:`to_json` (DataError when incomplete)."""
        try:
            data: dict[str, Any] = json.loads(text)
            prep = cls(**data)
        except (TypeError, ValueError) as exc:
            raise DataError(f"corrupt preprocessing statistics ({exc})") from exc
        n = prep.n_voxels
        if len(prep.mu) != n or len(prep.mu_norm) != n or len(prep.mu_layer) != prep.n_layers:
            raise DataError("preprocessing statistics do not match the layer sizes")
        return prep
