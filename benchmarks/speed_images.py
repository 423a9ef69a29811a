"""Training speed and peak memory of ``soft`` + ``resnet`` on 28x28 images (batch 128), against the
official image training step's order of passes.

The step timed is the ``soft`` objective's, as ``introzoo run -o soft -d fashion-mnist`` executes it: the
IntroVAE residual networks with the Fashion-MNIST/MNIST settings (docs/conventions.md, "Backbones": channels (64, 128), zdim 32,
BatchNorm), batch 128, Adam 2e-4, betas (1, 1, 256). Batches are Fashion-MNIST images when the Debian
package is installed, random images otherwise (speed does not depend on pixel values). It prints
iterations/s, images/s and peak memory for each device given (CPU always, CUDA when present): peak
resident memory of the process on CPU, ``torch.cuda.max_memory_allocated`` on a GPU.

The same run also times ``reference``: one iteration in the order of passes of the authors' image
script (``soft_intro_vae/train_soft_intro_vae.py`` of taldatech/soft-intro-vae-pytorch), with the same
networks and losses: requires_grad toggled per player, separate encoder/decoder passes for fakes and
reconstructions, ``D(z_p)`` and ``D(z)`` recomputed for the decoder step (the loop of
``benchmarks/speed_2d.py`` without the 2D script's per-iteration logging pass, which the image script
makes only when it saves a grid). Both loops are timed in alternating blocks in one process and the
ratio is printed. Before timing, both are checked to compute the same losses from the same noise on
the networks without BatchNorm (with it, the official separate passes normalise fakes and
reconstructions in separate batches, introzoo's joint pass over both: the same losses up to the batch
statistics).

    python benchmarks/speed_images.py                       # CPU (and CUDA if available), 20 timed steps
    python benchmarks/speed_images.py --steps 200 --device cuda --channels-last
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

from introzoo.backbones.resnet import ResNetConfig, build
from introzoo.model import VAE
from introzoo.objectives.base import TrainSettings
from introzoo.objectives.soft import SoftConfig, SoftIntroVAE
from introzoo.training.perf import tune_allocator
from introzoo.priors.gaussian import StandardGaussian

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_2d import ReferenceLoop, check_same_losses  # noqa: E402

CONFIG = SoftConfig(beta_rec=1.0, beta_kl=1.0, beta_neg=256.0, num_vae=0)


def batches(batch: int, device: torch.device):
    from introzoo.data import images

    try:
        ds = images.factory("fashion-mnist")(images.ImageConfig(download=False))
        it = ds.batches(batch, torch.Generator().manual_seed(0))
        source = "fashion-mnist"
    except Exception:
        g = torch.Generator().manual_seed(0)
        it = iter(lambda: torch.rand(batch, 1, 28, 28, generator=g), None)
        source = "random images"
    return (x.to(device, non_blocking=True) for x in it), source


def make_model(device: torch.device, norm: str = "batch", channels_last: bool = False) -> VAE:
    torch.manual_seed(0)
    enc, dec = build(ResNetConfig(channels=[64, 128], norm=norm), (1, 28, 28), 32)
    model = VAE(enc, dec, StandardGaussian(32), (1, 28, 28), 32).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def image_batch(batch: int, g: torch.Generator, device: torch.device):
    return torch.rand(batch, 1, 28, 28, generator=g).to(device), torch.randn(batch, 32, generator=g).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _ours(device: torch.device, channels_last: bool, precision: str = "fp32", path: str = "aten"):
    """introzoo's step with a precision and a kernel path for the Linear products (the ``fc`` layers)."""
    from introzoo.training import kernels

    obj = SoftIntroVAE(CONFIG, make_model(device, channels_last=channels_last), [], TrainSettings(precision=precision))

    def step(x, i):
        with kernels.use(path):
            return obj.train_step(x, i)

    return step


def measure(
    device: torch.device, steps: int, warmup: int, batch: int, channels_last: bool, blocks: int = 2, variants: bool = True
) -> dict:
    from introzoo.training import kernels

    ref = ReferenceLoop(make_model(device, channels_last=channels_last), CONFIG, 2e-4, log_pass=False)
    loops = {
        "introzoo": _ours(device, channels_last),
        "reference": lambda x, i: ref.step(x, torch.randn(x.shape[0], 32, device=device)),
    }
    if variants and device.type == "cpu":  # the other CPU paths of docs/speed.md
        if kernels.available("onednn"):
            loops["introzoo-onednn"] = _ours(device, channels_last, path="onednn")
        loops["introzoo-bf16"] = _ours(device, channels_last, precision="bf16")
    data, source = batches(batch, device)
    seconds, peaks = {k: 0.0 for k in loops}, {}
    for name, fn in loops.items():
        for i in range(warmup):
            fn(next(data), i)
    per = max(1, steps // blocks)
    for _ in range(blocks):  # alternating blocks: both loops see the same machine load
        for name, fn in loops.items():
            _sync(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for i in range(per):
                losses = fn(next(data), warmup + i)
            float(losses["loss_e"])  # waits for the device
            _sync(device)
            seconds[name] += time.perf_counter() - t0
            if device.type == "cuda":
                peaks[name] = max(peaks.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**20)
    if device.type != "cuda":  # the process's peak resident memory (both loops)
        peaks = {k: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 for k in loops}
    done = per * blocks
    name = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"{platform.processor() or 'cpu'} x{torch.get_num_threads()} threads"
    )
    its = {k: done / v for k, v in seconds.items()}
    return {
        "device": name,
        "data": source,
        "steps": done,
        "batch": batch,
        "it_per_s": round(its["introzoo"], 3),
        "images_per_s": round(its["introzoo"] * batch, 1),
        "reference_it_per_s": round(its["reference"], 3),
        "ratio": round(its["introzoo"] / its["reference"], 3),
        "variants_it_per_s": {k: round(v, 3) for k, v in its.items() if k.startswith("introzoo-")},
        "peak_memory_mib": round(peaks["introzoo"], 1),
        "reference_peak_memory_mib": round(peaks["reference"], 1),
        "peak_memory_of": "cuda allocated" if device.type == "cuda" else "process RSS",
        "max_rel_loss_diff": check_same_losses(
            device, CONFIG, 16, make=lambda d: make_model(d, norm="none"), batch=image_batch, log_pass=False
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--device", choices=["all", "cpu", "cuda"], default="all")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    tune_allocator()
    if a.threads:
        torch.set_num_threads(a.threads)
    devices = ["cpu", "cuda"] if a.device == "all" else [a.device]
    rows = []
    for d in devices:
        if d == "cuda" and not torch.cuda.is_available():
            continue
        if d == "cuda":
            torch.backends.cudnn.benchmark = True
        steps = a.steps if d == "cpu" else max(a.steps, 200)
        rows.append(measure(torch.device(d), steps, a.warmup if d == "cpu" else 20, a.batch, a.channels_last))
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"soft + resnet(64,128), zdim 32, 28x28x1, batch {a.batch} (torch {torch.__version__})")
    print(
        f"{'device':34s} {'it/s':>8s} {'images/s':>9s} {'ref it/s':>9s} {'ratio':>6s} {'peak MiB':>9s} {'ref MiB':>8s}  data"
    )
    for r in rows:
        print(
            f"{r['device'][:34]:34s} {r['it_per_s']:8.2f} {r['images_per_s']:9.1f} {r['reference_it_per_s']:9.2f} "
            f"{r['ratio']:5.2f}x {r['peak_memory_mib']:9.1f} {r['reference_peak_memory_mib']:8.1f}  "
            f"{r['data']} ({r['peak_memory_of']})"
        )
        for k, v in r["variants_it_per_s"].items():
            print(f"  {k:32s} {v:8.2f} {v * r['batch']:9.1f} {'':9s} {v / r['reference_it_per_s']:5.2f}x")
        print(
            f"  same losses as the official order given the same noise (no BatchNorm): max relative "
            f"difference {r['max_rel_loss_diff']:.2e}"
        )


if __name__ == "__main__":
    main()
