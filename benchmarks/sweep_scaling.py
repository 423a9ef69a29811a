"""How sweep throughput scales with local workers: runs/hour for the same batch of runs with

  (a) 1 worker, 1 torch thread per run,
  (b) 1 worker, all cores as torch threads,
  (c) one worker per core, 1 torch thread each (the ``local`` executor's default),

printed with the ratios c/a and c/b. Every configuration trains the same runs (``soft`` on 8 Gaussians,
batch 512, MLP 3x256) in a fresh store; worker start-up is included, as a user would see it.

    python benchmarks/sweep_scaling.py                  # 8 runs x 300 iterations per configuration
    python benchmarks/sweep_scaling.py --runs 12 --iterations 500
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from introzoo import plugins
from introzoo.sweeps.executors import LocalConfig, LocalExecutor
from introzoo.sweeps.grid import SweepSpec, expand


def measure(workers: int, threads: int, runs: int, iterations: int) -> float:
    spec = SweepSpec(
        objective=["soft,num_vae=0"], data=["8gaussians"], seeds=runs, iterations=iterations, metrics=["kl,n_samples=1000"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        tasks = expand(spec, plugins.registry(), sweep_dir=Path(tmp))
        statuses = []
        t0 = time.perf_counter()
        LocalExecutor(LocalConfig(workers=workers, threads=threads)).run(
            tasks, Path(tmp), lambda t, r: statuses.append(r["status"])
        )
        elapsed = time.perf_counter() - t0
    assert statuses.count("finished") == runs, statuses
    return runs / elapsed * 3600


def main() -> None:
    ap = argparse.ArgumentParser(description="runs/hour of the local executor for 1 worker vs one per core")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.cores
    a = measure(1, 1, args.runs, args.iterations)
    b = measure(1, n, args.runs, args.iterations)
    c = measure(n, 1, args.runs, args.iterations)
    result = {
        "cores": n,
        "runs": args.runs,
        "iterations": args.iterations,
        "one_worker_one_thread_runs_per_h": round(a, 1),
        f"one_worker_{n}_threads_runs_per_h": round(b, 1),
        f"{n}_workers_one_thread_runs_per_h": round(c, 1),
        "ratio_vs_one_thread": round(c / a, 3),
        "ratio_vs_all_threads": round(c / b, 3),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"sweep throughput, {args.runs} runs of soft x {args.iterations} iterations, {n} cores")
    print(f"  (a) 1 worker,  1 thread     {a:8.1f} runs/h")
    print(f"  (b) 1 worker,  {n} threads    {b:8.1f} runs/h")
    print(f"  (c) {n} workers, 1 thread each {c:8.1f} runs/h")
    print(f"  c/a = {c / a:.2f}x (target >= 1.8 on 2 cores),  c/b = {c / b:.2f}x (target >= 1.05)")


if __name__ == "__main__":
    main()
