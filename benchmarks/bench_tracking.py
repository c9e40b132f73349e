"""Benchmark of heplab's track finding at several pile-ups: GNN, Exa.TrkX chain, baselines.

For every data set (a folder of TrackML-format events made by ``heplab tracking generate``,
e.g. ``--pileup 0``, ``20``, ``200``) the first events train the edge classifiers (the
Interaction Network on the geometric graph, ``gnn``, and the Exa.TrkX chain filter MLP ->
Interaction Network, ``chain``; optionally the HEP.TrkX network, ``hetrkx``), the next
validate, and the last ones (held out) are evaluated by every method:

- ``gnn`` / ``chain`` / ``hetrkx``: geometric graph, edge scores, walk-through tracks;
- oracles on the ``chain`` pipeline: ``perfect_scores`` (geometric graph, truth as scores:
  the loss of the graph stage alone), ``perfect_graph`` (true edges scored by the chain's
  GNN), ``perfect_graph+scores`` (the track builder alone);
- ``hough`` (Hough transform in (phi, q/pT)) and ``seeding`` (triplet seeds + following on
  the geometric graph of the chain's layer map).

Per method: graph efficiency / purity, edge efficiency / purity for pT > 1 and > 0.5 GeV
(:mod:`heplab.reconstruction.tracking.metrics`), track efficiency (pT > 1 GeV, >= 5 hits),
fake and duplicate rates, the TrackML score and ms/event per stage (1 torch thread).
A data set can also be evaluated with the models of another (``--transfer``: e.g. the
mu = 20 models on mu = 200 events). Writes benchmarks/results/tracking.json.

    python benchmarks/bench_tracking.py --data mu0=/tmp/ev_mu0:8:1:3 \\
        --data mu20=/tmp/ev_mu20:16:2:4 --transfer mu200=/tmp/ev_mu200:mu20:4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from heplab.events.trackml import TrackMLEvent, event_ids, read_event
from heplab.reconstruction.tracking.building import submission, walkthrough
from heplab.reconstruction.tracking.graph import EventGraph, perfect_graph
from heplab.reconstruction.tracking.metrics import (
    EdgeTally,
    TrackTally,
    tally_edges,
    tally_tracks,
)
from heplab.reconstruction.tracking.pipeline import (
    EdgePipeline,
    PipelineConfig,
    reconstruct,
    train_pipeline,
)
from heplab.reconstruction.tracking.score import score_event
from heplab.reconstruction.tracking.seeding import seeding_tracks

PARTS = ("hits", "truth", "particles")


def _add(a: EdgeTally | None, b: EdgeTally) -> EdgeTally:
    return b if a is None else a + b


class Accumulator:
    """Sums of edge / track tallies, scores and stage timings of one method."""

    def __init__(self) -> None:
        self.graph: EdgeTally | None = None
        self.edges: EdgeTally | None = None
        self.tracks = TrackTally()
        self.scores: list[float] = []
        self.ms: dict[str, list[float]] = {}
        self.kept: list[float] = []

    def add(self, ev: TrackMLEvent, sub: dict[str, np.ndarray], ms: dict[str, float]) -> None:
        assert ev.truth is not None
        self.scores.append(score_event(ev.truth, sub, name=f"event {ev.event_id}"))
        # the submission is in the hit table's order (building.submission keeps it)
        order = np.argsort(sub["hit_id"])
        pos = np.searchsorted(sub["hit_id"], np.asarray(ev.hits["hit_id"]), sorter=order)
        self.tracks = self.tracks + tally_tracks(ev, sub["track_id"][order][pos])
        for k, v in ms.items():
            self.ms.setdefault(k, []).append(v)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "score": float(np.mean(self.scores)),
            **self.tracks.summary(),
            "ms_per_event": {k: float(np.mean(v)) for k, v in self.ms.items()},
        }
        out["ms_per_event"]["total"] = float(sum(out["ms_per_event"].values()))
        if self.graph is not None:
            out["graph"] = self.graph.summary()
        if self.edges is not None:
            out["edges"] = self.edges.summary()
        if self.kept:
            out["filter_kept_edge_fraction"] = float(np.mean(self.kept))
        return out


def run_pipeline(
    acc: Accumulator,
    ev: TrackMLEvent,
    pipe: EdgePipeline | None,
    graph: str | tuple[EventGraph, float],
    scores: str,
) -> None:
    """One event through graph -> scores -> walk-through, with per-stage timing + tallies.

    ``graph``: ``"perfect"``, ``"geometric"`` or an already built (graph, ms) pair.
    """
    ms: dict[str, float] = {}
    t = time.perf_counter()
    if isinstance(graph, tuple):
        g, ms["graph"] = graph
    else:
        if graph == "perfect":
            g = perfect_graph(ev)
        else:
            assert pipe is not None
            g = pipe.graph(ev)
        ms["graph"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    if scores == "perfect":
        assert g.y is not None
        s = g.y.astype(np.float64)
        keep = np.ones(g.num_edges, bool)
    else:
        assert pipe is not None
        if pipe.filter_model is not None:
            keep = pipe.filter_mask(g)
            ms["filter"] = (time.perf_counter() - t) * 1e3
            t = time.perf_counter()
        s = pipe.score(g)
        if pipe.filter_model is not None:  # score() re-runs the filter: charge it once
            s_ms = (time.perf_counter() - t) * 1e3 - ms["filter"]
            ms["edge_scores"] = max(s_ms, 0.0)
        else:
            ms["edge_scores"] = (time.perf_counter() - t) * 1e3
    if "edge_scores" not in ms:
        ms["edge_scores"] = (time.perf_counter() - t) * 1e3
    cut = pipe.config.edge_cut if pipe is not None else 0.5
    t = time.perf_counter()
    labels = walkthrough(g.num_nodes, g.edge_index, s, cut)
    sub = submission(g.hit_id, labels, min_hits=3)
    ms["tracks"] = (time.perf_counter() - t) * 1e3
    acc.graph = _add(acc.graph, tally_edges(g))
    acc.edges = _add(acc.edges, tally_edges(g, s > cut))
    if pipe is not None and pipe.filter_model is not None and scores != "perfect":
        acc.kept.append(float(keep.mean()))
    acc.add(ev, sub, ms)


def seeding_event(
    ev: TrackMLEvent, graph: tuple[EventGraph, float]
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Triplet seeding + following on an already built geometric graph."""
    g, ms_graph = graph
    t = time.perf_counter()
    labels = seeding_tracks(g, ev.hits["volume_id"], None).copy()
    loose = labels < 0
    labels[loose] = labels.max() + 1 + np.arange(int(loose.sum()))
    sub = submission(np.asarray(ev.hits["hit_id"], np.int64), labels, min_hits=3)
    return sub, {"graph": ms_graph, "seeding": (time.perf_counter() - t) * 1e3}


def evaluate(
    events: list[TrackMLEvent],
    pipes: dict[str, EdgePipeline],
    skip: tuple[str, ...] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Every method (but ``skip``) on the held-out ``events`` (module doc).

    The geometric graph is built once per event and layer map (pipelines trained on the
    same events share it) and reused by the oracles and seeding; each method is charged
    the graph's time.
    """
    accs: dict[str, Accumulator] = {}
    ref = pipes.get("chain") or next(iter(pipes.values()))
    for ev in events:
        t0 = time.perf_counter()
        t = time.perf_counter()
        geo = (ref.graph(ev), (time.perf_counter() - t) * 1e3)
        for name, pipe in pipes.items():
            if name in skip:
                continue
            same = (
                pipe.pair_map is ref.pair_map or pipe.pair_map.to_dict() == ref.pair_map.to_dict()
            )
            run_pipeline(
                accs.setdefault(name, Accumulator()),
                ev,
                pipe,
                geo if same else "geometric",
                "model",
            )
        oracles: dict[str, tuple[EdgePipeline | None, str | tuple[EventGraph, float], str]] = {
            "perfect_scores": (ref, geo, "perfect"),
            "perfect_graph": (ref, "perfect", "model"),
            "perfect_graph+scores": (None, "perfect", "perfect"),
        }
        for name, (p, gr, sc) in oracles.items():
            if name not in skip:
                run_pipeline(accs.setdefault(name, Accumulator()), ev, p, gr, sc)
        if "seeding" not in skip:
            sub, ms = seeding_event(ev, geo)
            accs.setdefault("seeding", Accumulator()).add(ev, sub, ms)
        if "hough" not in skip:
            sub, ms = reconstruct(ev, "hough")
            accs.setdefault("hough", Accumulator()).add(ev, sub, ms)
        if progress:
            print(
                f"    event {ev.event_id}: {len(ev)} hits, "
                f"{time.perf_counter() - t0:.1f} s for all methods",
                flush=True,
            )
    return {k: a.summary() for k, a in accs.items()}


def load(path: str, ids: list[int]) -> list[TrackMLEvent]:
    return [read_event(path, i, PARTS) for i in ids]


def print_table(name: str, res: dict[str, Any]) -> None:
    print(f"\n== {name} ==")
    head = (
        f"{'method':22s} {'graph eff1/pur1':>16s} {'edge eff1/pur1':>16s} {'edge eff.5/pur.5':>17s} "
        f"{'trk eff':>7s} {'fake':>6s} {'dup':>6s} {'score':>6s} {'ms/ev':>8s}"
    )
    print(head)
    for m, v in res.items():
        g, e = v.get("graph"), v.get("edges")
        gs = f"{g['efficiency_pt1']:.4f}/{g['purity_pt1']:.4f}" if g else "-"
        es = f"{e['efficiency_pt1']:.4f}/{e['purity_pt1']:.4f}" if e else "-"
        es5 = f"{e['efficiency_pt0.5']:.4f}/{e['purity_pt0.5']:.4f}" if e else "-"
        print(
            f"{m:22s} {gs:>16s} {es:>16s} {es5:>17s} {v['track_efficiency']:7.4f} "
            f"{v['fake_rate']:6.4f} {v['duplicate_rate']:6.4f} {v['score']:6.4f} "
            f"{v['ms_per_event']['total']:8.0f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data",
        action="append",
        default=[],
        help="NAME=DIR:N_TRAIN:N_VAL:N_TEST[:MODELS[:SKIP]] (events in id order; test = the "
        "last N_TEST; MODELS e.g. gnn+chain [default: --models]; SKIP: methods not to "
        "evaluate, e.g. hough+gnn)",
    )
    ap.add_argument(
        "--transfer",
        action="append",
        default=[],
        help="NAME=DIR:TRAINED_ON:N_TEST[:SKIP]: evaluate with the models of another data set",
    )
    ap.add_argument(
        "--load",
        action="append",
        default=[],
        help="NAME=MODEL:RUN_DIR: a trained run (of an earlier benchmark) for --transfer NAME",
    )
    ap.add_argument("--models", default="gnn,chain", help="comma list: gnn,chain,hetrkx")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--filter-epochs", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--runs", default="/tmp/bench_tracking_runs")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "tracking.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    results: dict[str, Any] = {
        "machine": machine(),
        "torch_threads": 1,
        "settings": {
            "models": args.models,
            "epochs": args.epochs,
            "filter_epochs": args.filter_epochs or args.epochs,
            "hidden": args.hidden,
            "builder": "walk",
            "edge_cut": 0.5,
            "filter_efficiency": 0.995,
        },
        "datasets": {},
    }
    t_start = time.perf_counter()

    def write(res: dict[str, Any], t0: float) -> None:
        res["wall_seconds"] = time.perf_counter() - t0
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(res, indent=2))
        os.replace(tmp, out)

    trained: dict[str, dict[str, EdgePipeline]] = {}
    loaded: dict[str, dict[str, str]] = {}
    for spec in args.load:
        name, rest = spec.split("=", 1)
        model, run_dir = rest.split(":", 1)
        trained.setdefault(name, {})[model] = EdgePipeline.load(run_dir)
        loaded.setdefault(name, {})[model] = run_dir
    for spec in args.data:
        name, rest = spec.split("=", 1)
        path, n_tr, n_va, n_te, *more = rest.split(":")
        models = more[0].split("+") if more and more[0] else args.models.split(",")
        skip = tuple(more[1].split("+")) if len(more) > 1 else ()
        ids = event_ids(path)
        n_tr_i, n_va_i, n_te_i = int(n_tr), int(n_va), int(n_te)
        if n_tr_i + n_va_i + n_te_i > len(ids):
            raise SystemExit(f"{path}: {len(ids)} events, asked {n_tr_i}+{n_va_i}+{n_te_i}")
        train = load(path, ids[:n_tr_i])
        val = load(path, ids[n_tr_i : n_tr_i + n_va_i])
        test_ids = ids[len(ids) - n_te_i :]
        info: dict[str, Any] = {
            "dir": path,
            "train_events": ids[:n_tr_i],
            "val_events": ids[n_tr_i : n_tr_i + n_va_i],
            "test_events": test_ids,
            "hits_per_event": float(np.mean([len(e) for e in train])),
            "training": {},
        }
        pipes: dict[str, EdgePipeline] = {}
        for model in models:
            print(f"[{name}] training {model} on {n_tr_i} events ...", flush=True)
            cfg = PipelineConfig(
                model=model,
                epochs=args.epochs,
                filter_epochs=args.filter_epochs,
                hidden=args.hidden,
            )
            t = time.perf_counter()
            res = train_pipeline(train, val, Path(args.runs) / f"{name}_{model}", cfg, force=True)
            m = res.metrics
            info["training"][model] = {
                "seconds": time.perf_counter() - t,
                "fit": m["fit"],
                "val_edges": m["edge_classifier"],
                **({"filter": m["filter"]} if "filter" in m else {}),
            }
            pipes[model] = res.pipeline
            print(f"    {time.perf_counter() - t:.0f} s; val edges {m['edge_classifier']}")
        trained[name] = pipes
        del train, val
        test = load(path, test_ids)
        print(f"[{name}] evaluating on {len(test)} held-out events", flush=True)
        info["skipped"] = list(skip)
        info["results"] = evaluate(test, pipes, skip)
        results["datasets"][name] = info
        print_table(name, info["results"])
        write(results, t_start)  # a partial file survives a later failure
    for spec in args.transfer:
        name, rest = spec.split("=", 1)
        path, source, n_te, *more = rest.split(":")
        skip = tuple(more[0].split("+")) if more else ()
        ids = event_ids(path)[-int(n_te) :]
        test = load(path, ids)
        print(f"[{name}] evaluating {len(test)} events with the {source} models", flush=True)
        info = {
            "dir": path,
            "models_trained_on": source,
            "model_runs": loaded.get(source, {}),
            "test_events": ids,
            "hits_per_event": float(np.mean([len(e) for e in test])),
            "skipped": list(skip),
            "results": evaluate(test, trained[source], skip),
        }
        results["datasets"][name] = info
        print_table(name, info["results"])
        write(results, t_start)  # a partial file survives a later failure
    write(results, t_start)
    print(f"\nwrote {args.out} ({results['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
