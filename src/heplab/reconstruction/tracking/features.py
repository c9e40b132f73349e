"""Node and edge features of an event graph, as the tensors the edge classifiers read.

Node features (one row per hit): ``r / 1000, phi / pi, z / 1000`` (mm -> O(1)), the
cylindrical coordinates of HEP.TrkX / Exa.TrkX (arXiv:1810.06111, arXiv:2103.06995).

Edge features (one row per edge 1 -> 2; rotation invariant, nothing depends on phi
itself): ``dr / 100``, ``dphi * 10`` (wrapped to [-pi, pi)), ``dz / 100``, ``deta``,
phi slope ``dphi / (|dr| + 1 mm) * 1000`` (~ 0.3 / pT[GeV] in 2 T), ``z0 / 200`` with
z0 = z1 - r1 dz / dr (clipped to +-1000 mm, 0 where |dr| < 1 mm), and ``r1, z1, r2, z2``
scaled as the nodes.

:func:`graph_tensors` returns a dict of tensors (``x``, ``edge_index``, ``edge_attr`` and,
with truth, ``y``) that :func:`collate_graphs` concatenates into one disjoint graph per
batch (node indices offset), as torch_geometric's ``Batch`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from heplab.reconstruction.tracking.graph import EventGraph

__all__ = [
    "EDGE_FEATURES",
    "NODE_FEATURES",
    "GraphDataset",
    "collate_graphs",
    "edge_features",
    "graph_tensors",
    "node_features",
]

NODE_FEATURES = ("r", "phi", "z")
EDGE_FEATURES = ("dr", "dphi", "dz", "deta", "phi_slope", "z0", "r1", "z1", "r2", "z2")


def node_features(graph: EventGraph) -> np.ndarray:
    """(N, 3) float32 node features (module doc)."""
    c = graph.coords
    return np.stack([c["r"] / 1000.0, c["phi"] / np.pi, c["z"] / 1000.0], 1).astype(np.float32)


def edge_features(graph: EventGraph) -> np.ndarray:
    """(E, 10) float32 edge features (module doc)."""
    c = graph.coords
    a, b = graph.edge_index
    r1, r2, z1, z2 = c["r"][a], c["r"][b], c["z"][a], c["z"][b]
    dr, dz = r2 - r1, z2 - z1
    dphi = (c["phi"][b] - c["phi"][a] + np.pi) % (2 * np.pi) - np.pi
    deta = c["eta"][b] - c["eta"][a]
    slope = dphi / (np.abs(dr) + 1.0)
    safe = np.abs(dr) >= 1.0
    z0 = np.where(safe, z1 - r1 * dz / np.where(safe, dr, 1.0), 0.0)
    z0 = np.clip(z0, -1000.0, 1000.0)
    cols = [
        dr / 100.0,
        dphi * 10.0,
        dz / 100.0,
        deta,
        slope * 1000.0,
        z0 / 200.0,
        r1 / 1000.0,
        z1 / 1000.0,
        r2 / 1000.0,
        z2 / 1000.0,
    ]
    return np.stack(cols, 1).astype(np.float32)


def graph_tensors(graph: EventGraph) -> dict[str, torch.Tensor]:
    """The tensors of one graph: x, edge_index, edge_attr (and y with truth)."""
    out = {
        "x": torch.from_numpy(node_features(graph)),
        "edge_index": torch.from_numpy(np.ascontiguousarray(graph.edge_index, np.int64)),
        "edge_attr": torch.from_numpy(edge_features(graph)),
    }
    if graph.y is not None:
        out["y"] = torch.from_numpy(graph.y.astype(np.float32))
    return out


def collate_graphs(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate graphs into one disjoint graph (edge indices offset by the node count)."""
    if len(items) == 1:
        return dict(items[0])
    offsets = np.cumsum([0] + [len(it["x"]) for it in items[:-1]])
    out = {
        "x": torch.cat([it["x"] for it in items]),
        "edge_index": torch.cat(
            [it["edge_index"] + int(o) for it, o in zip(items, offsets, strict=True)], 1
        ),
        "edge_attr": torch.cat([it["edge_attr"] for it in items]),
    }
    if all("y" in it for it in items):
        out["y"] = torch.cat([it["y"] for it in items])
    return out


class GraphDataset(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """A list of :func:`graph_tensors` dicts, one event graph per item."""

    def __init__(self, graphs: Sequence[dict[str, torch.Tensor]]) -> None:
        self.graphs = list(graphs)

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.graphs[i]
