"""Batched-linear (``PackedMLP``, ``torch.baddbmm``) against ``torch.func`` (``stack_module_state`` +
``vmap(functional_call)``) for M stacked ``mlp`` encoders (3 hidden layers of 256, batch 512):
forward + backward per second.

    python benchmarks/speed_pack_vmap.py --members 16 --seconds 5
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from introzoo.backbones.mlp import MLPConfig, build
from introzoo.packing.model import PackedMLP


def rate(fn, seconds: float) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    encs = [build(MLPConfig(), (2,), 2)[0].to(dev) for _ in range(a.members)]
    x = torch.randn(a.members, a.batch, 2, device=dev)
    packed = PackedMLP(encs).to(dev)
    params, buffers = stack_module_state(encs)
    base = copy.deepcopy(encs[0]).to("meta")
    call = vmap(lambda p, b, xi: functional_call(base, (p, b), (xi,)))

    def bmm_step():
        packed.zero_grad()
        packed(x, None).square().sum().backward()
        sync()

    def vmap_step():
        for p in params.values():
            p.grad = None
        call(params, buffers, x).square().sum().backward()
        sync()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    r_bmm, r_vmap = rate(bmm_step, a.seconds), rate(vmap_step, a.seconds)
    print(
        f"M={a.members} batch={a.batch} {dev}: baddbmm {r_bmm:.1f} it/s, vmap {r_vmap:.1f} it/s "
        f"(vmap/bmm {r_vmap / r_bmm:.2f})"
    )


if __name__ == "__main__":
    main()
