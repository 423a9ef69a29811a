"""Packed training throughput on images: M image runs trained as one pack against the same runs one by one.

Each member is ``soft`` on ``digits`` (8x8, batch 64, zdim 8, past the warm-up) with the ``conv`` or
``resnet`` backbone (``--channels``, default the digits default 32 64) and its own seed and beta_kl.
For each size M, in a fresh process: ``--iterations`` timed steps of the pack
(:class:`introzoo.packing.loop.Pack`, grouped convolutions, :mod:`introzoo.packing.conv`), then the same M runs one
by one for as many steps each. Prints member-iterations per wall second and per CPU second of the process
(on a shared machine the CPU-second rate is the one other processes' load does not change) and the ratio.

    python benchmarks/speed_pack_images.py --backbone conv --sizes 4 --iterations 20 --threads 1
    python benchmarks/speed_pack_images.py --backbone resnet --device cuda --sizes 4 16 64 --iterations 50
"""

from __future__ import annotations

import argparse
import multiprocessing

import torch
from speed_pack import Clock  # benchmarks/speed_pack.py: wall and CPU time, synchronised on a GPU

from introzoo import plugins
from introzoo.config import RunConfig, resolve
from introzoo.packing.loop import Pack
from introzoo.training.perf import tune_allocator
from introzoo.training.loop import build

BATCH = 64


def runs(m: int, backbone: str, channels: list[int], device: str):
    reg = plugins.registry()
    spec = f"{backbone},channels={channels}".replace(" ", "")
    return [
        resolve(
            RunConfig(
                objective=f"soft,num_vae=0,beta_kl={0.5 + 0.1 * (i % 8)}",
                data="digits",
                backbone=spec,
                batch_size=BATCH,
                seed=i,
                device=device,
                metrics=[],
            ),
            reg,
        )
        for i in range(m)
    ]


def measure(
    m: int, backbone: str, channels: list[int], device: str, iterations: int, threads: int | None, warmup: int = 2
) -> dict[str, float]:
    tune_allocator()
    if threads:
        torch.set_num_threads(threads)
    rs = runs(m, backbone, channels, device)
    builts = [build(r) for r in rs]
    gens = [torch.Generator().manual_seed(r.seed) for r in rs]
    pack = Pack(rs, builts, gens)
    dev = builts[0].device
    streams = [b.dataset.batches(BATCH, torch.Generator().manual_seed(r.seed)) for r, b in zip(rs, builts)]
    clock = Clock(dev)
    for it in range(warmup + iterations):
        if it == warmup:
            clock.start()
        xs = torch.stack([next(s) for s in streams]).to(dev)
        pack.step(xs, list(range(m)), it)
    clock.stop()
    solo = Clock(dev)
    for r in rs:
        b = build(r)
        stream = b.dataset.batches(BATCH, torch.Generator().manual_seed(r.seed))
        for it in range(warmup + iterations):
            if it == warmup:
                solo.start()
            b.objective.train_step(next(stream).to(b.device), it)
        solo.stop()
    n = m * iterations
    return {"wall": n / clock.wall, "cpu": n / clock.cpu, "solo_wall": n / solo.wall, "solo_cpu": n / solo.cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="conv", choices=["conv", "resnet"])
    ap.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4])
    ap.add_argument("--iterations", type=int, default=20, help="timed iterations per member")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = ap.parse_args()
    print(
        f"device {a.device}, soft on digits, {a.backbone} channels {a.channels}, batch {BATCH}, "
        f"{a.iterations} timed iterations per member; member-it/s per wall second (per CPU second)"
    )
    print(f"{'':12s} {'packed':>9s} {'(cpu)':>9s} {'one by one':>10s} {'(cpu)':>9s} {'ratio':>6s} {'(cpu)':>6s}")
    ctx = multiprocessing.get_context("spawn")
    for m in a.sizes:
        with ctx.Pool(1) as pool:
            r = pool.apply(measure, (m, a.backbone, a.channels, a.device, a.iterations, a.threads))
        print(
            f"{'M=%d' % m:12s} {r['wall']:9.2f} {'(%.2f)' % r['cpu']:>9s} {r['solo_wall']:10.2f} "
            f"{'(%.2f)' % r['solo_cpu']:>9s} {r['wall'] / r['solo_wall']:6.2f} {'(%.2f)' % (r['cpu'] / r['solo_cpu']):>6s}"
        )


if __name__ == "__main__":
    main()
