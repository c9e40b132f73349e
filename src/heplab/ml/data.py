"""Jets records -> padded float32 tensors for the neural taggers (weaver-like inputs).

:func:`jet_arrays` turns flat jets records (the weaver / JetClass columns ``part_px,
part_py, part_pz, part_energy, part_deta, part_dphi`` and, when present, ``part_charge``,
``part_pid``) into numpy arrays, constituents sorted by pT (hardest first) and padded (or
clipped) to ``max_particles``:

``x`` ``(n, P, 13)``
    per-particle features, in the order of :data:`PARTICLE_FEATURES`:
    ``log_pt, log_e`` (ln of pT, E [GeV]), ``log_pt_rel, log_e_rel`` (ln of pT / jet pT,
    E / jet E, the jet 4-vector being the sum of its constituents), ``deta, dphi`` (to the
    jet axis), ``dr`` (their quadrature sum), ``charge``, and the particle-class one-hots
    ``is_electron, is_muon, is_photon, is_charged_hadron, is_neutral_hadron`` (from
    ``|part_pid|`` and the charge; all 0 when ``part_pid`` is absent, ``charge`` 0 when
    ``part_charge`` is absent). Logs are of ``max(value, 1e-8)``.
``v`` ``(n, P, 4)``
    the 4-vectors ``(px, py, pz, E)`` [GeV] (pair features of ParT, EFN's energy weights).
``coords`` ``(n, P, 2)``
    ``(deta, dphi)`` unstandardised (EFN angles, ParticleNet's first k-NN graph).
``mask`` ``(n, P)`` bool
    True for a real particle; padding is at the end of each row, filled with zeros.
``hl`` ``(n, H)``
    high-level features of :mod:`heplab.reconstruction.jets.taggers.features` (DNN).
``y`` ``(n,)``
    the ``label`` column (float32), when present.

:class:`Standardiser` fits mean / std of ``x`` (over real particles; the charge and the
one-hots are left as they are) and of ``hl`` on the training split; its JSON form is saved
with the model, and it is applied to every split (padding stays 0).

:class:`JetDataset` serves batches as dicts of tensors through ``__getitems__`` (one
fancy-index per batch); :func:`trim_collate` cuts every particle tensor of a batch to the
longest jet in it: constituents are sorted and padding sits at the end, so the columns beyond
the longest jet carry no particle and are pure waste.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import awkward as ak
import numpy as np
import torch

from heplab.errors import DataError

__all__ = [
    "PARTICLE_FEATURES",
    "JetDataset",
    "Standardiser",
    "jet_arrays",
    "trim_collate",
]

#: The per-particle features of ``x``, in column order.
PARTICLE_FEATURES: Final = (
    "log_pt",
    "log_e",
    "log_pt_rel",
    "log_e_rel",
    "deta",
    "dphi",
    "dr",
    "charge",
    "is_electron",
    "is_muon",
    "is_photon",
    "is_charged_hadron",
    "is_neutral_hadron",
)
#: Features of ``x`` left unstandardised (discrete).
_RAW_FEATURES: Final = frozenset(PARTICLE_FEATURES[7:])
_PARTICLE_KEYS: Final = ("x", "v", "coords", "mask")
_REQUIRED: Final = ("part_px", "part_py", "part_pz", "part_energy", "part_deta", "part_dphi")
_EPS: Final = 1e-8


def _padded(values: ak.Array, order: ak.Array, n: int, fill: float = 0.0) -> np.ndarray:
    out = ak.fill_none(ak.pad_none(values[order], n, axis=1, clip=True), fill)
    return np.asarray(ak.to_numpy(out), dtype=np.float64)


def jet_arrays(
    jets: ak.Array,
    *,
    max_particles: int = 128,
    hl_features: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """The padded arrays of the module docstring (numpy; float32, ``mask`` bool).

    ``hl_features`` (names of ``taggers.features.FEATURES``) adds ``hl``; None skips it.
    """
    fields = ak.fields(jets)
    missing = [c for c in _REQUIRED if c not in fields]
    if missing:
        raise DataError(f"the jets lack the constituent column(s) {', '.join(missing)}")
    n = int(max_particles)
    px, py = jets["part_px"], jets["part_py"]
    pt = np.hypot(px, py)
    order = ak.argsort(pt, axis=1, ascending=False)
    counts = np.minimum(np.asarray(ak.to_numpy(ak.num(pt, axis=1))), n)
    mask = np.arange(n)[None, :] < counts[:, None]
    cols = {
        k: _padded(jets[f"part_{k}"], order, n)
        for k in ("px", "py", "pz", "energy", "deta", "dphi")
    }
    p_t = np.hypot(cols["px"], cols["py"])
    # the jet from all its constituents (not only the kept ones)
    jet_px = np.asarray(ak.to_numpy(ak.sum(px, axis=1)), np.float64)
    jet_py = np.asarray(ak.to_numpy(ak.sum(py, axis=1)), np.float64)
    jet_pt = np.hypot(jet_px, jet_py)[:, None]
    jet_e = np.asarray(ak.to_numpy(ak.sum(jets["part_energy"], axis=1)), np.float64)[:, None]
    charge = _padded(jets["part_charge"], order, n) if "part_charge" in fields else 0 * p_t
    if "part_pid" in fields:
        apid = np.abs(_padded(jets["part_pid"], order, n))
        is_e, is_mu, is_ph = apid == 11, apid == 13, apid == 22
        lepton_or_photon = is_e | is_mu | is_ph
        is_ch = ~lepton_or_photon & (charge != 0) & mask
        is_nh = ~lepton_or_photon & (charge == 0) & mask
        onehots = [is_e, is_mu, is_ph, is_ch, is_nh]
    else:
        onehots = [np.zeros_like(mask)] * 5

    def log(a: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(a, _EPS))

    x = np.stack(
        [
            log(p_t),
            log(cols["energy"]),
            log(p_t / np.maximum(jet_pt, _EPS)),
            log(cols["energy"] / np.maximum(jet_e, _EPS)),
            cols["deta"],
            cols["dphi"],
            np.hypot(cols["deta"], cols["dphi"]),
            charge,
            *(o.astype(np.float64) for o in onehots),
        ],
        axis=-1,
    )
    x[~mask] = 0.0
    out: dict[str, np.ndarray] = {
        "x": x.astype(np.float32),
        "v": np.stack([cols[k] for k in ("px", "py", "pz", "energy")], -1).astype(np.float32),
        "coords": np.stack([cols["deta"], cols["dphi"]], -1).astype(np.float32),
        "mask": mask,
    }
    if hl_features is not None:
        from heplab.reconstruction.jets.taggers.features import feature_matrix

        out["hl"] = feature_matrix(jets, list(hl_features)).astype(np.float32)
    if "label" in fields:
        out["y"] = np.asarray(ak.to_numpy(jets["label"])).astype(np.float32)
    return out


@dataclass
class Standardiser:
    """Per-feature ``(value - mean) / std`` for ``x`` (real particles) and ``hl``."""

    x_mean: list[float]
    x_std: list[float]
    hl_mean: list[float]
    hl_std: list[float]

    @classmethod
    def fit(cls, arrays: dict[str, np.ndarray]) -> Standardiser:
        """Statistics of the (training) ``arrays`` from :func:`jet_arrays`."""
        real = arrays["x"][arrays["mask"]].astype(np.float64)
        mean = real.mean(axis=0) if len(real) else np.zeros(arrays["x"].shape[-1])
        std = real.std(axis=0) if len(real) else np.ones(arrays["x"].shape[-1])
        for i, name in enumerate(PARTICLE_FEATURES):
            if name in _RAW_FEATURES:
                mean[i], std[i] = 0.0, 1.0
        hl = arrays.get("hl", np.zeros((1, 0))).astype(np.float64)
        return cls(
            x_mean=[float(v) for v in mean],
            x_std=[float(v) if v > 1e-6 else 1.0 for v in std],
            hl_mean=[float(v) for v in hl.mean(axis=0)],
            hl_std=[float(v) if v > 1e-6 else 1.0 for v in hl.std(axis=0)],
        )

    def apply(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A copy of ``arrays`` with ``x`` and ``hl`` standardised (padding stays 0)."""
        out = dict(arrays)
        x = (arrays["x"] - np.asarray(self.x_mean, np.float32)) / np.asarray(self.x_std, np.float32)
        out["x"] = np.where(arrays["mask"][..., None], x, 0.0).astype(np.float32)
        if "hl" in arrays:
            hl = (arrays["hl"] - np.asarray(self.hl_mean, np.float32)) / np.asarray(
                self.hl_std, np.float32
            )
            out["hl"] = hl.astype(np.float32)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "x_features": list(PARTICLE_FEATURES),
            "x_mean": self.x_mean,
            "x_std": self.x_std,
            "hl_mean": self.hl_mean,
            "hl_std": self.hl_std,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Standardiser:
        try:
            return cls(
                x_mean=[float(v) for v in data["x_mean"]],
                x_std=[float(v) for v in data["x_std"]],
                hl_mean=[float(v) for v in data["hl_mean"]],
                hl_std=[float(v) for v in data["hl_std"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"incomplete standardisation statistics ({exc})") from exc


class JetDataset(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """The arrays of :func:`jet_arrays` as tensors; a batch is one fancy-index."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        self.n = len(next(iter(arrays.values())))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: t[index] for k, t in self.tensors.items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {k: t[idx] for k, t in self.tensors.items()}


def trim_collate(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cut the particle tensors of a batch (from ``__getitems__``) to its longest jet."""
    if "mask" not in batch:
        return batch
    length = max(int(batch["mask"].sum(dim=1).max()), 1) if len(batch["mask"]) else 1
    return {k: (v[:, :length] if k in _PARTICLE_KEYS else v) for k, v in batch.items()}
