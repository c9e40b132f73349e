"""Metric-learning graph construction: an embedding where a track's consecutive hits are
close, then a radius graph in that space (Exa.TrkX arXiv:2103.06995, Sec. 3.1).

An MLP maps each hit's features (r / 1000, cos phi, sin phi, z / 1000) to a point of
R^d. It is trained with the hinge embedding loss on hit pairs,

    L = mean over pairs of  { d_ij                       true pair (consecutive hits)
                            { max(0, margin - d_ij)      other pair

with d_ij the Euclidean distance in the embedding, on the true edges, random pairs and
*hard negatives* (the nearest neighbours, in the current embedding, of a random subset of
hits). The graph joins the hits closer than ``radius`` (default: the margin), at most
``k_max`` neighbours each, found with :func:`torch.cdist` + :func:`torch.topk` on chunks of
query hits (memory O(chunk x N), never N x N at once), and each edge points away from the
origin (the hit nearer to (0, 0, 0) first). No layer map is needed: the network learns
which hits follow which.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from heplab.errors import ConfigError, DataError
from heplab.events.trackml import TrackMLEvent
from heplab.reconstruction.tracking.features import GraphDataset
from heplab.reconstruction.tracking.graph import (
    EventGraph,
    check_event,
    hit_coordinates,
    truth_edges,
)

__all__ = [
    "EmbeddingConfig",
    "HitEmbedding",
    "embedding_graph",
    "radius_edges",
    "train_embedding",
]


def embedding_inputs(event: TrackMLEvent) -> torch.Tensor:
    """(N, 4) float32 hit features: r / 1000, cos phi, sin phi, z / 1000."""
    c = hit_coordinates(event)
    cols = [c["r"] / 1000.0, np.cos(c["phi"]), np.sin(c["phi"]), c["z"] / 1000.0]
    return torch.from_numpy(np.stack(cols, 1).astype(np.float32))


class HitEmbedding(nn.Module):
    """MLP hit embedding trained with the hinge loss on hit pairs (module doc)."""

    def __init__(
        self,
        n_in: int = 4,
        dim: int = 8,
        hidden: int = 64,
        layers: int = 3,
        margin: float = 0.1,
        n_random: int = 4,
        n_queries: int = 256,
        k_hard: int = 8,
    ) -> None:
        super().__init__()
        if dim < 1 or hidden < 1 or layers < 1 or margin <= 0:
            raise ConfigError("dim, hidden, layers must be >= 1 and margin > 0")
        mods: list[nn.Module] = []
        width = n_in
        for _ in range(layers - 1):
            mods += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.SiLU()]
            width = hidden
        mods.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*mods)
        self.margin = margin
        self.n_random = n_random
        self.n_queries = n_queries
        self.k_hard = k_hard

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        emb = self(batch["x"])
        pid, rank, pos = batch["pid"], batch["rank"], batch["pos"]
        n = emb.shape[0]
        gen = torch.Generator(device="cpu").manual_seed(int(pos.sum()) % (2**31) + n)
        rand = torch.randint(0, n, (2, self.n_random * max(pos.shape[1], 1)), generator=gen)
        queries = torch.randperm(n, generator=gen)[: self.n_queries]
        with torch.no_grad():
            d = torch.cdist(emb[queries], emb)
            d[torch.arange(len(queries)), queries] = float("inf")
            k = min(self.k_hard, n - 1)
            nn_idx = torch.topk(d, k, largest=False).indices
        hard = torch.stack([queries.repeat_interleave(k), nn_idx.reshape(-1)])
        pairs = torch.cat([pos, rand.to(pos.device), hard], 1)
        a, b = pairs
        true = (pid[a] == pid[b]) & (pid[a] != 0) & ((rank[a] - rank[b]).abs() == 1)
        dist = (emb[a] - emb[b]).pow(2).sum(1).add(1e-12).sqrt()
        target = true.float() * 2 - 1
        return nn.functional.hinge_embedding_loss(dist, target, margin=self.margin)


def _event_tensors(event: TrackMLEvent) -> dict[str, torch.Tensor]:
    te = truth_edges(event)
    return {
        "x": embedding_inputs(event),
        "pid": torch.from_numpy(te.pid.astype(np.int64)),
        "rank": torch.from_numpy(te.rank.astype(np.int64)),
        "pos": torch.from_numpy(te.edges.astype(np.int64)),
    }


def _one_event(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    if len(items) != 1:
        raise ConfigError("the embedding trains on one event per batch (batch_size 1)")
    return dict(items[0])


@dataclass
class EmbeddingConfig:
    """Settings of :func:`train_embedding` and :func:`embedding_graph`."""

    dim: int = 8
    hidden: int = 64
    margin: float = 0.1
    epochs: int = 10
    lr: float = 3e-3
    seed: int = 0
    radius: float | None = None  # default: the margin
    k_max: int = 16


def train_embedding(
    train_events: Sequence[TrackMLEvent],
    val_events: Sequence[TrackMLEvent],
    out_dir: str | os.PathLike[str],
    config: EmbeddingConfig | None = None,
    *,
    progress: bool = False,
) -> HitEmbedding:
    """Train the hit embedding through :func:`heplab.ml.engine.fit` (weights in out_dir)."""
    from heplab.ml.engine import TrainConfig, fit

    cfg = config or EmbeddingConfig()
    if not train_events or not val_events:
        raise ConfigError("embedding training needs training and validation events")
    torch.manual_seed(cfg.seed)
    model = HitEmbedding(dim=cfg.dim, hidden=cfg.hidden, margin=cfg.margin)
    tcfg = TrainConfig(
        epochs=cfg.epochs,
        batch_size=1,
        lr=cfg.lr,
        seed=cfg.seed,
        progress_bar=progress,
        patience=max(cfg.epochs, 1),
    )
    fit(
        model,
        GraphDataset([_event_tensors(e) for e in train_events]),
        GraphDataset([_event_tensors(e) for e in val_events]),
        config=tcfg,
        out_dir=Path(out_dir),
        collate_fn=_one_event,
    )
    return model.eval()


@torch.no_grad()
def radius_edges(
    emb: torch.Tensor, radius: float, k_max: int = 16, chunk: int = 1024
) -> torch.Tensor:
    """Pairs (i < j) closer than ``radius``, at most ``k_max`` neighbours per query hit."""
    n = emb.shape[0]
    k = min(k_max + 1, n)
    out = []
    for start in range(0, n, chunk):
        q = torch.arange(start, min(start + chunk, n))
        d = torch.cdist(emb[q], emb)
        dist, idx = torch.topk(d, k, largest=False)
        src = q[:, None].expand_as(idx)
        ok = (dist < radius) & (idx != src)
        out.append(torch.stack([src[ok], idx[ok]]))
    edges = torch.cat(out, 1) if out else torch.zeros((2, 0), dtype=torch.long)
    lo, hi = edges.min(0).values, edges.max(0).values
    key = torch.unique(lo * n + hi)
    return torch.stack([key // n, key % n])


def embedding_graph(
    event: TrackMLEvent, model: HitEmbedding, radius: float | None = None, k_max: int = 16
) -> EventGraph:
    """The metric-learning graph of ``event`` (edges pointing away from the origin).

    Raises
    ------
    DataError
        If the graph has no edge.
    """
    check_event(event)
    model.eval()
    emb = model(embedding_inputs(event))
    e = radius_edges(emb, radius or model.margin, k_max).numpy()
    c = hit_coordinates(event)
    dist = np.hypot(c["r"], c["z"])
    swap = dist[e[0]] > dist[e[1]]
    e = np.where(swap[None, :], e[::-1], e).astype(np.int64)
    if e.shape[1] == 0:
        raise DataError(f"event {event.event_id}: the embedding graph has no edge")
    return EventGraph.from_edges(event, c, e)
