r"""Data-parallel training over processes (``torch.distributed``): ``introzoo run ... --ddp``.

Launch one process per GPU (or CPU worker) with ``torchrun``, which sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address::

    torchrun --standalone --nproc_per_node 4 -m introzoo run -o soft -d cifar10 --ddp

What each process does (N processes, ``--batch-size B`` is the *global* batch, ``b = B / N``):

- every process draws the same global batch from the run's data stream and trains on its shard, rows
  ``[rank*b, (rank+1)*b)``;
- the reparameterisation noise and the prior's samples of a step are drawn for the global batch on
  every process (the same random stream, so the same numbers) and each keeps its rows: a run on N
  processes computes the numbers a one-process run with batch ``B`` computes;
- gradients are averaged over the processes (one ``all_reduce`` per optimiser) right before each
  optimiser steps. The introspective objectives back-propagate several losses per iteration, each into
  one player's parameters (``backward(inputs=...)``, graphs reused between the encoder's and the
  decoder's step), which ``DistributedDataParallel``'s bucketed hooks do not follow; averaging the
  gradients of the optimiser about to step is exact for any such order. Every loss of an objective is
  a batch mean of per-sample terms, so the mean of the shards' gradients is the gradient of the global
  batch's loss;
- the logged losses are averaged over the processes (the global batch's means), so every process
  takes the same decisions (divergence) and ``history.jsonl`` holds the global batch's losses;
- only process 0 writes the run directory, evaluates and calls the loggers; the others train in a
  scratch directory that is removed at the end.

Limits, stated where they apply: terms that are not batch means of per-sample values are computed on
each shard (IntroVAE's ``hinge=batch``, the minibatch estimators of beta-TCVAE, BatchNorm's batch
statistics; BatchNorm's running statistics saved are process 0's), and the Monte-Carlo noise inside a
prior's KL (mog, vamp, flow) is drawn per shard; those runs match a one-process run in distribution,
not number for number. Regularizers that train networks of their own (``factor``), packs and resume
points are refused or off under ``--ddp``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any, Iterator

import torch
from torch import distributed as dist

from ..errors import UsageError

#: what torchrun sets in each process
ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
LAUNCH = "torchrun --standalone --nproc_per_node N -m introzoo run ... --ddp"
#: what the env:// rendezvous of the process group needs (torchrun sets them too)
RENDEZVOUS = ("MASTER_ADDR", "MASTER_PORT")


def _env_int(name: str) -> int:
    """An environment variable of the launch as an integer; a :class:`UsageError` naming it otherwise."""
    text = os.environ[name]
    try:
        return int(text.strip())
    except ValueError:
        raise UsageError(f"--ddp: {name}='{text}' is not a whole number (torchrun sets it): {LAUNCH}") from None


class DataParallel:
    """The process group of a data-parallel run and what a process does with it (see the module)."""

    def __init__(self, rank: int, world: int, local_rank: int) -> None:
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.step_batch = 0  # rows of this process's shard in the current step
        self._scratch: str | None = None

    @classmethod
    def from_env(cls) -> DataParallel:
        """The process's place in the group torchrun started; a :class:`UsageError` outside torchrun."""
        missing = [k for k in ENV if k not in os.environ]
        if missing:
            raise UsageError(f"--ddp runs under torchrun, which sets {', '.join(missing)}: {LAUNCH}")
        rank, world, local_rank = (_env_int(k) for k in ENV)
        if world < 1:
            raise UsageError(
                f"--ddp: WORLD_SIZE={world}; it is the number of processes, 1 or more (torchrun sets it): {LAUNCH}"
            )
        if not 0 <= rank < world:
            raise UsageError(f"--ddp: RANK={rank} is not a process of WORLD_SIZE={world} (0 to {world - 1})")
        if local_rank < 0:
            raise UsageError(f"--ddp: LOCAL_RANK={local_rank}; it is 0 or more (torchrun sets it)")
        if not dist.is_initialized():  # the env:// rendezvous that init_process_group uses
            for key in RENDEZVOUS:
                if not os.environ.get(key, "").strip():
                    raise UsageError(
                        f"--ddp: {key} is not set; torchrun sets {' and '.join(RENDEZVOUS)} "
                        f"(the rendezvous address): {LAUNCH}"
                    )
            port = _env_int("MASTER_PORT")
            if not 0 < port < 65536:
                raise UsageError(f"--ddp: MASTER_PORT={port} is not a port (1 to 65535)")
        return cls(rank, world, local_rank)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str) -> torch.device:
        """``cuda:LOCAL_RANK`` when the run asks for (or ``auto`` finds) CUDA, else the CPU."""
        if requested == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda requested but no CUDA device is available; use --device cpu or auto")
        if requested != "cpu" and torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def start(self, run: Any, device: torch.device) -> None:
        """Check the run can train data parallel and join the process group (gloo on CPU, nccl on CUDA)."""
        batch = int(run.train["batch_size"])
        if run.train.get("conditional"):
            raise UsageError(
                "--conditional does not train data parallel (each process's batch labels are not "
                "shared); run it without --ddp"
            )
        if batch % self.world:
            raise UsageError(
                f"--batch-size {batch} does not split into {self.world} processes; "
                f"give a multiple of {self.world} (the global batch)"
            )
        from ..config import check_regularizers

        check_regularizers(
            run.regularizers, batch // self.world, per_process=f"each of the {self.world} processes trains on a shard of"
        )
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if dist.get_world_size() != self.world:
            raise UsageError(f"the process group has {dist.get_world_size()} processes, WORLD_SIZE says {self.world}")

    def attach(self, built: Any) -> None:
        """Refuse what cannot train data parallel; average each optimiser's gradients before it steps."""
        for reg in built.objective.regularizers:
            if any(isinstance(v, (torch.nn.Module, torch.optim.Optimizer)) for v in vars(reg).values()):
                raise UsageError(
                    f"regularizer '{reg.name or type(reg).__name__}' trains a network of its own "
                    "and cannot train data parallel; run it without --ddp"
                )
        built.objective.reduce_grads = self.average_grads

    def scratch(self) -> str:
        """Where a process other than 0 writes its (discarded) run directory."""
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix=f"introzoo-rank{self.rank}-")
        return self._scratch

    # -- per step ---------------------------------------------------------------------------------
    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This process's rows of the global batch: ``b = len(x) // N`` each (an epoch's last, partial
        batch loses its remainder of fewer than N rows; one of fewer than N rows trains whole on
        every process)."""
        self.step_batch = x.shape[0] // self.world
        if self.step_batch == 0:
            return x
        return x.narrow(0, self.rank * self.step_batch, self.step_batch)

    def _rows(self, full: torch.Tensor, n: int) -> torch.Tensor:
        """This process's ``n`` rows of a tensor drawn for all processes (``n * N`` rows). A tensor of
        ``k`` shards (``[x_f; x_r]``, ``n = k*b``) keeps its rows of each of the ``k`` global batches,
        as the one-process run lays them out."""
        rest = full.shape[1:]
        b = self.step_batch if n % self.step_batch == 0 else n
        return full.reshape(n // b, self.world, b, *rest)[:, self.rank].reshape(n, *rest)

    @contextlib.contextmanager
    def sharded_noise(self, model: Any) -> Iterator[None]:
        """Inside the block, the model's noise and its prior's samples are drawn for the global batch."""
        prior, draw = model.prior, model.prior.sample

        def noise(like: torch.Tensor) -> torch.Tensor:
            full = torch.randn((like.shape[0] * self.world, *like.shape[1:]), dtype=like.dtype, device=like.device)
            return self._rows(full, like.shape[0])

        def sample(n: int, with_grad: bool = False) -> torch.Tensor:
            return self._rows(draw(n * self.world, with_grad=with_grad), n)

        model.noise, prior.sample = noise, sample
        try:
            yield
        finally:
            model.__dict__.pop("noise", None)
            prior.__dict__.pop("sample", None)

    def train_step(self, built: Any, x: torch.Tensor, iteration: int) -> dict[str, torch.Tensor]:
        """One iteration on this process's shard of the global batch ``x``; the global batch's losses."""
        mine = self.shard(x)
        with self.sharded_noise(built.model) if self.step_batch else contextlib.nullcontext():
            losses = built.objective.train_step(mine, iteration)
        return self.average(losses)

    def average_grads(self, optimizer: torch.optim.Optimizer) -> None:
        """Average the gradients of ``optimizer``'s parameters over the processes (one all_reduce)."""
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        for g, v in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(v.view_as(g))

    def average(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not losses:
            return losses
        names = list(losses)
        flat = torch.stack([torch.as_tensor(losses[k]).detach().reshape(()).to(torch.float64) for k in names])
        dist.all_reduce(flat)
        flat /= self.world
        return dict(zip(names, flat.unbind()))

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        if dist.is_initialized():
            dist.destroy_process_group()


def slurm_process(run_dir: str, config: dict[str, Any], threads: int | None, sweep_dir: str) -> dict[str, Any]:
    """One process (Slurm task, one per GPU) of a data-parallel run of the ``submitit`` executor
    (``ddp=true``): torch.distributed's variables from Slurm's
    (:class:`submitit.helpers.TorchDistributedEnvironment`), then the run as ``introzoo run --ddp``
    trains it. Process 0 claims and writes the run directory; a requeued job starts the run afresh."""
    from .. import plugins
    from ..config import from_json
    from ..sweeps.run import execute
    from .loop import train

    if "RANK" not in os.environ:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # each process: cuda:LOCAL_RANK
    dp = DataParallel.from_env()
    if dp.main:
        return execute(run_dir, config, threads, sweep_dir, ddp=dp)
    if threads:
        torch.set_num_threads(threads)
    return train(from_json(config, plugins.registry()), run_dir, ddp=dp)
