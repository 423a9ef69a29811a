"""Packed training throughput: M members trained as one pack against the same M runs one by one.

Each member is the 2D protocol's ``soft`` run on 8 Gaussians (MLP 3x256, zdim 2, batch 512) with its
own seed and beta_kl, past the warm-up (``num_vae=0``). Times ``--iterations`` steps of the pack
(:class:`introzoo.pack.Pack`) and of each solo objective in the same process, and prints
member-iterations/s, the ratio, peak memory per member, and the projected wall time of the 840-run seed
001 Table 2 2D grid (``benchmarks/toy2d.toml``: 30,000 iterations each) at the measured packed rate.

    python benchmarks/speed_pack.py --sizes 1 4 16 --iterations 20 --threads 2
    python benchmarks/speed_pack.py --device cuda --sizes 16 64 256
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from introzoo import plugins
from introzoo.config import RunConfig, resolve
from introzoo.pack import Pack
from introzoo.train import build

GRID_RUNS, GRID_ITERATIONS = 840, 30_000


def runs(m: int, device: str):
    reg = plugins.registry()
    return [resolve(RunConfig(objective=f"soft,num_vae=0,beta_kl={0.1 + 0.05 * (i % 8)}", data="8gaussians",
                              seed=i, device=device, iterations=GRID_ITERATIONS), reg) for i in range(m)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def packed_rate(rs, iterations: int, warmup: int = 2) -> tuple[float, float]:
    builts, gens = [], []
    for r in rs:
        builts.append(build(r))
        gens.append(torch.Generator().manual_seed(r.seed))
    pack = Pack(rs, builts, gens)
    dev = builts[0].device
    streams = [b.dataset.batches(512, torch.Generator().manual_seed(r.seed)) for r, b in zip(rs, builts)]
    active = list(range(len(rs)))
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for it in range(warmup + iterations):
        if it == warmup:
            _sync(dev)
            t0 = time.perf_counter()
        xs = torch.stack([next(s) for s in streams]).to(dev)
        pack.step(xs, active, it)
    _sync(dev)
    return len(rs) * iterations / (time.perf_counter() - t0), _peak_mib(dev) / len(rs)


def solo_rate(rs, iterations: int, warmup: int = 2) -> float:
    total = 0.0
    for r in rs:
        b = build(r)
        stream = b.dataset.batches(512, torch.Generator().manual_seed(r.seed))
        for it in range(warmup + iterations):
            if it == warmup:
                _sync(b.device)
                t0 = time.perf_counter()
            b.objective.train_step(next(stream).to(b.device), it)
        _sync(b.device)
        total += time.perf_counter() - t0
    return len(rs) * iterations / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--iterations", type=int, default=20, help="timed iterations per measurement")
    ap.add_argument("--solo-members", type=int, default=4, help="runs timed one by one (the rate is per run)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    solo = solo_rate(runs(a.solo_members, a.device), a.iterations)
    print(f"device {a.device}, threads {torch.get_num_threads()}, soft on 8gaussians, MLP 3x256, batch 512")
    print(f"one by one: {solo:8.2f} member-it/s   (grid of {GRID_RUNS} x {GRID_ITERATIONS} it: "
          f"{GRID_RUNS * GRID_ITERATIONS / solo / 3600:8.1f} h)")
    for m in a.sizes:
        rate, mem = packed_rate(runs(m, a.device), a.iterations)
        hours = GRID_RUNS * GRID_ITERATIONS / rate / 3600
        print(f"pack M={m:4d}: {rate:8.2f} member-it/s  x{rate / solo:5.2f} vs one by one   "
              f"peak {'GPU' if a.device == 'cuda' else 'RSS'} {mem:7.1f} MiB/member   grid: {hours:8.1f} h")


if __name__ == "__main__":
    main()
