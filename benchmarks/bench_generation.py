"""Generation throughput: heplab's full chain against a bare Pythia 8 loop, and Dask scaling.

Run: ``python benchmarks/bench_generation.py [--events N] [--process ttbar-boosted]``.
Prints a table and writes ``benchmarks/results/generation.json``.

1. Bare Pythia: ``pythia.next()`` N times, nothing else (the reference).
2. heplab's chain in one process on the same settings, staged as production stages it:
   Pythia's ``nextBatch`` and the extraction into awkward arrays per batch of 100 events
   (interleaved with the bare loop, block by block, so both see the same machine), then
   per chunk of ``--chunk`` events (default 1000, ``heplab generate``'s default chunk
   size) the ATLAS-like detector response, parquet output, anti-kt R = 0.8 clustering
   with soft-drop mass, N-subjettiness and labels (``heplab jets cluster`` works chunk
   file by chunk file), jets parquet output. The figure is what heplab adds (extraction,
   detector, jets, I/O) relative to Pythia's own time.
3. ``heplab generate`` through Dask with 1 and 2 local workers (wall-clock events/s).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np

from common import machine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--process", default="ttbar-boosted")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "generation.json"))
    ap.add_argument(
        "--chunk",
        type=int,
        default=1000,
        help="events per chunk of the detector, I/O and jets stages (production default 1000)",
    )
    ap.add_argument("--skip-dask", action="store_true")
    args = ap.parse_args()

    from heplab.detector import load_card, simulate
    from heplab.events.parquet import write_parquet_chunk
    from heplab.generation.production import build_config, chunk_seeds, produce
    from heplab.generation.pythia import _ChargeTable, extract_events, make_pythia
    from heplab.reconstruction.jets.cluster import cluster_events

    n = args.events
    cfg = build_config(args.process, events=n, chunk_size=n, detector="atlas")
    seed = chunk_seeds(cfg["seed"], 0)["pythia"]

    # 1 and 2, interleaved block by block (100 events each) so that both see the same
    # machine: a shared VM drifts by 10-20% over a minute
    bare = make_pythia(cfg["pythia_settings"], seed)
    pythia = make_pythia(cfg["pythia_settings"], seed)
    charge = _ChargeTable(pythia.particleData)
    rng = np.random.default_rng(1)
    card = load_card("atlas")
    t: dict[str, float] = dict.fromkeys(
        ("pythia", "extract", "detector", "io", "jets", "jets_io"), 0.0
    )
    t_bare = 0.0
    n_jets = 0
    n_particles = 0
    n_pf = 0
    with tempfile.TemporaryDirectory() as tmp:
        done, k, chunk_start = 0, 0, 0
        pending: list[ak.Array] = []
        while done < n:
            m = min(100, n - done)
            a = time.perf_counter()
            for _ in range(m):
                bare.next()
            t_bare += time.perf_counter() - a
            a = time.perf_counter()
            batch = pythia.nextBatch(m, "skip")
            b = time.perf_counter()
            pending.append(extract_events(batch, charge, rng, cfg["beamspot_sigma_z"]))
            c = time.perf_counter()
            t["pythia"] += b - a
            t["extract"] += c - b
            done += len(pending[-1])
            if done - chunk_start < args.chunk and done < n:
                continue
            # the rest runs per chunk, as `heplab generate` and `heplab jets cluster` do
            c = time.perf_counter()
            ev = ak.concatenate(pending) if len(pending) > 1 else pending[0]
            pending = []
            reco = simulate(ev.particles, card, rng, pv_z=ak.to_numpy(ev.pv_z))
            for name in reco.fields:
                ev = ak.with_field(ev, reco[name], name)
            ev = ak.with_field(ev, np.arange(chunk_start, chunk_start + len(ev)), "event_id")
            d = time.perf_counter()
            write_parquet_chunk(ev, Path(tmp) / f"ev-{k}.parquet")
            e = time.perf_counter()
            jets = cluster_events(ev, R=0.8, ptmin=200.0)
            f = time.perf_counter()
            write_parquet_chunk(jets, Path(tmp) / f"jets-{k}.parquet")
            g = time.perf_counter()
            t["detector"] += d - c
            t["io"] += e - d
            t["jets"] += f - e
            t["jets_io"] += g - f
            n_jets += len(jets)
            n_particles += int(ak.sum(ak.num(ev.particles)))
            n_pf += int(ak.sum(ak.num(ev.pfcands)))
            chunk_start = done
            k += 1
    t_chain = sum(t.values())
    overhead = (t_chain - t_bare) / t_bare
    # what heplab adds (extraction, detector, jets, I/O) relative to Pythia's own time in
    # the same process and stream (nextBatch), and relative to the bare next() loop
    added = (t_chain - t["pythia"]) / t["pythia"]
    added_bare = (t_chain - t["pythia"]) / t_bare

    results: dict[str, object] = {
        "machine": machine(),
        "process": args.process,
        "events": n,
        "chunk_events": args.chunk,
        "mean_truth_particles": n_particles / n,
        "mean_pfcands": n_pf / n,
        "bare_pythia_events_per_s": n / t_bare,
        "chain_events_per_s": n / t_chain,
        "chain_jets_per_s": n_jets / t_chain,
        "jets_per_event": n_jets / n,
        "stage_ms_per_event": {k: 1e3 * v / n for k, v in t.items()},
        "chain_vs_bare_pythia": overhead,
        "heplab_added_vs_pythia": added,
        "heplab_added_vs_bare_pythia": added_bare,
    }

    # 3. Dask scaling of `heplab generate` (Pythia + detector + parquet)
    if not args.skip_dask:
        scaling = {}
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                c2 = build_config(
                    args.process, events=n, chunk_size=max(1, n // 8), detector="atlas"
                )
                a = time.perf_counter()
                produce(c2, Path(tmp) / "run", workers=workers, progress=False)
                scaling[workers] = n / (time.perf_counter() - a)
        results["dask_events_per_s"] = scaling
        results["dask_speedup_2_vs_1"] = scaling[2] / scaling[1]

    print(f"machine: {results['machine']}")
    print(
        f"{args.process}, {n} events, {results['mean_truth_particles']:.0f} truth particles "
        f"and {results['mean_pfcands']:.0f} PF candidates per event"
    )
    print(f"{'stage':<28}{'ms/event':>10}")
    print(f"{'bare Pythia (next loop)':<28}{1e3 * t_bare / n:>10.2f}")
    for k, v in t.items():
        print(f"{'chain: ' + k:<28}{1e3 * v / n:>10.2f}")
    print(f"chain: {n / t_chain:.1f} events/s, {n_jets / t_chain:.1f} jets/s (pT > 200 GeV)")
    print(f"whole chain vs bare Pythia loop: {overhead:+.1%}")
    print(
        f"extraction+detector+jets+I/O: {added:.1%} of Pythia's own time in the chain "
        f"({added_bare:.1%} of the bare loop)"
    )
    if "dask_events_per_s" in results:
        s = results["dask_events_per_s"]
        print(
            f"heplab generate on Dask: 1 worker {s[1]:.1f} ev/s, 2 workers {s[2]:.1f} ev/s "  # type: ignore[index]
            f"(x{results['dask_speedup_2_vs_1']:.2f})"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
