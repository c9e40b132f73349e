"""Training and inference throughput of heplab's ParticleNet and ParT against weaver-core's.

Run (weaver-core from PyPI; its model files need only torch, so ``--no-deps`` is enough)::

    pip install --no-deps weaver-core==0.5.3
    python benchmarks/bench_taggers_weaver.py --data TOP_DATASET [--steps 5] [--size full]

``TOP_DATASET`` is a ``heplab jets build top`` directory (its train split gives the jets:
real constituent multiplicities matter, since both codes trim padding). One process, the
same jets, batch size (128) and particle cap (128), the same optimiser (AdamW), one after
the other, the same thread count; per model: ``--warmup`` steps not timed (weaver's
SequenceTrimmer only starts trimming after 5 training steps, so the default warm-up is 6),
then ``--steps`` timed training steps (forward, loss, backward, optimiser step) and
``--steps`` timed inference batches (``torch.inference_mode``, eval mode).

Architectures (``--size full``): weaver's ParticleNet as in its JetClass configuration
(EdgeConv k=16 with (64,64,64), (128,128,128), (256,256,256) channels, fusion, FC 256)
against heplab's ``particlenet`` with k=16, the same channels and FC 256; weaver's ParT
defaults (embed (128,512,128), pair embed (64,64,64), 8 heads, 8 + 2 layers) against
heplab's ``part`` with dim 128, 8 heads, 8 + 2 layers, pair dims (64,64,64). Parameter
counts are printed: the two codes differ in details (weaver: BatchNorm, fusion block,
FFN ratio 4 and an input MLP 128-512-128; heplab: no BatchNorm, FFN ratio 2), so the
jets/s ratio is the figure, read with the parameter counts beside it. ``--size small``
uses small configurations of both for a quick look.

Writes ``benchmarks/results/taggers_weaver.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common import machine


def batches(data_dir: str, n_batches: int, batch: int, max_particles: int) -> list[dict]:
    from heplab.ml.data import Standardiser, jet_arrays
    from heplab.reconstruction.jets.tagging import load_split

    jets = load_split(data_dir, "train")[: n_batches * batch]
    if len(jets) < n_batches * batch:
        raise SystemExit(f"{data_dir}: need {n_batches * batch} training jets, have {len(jets)}")
    raw = jet_arrays(jets, max_particles=max_particles)
    arrays = Standardiser.fit(raw).apply(raw)
    out = []
    for i in range(n_batches):
        sl = slice(i * batch, (i + 1) * batch)
        out.append({k: torch.from_numpy(np.ascontiguousarray(v[sl])) for k, v in arrays.items()})
    return out


def heplab_step(net: nn.Module) -> Callable[[dict], torch.Tensor]:
    from heplab.ml.data import trim_collate

    names = net.input_names

    def run(b: dict) -> torch.Tensor:
        b = trim_collate(b)  # heplab's loader trims every batch to its longest jet
        return net(*[b[n] for n in names])

    return run


def weaver_inputs(b: dict) -> dict[str, torch.Tensor]:
    return {
        "points": b["coords"].transpose(1, 2).contiguous(),
        "features": b["x"].transpose(1, 2).contiguous(),
        "v": b["v"].transpose(1, 2).contiguous(),
        "mask": b["mask"].unsqueeze(1).float(),
    }


def build(kind: str, size: str, n_x: int) -> tuple[nn.Module, Callable, nn.Module, Callable]:
    from weaver.nn.model.ParticleNet import ParticleNet as WParticleNet
    from weaver.nn.model.ParticleTransformer import ParticleTransformer as WParT

    from heplab.reconstruction.jets.taggers.nets import ParticleNet, ParticleTransformer

    full = size == "full"
    if kind == "particlenet":
        k = 16 if full else 8
        chans = [[64] * 3, [128] * 3, [256] * 3] if full else [[32] * 2, [32] * 2]
        fc = 256 if full else 64
        ours = ParticleNet(n_x, chans, k, [fc], dropout=0.1)
        theirs = WParticleNet(
            n_x, 2, conv_params=[(k, tuple(c)) for c in chans], fc_params=[(fc, 0.1)]
        )

        def w_run(b: dict) -> torch.Tensor:
            i = weaver_inputs(b)
            return theirs(i["points"], i["features"], i["mask"])

    else:
        dim, heads, layers, cls = (128, 8, 8, 2) if full else (32, 4, 2, 1)
        pair = [64, 64, 64] if full else [16, 16]
        ours = ParticleTransformer(n_x, dim, heads, layers, cls, pair, dropout=0.1)
        theirs = WParT(
            n_x,
            2,
            pair_input_dim=4,
            embed_dims=(128, 512, 128) if full else (32, 32),
            pair_embed_dims=tuple(pair),
            num_heads=heads,
            num_layers=layers,
            num_cls_layers=cls,
        )

        def w_run(b: dict) -> torch.Tensor:
            i = weaver_inputs(b)
            return theirs(i["features"], v=i["v"], mask=i["mask"])

    return ours, heplab_step(ours), theirs, w_run


def measure(
    net: nn.Module, run: Callable, data: list[dict], warmup: int, steps: int, binary: bool
) -> dict[str, float]:
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    net.train()

    def train_step(b: dict) -> None:
        out = run(b)
        if binary:
            loss = nn.functional.binary_cross_entropy_with_logits(out, b["y"])
        else:
            loss = nn.functional.cross_entropy(out, b["y"].long())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for b in data[:warmup]:
        train_step(b)
    timed = data[warmup : warmup + steps]
    t0 = time.perf_counter()
    for b in timed:
        train_step(b)
    t_train = time.perf_counter() - t0
    net.eval()
    with torch.inference_mode():
        run(data[0])
        t0 = time.perf_counter()
        for b in timed:
            run(b)
        t_infer = time.perf_counter() - t0
    n = sum(len(b["y"]) for b in timed)
    return {
        "train_jets_per_s": n / t_train,
        "infer_jets_per_s": n / t_infer,
        "params": sum(p.numel() for p in net.parameters() if p.requires_grad),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="a `heplab jets build top` directory")
    ap.add_argument("--models", default="particlenet,part")
    ap.add_argument("--size", choices=["full", "small"], default="full")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--max-particles", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=6)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "taggers_weaver.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = batches(args.data, args.warmup + args.steps, args.batch, args.max_particles)
    counts = torch.cat([b["mask"].sum(1) for b in data]).float()
    n_x = data[0]["x"].shape[-1]
    results: dict[str, Any] = {
        "machine": machine(),
        "torch": torch.__version__,
        "threads": args.threads,
        "batch": args.batch,
        "max_particles": args.max_particles,
        "size": args.size,
        "mean_particles": float(counts.mean()),
        "max_particles_seen": int(counts.max()),
        "models": {},
    }
    print(
        f"{results['machine']}; {args.threads} threads; batch {args.batch}; "
        f"{counts.mean():.1f} particles/jet on average (cap {args.max_particles})"
    )
    for kind in args.models.split(","):
        ours, o_run, theirs, w_run = build(kind, args.size, n_x)
        r_w = measure(theirs, w_run, data, args.warmup, args.steps, binary=False)
        r_o = measure(ours, o_run, data, args.warmup, args.steps, binary=True)
        rec = {
            "weaver": r_w,
            "heplab": r_o,
            "train_ratio": r_o["train_jets_per_s"] / r_w["train_jets_per_s"],
            "infer_ratio": r_o["infer_jets_per_s"] / r_w["infer_jets_per_s"],
        }
        results["models"][kind] = rec
        for who, r in (("weaver-core", r_w), ("heplab", r_o)):
            print(
                f"{kind:>12} {who:<12} train {r['train_jets_per_s']:8.1f} jets/s  "
                f"infer {r['infer_jets_per_s']:8.1f} jets/s  params {r['params']}"
            )
        print(
            f"{kind:>12} heplab / weaver-core: train x{rec['train_ratio']:.2f}, "
            f"infer x{rec['infer_ratio']:.2f}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
