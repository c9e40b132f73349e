"""The GNN track-finding pipeline, stage by stage: graph -> edge scores -> tracks.

1. graph: :func:`heplab.reconstruction.tracking.graph.build_graph` with a layer-pair map
   learned from the training events' truth (pairs seen >= ``min_pair_count`` times: the
   rare pairs, mostly layers skipped by an inefficiency, bring many fakes for few true
   edges; with per-pair cut windows);
2. edge classification: an :class:`~heplab.reconstruction.tracking.models.EdgeFilter`,
   :class:`~heplab.reconstruction.tracking.models.InteractionNetwork` or
   :class:`~heplab.reconstruction.tracking.models.HEPTrkXNetwork` trained through
   :func:`heplab.ml.engine.fit` (one event graph per batch element, weighted BCE); or the
   Exa.TrkX *chain* (``model="chain"``): an edge-filter MLP trained first on the geometric
   graph, a cut on its score chosen on the training graphs so that a fraction
   ``filter_efficiency`` (default 99.5 %) of their true edges survive,

       c_f = quantile_{true edges e}( s_f(e), 1 - filter_efficiency ),

   and the Interaction Network trained and run on the pruned graph (edges with
   s_f > c_f); a pruned edge gets the score 0, so the chain's scores stay aligned with
   the geometric graph and its efficiency counts the filter's losses;
3. track building: connected components or the walk-through on the edges with score >
   ``edge_cut``, then the TrackML submission.

A run directory (:func:`train_pipeline`) holds ``config.json`` (model name and settings,
graph cuts, layer-pair map, edge cut, pos_weight), ``weights.pt`` (the model's
``state_dict``, loaded with ``weights_only=True``), ``metrics.json`` (graph and edge
efficiency / purity on the validation events, per pT threshold; ms per event per stage) and
``efficiency_purity.png`` (edge efficiency and purity against the score cut). The engine's
checkpoints are under ``train/``; a chain run adds ``filter_weights.pt`` (the filter's
``state_dict``; its settings and cut in ``config.json``) and the filter's checkpoints
under ``train_filter/``.

Truth oracles (issue 5): ``graph="perfect"`` replaces the geometric graph by the true
edges and ``scores="perfect"`` the classifier by the truth flags, so that each stage's loss
is measured on its own (:func:`reconstruct_event`).

References: Ju et al. (Exa.TrkX) arXiv:2103.06995; DeZoort et al. arXiv:2103.16701;
Farrell et al. (HEP.TrkX) arXiv:1810.06111.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.events.trackml import TrackMLEvent
from heplab.reconstruction.tracking.building import connected_components, submission, walkthrough
from heplab.reconstruction.tracking.features import GraphDataset, collate_graphs, graph_tensors
from heplab.reconstruction.tracking.graph import (
    EventGraph,
    GraphCuts,
    LayerPairMap,
    build_graph,
    perfect_graph,
)
from heplab.reconstruction.tracking.metrics import EdgeTally, tally_edges
from heplab.reconstruction.tracking.models import build_model

__all__ = [
    "METHODS",
    "PIPELINE_MODELS",
    "EdgePipeline",
    "PipelineConfig",
    "TrainResult",
    "reconstruct",
    "reconstruct_event",
    "subgraph",
    "train_pipeline",
]

BUILDERS = ("cc", "walk")
#: edge-classifier choices of :class:`PipelineConfig` (``chain``: filter MLP -> GNN)
PIPELINE_MODELS = ("gnn", "filter", "chain", "hetrkx")


@dataclass
class PipelineConfig:
    """Settings of the GNN pipeline (model, training, graph cuts, track building)."""

    model: str = "gnn"
    hidden: int = 32
    n_iterations: int = 4
    filter_layers: int = 3
    epochs: int = 10
    lr: float = 2e-3
    graphs_per_batch: int = 1
    patience: int = 5
    seed: int = 0
    pos_weight: float | None = None
    min_pair_count: int = 5
    pair_windows: bool = True
    edge_cut: float = 0.5
    builder: str = "walk"
    min_track_hits: int = 3
    cuts: GraphCuts = field(default_factory=GraphCuts)
    filter_efficiency: float = 0.995
    filter_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.model not in PIPELINE_MODELS:
            raise ConfigError(f"model must be one of {PIPELINE_MODELS}, not {self.model!r}")
        if not 0.0 < self.filter_efficiency <= 1.0:
            raise ConfigError(f"filter_efficiency must be in (0, 1], not {self.filter_efficiency}")
        if self.filter_epochs is not None and self.filter_epochs < 1:
            raise ConfigError(f"filter_epochs must be >= 1, not {self.filter_epochs}")
        if self.builder not in BUILDERS:
            raise ConfigError(f"builder must be one of {BUILDERS}, not {self.builder!r}")
        if not 0.0 < self.edge_cut < 1.0:
            raise ConfigError(f"edge_cut must be in (0, 1), not {self.edge_cut}")
        if self.epochs < 1 or self.graphs_per_batch < 1 or self.min_track_hits < 1:
            raise ConfigError("epochs, graphs_per_batch and min_track_hits must be >= 1")
        if self.pos_weight is not None and self.pos_weight <= 0:
            raise ConfigError(f"pos_weight must be > 0, not {self.pos_weight}")
        if isinstance(self.cuts, dict):
            self.cuts = GraphCuts(**self.cuts)

    @property
    def classifier(self) -> str:
        """The registry name (:data:`~heplab.reconstruction.tracking.models.MODELS`) of the
        final edge classifier: the chain ends with the Interaction Network."""
        return "gnn" if self.model == "chain" else self.model

    def model_kwargs(self) -> dict[str, Any]:
        if self.classifier in ("gnn", "hetrkx"):
            return {"hidden": self.hidden, "n_iterations": self.n_iterations}
        return self.filter_kwargs()

    def filter_kwargs(self) -> dict[str, Any]:
        """Settings of the edge-filter MLP (the ``filter`` model and the chain's first stage)."""
        return {"hidden": 2 * self.hidden, "layers": self.filter_layers}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def subgraph(graph: EventGraph, keep: np.ndarray) -> EventGraph:
    """The graph with only the edges flagged in ``keep`` (same nodes, truth kept)."""
    keep = np.asarray(keep, bool)
    if keep.shape != (graph.num_edges,):
        raise ValueError(f"keep has shape {keep.shape}, the graph {graph.num_edges} edges")
    return EventGraph(
        event_id=graph.event_id,
        hit_id=graph.hit_id,
        coords=graph.coords,
        edge_index=graph.edge_index[:, keep],
        y=None if graph.y is None else graph.y[keep],
        truth=graph.truth,
    )


@torch.no_grad()
def _sigmoid_scores(model: torch.nn.Module, graph: EventGraph) -> np.ndarray:
    t = graph_tensors(graph)
    return torch.sigmoid(model(t["x"], t["edge_index"], t["edge_attr"])).numpy().astype(np.float64)


class EdgePipeline:
    """A trained pipeline: layer-pair map, graph cuts, edge classifier(s), building settings.

    With ``filter_model`` (the Exa.TrkX chain) :meth:`score` first drops the edges whose
    filter score is not above ``filter_cut`` and runs ``model`` on what is left.
    """

    def __init__(
        self,
        config: PipelineConfig,
        pair_map: LayerPairMap,
        model: torch.nn.Module,
        filter_model: torch.nn.Module | None = None,
        filter_cut: float = 0.0,
    ) -> None:
        self.config = config
        self.pair_map = pair_map
        self.model = model.eval()
        self.filter_model = None if filter_model is None else filter_model.eval()
        self.filter_cut = float(filter_cut)

    def graph(self, event: TrackMLEvent) -> EventGraph:
        """The geometric graph of ``event``."""
        return build_graph(event, self.pair_map, self.config.cuts)

    @torch.no_grad()
    def warm_up(self) -> None:
        """Run the model once on a two-node graph (one-off initialisation of the message
        passing, seconds on the first call) so that per-event timings are steady-state."""
        cfg = getattr(self.model, "config", {})
        x = torch.zeros(2, int(cfg.get("node_dim", 3)))
        ei = torch.tensor([[0], [1]])
        self.model(x, ei, torch.zeros(1, int(cfg.get("edge_dim", 10))))

    def filter_mask(self, graph: EventGraph) -> np.ndarray:
        """Edges that pass the chain's filter (all edges without a filter)."""
        if self.filter_model is None:
            return np.ones(graph.num_edges, bool)
        return _sigmoid_scores(self.filter_model, graph) > self.filter_cut

    def score(self, graph: EventGraph) -> np.ndarray:
        """Edge scores in [0, 1] (sigmoid of the classifier's logits); 0 for the edges that
        the chain's filter dropped.

        Raises
        ------
        DataError
            If the filter drops every edge of a non-empty graph (fail fast, issue 5).
        """
        if self.filter_model is None:
            return _sigmoid_scores(self.model, graph)
        keep = self.filter_mask(graph)
        out = np.zeros(graph.num_edges, np.float64)
        if graph.num_edges and not keep.any():
            raise DataError(
                f"event {graph.event_id}: the edge filter dropped all {graph.num_edges} edges "
                f"(cut {self.filter_cut:.4g}); is the event like the training events?"
            )
        out[keep] = _sigmoid_scores(self.model, subgraph(graph, keep))
        return out

    def save(self, run_dir: str | os.PathLike[str]) -> None:
        """Write ``config.json`` and ``weights.pt`` into ``run_dir`` (atomically)."""
        d = Path(run_dir)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".weights.pt.{os.getpid()}.tmp"
        torch.save(self.model.state_dict(), tmp)
        os.replace(tmp, d / "weights.pt")
        cfg: dict[str, Any] = {
            "pipeline": self.config.to_dict(),
            "model_config": getattr(self.model, "config", {}),
            "pos_weight": float(getattr(self.model, "pos_weight", 1.0)),
            "layer_pairs": self.pair_map.to_dict(),
        }
        if self.filter_model is not None:
            tmp = d / f".filter_weights.pt.{os.getpid()}.tmp"
            torch.save(self.filter_model.state_dict(), tmp)
            os.replace(tmp, d / "filter_weights.pt")
            cfg["filter_model_config"] = getattr(self.filter_model, "config", {})
            cfg["filter_cut"] = self.filter_cut
        _atomic_write(d / "config.json", json.dumps(cfg, indent=2))

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> EdgePipeline:
        """Read a run directory written by :func:`train_pipeline`.

        Raises
        ------
        DataError
            If ``config.json`` or ``weights.pt`` is missing or unreadable.
        """
        d = Path(run_dir)
        cfg_path, w_path = d / "config.json", d / "weights.pt"
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise DataError(f"{p}: missing; is {d} a run directory of `heplab tracking train`?")
        try:
            cfg = json.loads(cfg_path.read_text())
            config = PipelineConfig(**cfg["pipeline"])
            pair_map = LayerPairMap.from_dict(cfg["layer_pairs"])
            model = build_model(config.classifier, **cfg["model_config"])
            model.pos_weight = float(cfg.get("pos_weight", 1.0))
            filt = None
            if config.model == "chain":
                filt = build_model("filter", **cfg["filter_model_config"])
                filter_cut = float(cfg["filter_cut"])
        except (json.JSONDecodeError, KeyError, TypeError, ConfigError) as exc:
            raise DataError(f"{cfg_path}: not a tracking run config ({exc})") from exc
        pairs = [(model, w_path)]
        if filt is not None:
            pairs.append((filt, d / "filter_weights.pt"))
        for net, path in pairs:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                net.load_state_dict(state)
            except Exception as exc:
                raise DataError(f"{path}: cannot load the model weights ({exc})") from exc
        if filt is None:
            return cls(config, pair_map, model)
        return cls(config, pair_map, model, filt, filter_cut)


@dataclass
class TrainResult:
    """What :func:`train_pipeline` produced: the pipeline and its validation metrics."""

    pipeline: EdgePipeline
    metrics: dict[str, Any]
    run_dir: Path


def _efficiency_purity_curve(
    graphs: Sequence[EventGraph], scores: Sequence[np.ndarray], cuts: np.ndarray
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"cut": cuts.tolist()}
    for cut in cuts:
        tally: EdgeTally | None = None
        for g, s in zip(graphs, scores, strict=True):
            t = tally_edges(g, s > cut)
            tally = t if tally is None else tally + t
        assert tally is not None
        for k, v in tally.summary().items():
            if k.startswith(("efficiency", "purity")):
                out.setdefault(k, []).append(v)
    return out


def _plot_curve(curve: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for key, style in (
        ("efficiency_pt1", "-"),
        ("purity_pt1", "-"),
        ("efficiency_pt0.5", "--"),
        ("purity_pt0.5", "--"),
    ):
        if key in curve:
            ax.plot(curve["cut"], curve[key], style, label=key.replace("_pt", ", pT > ") + " GeV")
    ax.set_xlabel("edge score cut")
    ax.set_ylabel("fraction")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower center", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def train_pipeline(
    train_events: Sequence[TrackMLEvent],
    val_events: Sequence[TrackMLEvent],
    run_dir: str | os.PathLike[str],
    config: PipelineConfig | None = None,
    *,
    force: bool = False,
    progress: bool = False,
) -> TrainResult:
    """Learn the layer map, build the graphs, train the edge classifier, write the run.

    Raises
    ------
    OutputExistsError
        If ``run_dir`` already holds a ``config.json`` and not ``force``.
    DataError
        If the events lack truth or make empty graphs.
    ConfigError
        Without training or validation events.
    """
    from heplab.ml.engine import TrainConfig, fit

    cfg = config or PipelineConfig()
    d = Path(run_dir)
    if (d / "config.json").exists() and not force:
        raise OutputExistsError(f"{d}: already a training run (use force / --force to replace)")
    if not train_events or not val_events:
        raise ConfigError("training needs at least one training and one validation event")
    if force and (d / "train").exists():
        shutil.rmtree(d / "train")  # never resume a replaced run
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pair_map = LayerPairMap.learn(
        train_events, min_count=cfg.min_pair_count, windows=cfg.pair_windows
    )
    train_graphs = [build_graph(e, pair_map, cfg.cuts) for e in train_events]
    val_graphs = [build_graph(e, pair_map, cfg.cuts) for e in val_events]
    ms_graph = (time.perf_counter() - t0) * 1e3 / (len(train_events) + len(val_events))

    def train_one(
        name: str,
        kwargs: dict[str, Any],
        graphs: list[EventGraph],
        vgraphs: list[EventGraph],
        epochs: int,
        out: Path,
    ) -> tuple[torch.nn.Module, Any, float, float]:
        n_true = sum(int(g.y.sum()) for g in graphs if g.y is not None)
        n_all = sum(g.num_edges for g in graphs)
        if n_true == 0:
            raise DataError("the training graphs hold no true edge: nothing to learn")
        # a moderate weight: sqrt of the fake/true ratio keeps efficiency and purity balanced
        pw = cfg.pos_weight or float(np.clip(np.sqrt((n_all - n_true) / n_true), 1.0, 10.0))
        net = build_model(name, **kwargs)
        net.pos_weight = pw
        tcfg = TrainConfig(
            epochs=epochs,
            batch_size=cfg.graphs_per_batch,
            lr=cfg.lr,
            patience=cfg.patience,
            seed=cfg.seed,
            progress_bar=progress,
        )
        t1 = time.perf_counter()
        res = fit(
            net,
            GraphDataset([graph_tensors(g) for g in graphs]),
            GraphDataset([graph_tensors(g) for g in vgraphs]),
            config=tcfg,
            out_dir=out,
            collate_fn=collate_graphs,
        )
        return net, res, pw, time.perf_counter() - t1

    filter_model: torch.nn.Module | None = None
    filter_cut = 0.0
    extra: dict[str, Any] = {}
    gnn_train, gnn_val = train_graphs, val_graphs
    if cfg.model == "chain":
        if force and (d / "train_filter").exists():
            shutil.rmtree(d / "train_filter")
        filter_model, f_res, f_pw, f_s = train_one(
            "filter",
            cfg.filter_kwargs(),
            train_graphs,
            val_graphs,
            cfg.filter_epochs or cfg.epochs,
            d / "train_filter",
        )
        filter_model.eval()
        true_scores = np.concatenate(
            [_sigmoid_scores(filter_model, g)[g.y] for g in train_graphs if g.y is not None]
        )
        # keep filter_efficiency of the training graphs' true edges (strictly above the cut)
        q = 1.0 - cfg.filter_efficiency
        # (just below the quantile, since an edge passes when its score is > the cut;
        # filter_efficiency = 1 keeps every edge)
        filter_cut = float(np.nextafter(np.quantile(true_scores, q), -np.inf)) if q > 0 else -1.0
        masks = [_sigmoid_scores(filter_model, g) > filter_cut for g in val_graphs]
        f_tally = sum(
            (tally_edges(g, m) for g, m in zip(val_graphs[1:], masks[1:], strict=True)),
            tally_edges(val_graphs[0], masks[0]),
        )
        gnn_train = [
            subgraph(g, _sigmoid_scores(filter_model, g) > filter_cut) for g in train_graphs
        ]
        gnn_val = [subgraph(g, m) for g, m in zip(val_graphs, masks, strict=True)]
        if any(g.num_edges == 0 for g in gnn_train + gnn_val):
            raise DataError("the edge filter dropped every edge of a training graph")
        extra["filter"] = {
            "cut": filter_cut,
            "target_efficiency": cfg.filter_efficiency,
            "pos_weight": f_pw,
            "selection": f_tally.summary(),
            "fit": {
                "best_val_loss": f_res.best_val_loss,
                "best_epoch": f_res.best_epoch,
                "epochs_run": f_res.epochs_run,
                "seconds": f_s,
            },
        }
    model, fit_res, pos_weight, train_s = train_one(
        cfg.classifier, cfg.model_kwargs(), gnn_train, gnn_val, cfg.epochs, d / "train"
    )
    pipe = EdgePipeline(cfg, pair_map, model, filter_model, filter_cut)
    t2 = time.perf_counter()
    scores = [pipe.score(g) for g in val_graphs]
    ms_score = (time.perf_counter() - t2) * 1e3 / len(val_graphs)
    graph_tally = sum((tally_edges(g) for g in val_graphs[1:]), tally_edges(val_graphs[0]))
    edge_tally = sum(
        (tally_edges(g, s > cfg.edge_cut) for g, s in zip(val_graphs[1:], scores[1:], strict=True)),
        tally_edges(val_graphs[0], scores[0] > cfg.edge_cut),
    )
    curve = _efficiency_purity_curve(val_graphs, scores, np.round(np.linspace(0.05, 0.95, 19), 2))
    metrics: dict[str, Any] = {
        "model": cfg.model,
        "train_events": len(train_events),
        "val_events": len(val_events),
        "layer_pairs": len(pair_map.pairs),
        "pos_weight": pos_weight,
        "graph": graph_tally.summary(),
        "edge_classifier": edge_tally.summary(),
        "edge_cut": cfg.edge_cut,
        "curve": curve,
        "fit": {
            "best_val_loss": fit_res.best_val_loss,
            "best_epoch": fit_res.best_epoch,
            "epochs_run": fit_res.epochs_run,
            "seconds": train_s,
        },
        "ms_per_event": {"graph": ms_graph, "edge_scores": ms_score},
        **extra,
    }
    pipe.save(d)
    _atomic_write(d / "metrics.json", json.dumps(metrics, indent=2))
    _plot_curve(curve, d / "efficiency_purity.png", f"{cfg.model}: validation edges")
    return TrainResult(pipeline=pipe, metrics=metrics, run_dir=d)


def reconstruct_event(
    event: TrackMLEvent,
    pipeline: EdgePipeline | None = None,
    *,
    graph: str = "geometric",
    scores: str = "model",
    builder: str | None = None,
    edge_cut: float | None = None,
    min_track_hits: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Run the pipeline on one event: (TrackML submission, ms per stage).

    ``graph`` is ``"geometric"``, ``"hashing"`` (similarity hashing of
    :mod:`heplab.reconstruction.tracking.hashing`, buckets of 30 hits, 8 tables, on the
    pipeline's layer-pair map) or ``"perfect"`` (truth oracle: the true edges), ``scores``
    ``"model"`` or ``"perfect"`` (truth oracle: score = truth flag). The geometric and
    hashing graphs and model scores need ``pipeline``.

    Raises
    ------
    ConfigError
        For an unknown stage option, or a stage that needs a pipeline without one.
    DataError
        An empty graph, a classifier that drops every edge, or an oracle without truth.
    """
    if graph not in ("geometric", "hashing", "perfect") or scores not in ("model", "perfect"):
        raise ConfigError(
            f"graph must be geometric|hashing|perfect, scores model|perfect ({graph}, {scores})"
        )
    if pipeline is None and (graph != "perfect" or scores == "model"):
        raise ConfigError(
            "the geometric and hashing graphs and model scores need a trained pipeline"
        )
    cfg = pipeline.config if pipeline is not None else PipelineConfig()
    build = builder or cfg.builder
    if build not in BUILDERS:
        raise ConfigError(f"builder must be one of {BUILDERS}, not {build!r}")
    cut = cfg.edge_cut if edge_cut is None else edge_cut
    ms: dict[str, float] = {}
    t = time.perf_counter()
    if graph == "perfect":
        g = perfect_graph(event)
    elif graph == "hashing":
        from heplab.reconstruction.tracking.hashing import HashConfig, hash_graph

        assert pipeline is not None
        g = hash_graph(event, pipeline.pair_map, HashConfig(bucket_size=30, n_tables=8))
    else:
        assert pipeline is not None
        g = pipeline.graph(event)
    ms["graph"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    if scores == "perfect":
        if g.y is None:
            raise DataError(f"event {event.event_id}: the perfect-score oracle needs truth")
        s = g.y.astype(np.float64)
    else:
        assert pipeline is not None
        s = pipeline.score(g)
    ms["edge_scores"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    fn = connected_components if build == "cc" else walkthrough
    labels = fn(g.num_nodes, g.edge_index, s, cut)
    sub = submission(g.hit_id, labels, min_hits=min_track_hits or cfg.min_track_hits)
    ms["tracks"] = (time.perf_counter() - t) * 1e3
    return sub, ms


METHODS = ("gnn", "hough", "seeding", "hashing")


def reconstruct(
    event: TrackMLEvent,
    method: str,
    pipeline: EdgePipeline | None = None,
    *,
    builder: str | None = None,
    edge_cut: float | None = None,
    hough_config: Any = None,
    seeding_config: Any = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """One event through ``method``: (submission, ms per stage).

    ``gnn``: graph, edge scores, track building of a trained ``pipeline``; ``hashing``: the
    same on the similarity-hashing graph (arXiv:2101.06428) instead of the geometric one;
    ``hough``: the
    Hough transform (no training); ``seeding``: triplet seeding and track following on
    the geometric graph of ``pipeline``'s learned layer-pair map (the edge classifier is
    not used).

    Raises
    ------
    ConfigError
        An unknown method, or ``gnn`` / ``hashing`` / ``seeding`` without a trained pipeline.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown tracking method {method!r}; choose one of {METHODS}")
    if method in ("gnn", "hashing", "seeding") and pipeline is None:
        raise ConfigError(
            f"method {method} needs a trained run for its layer map and model: "
            "--model RUN (heplab tracking train)"
        )
    if method in ("gnn", "hashing"):
        graph = "geometric" if method == "gnn" else "hashing"
        return reconstruct_event(event, pipeline, graph=graph, builder=builder, edge_cut=edge_cut)
    ms: dict[str, float] = {}
    t = time.perf_counter()
    if method == "seeding":
        from heplab.reconstruction.tracking.seeding import seeding_tracks

        assert pipeline is not None
        g = pipeline.graph(event)
        ms["graph"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        labels = seeding_tracks(g, event.hits["volume_id"], seeding_config)
        stage = "seeding"
    else:
        from heplab.reconstruction.tracking.hough import hough_tracks

        labels = hough_tracks(event, hough_config)
        stage = "hough"
    loose = labels < 0
    labels = labels.copy()
    labels[loose] = labels.max() + 1 + np.arange(int(loose.sum()))
    sub = submission(np.asarray(event.hits["hit_id"], np.int64), labels, min_hits=3)
    ms[stage] = (time.perf_counter() - t) * 1e3
    return sub, ms
