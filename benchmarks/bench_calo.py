"""Calorimeter fast simulation: the shower engine against the generative models.

1. The engine (:mod:`heplab.detector.showers`, GFlash-style, simpler than Geant4):
   ms/shower for e- and pi+ at 50 GeV on every geometry, one thread.
2. Every generator of :mod:`heplab.simulation` (``gan``, ``vae``, ``flow`` (student and
   teacher), ``flowmatch``): trained on engine e- showers (calogan, 10-100 GeV) or loaded
   from ``--runs DIR/run_<name>``; sampling ms/shower at batch 1, 100, 10000 with 1 and 2
   torch threads; the CaloChallenge evaluation (:func:`heplab.simulation.evaluate`)
   against an independent engine sample, with the floor between two engine samples.

Prints a table and writes ``benchmarks/results/calo.json``.

Usage: ``python benchmarks/bench_calo.py [--runs DIR] [--train-showers 6000]
[--eval-showers 4000] [--models gan,vae,flow,flowmatch]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import machine
from heplab.detector.calogeometry import GEOMETRIES
from heplab.detector.showers import simulate_showers
from heplab.events.calo import ShowerSet
from heplab.simulation import evaluate, load_generator, make_generator
from heplab.simulation.evaluation import json_summary

EPOCHS: dict[str, dict[str, Any]] = {
    "gan": {"epochs": 15, "n_critic": 2},
    "vae": {"epochs": 15},
    "flowmatch": {"epochs": 15},
    "flow": {"epochs": 10, "student_epochs": 10},
}


def engine_timing() -> dict[str, dict[str, float]]:
    torch.set_num_threads(1)
    out: dict[str, dict[str, float]] = {}
    for geometry in GEOMETRIES:
        out[geometry] = {}
        for particle in ("e-", "pi+"):
            simulate_showers(particle, "50", "flat", 20, geometry, seed=0)  # warm-up
            t = time.perf_counter()
            n = 500
            simulate_showers(particle, "50", "flat", n, geometry, seed=1)
            out[geometry][particle] = (time.perf_counter() - t) / n * 1e3
            print(f"engine {geometry:8s} {particle:4s} {out[geometry][particle]:7.2f} ms/shower")
    return out


def sampling_timing(gen: Any) -> dict[str, float]:
    times: dict[str, float] = {}
    teacher = getattr(gen, "sampler", None) == "teacher"
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (1, 100, 10000):
            if teacher and batch == 10000:
                continue  # minutes per call
            reps = {1: 20, 100: 3, 10000: 1}[batch]
            e = np.full(batch, 50.0)
            gen.sample(e[: min(batch, 100)], seed=0)  # warm-up
            t = time.perf_counter()
            for i in range(reps):
                gen.sample(e, seed=i, batch_size=batch)
            times[f"threads{threads}_batch{batch}"] = (time.perf_counter() - t) / reps / batch * 1e3
    torch.set_num_threads(2)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("bench_calo_runs"))
    ap.add_argument("--train-showers", type=int, default=6000)
    ap.add_argument("--eval-showers", type=int, default=4000)
    ap.add_argument("--models", default="gan,vae,flow,flowmatch")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "calo.json")
    args = ap.parse_args()

    result: dict[str, Any] = {"machine": machine(), "engine_ms_per_shower": engine_timing()}
    torch.set_num_threads(2)
    train = simulate_showers("e-", "10:100", "flat", args.train_showers, "calogan", seed=1)
    reference = simulate_showers("e-", "10:100", "flat", args.eval_showers, "calogan", seed=2)
    models: dict[str, Any] = {}
    floor: dict[str, Any] | None = None
    for name in args.models.split(","):
        run = args.runs / f"run_{name}"
        if (run / "config.json").exists():
            gen = load_generator(run)
        else:
            gen = make_generator(name, train.geometry, {**EPOCHS[name], "progress_bar": False})
            gen.fit(train, out_dir=run)
            gen.save(run)
        samplers = ["student", "teacher"] if name == "flow" else [None]
        for sampler in samplers:
            if sampler is not None:
                gen.sampler = sampler
            key = name if sampler in (None, "student") else f"{name}_{sampler}"
            rec: dict[str, Any] = {
                "params": gen.n_parameters(),
                "train_seconds": getattr(gen, "train_time_s_", None),
                "ms_per_shower": sampling_timing(gen),
            }
            if sampler != "teacher":
                t = time.perf_counter()
                showers = gen.sample(reference.energies, seed=7)
                rec["sample_seconds"] = time.perf_counter() - t
                gen_set = ShowerSet(
                    energies=reference.energies,
                    showers=showers,
                    geometry=reference.geometry,
                    particle=reference.particle,
                )
                res = evaluate(
                    gen_set, reference, None, seed=0, floor=floor is None, progress=False
                )
                summary = json_summary(res)
                floor = floor or summary.get("floor")
                rec["evaluation"] = {k: v for k, v in summary.items() if k != "floor"}
                rec["response"] = float((showers.sum(1) / reference.energies).mean())
            models[key] = rec
            print(key, json.dumps(rec), flush=True)
    result["reference_response"] = float((reference.showers.sum(1) / reference.energies).mean())
    result["floor"] = floor
    result["models"] = models
    result["settings"] = vars(args) | {"runs": str(args.runs), "out": str(args.out)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float))
    print(f"\nmachine: {result['machine']}; floor {floor}")
    print(
        f"{'model':16s} {'params':>9s} {'AUC low':>8s} {'AUC high':>8s} {'FPD':>8s} "
        f"{'ms b1':>7s} {'ms b1e4':>8s}"
    )
    for key, rec in models.items():
        ev = rec.get("evaluation", {})
        ms = rec["ms_per_shower"]
        print(
            f"{key:16s} {rec['params']:9d} {ev.get('auc_low', float('nan')):8.3f} "
            f"{ev.get('auc_high', float('nan')):8.3f} {ev.get('fpd', float('nan')):8.4f} "
            f"{ms['threads1_batch1']:7.2f} {ms.get('threads1_batch10000', float('nan')):8.3f}"
        )


if __name__ == "__main__":
    main()
