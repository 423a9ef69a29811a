"""Packed training throughput: M members trained as one pack against the same runs one by one.

Each member is the 2D protocol's ``soft`` run on 8 Gaussians (MLP 3x256, zdim 2, batch 512) with its
own seed and beta_kl, past the warm-up (``num_vae=0``). Times ``--iterations`` steps of a pack
(:class:`introzoo.packing.loop.Pack`) for each size M, each in a fresh process (so that its peak memory is its
own), and in the same process right after it, of the first ``--solo-members`` of those runs one by one
(the same load for both: the ratio is paired). Prints member-iterations/s,
runs/hour (30,000-iteration runs), the ratio to one by one, peak memory per member (RSS above the
process's baseline on the CPU, ``torch.cuda.max_memory_allocated`` on a GPU), and the projected
training wall time of the full seed 001 Table 2 2D grid of ``benchmarks/toy2d.toml`` (its runs
counted: the grid at the first seed plus the selected configurations' other seeds) beside the
reference figures of the official 2D loop (docs/packing.md, "Speed (CPU)": about 18 it/s on an idle 2-core CPU, 13.6 loaded).

    python benchmarks/speed_pack.py --sizes 1 4 16 64 --iterations 5 --threads 2
    python benchmarks/speed_pack.py --device cuda --sizes 16 64 256 --iterations 50
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from pathlib import Path

import torch

from introzoo import plugins

from introzoo.training import kernels
from introzoo.config import RunConfig, resolve
from introzoo.packing.loop import Pack
from introzoo.training.perf import tune_allocator
from introzoo.training.loop import build

ITERATIONS = 30_000  # per run of the grid (seed 001 protocol)
SPEC_IT_S = {"idle": 18.0, "loaded": 13.6}  # the official 2D loop, one run (docs/packing.md, "Speed (CPU)")
GOAL_RUNS, GOAL_HOURS = 840, 1.0  # the goal: the paper's 840-run grid in under one GPU-hour
TOML = Path(__file__).resolve().parent / "toy2d.toml"


def grid_runs() -> int:
    """Runs of ``benchmarks/toy2d.toml``: the grid with one seed, then the best configuration per
    (objective, data) with the other seeds (its ``select`` protocol)."""
    from introzoo.sweeps.grid import expand, load_sweep_file

    spec = load_sweep_file(TOML)
    tasks = expand(spec, plugins.registry(), seeds=[spec.seed_start])
    groups = {(t.config["objective"]["name"], t.config["data"]["name"]) for t in tasks}
    return len(tasks) + len(groups) * (spec.seeds - 1)


def runs(m: int, device: str):
    reg = plugins.registry()
    return [
        resolve(
            RunConfig(
                objective=f"soft,num_vae=0,beta_kl={0.1 + 0.05 * (i % 8)}",
                data="8gaussians",
                seed=i,
                device=device,
                iterations=ITERATIONS,
            ),
            reg,
        )
        for i in range(m)
    ]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class Clock:
    """Wall time and this process's CPU time (all its threads): on a shared CPU the CPU-time rate is the
    one that other processes' load does not change."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.wall = self.cpu = 0.0

    def start(self) -> None:
        _sync(self.device)
        self._w, self._c = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        _sync(self.device)
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c


def measure(
    m: int, device: str, iterations: int, threads: int | None, solo_members: int, path: str = "aten"
) -> dict[str, float]:
    """In a fresh process: the pack of ``m`` (member-iterations per wall second and per CPU second, peak
    MiB per member), then the first ``solo_members`` of the same runs one by one, both with the Linear
    products on the kernel path ``path`` (:mod:`introzoo.training.kernels`; a pack uses its members' path)."""
    tune_allocator()  # as introzoo.training.loop.train and introzoo.packing.loop.train_pack do
    if threads:
        torch.set_num_threads(threads)
    with kernels.use(path):
        n, clock, mem = packed_rate(m, device, iterations)
        solo_n, solo = solo_rate(runs(min(m, solo_members), device), iterations)
    return {
        "wall": n / clock.wall,
        "cpu": n / clock.cpu,
        "mem": mem,
        "solo_wall": solo_n / solo.wall,
        "solo_cpu": solo_n / solo.cpu,
    }


def packed_rate(m: int, device: str, iterations: int, warmup: int = 2) -> tuple[int, Clock, float]:
    """(member-iterations, their clock, peak MiB per member) of a pack of ``m``."""
    base = _rss_mib()
    rs = runs(m, device)
    builts, gens = [], []
    for r in rs:
        builts.append(build(r))
        gens.append(torch.Generator().manual_seed(r.seed))
    pack = Pack(rs, builts, gens)
    dev = builts[0].device
    streams = [b.dataset.batches(512, torch.Generator().manual_seed(r.seed)) for r, b in zip(rs, builts)]
    active = list(range(m))
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    clock = Clock(dev)
    for it in range(warmup + iterations):
        if it == warmup:
            clock.start()
        xs = torch.stack([next(s) for s in streams]).to(dev)
        pack.step(xs, active, it)
    clock.stop()
    if dev.type == "cuda":
        return m * iterations, clock, torch.cuda.max_memory_allocated() / 2**20 / m
    return m * iterations, clock, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base) / m


def solo_rate(rs, iterations: int, warmup: int = 2) -> tuple[int, Clock]:
    """(iterations, their clock) of the runs ``rs`` one after the other."""
    clock = Clock(torch.device(rs[0].device if rs[0].device != "auto" else "cpu"))
    for r in rs:
        b = build(r)
        stream = b.dataset.batches(512, torch.Generator().manual_seed(r.seed))
        for it in range(warmup + iterations):
            if it == warmup:
                clock.start()
            b.objective.train_step(next(stream).to(b.device), it)
        clock.stop()
    return len(rs) * iterations, clock


def _hours(n_runs: int, rate: float) -> float:
    return n_runs * ITERATIONS / rate / 3600


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="pack sizes (CPU: 1 4 16 64; cuda: up to 256)")
    ap.add_argument("--iterations", type=int, default=5, help="timed iterations per measurement (keep it short on a CPU)")
    ap.add_argument("--solo-members", type=int, default=2, help="runs timed one by one (the rate is per run)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument(
        "--kernels",
        nargs="+",
        default=None,
        choices=["aten", "onednn"],
        help="kernel paths of the Linear products, each measured (CPU: aten onednn; cuda: aten)",
    )
    ap.add_argument(
        "--grid-runs", type=int, default=None, help="runs of the grid (default: counted from benchmarks/toy2d.toml)"
    )
    a = ap.parse_args()
    sizes = a.sizes or ([1, 4, 16, 64] if a.device == "cpu" else [1, 4, 16, 64, 128, 256])
    if a.threads:
        torch.set_num_threads(a.threads)
    n_grid = a.grid_runs or grid_runs()
    print(
        f"device {a.device}, threads {torch.get_num_threads()}, soft on 8gaussians, MLP 3x256, batch 512, "
        f"{a.iterations} timed iterations; grid: benchmarks/toy2d.toml, {n_grid} runs x {ITERATIONS} it "
        f"(training only)"
    )
    print(
        "member-it/s per wall second (per CPU second of this process in brackets: the figure that the "
        "other processes on a shared machine do not change); runs/h, grid hours and the ratio from the wall rate"
    )
    print(
        f"{'':20s} {'member-it/s':>11s} {'(cpu)':>8s} {'runs/h':>8s} {'vs solo':>7s} {'(cpu)':>6s} "
        f"{'MiB/member':>10s} {'grid h':>9s} {'840 runs h':>10s}"
    )
    for name, rate in (("official, idle", SPEC_IT_S["idle"]), ("official, loaded", SPEC_IT_S["loaded"])):
        print(
            f"{name:20s} {rate:11.2f} {'':8s} {rate * 3600 / ITERATIONS:8.2f} {'':7s} {'':6s} {'':10s} "
            f"{_hours(n_grid, rate):9.1f} {_hours(GOAL_RUNS, rate):10.1f}   (official loop, one run at a time)"
        )
    paths = a.kernels or (["aten", "onednn"] if a.device == "cpu" and kernels.available("onednn") else ["aten"])
    ctx = multiprocessing.get_context("spawn")
    for m, path in [(m, path) for m in sizes for path in paths]:
        with ctx.Pool(1) as pool:  # a fresh process per size and path: its own peak memory
            r = pool.apply(measure, (m, a.device, a.iterations, a.threads, a.solo_members, path))
        tag = "" if len(paths) == 1 else f" {path}"
        rows = (
            (f"  one by one{tag}", r["solo_wall"], r["solo_cpu"], ""),
            (f"pack M={m}{tag}", r["wall"], r["cpu"], f"{r['mem']:.1f}"),
        )
        for name, rate, cpu, mem in rows:
            print(
                f"{name:20s} {rate:11.2f} {'(%.2f)' % cpu:>8s} {rate * 3600 / ITERATIONS:8.2f} "
                f"{rate / r['solo_wall']:7.2f} {'(%.2f)' % (cpu / r['solo_cpu']):>6s} {mem:>10s} "
                f"{_hours(n_grid, rate):9.1f} {_hours(GOAL_RUNS, rate):10.1f}"
            )
    print(
        f"goal: {GOAL_RUNS} runs in {GOAL_HOURS:g} GPU-hour = {GOAL_RUNS * ITERATIONS / 3600 / GOAL_HOURS:.0f} "
        "member-it/s (training only)"
    )


if __name__ == "__main__":
    main()
