"""Cost of prior learning: iterations/s of ``soft-prior`` with a learnable ``mog:64`` (Monte Carlo KL,
100 samples) against ``soft`` with the standard Gaussian, same batch (512), same 2D networks, same
machine, timed in alternating blocks in one run. Target: ``soft-prior`` at most 3x slower per step.

    python benchmarks/speed_prior.py
    python benchmarks/speed_prior.py --prior mog:64,learn_weights=true --iterations 200 --threads 2
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from introzoo import plugins
from introzoo.config import RunConfig, resolve
from introzoo.training.loop import build


def make(objective: str, prior: str, regs: list[str]):
    run = resolve(RunConfig(objective=objective, prior=prior, regularizers=regs, device="cpu"), plugins.registry())
    b = build(run)
    return b.objective, b.dataset


def main() -> None:
    ap = argparse.ArgumentParser(description="soft-prior + mog:64 vs soft + sg, iterations/s")
    ap.add_argument("--prior", default="mog:64")
    ap.add_argument("--reg", action="append", default=["clip-logvar"])
    ap.add_argument("--iterations", type=int, default=120)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    runners = {
        "soft+sg": make("soft,num_vae=0", "sg", []),
        f"soft-prior+{args.prior}": make("soft-prior,num_vae=0", args.prior, args.reg),
    }
    g = torch.Generator().manual_seed(0)
    batches = [runners["soft+sg"][1].sample(512, g) for _ in range(8)]
    for obj, _ in runners.values():
        for i in range(5):
            obj.train_step(batches[i % 8], i)
    elapsed = {k: 0.0 for k in runners}
    per = max(1, args.iterations // args.blocks)
    for _ in range(args.blocks):
        for name, (obj, _) in runners.items():
            t = time.perf_counter()
            for i in range(per):
                obj.train_step(batches[i % 8], 10 + i)
            elapsed[name] += time.perf_counter() - t
    its = {k: per * args.blocks / v for k, v in elapsed.items()}
    base, prior_name = "soft+sg", f"soft-prior+{args.prior}"
    result = {
        "threads": torch.get_num_threads(),
        "iterations": per * args.blocks,
        **{f"{k}_it_s": round(v, 2) for k, v in its.items()},
        "slowdown": round(its[base] / its[prior_name], 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"2D, batch 512, MLP 3x256, {result['threads']} threads, {result['iterations']} iterations each")
    for k, v in its.items():
        print(f"  {k:32s} {v:8.2f} it/s")
    print(f"  slowdown of prior learning      {result['slowdown']:8.2f}x (target <= 3)")
    print(f"  peak memory                     {result['peak_rss_mib']:8.1f} MiB (RSS)")


if __name__ == "__main__":
    main()
