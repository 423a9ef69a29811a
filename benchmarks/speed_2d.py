"""Training speed of ``soft`` on 2D data against a loop that makes the passes in the official order.

Both train the same networks (MLP 3x256, zdim 2, batch 512, 8 Gaussians, Adam 2e-4) with the losses of
``soft`` (docs/conventions.md, "Objectives"). The reference loop is written out here as the authors' 2D script does it: requires_grad toggled
per player, separate passes for fakes and reconstructions, ``D(z_p)`` and ``D(z)`` recomputed for the
decoder step, and the extra ``E(x) -> D(mu)`` pass made only for logging.

First it checks that both compute the same losses given the same noise draws (a value-based
reparameterisation noise and a fixed ``z_p``). Then it times them in alternating blocks, each block in
a fresh process, and prints iterations/s, ratios and peak memory, with the official loop's reference
figure (docs/packing.md, "Speed (CPU)"):

- ``introzoo``: the ``soft`` objective's step as ``introzoo run`` executes it (allocator tuned, see
  :mod:`introzoo.training.perf`);
- ``reference``: the official order of passes, in a process set up as the authors' script is (default
  allocator);
- ``reference+alloc``: the same loop with introzoo's allocator settings, to separate the two gains;
- ``introzoo-onednn``: introzoo with ``--kernels onednn`` (the Linear products through oneDNN,
  :mod:`introzoo.training.kernels`); ``introzoo`` itself is ``--kernels aten`` (torch's default, MKL);
- ``introzoo-bf16``: introzoo with ``--precision bf16`` (autocast forwards, float32 master weights);
- ``introzoo-compile`` (only with ``--compile``): introzoo with the encoder and decoder through
  ``torch.compile`` (inductor's CPU backend: fused elementwise kernels, prepacked weights).

It also measures the machine's own GEMM rate for the step's shapes (the 256 x 256 products at batch 512
and 1024, forward and backward; float32 through MKL and oneDNN, bfloat16) and prints the fraction of
that peak each introzoo path reaches (matrix FLOPs per iteration x it/s / peak). ``--json`` gives the
same figures with ``ratio_fp32`` (the best float32 path / the authors' loop) and ``ratio_bf16``.

    python benchmarks/speed_2d.py                 # defaults: 600 timed iterations per loop
    python benchmarks/speed_2d.py --iterations 1000 --threads 2 --device cpu
    python benchmarks/speed_2d.py --iterations 100 --blocks 1 --threads 1 --compile
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import torch

from introzoo.backbones.mlp import MLPConfig, build
from introzoo.data.toy2d import eight_gaussians
from introzoo.model import VAE
from introzoo.objectives.base import TrainSettings
from introzoo.objectives.soft import SoftConfig, SoftIntroVAE
from introzoo.priors.gaussian import StandardGaussian

SPEC_REFERENCE_IT_S = 18.0  # the official loop, idle 2-core CPU machine (docs/packing.md, "Speed (CPU)")


def rec_loss(x, y, reduction="mean"):
    e = ((y - x) ** 2).reshape(x.shape[0], -1).sum(1)
    return e.mean() if reduction == "mean" else e


def kl_loss(mu, logvar, reduction="mean"):
    k = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
    return k.mean() if reduction == "mean" else k


class ReferenceLoop:
    """One Soft-IntroVAE iteration in the official order of passes (seed 002 Algorithm 2)."""

    def __init__(self, model: VAE, c: SoftConfig, lr: float, log_pass: bool = True) -> None:
        """``log_pass``: the 2D script's extra ``E(x) -> D(mu)`` pass each iteration (the image script,
        ``soft_intro_vae/train_soft_intro_vae.py``, makes it only when it saves a grid)."""
        self.m, self.c, self.log_pass = model, c, log_pass
        self.opt_e = torch.optim.Adam(model.encoder.parameters(), lr=lr)
        self.opt_d = torch.optim.Adam(model.decoder.parameters(), lr=lr)

    def forward(self, x, deterministic=False):
        mu, logvar = self.m.encode(x)
        z = mu if deterministic else self.m.reparameterize(mu, logvar)
        return mu, logvar, z, self.m.decode(z)

    def step(self, x, z_p):
        m, c, s = self.m, self.c, self.m.s
        for p in m.encoder.parameters():
            p.requires_grad = True
        for p in m.decoder.parameters():
            p.requires_grad = False
        fake = m.decode(z_p)
        real_mu, real_logvar = m.encode(x)
        z = m.reparameterize(real_mu, real_logvar)
        rec = m.decode(z)
        if self.log_pass:  # logging only
            _, _, _, rec_det = self.forward(x, deterministic=True)
            _ = rec_loss(x, rec_det.detach())
        loss_rec = rec_loss(x, rec)
        loss_kl = kl_loss(real_mu, real_logvar)
        fake_mu, fake_logvar, _, rec_fake = self.forward(fake.detach())
        rec_mu, rec_logvar, _, rec_rec = self.forward(rec.detach())
        fake_kl_e = kl_loss(fake_mu, fake_logvar, "none")
        rec_kl_e = kl_loss(rec_mu, rec_logvar, "none")
        loss_fake_rec = rec_loss(fake, rec_fake, "none")
        loss_rec_rec = rec_loss(rec, rec_rec, "none")
        exp_fake = (-2 * s * (c.beta_rec * loss_fake_rec + c.beta_neg * fake_kl_e)).exp().mean()
        exp_rec = (-2 * s * (c.beta_rec * loss_rec_rec + c.beta_neg * rec_kl_e)).exp().mean()
        loss_e = s * (c.beta_kl * loss_kl + c.beta_rec * loss_rec) + 0.25 * (exp_fake + exp_rec)
        self.opt_e.zero_grad()
        loss_e.backward()
        self.opt_e.step()

        for p in m.encoder.parameters():
            p.requires_grad = False
        for p in m.decoder.parameters():
            p.requires_grad = True
        fake = m.decode(z_p)
        rec = m.decode(z.detach())
        loss_rec = rec_loss(x, rec)
        rec_mu, rec_logvar = m.encode(rec)
        z_rec = m.reparameterize(rec_mu, rec_logvar)
        fake_mu, fake_logvar = m.encode(fake)
        z_fake = m.reparameterize(fake_mu, fake_logvar)
        rec_rec = m.decode(z_rec.detach())
        rec_fake = m.decode(z_fake.detach())
        loss_rec_rec = rec_loss(rec.detach(), rec_rec)
        loss_rec_fake = rec_loss(fake.detach(), rec_fake)
        fake_kl = kl_loss(fake_mu, fake_logvar)
        rec_kl = kl_loss(rec_mu, rec_logvar)
        loss_d = s * (
            c.beta_rec * loss_rec
            + 0.5 * c.beta_kl * (fake_kl + rec_kl)
            + c.gamma_r * 0.5 * c.beta_rec * (loss_rec_rec + loss_rec_fake)
        )
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        for p in m.encoder.parameters():  # leave the model as found
            p.requires_grad = True
        return {"loss_e": loss_e.detach(), "loss_d": loss_d.detach()}


def make_model(device, seed=0) -> VAE:
    torch.manual_seed(seed)
    enc, dec = build(MLPConfig(hidden=256, layers=3), (2,), 2)
    return VAE(enc, dec, StandardGaussian(2), (2,), 2).to(device)


def eight_gaussian_batch(batch_size, g, device):
    return eight_gaussians(batch_size, g).to(device), torch.randn(batch_size, 2, generator=g).to(device)


def check_same_losses(device, c, batch_size, make=None, batch=eight_gaussian_batch, **loop) -> float:
    """Largest relative difference of L_E and L_D over 3 iterations under identical noise (``make``:
    the model factory, ``batch(batch_size, generator, device) -> (x, z_p)``; ``loop``: ReferenceLoop's
    options)."""
    make = make or make_model

    def deterministic(model, z_p):
        model.reparameterize = lambda mu, lv: mu + torch.sin(37.0 * mu.detach() + 11.0 * lv.detach()) * torch.exp(0.5 * lv)
        model.prior.sample = lambda n, with_grad=False: z_p[:n]
        return model

    g = torch.Generator().manual_seed(1)
    a, b = make(device), make(device)
    ours = SoftIntroVAE(c, a, train=TrainSettings(lr=2e-4))
    ref = ReferenceLoop(b, c, 2e-4, **loop)
    worst = 0.0
    for _ in range(3):
        x, z_p = batch(batch_size, g, device)
        deterministic(a, z_p)
        deterministic(b, z_p)
        la, lb = ours.train_step(x, 10**6), ref.step(x, z_p)
        for k in ("loss_e", "loss_d"):
            worst = max(worst, abs(float(la[k]) - float(lb[k])) / max(abs(float(lb[k])), 1e-12))
    return worst


def count_flops(device, c, batch_size) -> dict[str, float]:
    """Floating-point operations of one iteration of each loop (matrix products, forward and backward,
    counted by ``torch.utils.flop_counter``): on a device where the products dominate, their ratio
    bounds what fewer passes alone can gain."""
    from torch.utils.flop_counter import FlopCounterMode

    x = eight_gaussians(batch_size, torch.Generator().manual_seed(0)).to(device)
    z_p = torch.randn(batch_size, 2, device=device)
    loops = {
        "introzoo": lambda: SoftIntroVAE(c, make_model(device), train=TrainSettings(lr=2e-4)).train_step(x, 10**6),
        "reference": lambda: ReferenceLoop(make_model(device), c, 2e-4).step(x, z_p),
    }
    out = {}
    for name, fn in loops.items():
        with FlopCounterMode(display=False) as counter:
            fn()
        out[name] = counter.get_total_flops()
    return out


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_loop(role: str, iterations: int, batch_size: int, device: torch.device) -> dict:
    """Warm up, then time ``iterations`` steps of one loop in this process."""
    from introzoo.training.perf import tune_allocator

    if role.startswith("introzoo") or role == "reference+alloc":
        tune_allocator()
    c = SoftConfig(beta_rec=0.2, beta_kl=0.3, beta_neg=0.9)
    g = torch.Generator().manual_seed(0)
    batches = [eight_gaussians(batch_size, g).to(device) for _ in range(16)]
    if role.startswith("introzoo"):
        from introzoo.training import kernels

        precision = "bf16" if role == "introzoo-bf16" else "fp32"
        model = make_model(device)
        if role == "introzoo-compile":  # inductor: the encoder's and decoder's forward and backward fused
            import torch._functorch.config as functorch_config

            functorch_config.donated_buffer = False  # the step's backward passes retain graphs
            model.encoder, model.decoder = torch.compile(model.encoder), torch.compile(model.decoder)
        ours = SoftIntroVAE(c, model, train=TrainSettings(lr=2e-4, precision=precision))
        path = "onednn" if role == "introzoo-onednn" else "aten"

        def fn(x):
            with kernels.use(path):
                return ours.train_step(x, 10**6)
    else:
        ref = ReferenceLoop(make_model(device), c, 2e-4)
        fn = lambda x: ref.step(x, torch.randn(x.shape[0], 2, device=device))  # noqa: E731
    for i in range(15):
        fn(batches[i % 16])
    sync(device)
    t = time.perf_counter()
    for i in range(iterations):
        fn(batches[i % 16])
    sync(device)
    out = {
        "seconds": time.perf_counter() - t,
        "iterations": iterations,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


ROLES = ("introzoo", "reference", "reference+alloc", "introzoo-onednn", "introzoo-bf16")
COMPILE = "introzoo-compile"  # with --compile: minutes of compilation per process before the timing


def gemm_peaks(device: torch.device, thread_counts: tuple[int, ...] = (1, 2)) -> dict[str, dict[str, float]]:
    """:func:`gemm_peak` at each thread count (CPU; a GPU has one figure), keyed by the count."""
    if device.type != "cpu":
        return {str(torch.get_num_threads()): gemm_peak(device)}
    before, out = torch.get_num_threads(), {}
    try:
        for n in thread_counts:
            torch.set_num_threads(n)
            out[str(n)] = gemm_peak(device)
    finally:
        torch.set_num_threads(before)
    return out


def gemm_peak(device: torch.device, seconds: float = 0.3) -> dict[str, float]:
    """GFLOP/s of this machine's products at the step's shapes (x (B, 256) @ W (256, 256)^T forward, and
    the two backward products, B = 512 and 1024), per kind: float32 via MKL (``aten``) and oneDNN, and
    bfloat16; the best of repeated timings, at the current thread count."""
    from introzoo.training import kernels

    out: dict[str, float] = {}
    g = torch.Generator().manual_seed(0)
    for name, dtype, path in (
        ("fp32_aten", torch.float32, "aten"),
        ("fp32_onednn", torch.float32, "onednn"),
        ("bf16", torch.bfloat16, "aten"),
    ):
        if path == "onednn" and (device.type != "cpu" or not kernels.available("onednn")):
            continue
        best = 0.0
        for b in (512, 1024):
            x = torch.randn(b, 256, generator=g).to(device, dtype).requires_grad_()
            w = torch.randn(256, 256, generator=g).to(device, dtype).requires_grad_()
            flop = 3 * 2 * b * 256 * 256
            with kernels.use(path):

                def once():
                    kernels.linear(x, w).sum().backward()

                once()
                sync(device)
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    once()
                    n += 1
                sync(device)
                best = max(best, n * flop / (time.perf_counter() - t0) / 1e9)
        out[name] = round(best, 1)
    return out


def main() -> None:
    import subprocess
    import sys

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=600, help="timed iterations per loop")
    ap.add_argument("--blocks", type=int, default=3, help="alternating timing blocks (processes) per loop")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="also time introzoo with torch.compile'd networks (compiles for minutes per block)",
    )
    ap.add_argument("--role", choices=ROLES + (COMPILE,), help=argparse.SUPPRESS)  # internal: one timing block
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.role:
        print(json.dumps(time_loop(args.role, args.iterations, args.batch_size, device)))
        return

    c = SoftConfig(beta_rec=0.2, beta_kl=0.3, beta_neg=0.9)
    max_rel = check_same_losses(device, c, args.batch_size)
    flops = count_flops(device, c, args.batch_size)
    per = max(1, args.iterations // args.blocks)
    roles = ROLES + ((COMPILE,) if args.compile else ())
    totals = {r: {"seconds": 0.0, "iterations": 0, "peak_rss_mib": 0.0} for r in roles}
    for _ in range(args.blocks):
        for role in roles:
            cmd = [
                sys.executable,
                __file__,
                "--role",
                role,
                "--iterations",
                str(per),
                "--batch-size",
                str(args.batch_size),
                "--device",
                args.device,
            ] + (["--threads", str(args.threads)] if args.threads else [])
            block = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
            t = totals[role]
            t["seconds"] += block["seconds"]
            t["iterations"] += block["iterations"]
            t["peak_rss_mib"] = max(t["peak_rss_mib"], block["peak_rss_mib"])
            if "peak_cuda_mib" in block:
                t["peak_cuda_mib"] = max(t.get("peak_cuda_mib", 0.0), block["peak_cuda_mib"])
    its = {r: t["iterations"] / t["seconds"] for r, t in totals.items()}
    threads = args.threads or torch.get_num_threads()
    peaks = gemm_peaks(device, tuple(sorted({1, 2, threads})))
    peak = peaks[str(threads)] if str(threads) in peaks else next(iter(peaks.values()))
    gflop = flops["introzoo"] / 1e9
    fp32_paths = {"aten": its["introzoo"], "onednn": its["introzoo-onednn"], "compile": its.get(COMPILE, 0.0)}
    best_path = max(fp32_paths, key=fp32_paths.get)
    best_fp32 = fp32_paths[best_path]
    fp32_peak = max(v for k, v in peak.items() if k.startswith("fp32"))
    fraction = {
        "introzoo": its["introzoo"] * gflop / fp32_peak,
        "introzoo-onednn": its["introzoo-onednn"] * gflop / fp32_peak,
        "introzoo-bf16": its["introzoo-bf16"] * gflop / peak["bf16"] if peak.get("bf16") else None,
    }
    result = {
        "device": str(device),
        "threads": args.threads or torch.get_num_threads(),
        "batch_size": args.batch_size,
        "iterations": per * args.blocks,
        **{f"{r}_it_s": round(v, 2) for r, v in its.items()},
        "ratio": round(its["introzoo"] / its["reference"], 3),
        "ratio_fp32": round(best_fp32 / its["reference"], 3),
        "ratio_bf16": round(its["introzoo-bf16"] / its["reference"], 3),
        "best_fp32_path": best_path,
        "gemm_peak_gflop_s": peak,
        "gemm_peak_gflop_s_by_threads": peaks,
        "fraction_of_peak": {k: (round(v, 3) if v is not None else None) for k, v in fraction.items()},
        "ratio_same_allocator": round(its["introzoo"] / its["reference+alloc"], 3),
        "max_rel_loss_diff": max_rel,
        "gflop_per_iteration": {r: round(v / 1e9, 3) for r, v in flops.items()},
        "flop_ratio": round(flops["reference"] / flops["introzoo"], 3),
        "peak_rss_mib": {r: round(t["peak_rss_mib"], 1) for r, t in totals.items()},
        "spec_reference_it_s": SPEC_REFERENCE_IT_S,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"soft on 2D (MLP 3x256, batch {args.batch_size}), {device}, {result['threads']} threads, "
        f"{result['iterations']} iterations per loop in {args.blocks} alternating blocks"
    )
    print(f"  same losses given the same noise: max relative difference {max_rel:.2e}")
    print(
        f"  work per iteration: introzoo {flops['introzoo'] / 1e9:.2f} GFLOP, reference {flops['reference'] / 1e9:.2f} "
        f"GFLOP (matrix products): {result['flop_ratio']:.3f}x fewer"
    )
    print(
        f"  introzoo                    {its['introzoo']:8.2f} it/s   peak RSS {result['peak_rss_mib']['introzoo']:.0f} MiB"
    )
    print(
        f"  reference loop              {its['reference']:8.2f} it/s   peak RSS {result['peak_rss_mib']['reference']:.0f} MiB"
        f"   (the official loop: ~{SPEC_REFERENCE_IT_S:g} it/s on an idle 2-core machine)"
    )
    print(f"  reference + introzoo alloc  {its['reference+alloc']:8.2f} it/s")
    print(
        f"  ratio introzoo / reference  {result['ratio']:8.3f}x   (fewer passes alone: {result['ratio_same_allocator']:.3f}x)"
    )
    print(f"  introzoo --kernels onednn   {its['introzoo-onednn']:8.2f} it/s")
    print(f"  introzoo --precision bf16   {its['introzoo-bf16']:8.2f} it/s")
    if COMPILE in its:
        print(f"  introzoo, torch.compile     {its[COMPILE]:8.2f} it/s   (networks compiled by inductor)")
    for n, pk in peaks.items():
        print(
            f"  GEMM peak of this machine at the step's shapes, {n} thread{'s' if n != '1' else ''} (GFLOP/s): "
            + ", ".join(f"{k} {v:g}" for k, v in pk.items())
        )
    print(
        "  fraction of the peak reached (matrix FLOPs x it/s / peak): "
        + ", ".join(f"{k} {v:.2f}" for k, v in result["fraction_of_peak"].items() if v is not None)
    )
    print(
        f"  best float32 / reference    {result['ratio_fp32']:8.3f}x  ({result['best_fp32_path']})   "
        f"bf16 / reference {result['ratio_bf16']:.3f}x   (goal: 2.0x and 3.0x)"
    )


if __name__ == "__main__":
    main()
