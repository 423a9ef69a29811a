"""Peak memory of the default ``introzoo eval`` of a Fashion-MNIST run (target: under 2 GB).

1. Trains a Fashion-MNIST run for a few iterations (``soft``, the dataset's defaults: resnet (64, 128),
   zdim 32), from the offline loader (Debian's ``dataset-fashion-mnist``).
2. Runs ``introzoo eval`` on it in a fresh process with the metrics a run gets by default on Fashion-MNIST
   (every registered metric that applies with its defaults: ``fid_gen``, ``fid_rec`` with the classifier
   extractor, trained afresh in an empty cache; ``svm``, ``knn5``, ``knn100``, ``nll`` with k = 100 on
   1,000 test images, ``resp_entropy``), and reads that process's peak resident memory (``ru_maxrss`` of
   ``os.wait4``), printed beside the target with each metric's time.

``--quick`` keeps every option that sets memory (the chunk, k, the extractor and its training, the data)
and lowers only the image counts (FID n = 1,000, probes 1,000 / 1,000, nll n = 20), which the streaming
evaluation's memory does not depend on; it takes a few minutes on two CPU cores, the full one about half
an hour. ``--chunk`` shows the effect of the chunk.

    python benchmarks/eval_memory.py --quick
    python benchmarks/eval_memory.py --chunk 1024 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_GB = 2.0
QUICK = {
    "fid_gen": "n=1000",
    "fid_rec": "n=1000",
    "svm": "n_train=1000,n_test=1000",
    "knn5": "n_train=1000,n_test=1000",
    "knn100": "n_train=1000,n_test=1000",
    "nll": "n=20",
}


def default_metrics() -> list[str]:
    """The metrics ``introzoo run -d fashion-mnist`` records when none is given (the same rule)."""
    from introzoo.config import _default_metric
    from introzoo.data import images
    from introzoo.plugins import state

    ds = images.factory("fashion-mnist")(images.ImageConfig(download=False))
    return [c.name for c in state().registry.all("metrics") if _default_metric(c, ds) is not None]


def introzoo(args: list[str], env: dict[str, str]) -> tuple[int, float, float]:
    """Run ``python -m introzoo ARGS``; (exit code, peak RSS in GB, seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "introzoo", *args], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024 / 1e9, time.perf_counter() - t0  # ru_maxrss: KiB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="lower the image counts only (same memory bounds)")
    ap.add_argument("--chunk", type=int, default=None, help="introzoo eval --chunk (its default: 256)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads of both processes")
    ap.add_argument("--iterations", type=int, default=5, help="training iterations of the run (5)")
    ap.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temporary one)")
    a = ap.parse_args()

    work = a.keep or Path(tempfile.mkdtemp(prefix="introzoo-eval-memory-"))
    env = dict(
        os.environ, INTROZOO_CACHE=str(work / "cache"), INTROZOO_DATA_ROOT=str(work / "data"), INTROZOO_DISABLE_PLUGINS="all"
    )
    threads = ["--threads", str(a.threads)] if a.threads else []
    run = work / "fmnist-soft"
    rc, train_gb, train_s = introzoo(
        [
            "run",
            "-o",
            "soft",
            "-d",
            "fashion-mnist",
            "-n",
            str(a.iterations),
            "--metric",
            "knn5,n_train=100,n_test=100",
            "--out",
            str(run),
            "-q",
            "--resume-every",
            "0",
            *threads,
        ],
        env,
    )
    if rc != 0:
        print(f"training failed (exit {rc}); is dataset-fashion-mnist installed?", file=sys.stderr)
        return rc
    names = default_metrics()
    specs = [f"{n},{QUICK[n]}" if a.quick and n in QUICK else n for n in names]
    metric_args = [x for s in specs for x in ("--metric", s)]
    chunk = ["--chunk", str(a.chunk)] if a.chunk else []
    rc, peak_gb, eval_s = introzoo(["eval", str(run), *metric_args, *chunk, *threads], env)
    if rc != 0:
        print(f"introzoo eval failed (exit {rc})", file=sys.stderr)
        return rc
    times = json.loads((run / "metrics.json").read_text()).get("eval_times_s", {})
    verdict = "under" if peak_gb < TARGET_GB else "OVER"
    print(
        f"\nintrozoo eval on Fashion-MNIST ({'quick: ' + ', '.join(specs) if a.quick else 'default metrics: ' + ', '.join(names)};"
        f" chunk {a.chunk or 256})"
    )
    print(f"  peak resident memory: {peak_gb:.2f} GB   target: < {TARGET_GB:.0f} GB   ({verdict} the target)")
    print(f"  wall time: {eval_s:.0f} s   ({', '.join(f'{k} {v:.0f} s' for k, v in times.items())})")
    print(f"  (training the run: {a.iterations} iterations, {train_s:.0f} s, peak {train_gb:.2f} GB; work dir {work})")
    return 0 if peak_gb < TARGET_GB else 1


if __name__ == "__main__":
    sys.exit(main())
