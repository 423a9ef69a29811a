"""A pack's priors and regularizers, run member by member on each member's own objects.

The backbone of a pack is batched (:class:`~introzoo.packing.model.PackedMLP`); a prior without a batched
implementation, and every regularizer, runs as member i's *own* object (the one ``train.build`` made for
member i's solo run), handed member i's slice of each tensor and a :class:`MemberModel`: member i of the
pack with the interface of a solo :class:`~introzoo.model.VAE` (tensors ``(B, ...)``, encoder and
decoder computed with the pack's stacked weights). Its random draws come from member i's stream:
:meth:`~introzoo.packing.model.PackedVAE.rng` installs member i's generator as torch's global CPU generator
for the call and keeps its state afterwards, so code that draws with ``torch.randn`` and friends draws
what it draws alone.

So member i's prior parameters, its optimiser (``torch.optim.Adam``, the solo objective's own), the
prior's lifecycle (``init_from_posterior`` at build, ``on_warmup_end`` at member i's own warm-up end,
``attach`` to its member model) and the regularizers' state (``clip-logvar``'s range) are those of its
solo run by construction; only the per-member results are stacked into the pack's ``(k, ...)``
convention (:mod:`introzoo.objectives.members`).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..model import DataShaped


class MemberModel(DataShaped):
    """Member ``i`` of a pack as a solo VAE: ``encode``, ``decode``, ``reparameterize``, ``kl``,
    ``prior`` (member i's own prior), ``s``, ``data_shape``, ``zdim``; tensors ``(B, ...)``."""

    lead = 0

    def __init__(self, pack, i: int) -> None:
        self.pack, self.i = pack, i
        self.idx = torch.tensor([i], device=pack.device)
        self.prior = pack.priors[i]
        self.data_shape, self.zdim = tuple(pack.data_shape), pack.zdim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.pack.encoder(x.unsqueeze(0), self.idx)[0]
        return out.chunk(2, dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.pack.decoder(z.unsqueeze(0), self.idx)[0].reshape((z.shape[0],) + self.data_shape)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        with self.pack.rng(self.i):
            eps = torch.randn_like(mu)
        return mu + eps * torch.exp(0.5 * logvar)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return self.prior.kl(mu, logvar)

    def train(self, mode: bool = True) -> "MemberModel":
        return self

    def eval(self) -> "MemberModel":
        return self


def members(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The members' slices of ``(k, ...)`` as one ``unbind``: their gradients flow back as one stacked
    contribution to ``t``'s gradient, summed with ``t``'s other uses in the order of the solo graph
    (``k`` separate ``t[j]`` would add ``k`` contributions, in another association, so float32 sums
    would round differently from the solo run's)."""
    return t.unbind(0)


def _stack(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([torch.as_tensor(v) for v in values])


class MemberPriors:
    """The prior of a pack view whose prior has no batched implementation: each member's own prior in
    turn, in its own random stream; results stacked ``(k, ...)``."""

    def __init__(self, view) -> None:
        self.view, self.pack = view, view.pack
        self.zdim = self.pack.zdim

    @property
    def learnable(self) -> bool:
        return bool(self.pack.priors[self.view.members[0]].learnable)

    def _each(self, fn: Callable[[Any, int], torch.Tensor]) -> torch.Tensor:
        out = []
        for j, i in enumerate(self.view.members):
            with self.pack.rng(i):
                out.append(fn(self.pack.priors[i], j))
        return torch.stack(out)

    def sample(self, n: int, with_grad: bool = False) -> torch.Tensor:
        return self._each(lambda p, j: p.sample(n, with_grad))

    def kl(self, mu, logvar, stop_gradient: bool = False) -> torch.Tensor:
        mu, logvar = members(mu), members(logvar)
        return self._each(lambda p, j: p.kl(mu[j], logvar[j], stop_gradient))

    def log_prob(self, z, stop_gradient: bool = False) -> torch.Tensor:
        z = members(z)
        return self._each(lambda p, j: p.log_prob(z[j], stop_gradient))

    def responsibilities(self, z, stop_gradient: bool = False) -> torch.Tensor:
        z = members(z)
        return self._each(lambda p, j: p.responsibilities(z[j], stop_gradient))


class MemberRegularizer:
    """Regularizer ``r`` of every member of a view: each member's own regularizer object, called with
    its :class:`MemberModel` and its slice of the tensors, in its own random stream. Scalars come back
    as ``(k, 1)`` columns (the pack's batch-mean convention), history entries as ``(k,)``."""

    def __init__(self, view, regs: list[Any]) -> None:
        self.view, self.regs = view, regs
        self.name = regs[0].name
        self.replaces_kl = regs[0].replaces_kl

    def _each(self, fn: Callable[[Any, MemberModel, int], Any]) -> list[Any]:
        pack, out = self.view.pack, []
        for j, (i, reg) in enumerate(zip(self.view.members, self.regs)):
            with pack.rng(i):
                out.append(fn(reg, pack.members[i], j))
        return out

    def _column(self, values: list[Any]) -> torch.Tensor | None:
        if all(v is None for v in values):
            return None
        if any(v is None for v in values):
            raise RuntimeError(
                f"regularizer '{self.name}' returned a term for some members of a pack and None "
                "for others in the same step; a packable regularizer decides the same for all"
            )
        return _stack(values).reshape(len(values), 1)

    def kl_term(self, model, mu, logvar, z, iteration: int):
        mu, logvar, z = members(mu), members(logvar), members(z)
        return self._column(self._each(lambda r, mm, j: r.kl_term(mm, mu[j], logvar[j], z[j], iteration)))

    def encoder_loss(self, model, mu, logvar, z):
        mu, logvar, z = members(mu), members(logvar), members(z)
        return self._column(self._each(lambda r, mm, j: r.encoder_loss(mm, mu[j], logvar[j], z[j])))

    def after_step(self, model, x, iteration: int) -> dict[str, torch.Tensor] | None:
        outs = self._each(lambda r, mm, j: r.after_step(mm, x[j], iteration))
        if all(not o for o in outs):
            return None
        return {k: _stack([o[k] for o in outs]) for k in outs[0]}


class MembersAdam:
    """The ``zero_grad``/``step`` an objective calls on a parameter group whose members each have their
    own ``torch.optim.Adam`` (a pack's learnable priors): every member's optimiser in turn."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()
