"""Edge classifiers of GNN track finding: an edge-filter MLP and the Interaction Network.

Both read a batch dict of :func:`heplab.reconstruction.tracking.features.graph_tensors`
(``x`` (N, 3) node features, ``edge_index`` (2, E), ``edge_attr`` (E, 10)) and return one
logit per edge. ``training_loss(batch)`` is a weighted binary cross-entropy,

    L = -mean_e [ w+ y_e log s_e + (1 - y_e) log(1 - s_e) ],   s_e = sigmoid(logit_e),

with ``w+ = pos_weight`` (a model attribute, set from the training set's fake / true ratio
by the caller; a few, not the full ratio, keeps the purity at the 0.5 cut), because true
edges are a minority of a geometric graph (a few % at mu = 200).

- :class:`EdgeFilter`: an MLP on the edge features and both nodes' features, the
  "filter" stage of Exa.TrkX (arXiv:2103.06995) that thins the graph before the GNN.
- :class:`InteractionNetwork`: node and edge encoders, then ``n_iterations`` of residual
  message passing (:class:`InteractionLayer`, a torch_geometric ``MessagePassing``):

      e_ij <- e_ij + phi_R([h_i, h_j, e_ij])
      h_i  <- h_i + phi_O([h_i, sum_{j->i} e_ji, sum_{i->k} e_ik])

  and the edge score from the last edge state, ``phi_W(e_ij)``: the Interaction Network of
  DeZoort et al. arXiv:2103.16701 (after Battaglia et al. arXiv:1612.00222) with the
  residual connections of Exa.TrkX / GNN4ITk. Pure PyTorch scatter sums: no compiled
  torch_geometric extension is needed.
- :class:`HEPTrkXNetwork`: the HEP.TrkX "EdgeNetwork / NodeNetwork" model (Farrell et al.
  arXiv:1810.06111): an input network h = f_in(x), then ``n_iterations`` of

      a_ij = sigmoid(f_E([h_i, h_j, x_ij]))                       (edge network)
      h_i  <- f_N([sum_{j->i} a_ji h_j, sum_{i->k} a_ik h_k, h_i])  (node network)

  with the input features concatenated to h before every step (h <- [h, x]), and the
  edge logit of a last edge network on the final h. The edge weights a_ij act as an
  attention that lets true edges carry the neighbours' states. Unlike the paper (node
  coordinates only), the edge network also reads the edge features x_ij
  (:mod:`~heplab.reconstruction.tracking.features`).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from heplab.errors import ConfigError

with warnings.catch_warnings():
    # torch_geometric 2.8 still calls torch.jit.script at import (deprecated in torch 2.10+)
    warnings.filterwarnings(
        "ignore", message=r".*torch\.jit\.script.*deprecated", category=DeprecationWarning
    )
    from torch_geometric.nn import MessagePassing

__all__ = [
    "MODELS",
    "EdgeFilter",
    "HEPTrkXNetwork",
    "InteractionLayer",
    "InteractionNetwork",
    "build_model",
    "weighted_bce",
]


def _mlp(n_in: int, hidden: int, n_out: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = n_in
    for _ in range(layers - 1):
        mods += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.SiLU()]
        width = hidden
    mods.append(nn.Linear(width, n_out))
    return nn.Sequential(*mods)


def weighted_bce(logits: torch.Tensor, y: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """Binary cross-entropy with the true class weighted by ``pos_weight`` (module doc)."""
    w = torch.tensor(float(pos_weight), dtype=torch.float32, device=logits.device)
    return nn.functional.binary_cross_entropy_with_logits(logits.float(), y.float(), pos_weight=w)


class _EdgeClassifier(nn.Module):
    input_names = ("x", "edge_index", "edge_attr")
    pos_weight: float = 1.0
    config: dict[str, Any]

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self(batch["x"], batch["edge_index"], batch["edge_attr"])
        return weighted_bce(logits, batch["y"], self.pos_weight)


class EdgeFilter(_EdgeClassifier):
    """MLP on [edge features, inner node features, outer node features] -> edge logit."""

    def __init__(
        self, node_dim: int = 3, edge_dim: int = 10, hidden: int = 64, layers: int = 3
    ) -> None:
        super().__init__()
        if hidden < 1 or layers < 1:
            raise ConfigError(f"hidden and layers must be >= 1 ({hidden}, {layers})")
        self.config = {
            "node_dim": node_dim,
            "edge_dim": edge_dim,
            "hidden": hidden,
            "layers": layers,
        }
        self.net = _mlp(edge_dim + 2 * node_dim, hidden, 1, layers)

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor
    ) -> torch.Tensor:
        src, dst = edge_index
        return self.net(torch.cat([edge_attr, x[src], x[dst]], 1)).squeeze(-1)


class InteractionLayer(MessagePassing):
    """One residual interaction step (module doc): edge update, then node update.

    ``message()`` passes each (already updated) edge state to its target; the sum over
    incoming and, with the flipped edges, outgoing edges feeds the node MLP.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__(aggr="sum", flow="source_to_target")
        self.edge_mlp = _mlp(3 * hidden, hidden, hidden)
        self.node_mlp = _mlp(3 * hidden, hidden, hidden)

    def forward(
        self, h: torch.Tensor, edge_index: torch.Tensor, e: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        src, dst = edge_index
        e = e + self.edge_mlp(torch.cat([h[src], h[dst], e], 1))
        n = h.shape[0]
        incoming = self.propagate(edge_index, e=e, size=(n, n))
        outgoing = self.propagate(edge_index.flip(0), e=e, size=(n, n))
        h = h + self.node_mlp(torch.cat([h, incoming, outgoing], 1))
        return h, e

    def message(self, e: torch.Tensor) -> torch.Tensor:
        return e


class InteractionNetwork(_EdgeClassifier):
    """Encoders, ``n_iterations`` :class:`InteractionLayer` steps, edge score from e."""

    def __init__(
        self,
        node_dim: int = 3,
        edge_dim: int = 10,
        hidden: int = 32,
        n_iterations: int = 4,
    ) -> None:
        super().__init__()
        if hidden < 1 or n_iterations < 1:
            raise ConfigError(f"hidden and n_iterations must be >= 1 ({hidden}, {n_iterations})")
        self.config = {
            "node_dim": node_dim,
            "edge_dim": edge_dim,
            "hidden": hidden,
            "n_iterations": n_iterations,
        }
        self.node_encoder = _mlp(node_dim, hidden, hidden)
        self.edge_encoder = _mlp(edge_dim + 2 * node_dim, hidden, hidden)
        self.layers = nn.ModuleList(InteractionLayer(hidden) for _ in range(n_iterations))
        self.edge_out = _mlp(hidden, hidden, 1)

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor
    ) -> torch.Tensor:
        src, dst = edge_index
        h = self.node_encoder(x)
        e = self.edge_encoder(torch.cat([edge_attr, x[src], x[dst]], 1))
        for layer in self.layers:
            h, e = layer(h, edge_index, e)
        return self.edge_out(e).squeeze(-1)


class HEPTrkXNetwork(_EdgeClassifier):
    """The HEP.TrkX edge / node network with attention-weighted aggregation (module doc)."""

    def __init__(
        self,
        node_dim: int = 3,
        edge_dim: int = 10,
        hidden: int = 32,
        n_iterations: int = 4,
    ) -> None:
        super().__init__()
        if hidden < 1 or n_iterations < 1:
            raise ConfigError(f"hidden and n_iterations must be >= 1 ({hidden}, {n_iterations})")
        self.config = {
            "node_dim": node_dim,
            "edge_dim": edge_dim,
            "hidden": hidden,
            "n_iterations": n_iterations,
        }
        self.n_iterations = n_iterations
        width = hidden + node_dim
        self.input_net = nn.Sequential(nn.Linear(node_dim, hidden), nn.Tanh())
        # one edge and one node network shared by all iterations, as in the paper
        self.edge_net = _mlp(2 * width + edge_dim, hidden, 1)
        self.node_net = nn.Sequential(_mlp(3 * width, hidden, hidden), nn.Tanh())

    def _edge_logits(
        self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor
    ) -> torch.Tensor:
        src, dst = edge_index
        return self.edge_net(torch.cat([h[src], h[dst], edge_attr], 1)).squeeze(-1)

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor
    ) -> torch.Tensor:
        src, dst = edge_index
        h = torch.cat([self.input_net(x), x], 1)
        for _ in range(self.n_iterations):
            a = torch.sigmoid(self._edge_logits(h, edge_index, edge_attr)).unsqueeze(-1)
            incoming = torch.zeros_like(h).index_add_(0, dst, a * h[src])
            outgoing = torch.zeros_like(h).index_add_(0, src, a * h[dst])
            h = torch.cat([self.node_net(torch.cat([incoming, outgoing, h], 1)), x], 1)
        return self._edge_logits(h, edge_index, edge_attr)


MODELS: dict[str, type[_EdgeClassifier]] = {
    "filter": EdgeFilter,
    "gnn": InteractionNetwork,
    "hetrkx": HEPTrkXNetwork,
}


def build_model(name: str, **kwargs: Any) -> _EdgeClassifier:
    """A model of :data:`MODELS` by name (``filter``, ``gnn`` or ``hetrkx``) with its settings.

    Raises
    ------
    ConfigError
        For an unknown name or setting.
    """
    if name not in MODELS:
        raise ConfigError(f"unknown edge classifier {name!r}; choose one of {sorted(MODELS)}")
    try:
        return MODELS[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad settings for model {name!r}: {exc}") from exc
