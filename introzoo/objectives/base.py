"""The objective contract: an objective owns its optimisers and its training step (docs/conventions.md, "Objectives").

Separate Adam optimisers for encoder, decoder and (if learnable) prior, lr 2e-4 by default, each with
the multi-step schedule of the training settings. :meth:`Objective.train_step` performs one iteration
and returns named scalar losses (detached) for the history.

Each player's update is ``self.backward(loss, inputs=...)`` then ``self.step_optimizers(name)``: the two
places where the run's precision (:mod:`introzoo.training.precision`: the fp16 loss scale) and data parallelism
(:mod:`introzoo.training.distributed`: gradients averaged over processes) act; in fp32 on one process they are
``loss.backward(...)`` and ``optimizer.step()``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from pydantic import BaseModel

from ..errors import UsageError
from ..model import VAE, grouped
from ..options import TrainOptions as TrainSettings  # the resolved training options an objective receives
from ..training.precision import FP32, Precision
from .members import backward, bmean, lead

__all__ = ["Objective", "TrainSettings"]


class Objective:
    """Base class: optimisers, schedules, the VAE warm-up step and checkpoint state."""

    name = ""
    #: the training step's precision (set from ``train.precision``); class defaults serve objects made
    #: without ``__init__`` (the members of a pack, :mod:`introzoo.packing.loop`)
    precision: Precision = FP32
    #: called with an optimiser before it steps: averages its gradients over the processes of a
    #: data-parallel run (set by :func:`introzoo.training.distributed.attach`); ``None`` on one process
    reduce_grads = None
    #: iterations per epoch of the run's dataset (set by :func:`introzoo.training.loop.build`; ``None`` for a
    #: generator without epochs): for schedules counted in epochs (``soft-boot``'s copies)
    epoch_length: int | None = None

    def __init__(
        self, config: BaseModel, model: VAE, regularizers: list | None = None, train: TrainSettings | None = None
    ) -> None:
        self.config = config
        self.model = model
        self.regularizers = list(regularizers or [])
        self.train = train or TrainSettings()
        for reg in self.regularizers:
            reg.check(model.prior)
        replacing = [r.name or type(r).__name__ for r in self.regularizers if r.replaces_kl]
        if len(replacing) > 1:
            raise UsageError(f"regularizers {', '.join(replacing)} each replace the KL term; choose one of them")
        for reg in self.regularizers:
            reg.bind(model)
        self.iteration = 0
        self._warm = False
        self._phase = None
        self._build_optimizers()
        if self.train.precision != "fp32":
            self.precision = Precision(self.train.precision, next(model.parameters()).device)

    @classmethod
    def bound(
        cls,
        config: Any,
        model: Any,
        groups: dict[str, list],
        optimizers: dict[str, Any],
        regularizers: list | None = None,
        phase: Callable[[int], bool] | None = None,
    ) -> "Objective":
        """An objective whose step runs on a given model with given optimisers, building none.

        This is how a pack (:mod:`introzoo.packing.loop`) runs an objective's own :meth:`step` on a view of its
        members: ``model`` is the view (tensors with a leading member dimension), ``config`` holds the
        members' options (a float that differs between members as a
        :class:`~introzoo.objectives.members.MemberOption`), ``groups`` and ``optimizers`` are keyed like
        :meth:`_build_optimizers`'s (the optimisers need only ``zero_grad`` and ``step``), and
        ``phase(iteration)`` answers :meth:`in_warmup` (the pack knows each member's warm-up; it ends the
        warm-up of its members itself). No schedule is built, no regularizer is checked or bound (the
        members' own objectives did that)."""
        obj = cls.__new__(cls)
        obj.config, obj.model, obj.regularizers = config, model, list(regularizers or [])
        obj.train = TrainSettings()
        obj.groups, obj.optimizers, obj.schedulers = groups, optimizers, {}
        obj.iteration, obj._warm, obj._phase, obj._stepped = 0, False, phase, set()
        return obj

    def _build_optimizers(self) -> None:
        """One Adam per parameter group (encoder, decoder, learnable prior), each with the schedule."""
        self.groups = self.model.parameter_groups()
        old = getattr(self, "schedulers", {})
        self.optimizers = {k: torch.optim.Adam(v, lr=self.train.lr, foreach=True) for k, v in self.groups.items()}
        self.schedulers = {
            k: torch.optim.lr_scheduler.MultiStepLR(
                opt, milestones=list(self.train.lr_milestones), gamma=self.train.lr_gamma
            )
            for k, opt in self.optimizers.items()
        }
        for k, sched in self.schedulers.items():  # a rebuilt optimiser keeps the schedule's position
            if k in old:
                sched.load_state_dict(old[k].state_dict())
                for group in self.optimizers[k].param_groups:
                    group["lr"] = sched.get_last_lr()[0]
        self._stepped: set[str] = getattr(self, "_stepped", set())  # the optimisers that stepped this iteration
        for k, opt in self.optimizers.items():
            opt.register_step_post_hook(lambda *_, _k=k, _seen=self._stepped: _seen.add(_k))

    # -- the step -------------------------------------------------------------------------------
    def step(self, x: torch.Tensor, iteration: int) -> dict[str, torch.Tensor]:  # pragma: no cover
        """The objective's iteration (called by :meth:`train_step`, during the warm-up too: check
        :meth:`in_warmup` and return :meth:`vae_step` then); named scalar losses, detached."""
        raise NotImplementedError

    def train_step(self, x: torch.Tensor, iteration: int) -> dict[str, torch.Tensor]:
        """One iteration: :meth:`step`, the regularizers' ``after_step``, then the learning-rate schedule
        of each optimiser that stepped in it (one that did not, e.g. ``soft``'s prior optimiser after
        the warm-up, keeps its rate and schedule). Objectives override :meth:`step`, not this."""
        self.model.train()
        self.iteration = iteration
        self._stepped.clear()
        with self.precision.forwards(self.model):
            losses = self.step(x, iteration)
        self.precision.update()
        for reg in self.regularizers:  # own optimisers (FactorVAE's discriminator), history entries
            losses.update(reg.after_step(self.model, x, iteration) or {})
        for k, sched in self.schedulers.items():
            if k in self._stepped:
                sched.step()
        return losses

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """Back-propagate one player's loss (``inputs=``, ``retain_graph=`` as for ``Tensor.backward``)."""
        backward(self.precision.scale(loss), **kwargs)

    def step_optimizers(self, *names: str) -> None:
        """Step these parameter groups' optimisers (those that exist), after :attr:`reduce_grads`."""
        for name in names:
            opt = self.optimizers.get(name)
            if opt is None:
                continue
            if self.reduce_grads is not None:
                self.reduce_grads(opt)
            self.precision.step(opt)

    @property
    def num_vae(self) -> int:
        return int(getattr(self.config, "num_vae", 0))

    def in_warmup(self, iteration: int) -> bool:
        """True during the VAE warm-up; calls the regularizers' ``on_warmup_end`` once after it."""
        if getattr(self, "_phase", None) is not None:
            return self._phase(iteration)
        if iteration < self.num_vae:
            return True
        if not self._warm:
            self._warm = True
            if self.model.prior.on_warmup_end():  # the prior changed its parameters (vamp -> mog)
                self._build_optimizers()
            for reg in self.regularizers:
                reg.on_warmup_end(self.model)
        return False

    def vae_step(
        self, x: torch.Tensor, beta_rec: float, beta_kl: float, regularize: bool = False
    ) -> dict[str, torch.Tensor]:
        """One joint step on ``beta_rec*REC(x, x_r) + beta_kl*KL(x)`` over every parameter group, the prior
        included when learnable (``vae`` in docs/conventions.md, "Objectives"; also the warm-up of the
        introspective objectives; no ``s`` scaling). ``regularize``: the regularizers' KL replacement and
        encoder terms (the ``vae`` objective)."""
        m = self.model
        mu, logvar = m.encode(x)
        z = m.reparameterize(mu, logvar)
        loss_rec = bmean(m, m.rec(x, m.decode(z), lead(m)))
        loss_kl = bmean(m, self.real_kl(mu, logvar, z) if regularize else m.kl(mu, logvar))
        loss = beta_rec * loss_rec + beta_kl * loss_kl
        reg = self.encoder_regularization(mu, logvar, z) if regularize else None
        if reg is not None:
            loss = loss + reg
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        self.backward(loss)
        self.step_optimizers(*self.optimizers)
        return {"loss": loss.detach(), "rec": loss_rec.detach(), "kl": loss_kl.detach()}

    def real_kl(self, mu, logvar, z) -> torch.Tensor:
        """The real batch's KL term: ``KL(x)`` per sample, or the scalar of the regularizer that
        replaces it (:meth:`introzoo.regularizers.Regularizer.kl_term`); callers take its mean."""
        for reg in self.regularizers:
            if reg.replaces_kl and (t := reg.kl_term(self.model, *grouped(mu, logvar, z), self.iteration)) is not None:
                return t
        return self.model.kl(mu, logvar)

    def encoder_regularization(self, mu, logvar, z) -> torch.Tensor | None:
        terms = [t for r in self.regularizers if (t := r.encoder_loss(self.model, *grouped(mu, logvar, z))) is not None]
        return sum(terms) if terms else None

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "warm": self._warm,
            "regularizers": [r.state_dict() for r in self.regularizers],
        }
        if self.precision.scaler is not None:  # fp16: the loss scale continues on resume
            state["grad_scaler"] = self.precision.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        self._warm = state.get("warm", False)
        for reg, saved in zip(self.regularizers, state.get("regularizers", ())):
            reg.load_state_dict(saved)
        self.precision.load_state_dict(state.get("grad_scaler"))
