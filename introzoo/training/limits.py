"""Refuse, before anything is allocated, a run whose model would not fit in memory.

The backbone and the prior are first built on PyTorch's ``meta`` device, which records shapes and
allocates nothing; every parameter and buffer they register is counted as it is registered, so a
component that would exceed the limit, or that has more than :data:`MAX_MODULES` submodules, is
stopped part-way (a flow of 10^8 layers is not built to find out). A trainable parameter counts four times (itself, its gradient and Adam's two moment
estimates). Then one forward pass and one KL evaluation on a batch of ``batch_size`` run on the meta
device, and the largest single intermediate tensor they make must fit too (a lower bound on the
working memory: a mixture prior's KL holds a ``(batch_size * kl_samples) x K`` matrix).

The limit is the device's memory (on the CPU the physical memory or, when lower, the process's own
limit: its cgroup's ``memory.max`` (v1: ``memory.limit_in_bytes``), or ``ulimit -v``; the GPU's memory on
CUDA), or ``INTROZOO_MEMORY_LIMIT`` (bytes, or a number with a K/M/G/T suffix, powers of 1024: ``8G``).
:func:`check_sample` does the same for the draws of ``introzoo sample`` (a meta copy of the model).
A component that cannot be built on the meta device is not estimated; its real build reports.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import UsageError
from ..registry import SINGULAR

ENV = "INTROZOO_MEMORY_LIMIT"
#: bytes per byte of a trainable parameter: the parameter, its gradient, Adam's exp_avg and exp_avg_sq
TRAINABLE_FACTOR = 4
#: more submodules than this in one component is refused without building the rest (a flow of 10^8
#: coupling layers); the deepest built-in configurations in the papers have a few hundred
MAX_MODULES = 50_000
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
#: where the cgroup file systems are mounted, and the file naming this process's cgroups
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
#: cgroup v1 writes "no limit" as a number near 2^63
_NO_LIMIT = 2**60


def parse_size(text: str) -> int:
    """``"8G"`` -> 8 * 1024^3; a plain number is bytes. :class:`UsageError` on anything else."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)i?B?\s*", text, flags=re.IGNORECASE)
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"{ENV}='{text}' is not a memory size; expected bytes or a number with K, M, G or T (e.g. 8G)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def format_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover


def memory_limit(device: torch.device | str = "cpu") -> tuple[int, str]:
    """(bytes, where the number comes from) for ``device``."""
    env = os.environ.get(ENV)
    if env:
        return parse_size(env), ENV
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(device).total_memory, f"the memory of {device}; {ENV} overrides it"
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limits = [(physical, "physical memory")] + _process_limits()
    limit, what = min(limits, key=lambda found: found[0])
    if limit < physical:
        what += f", below the physical memory of {format_size(physical)}"
    return limit, f"{what}; {ENV} overrides it"


def _process_limits() -> list[tuple[int, str]]:
    """The memory limits of this process, each with where it is set: the lowest of its cgroups' (v2
    ``memory.max``, v1 ``memory.limit_in_bytes``, its own cgroup's and every one above it) and the
    address-space limit (``ulimit -v``)."""
    found: list[tuple[int, str]] = []
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "":  # cgroup v2
            base, name = CGROUP_ROOT, "memory.max"
        elif "memory" in parts[1].split(","):
            base, name = CGROUP_ROOT / "memory", "memory.limit_in_bytes"
        else:
            continue
        d = base / parts[2].strip().lstrip("/")
        while True:
            try:
                value = int((d / name).read_text().strip())  # "max": no limit (ValueError)
            except (OSError, ValueError, UnicodeDecodeError):
                value = None
            if value is not None and 0 < value < _NO_LIMIT:
                found.append((value, f"the cgroup limit {d / name}"))
            if d == base or base not in d.parents:
                break
            d = d.parent
    limits = [min(found, key=lambda f: f[0])] if found else []
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY and soft > 0:
            limits.append((soft, "the address-space limit of the process (ulimit -v)"))
    except (ImportError, OSError, ValueError):
        pass
    return limits


class _Exceeded(Exception):
    def __init__(self, nbytes: int, modules: bool = False) -> None:
        self.nbytes, self.modules = nbytes, modules


def _too_large(exc: BaseException) -> bool:
    """Sizes beyond what PyTorch can even index (``Storage size calculation overflowed``)."""
    return isinstance(exc, (RuntimeError, OverflowError, TypeError, ValueError)) and "overflow" in str(exc).lower()


@contextmanager
def _counting(limit: int) -> Iterator[list[int]]:
    """Build on the meta device, adding up the bytes of every parameter and buffer registered;
    raises :class:`_Exceeded` as soon as the total passes ``limit``."""
    total, count = [0], [0]

    def on_module(module, name, submodule):
        count[0] += 1
        if count[0] > MAX_MODULES:
            raise _Exceeded(total[0], modules=True)

    def add(nbytes: int) -> None:
        total[0] += nbytes
        if total[0] > limit:
            raise _Exceeded(total[0])

    def on_param(module, name, param):
        if param is not None:
            add(param.numel() * param.element_size() * (TRAINABLE_FACTOR if param.requires_grad else 1))

    def on_buffer(module, name, buffer):
        if buffer is not None:
            add(buffer.numel() * buffer.element_size())

    hooks = [
        nn.modules.module.register_module_module_registration_hook(on_module),
        nn.modules.module.register_module_parameter_registration_hook(on_param),
        nn.modules.module.register_module_buffer_registration_hook(on_buffer),
    ]
    try:
        with torch.device("meta"):
            yield total
    finally:
        for h in hooks:
            h.remove()


class _Largest(TorchFunctionMode):
    """Remembers the largest tensor any torch function returns."""

    def __init__(self) -> None:
        super().__init__()
        self.nbytes = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.nbytes = max(self.nbytes, t.numel() * t.element_size())
        return out


def _name(choice: Any) -> str:
    return f"{SINGULAR[choice.component.kind]} '{choice.component.name}'"


def check_fits(run: Any, data_shape: tuple[int, ...], zdim: int, device: torch.device | str = "cpu") -> None:
    """:class:`UsageError` naming the component, its size and the limit when ``run``'s model would not
    fit in memory (see the module's docstring); returns quietly otherwise."""
    from ..model import VAE

    limit, source = memory_limit(device)
    where = f"the memory limit is {format_size(limit)} ({source})"
    batch = int(run.train["batch_size"])
    sizes: dict[str, int] = {}

    def refuse(what: str, nbytes: int | None, of: str, total: int | None = None) -> UsageError:
        size = f"more than {format_size(nbytes)}" if nbytes else "more memory than can be addressed"
        whole = f" (the whole model more than {format_size(total)})" if total and (nbytes or 0) <= limit else ""
        return UsageError(f"{what} needs {size} for {of}{whole}; {where}")

    built: dict[str, Any] = {}
    of_params = "its parameters, their gradients and Adam's states"
    for key, choice, make in (
        (
            "backbone",
            run.backbone,
            lambda: run.backbone.component.build(run.backbone.config, data_shape=data_shape, zdim=zdim),
        ),
        ("prior", run.prior, lambda: run.prior.component.build(run.prior.config, zdim=zdim)),
        ("model", run.prior, lambda: VAE(*built["backbone"], built["prior"], data_shape, zdim)),  # VampPrior.attach
    ):
        before = sum(sizes.values())
        try:
            with _counting(limit - before) as total:
                built[key] = make()
        except _Exceeded as exc:
            if exc.modules:
                raise UsageError(
                    f"{_name(choice)} has more than {MAX_MODULES} modules; introzoo refuses "
                    f"models that large before building them"
                ) from None
            own = exc.nbytes + (sizes["prior"] if key == "model" else 0)
            raise refuse(_name(choice), own, of_params, exc.nbytes + before) from None
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - the real build reports what is wrong
            if _too_large(exc):
                raise refuse(_name(choice), None, of_params) from None
            return
        sizes[key] = total[0]

    model = built["model"]
    forward, kl = _Largest(), _Largest()
    try:
        x = torch.empty((batch, *data_shape), device="meta")
        with forward:
            mu, logvar, _, _ = model(x)
        with kl:
            model.kl(mu, logvar)
    except Exception as exc:  # noqa: BLE001
        if _too_large(exc):
            raise refuse(_name(run.prior), None, f"one KL evaluation on a batch of {batch}") from None
        return
    if forward.nbytes > limit:
        raise refuse(_name(run.backbone), forward.nbytes, f"one intermediate of a forward pass on a batch of {batch}")
    if kl.nbytes > limit:
        raise refuse(_name(run.prior), kl.nbytes, f"one intermediate of a KL evaluation on a batch of {batch}")


def check_sample(model: nn.Module, n: int, device: torch.device | str = "cpu", flag: str = "--n") -> None:
    """:class:`UsageError` naming ``n`` and the limit when drawing ``n`` samples through ``model``
    (prior, then decoder) would make a tensor larger than the memory limit; run on a meta copy."""
    import copy

    limit, source = memory_limit(device)
    largest = _Largest()
    try:
        meta = copy.deepcopy(model).to("meta")
        with torch.no_grad(), largest:
            meta.sample(n)
    except Exception as exc:  # noqa: BLE001 - not estimable: the real draw reports
        if _too_large(exc):
            raise UsageError(
                f"{flag} {n}: more samples than can be addressed; the memory limit is {format_size(limit)} ({source})"
            ) from None
        return
    if largest.nbytes > limit:
        raise UsageError(
            f"{flag} {n}: drawing them needs more than {format_size(largest.nbytes)} for one "
            f"intermediate; the memory limit is {format_size(limit)} ({source})"
        )
