"""Benchmark of the tracking add-ons: pixel-cluster NN + splitting, similarity hashing,
triplet seeding + NN seed classifier. Prints a table and writes
``benchmarks/results/tracking_clusters.json``.

Usage: ``python benchmarks/bench_tracking_clusters.py [--events EVENTS.parquet] [--mu 0 10]``
(a heplab events file with a ``particles`` list, e.g. Pythia ttbar with mu = 200 pile-up:
the hashing is measured on its first event with the pile-up interactions up to each
``--mu`` kept, the seeds on groups of 15 of its pile-up interactions; without a file,
pion-gun events). The cluster classifier always uses the jet-core gun.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from common import machine
from heplab.detector.silicon import simulate_event
from heplab.ml.engine import TrainConfig
from heplab.reconstruction.tracking import clusters, hashing, seeds
from heplab.reconstruction.tracking.graph import LayerPairMap, build_graph
from heplab.reconstruction.tracking.metrics import tally_edges


def gun(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    pt = 1 / rng.uniform(1 / 20, 1 / 0.3, n)
    eta = rng.uniform(-2.5, 2.5, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    z = np.zeros(n)
    return {
        "px": px,
        "py": py,
        "pz": pz,
        "energy": np.sqrt(px**2 + py**2 + pz**2 + 0.13957**2),
        "charge": rng.choice([-1.0, 1.0], n),
        "vx": z,
        "vy": z.copy(),
        "vz": z + rng.normal(0, 50),
    }


def bench_clusters(out: Path) -> dict[str, object]:
    t0 = time.perf_counter()
    evs = clusters.simulate_jet_cores(24, seed=3)
    t_sim = time.perf_counter() - t0
    s = clusters.cluster_sample(evs)
    train, val, test = (
        s.subset(s.event < 16),
        s.subset((s.event >= 16) & (s.event < 18)),
        s.subset(s.event >= 18),
    )
    t0 = time.perf_counter()
    cfg = TrainConfig(epochs=10, batch_size=128, lr=3e-3, progress_bar=False)
    net = clusters.train_cluster_classifier(train, val, out / "cluster_run", config=cfg, force=True)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = clusters.evaluate_clusters(net, test)
    t_eval = time.perf_counter() - t0
    pred = clusters.predict_clusters(net, test).argmax(1)
    multi = test.subset(test.y > 0)
    t0 = time.perf_counter()
    split = clusters.split_clusters(multi, np.minimum(pred[test.y > 0] + 1, 3))
    t_split = time.perf_counter() - t0
    res = clusters.splitting_residuals(multi, split)
    two = test.subset(test.n_particles == 2)
    res2 = clusters.splitting_residuals(two, clusters.split_clusters(two, np.full(len(two), 2)))
    clusters.plot_cluster_performance(m, res2, out / "clusters.png", force=True)
    keys = ("merged_median_mm", "split_median_mm", "merged_rms_mm", "split_rms_mm")
    return {
        "events": len(evs),
        "clusters_train": len(train),
        "clusters_test": len(test),
        "class_counts_test": np.bincount(test.y, minlength=3).tolist(),
        **m,
        "split_predicted_k": {k: res[k] for k in keys},
        "split_true2_k2": {k: res2[k] for k in keys},
        "seconds": {"simulate": t_sim, "train": t_train, "evaluate": t_eval, "split": t_split},
    }


def load_particles(path: str) -> dict[str, np.ndarray]:
    """The first event of a heplab events file: flat particle columns (with ``pileup``)."""
    import awkward as ak

    p = ak.from_parquet(path)["particles"][0]
    flat = {k: ak.to_numpy(p[k]).astype(np.float64) for k in p.fields if k != "pid"}
    flat.setdefault("pileup", np.zeros(len(flat["px"])))
    return flat


def select(flat: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[keep] for k, v in flat.items()}


def bench_hashing(path: str | None, mus: list[float]) -> list[dict[str, object]]:
    """Graph efficiency / purity of the geometric graph and of hashing (buckets, tables).

    With ``path``: the hard scatter + the first mu pile-up interactions of its event; the
    layer-pair map is learned from three groups of 20 other pile-up interactions.
    Without: pion-gun events."""
    events = []
    if path:
        flat = load_particles(path)
        pu = flat["pileup"]
        top = int(pu.max())
        learn = [
            simulate_event(
                select(flat, (pu > top - 20 * (g + 1)) & (pu <= top - 20 * g)),
                None,
                np.random.default_rng(g),
            )
            for g in range(3)
        ]
        for mu in mus:
            ev = simulate_event(select(flat, pu <= mu), None, np.random.default_rng(1), None, 1)
            events.append((f"ttbar+mu{mu:g}", ev))
    else:
        learn = [
            simulate_event(gun(800, 100 + i), None, np.random.default_rng(i)) for i in range(3)
        ]
        for n in (500, 2000):
            ev = simulate_event(gun(n, n), None, np.random.default_rng(n), None, event_id=n)
            events.append((f"gun{n}", ev))
    pmap = LayerPairMap.learn(learn)
    rows = []
    for name, ev in events:
        counts = hashing.pair_counts(ev, pmap)
        t0 = time.perf_counter()
        g = build_graph(ev, pmap)
        tg = time.perf_counter() - t0
        mg = tally_edges(g).summary()
        rows.append(
            {
                "event": name,
                "hits": len(ev),
                "method": "geometric",
                "edges": g.num_edges,
                "eff_pt1": mg["efficiency_pt1"],
                "eff_pt0.5": mg["efficiency_pt0.5"],
                "pur_pt1": mg["purity_pt1"],
                "ms": 1000 * tg,
                **counts,
            }
        )
        for size in (10, 30, 100):
            for tables in (1, 4, 8):
                cfg = hashing.HashConfig(bucket_size=size, n_tables=tables)
                t0 = time.perf_counter()
                g = hashing.hash_graph(ev, pmap, cfg)
                th = time.perf_counter() - t0
                m = tally_edges(g).summary()
                rows.append(
                    {
                        "event": name,
                        "hits": len(ev),
                        "method": f"hash b{size} t{tables}",
                        "edges": g.num_edges,
                        "eff_pt1": m["efficiency_pt1"],
                        "eff_pt0.5": m["efficiency_pt0.5"],
                        "pur_pt1": m["purity_pt1"],
                        "ms": 1000 * th,
                        **counts,
                    }
                )
    return rows


def bench_seeds(out: Path, path: str | None, mu: int = 15) -> dict[str, object]:
    """Seeds of 12 events: pion guns, or (``path``) groups of ``mu`` pile-up interactions
    of its event (minimum bias, several vertices: bad seeds from vertex combinatorics)."""
    if path:
        flat = load_particles(path)
        pu = flat["pileup"]
        evs = [
            simulate_event(
                select(flat, (pu > mu * g) & (pu <= mu * (g + 1))),
                None,
                np.random.default_rng(g),
                None,
                event_id=g,
            )
            for g in range(12)
        ]
    else:
        evs = [
            simulate_event(gun(1000, i), None, np.random.default_rng(i), None, event_id=i)
            for i in range(12)
        ]
    t0 = time.perf_counter()
    found = [seeds.find_seeds(ev) for ev in evs]
    t_find = (time.perf_counter() - t0) / len(evs)
    cfg = TrainConfig(epochs=10, batch_size=256, lr=3e-3, progress_bar=False)
    t0 = time.perf_counter()
    net = seeds.train_seed_classifier(
        evs[:8], evs[8:9], out / "seed_run", train_config=cfg, force=True
    )
    t_train = time.perf_counter() - t0
    cal = seeds.classify_seeds(net, evs[9], found[9])
    thr = seeds.pruning_threshold(cal, seeds.seed_truth(evs[9], found[9]))
    t0 = time.perf_counter()
    prob = np.concatenate([seeds.classify_seeds(net, evs[i], found[i]) for i in (10, 11)])
    t_cls = (time.perf_counter() - t0) / 2
    y = np.concatenate([seeds.seed_truth(evs[i], found[i]) for i in (10, 11)])
    m = seeds.evaluate_seeds(prob, y, thr)
    return {
        **m,
        "source": f"{path} pile-up groups of {mu}" if path else "pion gun",
        "hits_per_event": float(np.mean([len(e) for e in evs])),
        "ms_find_per_event": 1000 * t_find,
        "ms_classify_per_event": 1000 * t_cls,
        "seconds_train": t_train,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", default=None, help="heplab events parquet (with pile-up)")
    ap.add_argument("--mu", nargs="*", type=float, default=[0, 10, 50])
    ap.add_argument("--work", default="/tmp/bench_tracking_clusters")
    ap.add_argument("--sections", nargs="*", default=["clusters", "hashing", "seeds"])
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    path = Path(__file__).parent / "results" / "tracking_clusters.json"
    # sections not run now keep their last figures
    result = json.loads(path.read_text()) if path.is_file() else {}
    result["machine"] = machine()
    if "clusters" in args.sections:
        result["clusters"] = bench_clusters(work)
        c = result["clusters"]
        print(json.dumps({k: c[k] for k in c if k != "seconds"}, indent=1, default=float))
    if "hashing" in args.sections:
        result["hashing"] = bench_hashing(args.events, args.mu)
        head = ("event", "hits", "method", "edges", "eff>1", "eff>.5", "pur>1", "ms")
        print("".join(f"{h:>14}" for h in head))
        for r in result["hashing"]:
            vals = (r["event"], r["hits"], r["method"], r["edges"])
            rates = (r["eff_pt1"], r["eff_pt0.5"], r["pur_pt1"], r["ms"])
            print("".join(f"{v:>14}" for v in vals) + "".join(f"{v:14.3f}" for v in rates))
    if "seeds" in args.sections:
        result["seeds"] = bench_seeds(work, args.events)
        print(json.dumps(result["seeds"], indent=1))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=float))
    tmp.replace(path)


if __name__ == "__main__":
    main()
