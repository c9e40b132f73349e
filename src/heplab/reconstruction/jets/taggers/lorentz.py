"""The Lorentz-group-equivariant jet tagger ``lorentznet`` (LorentzNet).

LorentzNet (Gong, Meng, Zhang, Qu, Li, Qian, Du, Ma, Liu, arXiv:2201.08187) is a graph
network on the fully connected graph of a jet's particles whose nodes carry scalars ``h_i``
and 4-vectors ``x_i``. Its Lorentz group equivariant blocks (LGEB) only ever use the
4-vectors through Minkowski products (metric ``(+, -, -, -)``), so that every scalar stays
Lorentz invariant and every 4-vector transforms like the inputs. Block ``l``::

    m_ij  = phi_e(h_i, h_j, psi(<x_i - x_j, x_i - x_j>), psi(<x_i, x_j>))
    g_ij  = sigmoid(phi_m(m_ij))                               (edge gate)
    x_i  <- x_i + c * sum_{j != i} g_ij phi_x(m_ij) x_j         (not in the last block)
    h_i  <- h_i + phi_h(h_i, sum_{j != i} g_ij m_ij, s_i)

with ``psi(z) = sgn(z) ln(1 + |z|)`` taming the products' range, ``c`` = ``c_weight``
(1e-3, the paper's value) and ``s_i`` the input scalars, fed to every block. ``phi_e`` is a
two-layer MLP, ``phi_h`` a one-hidden-layer MLP, ``phi_m`` and ``phi_x`` linear read-outs of
the message (the paper's ``phi_x`` has a hidden layer: a linear one lets both sums run as
batched products without materialising the gated messages, a third less pair-level work).
The 4-vector update weights ``x_j`` as in the paper (the authors' code weights
``x_i - x_j``, equally equivariant). The paper's BatchNorm is left out (its statistics
would see the padding). After the blocks, the ``h_i`` of the jet's particles are mean-
(``pool: mean``) or sum-pooled and a dense head (``fc``) gives the logit.

Inputs: the 4-vectors are the constituents' ``v = (px, py, pz, E)`` [GeV] of
:func:`heplab.ml.data.jet_arrays` times the constant ``p_scale`` (default 1: GeV, as the
authors' code feeds them; psi then maps the products of a TeV jet's constituents onto
~0-12). The scalars ``s_i`` are ``scalars: features`` -- all 13 standardised particle
features ``x`` (kinematic ones included, which is what a tagger at a fixed detector wants)
-- or ``scalars: invariant`` -- only the charge and the particle-class one-hots, genuine
Lorentz scalars as in the paper, which makes the whole tagger, preprocessing included,
Lorentz invariant when the beams are off. Padding is neither sender nor receiver of any
message and is left out of the pooling. The computation is dense over the ``(batch, N, N)``
pairs (trimmed to the longest jet of a batch): its cost grows as ``N^2 * hidden``, fine for
``N <= 128`` on a CPU. The Minkowski products and the 4-vector update are elementwise sums
in the 4-vectors' own precision (never matrix products, which mixed precision would round
to bfloat16).

Beams (``beams: true``, default): as in the paper, two extra nodes with the 4-vectors
``(px, py, pz, E) = (0, 0, +-1, sqrt(2))`` (a mass of 1 in the scaled units, the authors'
choice) and their own scalar flags join every jet's graph as senders and receivers (they
are not pooled). Their products with a particle, ``<b_+-, p> = sqrt(2) E -+ pz``, give the
network the particle's energy and longitudinal momentum in the lab frame, which full
Lorentz invariance would hide. The beams are unchanged only by rotations about the beam
axis (and reflections through planes that hold it), so they break the symmetry from the
Lorentz group down to those: the score then still ignores the jet's azimuth but sees its
boost and direction. ``beams: false`` gives the fully Lorentz-invariant network.

Training, scoring and persistence are those of
:class:`~heplab.reconstruction.jets.taggers.neural.NeuralTagger`; ``n_params`` with the
defaults: 22,212. The network classes ``LGEB`` and ``LorentzNet`` import from this module
as usual; they are defined on first access, so that loading the tagger registry needs no
torch.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, ClassVar, Final

from heplab.errors import ConfigError
from heplab.reconstruction.jets.taggers import register_tagger
from heplab.reconstruction.jets.taggers.neural import TRAIN_DEFAULTS, NeuralTagger

if TYPE_CHECKING:
    from torch import nn

__all__ = ["INVARIANT_SCALARS", "LorentzNetTagger"]

#: The features of ``x`` that are Lorentz scalars (``scalars: invariant``).
INVARIANT_SCALARS: Final = (
    "charge",
    "is_electron",
    "is_muon",
    "is_photon",
    "is_charged_hadron",
    "is_neutral_hadron",
)


@functools.cache
def _networks() -> dict[str, type[nn.Module]]:
    """The network classes (defined on first use, so that the registry needs no torch)."""
    import torch
    from torch import nn

    from heplab.reconstruction.jets.taggers.nets import mlp

    metric = (-1.0, -1.0, -1.0, 1.0)  # (px, py, pz, E)

    def minkowski(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``<a, b>`` over the last axis, elementwise in the inputs' precision (a matrix
        product would be rounded to bfloat16 under mixed precision)."""
        g = torch.tensor(metric, dtype=a.dtype, device=a.device)
        return (a * b * g).sum(dim=-1)

    def psi(z: torch.Tensor) -> torch.Tensor:
        return torch.sign(z) * torch.log1p(z.abs())

    class LGEB(nn.Module):
        """One Lorentz group equivariant block (module doc) on dense ``(B, N, N)`` pairs.

        Parameters
        ----------
        hidden
            Size of ``h_i`` and of the messages ``m_ij``.
        n_scalar
            Number of input scalars ``s_i`` fed to ``phi_h``.
        c_weight
            The 4-vector update's weight ``c``.
        update_x
            Whether the block updates the 4-vectors (not in the last block).
        dropout
            Dropout inside ``phi_h``.
        """

        def __init__(
            self,
            hidden: int,
            n_scalar: int,
            c_weight: float = 1e-3,
            *,
            update_x: bool = True,
            dropout: float = 0.0,
        ) -> None:
            super().__init__()
            self.c_weight = c_weight
            # phi_e's first layer on (h_i, h_j, psi norm, psi dot), split by input so that
            # the node parts are computed per node and broadcast over the pairs
            self.e_i = nn.Linear(hidden, hidden)
            self.e_j = nn.Linear(hidden, hidden, bias=False)
            self.e_ij = nn.Linear(2, hidden, bias=False)
            self.e_out = nn.Linear(hidden, hidden)
            self.phi_m = nn.Linear(hidden, 1)
            self.phi_h = nn.Sequential(
                mlp([2 * hidden + n_scalar, hidden], dropout=dropout),
                nn.Linear(hidden, hidden),
            )
            self.phi_x: nn.Module | None = None
            if update_x:
                last = nn.Linear(hidden, 1, bias=False)
                nn.init.xavier_uniform_(last.weight, gain=1e-3)  # as the authors' code
                self.phi_x = last

        def forward(
            self, h: torch.Tensor, x: torch.Tensor, s: torch.Tensor, edges: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            """Updated ``(h, x)`` from scalars ``h (B, N, hidden)``, 4-vectors ``x (B, N, 4)``,
            input scalars ``s (B, N, n_scalar)`` and the edge mask ``edges (B, N, N)`` (1 for
            two distinct real nodes, else 0)."""
            diff = x.unsqueeze(2) - x.unsqueeze(1)  # (B, N, N, 4): x_i - x_j
            norms = minkowski(diff, diff)
            dots = minkowski(x.unsqueeze(2), x.unsqueeze(1))
            pair = psi(torch.stack([norms, dots], dim=-1)).to(h.dtype)
            # the (B, N, N, hidden) tensors dominate the cost: kept 2-d (pairs, hidden), few,
            # and activated in place
            b, n, c = h.shape
            node = (self.e_i(h).unsqueeze(2) + self.e_j(h).unsqueeze(1)).reshape(-1, c)
            m = torch.addmm(node, pair.reshape(-1, 2), self.e_ij.weight.t().to(node.dtype))
            m = self.e_out(m.relu_()).relu_()
            gate = torch.sigmoid(self.phi_m(m)) * edges.reshape(-1, 1).to(m.dtype)  # (M, 1)
            # sum_j gate_ij m_ij as a batched product: the gated messages never materialise
            m_sum = torch.bmm(gate.view(b * n, 1, n), m.view(b * n, n, c)).view(b, n, c)
            if self.phi_x is not None:  # linear: phi_x(gate m) = gate phi_x(m)
                w = (self.phi_x(m) * gate).view(b, n, n, 1).to(x.dtype)
                x = x + self.c_weight * (w * x.unsqueeze(1)).sum(dim=2)
            h = h + self.phi_h(torch.cat([h, m_sum, s], dim=-1))
            return h, x

    class LorentzNet(nn.Module):
        """LorentzNet (arXiv:2201.08187; module doc) on ``(x, v, mask)`` batches.

        Parameters
        ----------
        n_in
            Particle features of ``x``.
        scalar_index
            Columns of ``x`` used as the node scalars (None: all).
        hidden, layers
            Size of ``h_i`` / the messages and the number of LGEBs.
        fc
            Hidden sizes of the head after the pooling.
        c_weight
            Weight of the 4-vector updates.
        p_scale
            Factor on the input 4-vectors [1/GeV].
        beams
            Whether the two beam nodes join every graph.
        pool
            ``"mean"`` or ``"sum"`` over the jet's particles.
        dropout
            Dropout of ``phi_h`` and of the head.
        chunk
            Jets per dense pass on a CPU (each chunk trimmed to its longest jet): small
            ``(chunk, N, N, hidden)`` tensors stay in the caches and the allocator's pools,
            2-3x faster than one pass over the batch; every jet's result is its own.
        n_out
            Logits per jet (1: binary).
        """

        input_names: ClassVar[tuple[str, ...]] = ("x", "v", "mask")
        scalar_index: torch.Tensor

        def __init__(
            self,
            n_in: int,
            scalar_index: list[int] | None = None,
            hidden: int = 32,
            layers: int = 3,
            fc: tuple[int, ...] | list[int] = (32,),
            *,
            c_weight: float = 1e-3,
            p_scale: float = 1.0,
            beams: bool = True,
            pool: str = "mean",
            dropout: float = 0.0,
            chunk: int = 8,
            n_out: int = 1,
        ) -> None:
            super().__init__()
            self.chunk = chunk
            index = list(range(n_in)) if scalar_index is None else list(scalar_index)
            self.register_buffer("scalar_index", torch.tensor(index, dtype=torch.long))
            self.p_scale = p_scale
            self.beams = beams
            self.pool = pool
            n_scalar = len(index) + (2 if beams else 0)
            self.embed = nn.Linear(n_scalar, hidden)
            self.blocks = nn.ModuleList(
                LGEB(hidden, n_scalar, c_weight, update_x=i < layers - 1, dropout=dropout)
                for i in range(layers)
            )
            sizes = [hidden, *fc]
            self.head = nn.Sequential(mlp(sizes, dropout=dropout), nn.Linear(sizes[-1], n_out))

        def forward(self, x: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            if x.device.type != "cpu" or x.shape[0] <= self.chunk:
                return self._forward(x, v, mask)
            out = []
            for xc, vc, mc in zip(
                x.split(self.chunk), v.split(self.chunk), mask.split(self.chunk), strict=True
            ):
                real = mc.any(dim=0).nonzero()
                n = int(real.max()) + 1 if len(real) else 1
                out.append(self._forward(xc[:, :n], vc[:, :n], mc[:, :n]))
            return torch.cat(out)

        def _forward(self, x: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            s = x.index_select(-1, self.scalar_index) * mask.unsqueeze(-1)
            p = v * self.p_scale
            node_mask = mask
            if self.beams:
                b = x.shape[0]
                beam_p = torch.tensor(
                    [[0.0, 0.0, 1.0, 2**0.5], [0.0, 0.0, -1.0, 2**0.5]],
                    dtype=v.dtype,
                    device=v.device,
                )
                beam_s = torch.zeros(2, s.shape[-1], dtype=s.dtype, device=s.device)
                flags = torch.eye(2, dtype=s.dtype, device=s.device)
                s = torch.cat(
                    [
                        torch.cat([beam_s, flags], -1).expand(b, -1, -1),
                        torch.cat([s, s.new_zeros(*s.shape[:2], 2)], -1),
                    ],
                    dim=1,
                )
                p = torch.cat([beam_p.expand(b, -1, -1), p], dim=1)
                node_mask = torch.cat([mask.new_ones(b, 2), mask], dim=1)
            n = node_mask.shape[1]
            eye = torch.eye(n, dtype=torch.bool, device=mask.device)
            edges = (node_mask.unsqueeze(2) & node_mask.unsqueeze(1) & ~eye).to(s.dtype)
            h = self.embed(s) * node_mask.unsqueeze(-1)
            for block in self.blocks:
                h, p = block(h, p, s, edges)
                h = h * node_mask.unsqueeze(-1)
            if self.beams:
                h = h[:, 2:]
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(dim=1)
            if self.pool == "mean":
                pooled = pooled / m.sum(dim=1).clamp_min(1)
            logits = self.head(pooled)
            return logits.squeeze(-1) if logits.shape[-1] == 1 else logits

    return {"LGEB": LGEB, "LorentzNet": LorentzNet}


def __getattr__(name: str) -> Any:
    if name in ("LGEB", "LorentzNet"):
        return _networks()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@register_tagger("lorentznet")
class LorentzNetTagger(NeuralTagger):
    """LorentzNet: ``hidden``, ``layers``, ``fc``, ``c_weight``, ``p_scale``, ``beams``,
    ``scalars`` (features | invariant), ``pool`` (mean | sum); module doc."""

    defaults: ClassVar[dict[str, Any]] = {
        **TRAIN_DEFAULTS,
        "dropout": 0.0,
        "hidden": 32,
        "layers": 3,
        "fc": [32],
        "c_weight": 1e-3,
        "p_scale": 1.0,
        "beams": True,
        "scalars": "features",
        "pool": "mean",
    }

    def validate(self) -> None:
        super().validate()
        c = self.config
        if c["hidden"] < 1 or c["layers"] < 1:
            raise ConfigError("lorentznet: hidden and layers must be >= 1")
        if any(s < 1 for s in c["fc"]):
            raise ConfigError(f"lorentznet: fc sizes must be >= 1, not {c['fc']!r}")
        if c["c_weight"] < 0 or c["p_scale"] <= 0:
            raise ConfigError("lorentznet: c_weight must be >= 0 and p_scale > 0")
        if c["scalars"] not in ("features", "invariant"):
            raise ConfigError(
                f"lorentznet: scalars must be features or invariant, not {c['scalars']!r}"
            )
        if c["pool"] not in ("mean", "sum"):
            raise ConfigError(f"lorentznet: pool must be mean or sum, not {c['pool']!r}")

    def build(self, n_x: int, n_hl: int) -> nn.Module:
        from heplab.ml.data import PARTICLE_FEATURES

        c = self.config
        index = None
        if c["scalars"] == "invariant":
            index = [PARTICLE_FEATURES.index(f) for f in INVARIANT_SCALARS]
        return _networks()["LorentzNet"](
            n_x,
            index,
            int(c["hidden"]),
            int(c["layers"]),
            list(c["fc"]),
            c_weight=float(c["c_weight"]),
            p_scale=float(c["p_scale"]),
            beams=bool(c["beams"]),
            pool=str(c["pool"]),
            dropout=float(c["dropout"]),
        )
