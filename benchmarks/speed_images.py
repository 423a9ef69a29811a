"""Training speed and peak memory of ``soft`` + ``resnet`` on 28x28 images (batch 128).

The step timed is the ``soft`` objective's, as ``introzoo run -o soft -d fashion-mnist`` executes it: the
IntroVAE residual networks with the Fashion-MNIST/MNIST settings of SPEC §5 (channels (64, 128), zdim 32,
BatchNorm), batch 128, Adam 2e-4, betas (1, 1, 256). Batches are Fashion-MNIST images when the Debian
package is installed, random images otherwise (speed does not depend on pixel values). It prints
iterations/s, images/s and peak memory for each device given (CPU always, CUDA when present): peak
resident memory of the process on CPU, ``torch.cuda.max_memory_allocated`` on a GPU.

    python benchmarks/speed_images.py                       # CPU (and CUDA if available), 20 timed steps
    python benchmarks/speed_images.py --steps 200 --device cuda --channels-last
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import torch

from introzoo.backbones.resnet import ResNetConfig, build
from introzoo.model import VAE
from introzoo.objectives.base import TrainSettings
from introzoo.objectives.soft import SoftConfig, SoftIntroVAE
from introzoo.perf import tune_allocator
from introzoo.priors.gaussian import StandardGaussian


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


def measure(device: torch.device, steps: int, warmup: int, batch: int, channels_last: bool) -> dict:
    torch.manual_seed(0)
    enc, dec = build(ResNetConfig(channels=[64, 128]), (1, 28, 28), 32)
    model = VAE(enc, dec, StandardGaussian(32), (1, 28, 28), 32).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    obj = SoftIntroVAE(SoftConfig(beta_rec=1.0, beta_kl=1.0, beta_neg=256.0, num_vae=0), model, [], TrainSettings())
    data, source = batches(batch, device)
    for i in range(warmup):
        obj.train_step(next(data), i)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(steps):
        losses = obj.train_step(next(data), warmup + i)
    float(losses["loss_e"])  # waits for the device
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.processor() or 'cpu'} x{torch.get_num_threads()} threads"
    return {"device": name, "data": source, "steps": steps, "batch": batch, "it_per_s": round(steps / dt, 3),
            "images_per_s": round(steps * batch / dt, 1), "peak_memory_mib": round(peak, 1),
            "peak_memory_of": "cuda allocated" if device.type == "cuda" else "process RSS"}


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
    print(f"{'device':40s} {'it/s':>8s} {'images/s':>10s} {'peak MiB':>10s}  data")
    for r in rows:
        print(f"{r['device'][:40]:40s} {r['it_per_s']:8.2f} {r['images_per_s']:10.1f} {r['peak_memory_mib']:10.1f}  "
              f"{r['data']} ({r['peak_memory_of']})")


if __name__ == "__main__":
    main()
