"""A pack: the parameters of M same-shaped models stacked, trained as one batched model.

:class:`PackedVAE` stacks the ``mlp`` encoders/decoders of M solo :class:`~introzoo.model.VAE` s
(member i's weights are exactly those ``train.build`` gave member i) into ``(M, out, in)`` tensors;
each member's product is its own ``F.linear``, the solo kernel
(:func:`~introzoo.packing.conv.member_linear`), and image backbones (``conv``, ``resnet``) run each
member's own convolutions (:mod:`introzoo.packing.conv`), so that float32 results are the solo ones bit
for bit. :meth:`PackedVAE.view` gives the model
of a subset of members, with tensors ``(k, B, ...)`` (``lead = 1``, see
:mod:`introzoo.objectives.members`), so that the objectives' own step code runs on it unchanged.

Every random draw of a step comes from the member's own ``torch.Generator``, which starts from the
global RNG state that member's solo run has right after its build, and is drawn in the solo order and
shapes: member i sees the noise stream of its solo run. :class:`MaskedAdam` is
``torch.optim.Adam``'s update with per-member learning rates that touches only the members it is given.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .. import losses
from ..training.kernels import Linear
from .conv import PackedConvNet, member_linear
from .members import MemberModel, MemberPriors


def linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


class PackedMLP(nn.Module):
    """M stacked MLPs (Linear-ReLU ... Linear); forward on ``(k, B, in)`` for the members ``idx``."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        layers = [linears(m) for m in modules]
        stacked = []
        for j in range(len(layers[0])):  # weight, bias, weight, ...: the order of the solo parameters
            stacked.append(nn.Parameter(torch.stack([ls[j].weight.detach() for ls in layers]).clone()))
            stacked.append(nn.Parameter(torch.stack([ls[j].bias.detach() for ls in layers]).clone()))
        self.params = nn.ParameterList(stacked)
        self.routed = isinstance(layers[0][0], Linear)  # introzoo.training.kernels.Linear: the run's kernel path

    weights = property(lambda self: list(self.params)[0::2])
    biases = property(lambda self: list(self.params)[1::2])

    def forward(self, h: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        h = h.reshape(h.shape[0], h.shape[1], -1)  # (k, B, *data_shape) -> (k, B, in)
        n = len(self.weights)
        for j, (w, b) in enumerate(zip(self.weights, self.biases)):
            if idx is not None:
                w, b = w[idx], b[idx]
            h = member_linear(h, w, b, self.routed)
            if j + 1 < n:
                h = torch.relu(h)
        return h

    def unstack(self, i: int, module: nn.Module) -> None:
        """Copy member i's weights into a solo module of the same shape."""
        with torch.no_grad():
            for lin, w, b in zip(linears(module), self.weights, self.biases):
                lin.weight.copy_(w[i])
                lin.bias.copy_(b[i])


class PackView:
    """The model interface of :class:`~introzoo.model.VAE` for members ``members`` of a pack."""

    lead = 1

    def __init__(self, pack: "PackedVAE", members: list[int]) -> None:
        self.pack, self.members = pack, list(members)
        full = self.members == list(range(pack.size))
        self.idx = None if full else torch.tensor(self.members, device=pack.device)
        batched = type(pack.priors[0]).pack_view  # a prior's own batched form (sg), else None
        self.prior = batched(self) if batched is not None else MemberPriors(self)
        self.s = 1.0 / math.prod(pack.data_shape)

    def rec(self, x: torch.Tensor, y: torch.Tensor, lead: int = 1) -> torch.Tensor:
        """REC of the objectives, per member and sample (a pack trains the default distance only:
        :func:`introzoo.packing.loop.check_packable` refuses ``--rec-loss``)."""
        return losses.rec(x, y, lead)

    def randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        p = self.pack
        return torch.stack([torch.randn(shape, generator=p.generators[i], dtype=p.dtype) for i in self.members]).to(p.device)

    def encode(self, x):
        return self.pack.encoder(x, self.idx).chunk(2, dim=-1)

    def decode(self, z):
        return self.pack.decoder(z, self.idx).reshape(z.shape[:2] + tuple(self.pack.data_shape))

    def reparameterize(self, mu, logvar):
        return mu + self.randn(tuple(mu.shape[1:])) * torch.exp(0.5 * logvar)

    def kl(self, mu, logvar):
        return self.prior.kl(mu, logvar)

    def train(self, mode: bool = True):
        return self


class PackedVAE(nn.Module):
    """M solo VAEs stacked (``mlp``: :class:`PackedMLP`; the image backbones ``conv``/``resnet``:
    :class:`~introzoo.packing.conv.PackedConvNet`); ``generators[i]``: member i's noise.

    The members' priors stay member i's own objects (``priors[i]``), re-attached to
    :class:`~introzoo.packing.members.MemberModel` ``members[i]`` so that a prior built from the encoder
    (``vamp``) reads the pack's encoder; a prior class with a ``pack_view(view)`` classmethod (``sg``)
    is evaluated batched, any other member by member (:mod:`introzoo.packing.members`)."""

    def __init__(self, models: list[nn.Module], generators: list[torch.Generator]) -> None:
        super().__init__()
        m0 = models[0]
        self.size, self.zdim, self.data_shape = len(models), m0.zdim, tuple(m0.data_shape)
        if len(self.data_shape) == 3:  # images: grouped convolutions (introzoo.packing.conv)
            self.encoder = PackedConvNet([m.encoder for m in models], "encoder")
            self.decoder = PackedConvNet([m.decoder for m in models], "decoder")
        else:
            self.encoder = PackedMLP([m.encoder for m in models])
            self.decoder = PackedMLP([m.decoder for m in models])
        self.generators = list(generators)
        p = next(m0.parameters())
        self.dtype, self.device = p.dtype, p.device
        self.priors = [m.prior for m in models]
        self.members = [MemberModel(self, i) for i in range(self.size)]
        for prior, member in zip(self.priors, self.members):
            prior.attach(member)
        self._rng_member: int | None = None

    @contextmanager
    def rng(self, i: int) -> Iterator[None]:
        """Member i's generator as torch's global CPU generator inside the block (re-entrant)."""
        if self._rng_member is not None:
            if self._rng_member != i:
                raise RuntimeError(f"member {i}'s random stream requested inside member {self._rng_member}'s")
            yield
            return
        saved = torch.get_rng_state()
        torch.set_rng_state(self.generators[i].get_state())
        self._rng_member = i
        try:
            yield
        finally:
            self.generators[i].set_state(torch.get_rng_state())
            torch.set_rng_state(saved)
            self._rng_member = None

    def view(self, members: list[int]) -> PackView:
        return PackView(self, members)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"encoder": list(self.encoder.parameters()), "decoder": list(self.decoder.parameters())}

    def unstack(self, i: int, model: nn.Module) -> None:
        """Member i's weights into its solo model, whose prior is attached to it again."""
        self.encoder.unstack(i, model.encoder)
        self.decoder.unstack(i, model.decoder)
        model.prior.attach(model)


class MaskedAdam:
    """``torch.optim.Adam`` (defaults betas (0.9, 0.999), eps 1e-8, no weight decay) over stacked
    parameters, one state and one learning rate per member; :meth:`step` updates the given members only
    and leaves the others' parameters and moments untouched."""

    def __init__(self, params: list[nn.Parameter], lr: list[float], betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        self.lr = list(lr)
        self.betas, self.eps = betas, eps
        self.steps = [0] * len(lr)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, members: list[int]) -> None:
        b1, b2 = self.betas
        for i in members:
            self.steps[i] += 1
        size = [(-(self.lr[i] / (1 - b1 ** self.steps[i]))) for i in members]
        bc2 = [(1 - b2 ** self.steps[i]) ** 0.5 for i in members]
        full = list(members) == list(range(len(self.lr)))
        dev = self.params[0].device
        idx = torch.tensor(members, device=dev)
        per_dtype: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}  # one host-to-device copy per step
        for p, m1, m2 in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            if p.dtype not in per_dtype:
                per_dtype[p.dtype] = (
                    torch.tensor(size, dtype=p.dtype, device=dev),
                    torch.tensor(bc2, dtype=p.dtype, device=dev),
                )
            shape = (len(members),) + (1,) * (p.dim() - 1)
            step_size, denom_c = (t.reshape(shape) for t in per_dtype[p.dtype])
            g = p.grad if full else p.grad[idx]
            a = m1 if full else m1[idx]
            s = m2 if full else m2[idx]
            a.lerp_(g, 1 - b1)
            s.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (s.sqrt() / denom_c).add_(self.eps)
            upd = (step_size * a).div_(denom)  # torch's addcdiv: param + (value * exp_avg) / denom
            if full:
                p.add_(upd)
            else:
                m1.index_copy_(0, idx, a)
                m2.index_copy_(0, idx, s)
                p.index_copy_(0, idx, p[idx] + upd)

    def reset(self, i: int) -> None:
        """Member i's state as a freshly built ``torch.optim.Adam`` (its optimisers rebuilt)."""
        self.steps[i] = 0
        for m1, m2 in zip(self.exp_avg, self.exp_avg_sq):
            m1[i].zero_()
            m2[i].zero_()

    def member_state(self, i: int) -> list[dict[str, torch.Tensor]]:
        """Member i's state in ``torch.optim.Adam``'s per-parameter form."""
        return [
            {"step": torch.tensor(float(self.steps[i])), "exp_avg": m1[i].clone(), "exp_avg_sq": m2[i].clone()}
            for m1, m2 in zip(self.exp_avg, self.exp_avg_sq)
        ]


class MembersOptimizer:
    """The ``zero_grad``/``step`` an objective calls, bound to the members of one view."""

    def __init__(self, adam: MaskedAdam, members: list[int]) -> None:
        self.adam, self.members = adam, members

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.adam.zero_grad()

    def step(self) -> None:
        self.adam.step(self.members)
