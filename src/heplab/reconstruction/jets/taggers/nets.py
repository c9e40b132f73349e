"""The networks of the neural jet taggers (plain PyTorch; small CPU defaults).

Each network returns logits ``(batch,)`` for ``n_out = 1`` (binary) or ``(batch, n_out)``
and names the batch tensors of :mod:`heplab.ml.data` it takes in ``input_names``
(``x`` standardised particle features, ``v`` 4-vectors (px, py, pz, E) [GeV], ``coords``
raw (deta, dphi), ``mask`` real particles, ``hl`` standardised high-level features).

- :class:`DNN`: MLP on the high-level features.
- :class:`DeepSets`: Particle / Energy Flow Networks (Komiske, Metodiev, Thaler,
  arXiv:1810.05165). PFN: ``F(sum_i Phi(x_i))`` over real particles. EFN:
  ``F(sum_i z_i Phi(deta_i, dphi_i))`` with ``z_i = pT_i / sum_j pT_j``: only angles enter
  Phi and the sum is energy-weighted, so the output is IRC safe (a zero-pT particle adds
  nothing; a collinear split keeps the angles and the summed z).
- :class:`ParticleNet` (Qu, Gouskos, arXiv:1902.08570): EdgeConv blocks on dynamic k-NN
  graphs (first graph in (deta, dphi), then in the previous block's features), edge MLP on
  ``(h_i, h_j - h_i)``, mean over the k neighbours, shortcut, global average pooling over
  real particles, FC head. :func:`knn` uses ``torch.cdist`` + ``topk`` (padded particles and
  the particle itself pushed to infinite distance; neighbours that are still padding or self
  -- jets with fewer than k + 1 particles -- are flagged invalid and left out of the mean).
  No BatchNorm (its statistics would see the padding); LayerNorm-free, ReLU.
- :class:`ParticleTransformer` (Qu, Li, Qian, arXiv:2202.03772): particle embedding,
  particle-attention blocks whose attention logits get a per-head bias embedded from the
  pairwise features ``ln kT, ln z, ln dR, ln m^2`` (:func:`pair_features`), then
  class-attention blocks with a class token, LayerNorm and a linear head. With
  ``pair_bias=False`` it is a plain transformer (the ``transformer`` tagger).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

__all__ = [
    "DNN",
    "DeepSets",
    "ParticleNet",
    "ParticleTransformer",
    "knn",
    "mlp",
    "pair_features",
]

_BIG = 1.0e9


def _hypot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sqrt(a^2 + b^2) (``torch.hypot`` has no ONNX export)."""
    return torch.sqrt(a * a + b * b)


def mlp(sizes: Sequence[int], *, dropout: float = 0.0, last_act: bool = True) -> nn.Sequential:
    """Linear layers ``sizes[0] -> sizes[1] -> ...`` with ReLU (and dropout) between."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_act:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _head(n_in: int, hidden: Sequence[int], n_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        mlp([n_in, *hidden], dropout=dropout), nn.Linear(([n_in, *hidden])[-1], n_out)
    )


def _out(logits: torch.Tensor) -> torch.Tensor:
    return logits.squeeze(-1) if logits.shape[-1] == 1 else logits


class DNN(nn.Module):
    """MLP on the high-level jet features."""

    input_names: ClassVar[tuple[str, ...]] = ("hl",)

    def __init__(
        self, n_in: int, hidden: Sequence[int] = (64, 64), dropout: float = 0.1, n_out: int = 1
    ) -> None:
        super().__init__()
        self.net = _head(n_in, hidden, n_out, dropout)

    def forward(self, hl: torch.Tensor) -> torch.Tensor:
        return _out(self.net(hl))


class DeepSets(nn.Module):
    """PFN (``energy_flow=False``) or EFN (``True``) of arXiv:1810.05165."""

    def __init__(
        self,
        n_in: int,
        phi: Sequence[int] = (64, 64, 64),
        f: Sequence[int] = (64, 64),
        *,
        energy_flow: bool = False,
        dropout: float = 0.0,
        n_out: int = 1,
    ) -> None:
        super().__init__()
        self.energy_flow = energy_flow
        self.input_names = ("coords", "v", "mask") if energy_flow else ("x", "mask")
        self.phi = mlp([2 if energy_flow else n_in, *phi])
        self.f = _head(phi[-1], f, n_out, dropout)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.energy_flow:
            coords, v, mask = inputs
            pt = _hypot(v[..., 0], v[..., 1]) * mask
            z = pt / pt.sum(dim=1, keepdim=True).clamp_min(1e-12)
            latent = (z.unsqueeze(-1) * self.phi(coords)).sum(dim=1)
        else:
            x, mask = inputs
            latent = (self.phi(x) * mask.unsqueeze(-1)).sum(dim=1)
        return _out(self.f(latent))


def knn(points: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(B, P, k)`` of each particle's k nearest real neighbours and their
    validity (False for padding or self, which only occur when a jet has <= k particles)."""
    n = points.shape[1]
    k_eff = min(k, n)
    dist = torch.cdist(points, points)
    far = (~mask).unsqueeze(1) | torch.eye(n, dtype=torch.bool, device=points.device)
    dist = dist.masked_fill(far, _BIG)
    idx = dist.topk(k_eff, dim=-1, largest=False).indices
    self_idx = torch.arange(n, device=points.device).view(1, n, 1)
    valid = torch.gather(mask.unsqueeze(1).expand(-1, n, -1), 2, idx) & (idx != self_idx)
    if k_eff < k:  # fewer particles than k: pad with invalid neighbours
        pad = k - k_eff
        idx = torch.cat([idx, idx[..., :1].expand(-1, -1, pad)], dim=-1)
        valid = torch.cat([valid, torch.zeros_like(valid[..., :1]).expand(-1, -1, pad)], -1)
    return idx, valid


class EdgeConv(nn.Module):
    """One EdgeConv block: edge MLP on ``(h_i, h_j - h_i)``, mean over valid neighbours."""

    def __init__(self, n_in: int, channels: Sequence[int], k: int) -> None:
        super().__init__()
        self.k = k
        self.edge = mlp([2 * n_in, *channels])
        self.shortcut = nn.Linear(n_in, channels[-1])

    def forward(self, points: torch.Tensor, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        idx, valid = knn(points, mask, self.k)
        b, n, _k = idx.shape
        # the first edge layer is linear: W (h_i, h_j - h_i) + c = (W_a - W_b) h_i + W_b h_j
        # + c, so it runs once per particle and only its output is gathered per edge (k
        # times fewer multiplications than on the concatenated edge features)
        first = self.edge[0]
        assert isinstance(first, nn.Linear)
        c_in = h.shape[-1]
        w_a, w_b = first.weight[:, :c_in], first.weight[:, c_in:]
        node = nn.functional.linear(h, w_a - w_b, first.bias)
        nbr = nn.functional.linear(h, w_b)
        c = nbr.shape[-1]
        nbr_j = torch.gather(
            nbr.unsqueeze(1).expand(b, n, n, c), 2, idx.unsqueeze(-1).expand(-1, -1, -1, c)
        )
        e = self.edge[1:](node.unsqueeze(2) + nbr_j) * valid.unsqueeze(-1)
        agg = e.sum(dim=2) / valid.sum(dim=2, keepdim=True).clamp_min(1)
        return torch.relu(agg + self.shortcut(h)) * mask.unsqueeze(-1)


class ParticleNet(nn.Module):
    """EdgeConv blocks on dynamic k-NN graphs + global average pooling (arXiv:1902.08570)."""

    input_names: ClassVar[tuple[str, ...]] = ("x", "coords", "mask")

    def __init__(
        self,
        n_in: int,
        channels: Sequence[Sequence[int]] = ((32, 32), (32, 32)),
        k: int = 8,
        fc: Sequence[int] = (64,),
        dropout: float = 0.1,
        n_out: int = 1,
    ) -> None:
        super().__init__()
        blocks = []
        c_in = n_in
        for ch in channels:
            blocks.append(EdgeConv(c_in, ch, k))
            c_in = ch[-1]
        self.blocks = nn.ModuleList(blocks)
        self.head = _head(c_in, fc, n_out, dropout)

    def forward(self, x: torch.Tensor, coords: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = x * mask.unsqueeze(-1)
        points = coords
        for i, block in enumerate(self.blocks):
            h = block(points if i == 0 else h, h, mask)
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp_min(1)
        return _out(self.head(pooled))


def _pair_logs(vi: torch.Tensor, vj: torch.Tensor, eps: float) -> torch.Tensor:
    """``ln kT, ln z, ln dR, ln m^2`` (last axis) of the pairs of 4-vectors ``vi``, ``vj``
    (broadcastable ``(..., 4)`` tensors of px, py, pz, E)."""

    def kinematics(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        px, py, pz, e = p.unbind(-1)
        rap = 0.5 * torch.log((e + pz).clamp_min(eps) / (e - pz).clamp_min(eps))
        return _hypot(px, py), rap, torch.atan2(py, px)

    pti, rapi, phii = kinematics(vi)
    ptj, rapj, phij = kinematics(vj)
    dphi = torch.remainder(phii - phij + torch.pi, 2 * torch.pi) - torch.pi
    dr = _hypot(rapi - rapj, dphi)
    ptmin = torch.minimum(pti, ptj)
    kt = ptmin * dr
    z = ptmin / (pti + ptj).clamp_min(eps)
    s = vi + vj
    m2 = s[..., 3] ** 2 - s[..., 0] ** 2 - s[..., 1] ** 2 - s[..., 2] ** 2
    return torch.stack([kt, z, dr, m2], dim=-1).clamp_min(eps).log()


def pair_features(v: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(B, P, P, 4)``: ``ln kT, ln z, ln dR, ln m^2`` of every particle pair (ParT's
    interaction features, arXiv:2202.03772; kT = min(pT_i, pT_j) dR, z = min(pT) / (pT_i
    + pT_j), dR in (rapidity, phi), m^2 of p_i + p_j; logs of values clamped at ``eps``);
    0 for pairs with a padded particle."""
    feats = _pair_logs(v.unsqueeze(2), v.unsqueeze(1), eps)
    pair_mask = (mask.unsqueeze(2) & mask.unsqueeze(1)).unsqueeze(-1)
    return feats * pair_mask


class _Block(nn.Module):
    """Pre-LayerNorm attention block (scaled_dot_product_attention) + feed-forward."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, dim)
        )
        self.dropout = dropout

    def forward(self, query: torch.Tensor, keys: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, nq, d = query.shape
        h = self.heads
        q = self.q(self.norm1(query)).view(b, nq, h, d // h).transpose(1, 2)
        kv = self.kv(self.norm1(keys)).view(b, keys.shape[1], 2, h, d // h)
        k, v = kv.unbind(2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        if torch.compiler.is_exporting():
            # the same attention, written out: torch.export's decomposition of the fused
            # kernel gets the output strides wrong (torch 2.13), so ONNX export uses this
            # (softmax spelt out too: an inner node named "softmax" would clash with
            # weaver's output name)
            scores = q @ k.transpose(-2, -1) * (d // h) ** -0.5 + bias
            weights = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
            att = (weights / weights.sum(dim=-1, keepdim=True)) @ v
        else:
            att = nn.functional.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=bias.to(q.dtype),
                dropout_p=self.dropout if self.training else 0.0,
            )
        out = query + self.proj(att.transpose(1, 2).reshape(b, nq, d))
        return out + self.ffn(self.norm2(out))


class ParticleTransformer(nn.Module):
    """ParT (``pair_bias=True``) or a plain transformer (``False``); arXiv:2202.03772."""

    def __init__(
        self,
        n_in: int,
        dim: int = 32,
        heads: int = 4,
        layers: int = 2,
        cls_layers: int = 1,
        pair_dims: Sequence[int] = (16, 16),
        *,
        pair_bias: bool = True,
        dropout: float = 0.0,
        n_out: int = 1,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.pair_bias = pair_bias
        self.input_names = ("x", "v", "mask") if pair_bias else ("x", "mask")
        self.embed = mlp([n_in, dim, dim])
        self.pair_embed = (
            nn.Sequential(mlp([4, *pair_dims]), nn.Linear(([4, *pair_dims])[-1], heads))
            if pair_bias
            else None
        )
        self.blocks = nn.ModuleList(_Block(dim, heads, 2 * dim, dropout) for _ in range(layers))
        self.cls_blocks = nn.ModuleList(
            _Block(dim, heads, 2 * dim, dropout) for _ in range(cls_layers)
        )
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_out)

    def _pair_bias(self, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, H, P, P)`` attention bias embedded from the pair features.

        The features are symmetric in (i, j), and pairs with a padded particle are only
        ever attended with a -inf key bias (or masked as queries), so the embedding runs on
        the real pairs with i <= j alone and is mirrored: for jets of ~50 particles in
        batches padded to ~100 that is about 8 times fewer pairs than the dense grid. Under
        ``torch.export`` (ONNX) the dense grid is used (static shapes); real pairs get the
        same values either way.
        """
        assert self.pair_embed is not None
        b, n, _ = v.shape
        if torch.compiler.is_exporting():
            return self.pair_embed(pair_features(v, mask)).permute(0, 3, 1, 2)
        upper = torch.ones(n, n, dtype=torch.bool, device=v.device).triu()
        real = mask.unsqueeze(2) & mask.unsqueeze(1) & upper
        jet, i, j = real.nonzero(as_tuple=True)
        emb = self.pair_embed(_pair_logs(v[jet, i], v[jet, j], 1e-8))
        out = torch.zeros(b, n, n, emb.shape[-1], dtype=emb.dtype, device=v.device)
        out = out.index_put((jet, i, j), emb).index_put((jet, j, i), emb)
        return out.permute(0, 3, 1, 2)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.pair_bias:
            x, v, mask = inputs
        else:
            x, mask = inputs
        b, n, _ = x.shape
        key_bias = torch.zeros(b, 1, 1, n, dtype=x.dtype, device=x.device)
        key_bias = key_bias.masked_fill(~mask.view(b, 1, 1, n), -_BIG)
        bias = key_bias.expand(b, self.heads, n, n)
        if self.pair_embed is not None:
            bias = (bias + self._pair_bias(v, mask)).contiguous()  # one layout for all blocks
        h = self.embed(x) * mask.unsqueeze(-1)
        for block in self.blocks:
            h = block(h, h, bias) * mask.unsqueeze(-1)
        cls = self.cls.expand(b, -1, -1)
        cls_bias = torch.cat(
            [torch.zeros(b, 1, 1, 1, dtype=x.dtype, device=x.device), key_bias], dim=-1
        ).expand(b, self.heads, 1, n + 1)
        for block in self.cls_blocks:
            cls = block(cls, torch.cat([cls, h], dim=1), cls_bias)
        return _out(self.head(self.norm(cls[:, 0])))
