"""Image backbones in a pack: M members' convolutional encoders/decoders on one channel layout.

Member axis into channels: a pack's images ``(k, B, C, H, W)`` are laid out as ``(B, k*C, H, W)``
(member j's channels ``j*C .. (j+1)*C - 1``). Then

- a ``Conv2d`` (``ConvTranspose2d``) of the members is member j's own ``conv2d`` (``conv_transpose2d``)
  on its contiguous channels with its own weight, the outputs concatenated along the channels
  (:func:`per_member`): the solo call, so the solo float32 result (one grouped convolution over the
  members is another algorithm and rounds differently);
- a ``BatchNorm2d`` of the members is one ``batch_norm`` over ``k*C`` channels: statistics are per
  channel, hence per member, and so are the running averages (``momentum``), updated in place for the
  members of the call; ``num_batches_tracked`` is counted per member;
- element-wise and per-channel modules (activations, pooling, upsampling, ``Identity``) and the
  backbone's own containers (``Sequential``, ``resnet``'s residual block) run unchanged on that layout;
- a ``Linear`` is each member's own ``F.linear`` on ``(k, B, in)`` (:func:`member_linear`, as
  :class:`~introzoo.packing.model.PackedMLP`).

:class:`PackedConvNet` is a deep copy of member 0's encoder or decoder whose ``Conv2d``,
``ConvTranspose2d``, ``BatchNorm2d`` and ``Linear`` layers are replaced by these stacked layers, with the
solo module names; so its parameters come in the solo order and names (the pack's Adam state maps onto
member i's optimiser one to one) and :meth:`PackedConvNet.unstack` copies member i's tensors by name.

The contract an image backbone declares with ``build.packable = True`` (``conv``, ``resnet``): its
encoder and decoder have the members of :class:`~introzoo.backbones.base.ConvNet`; the
encoder computes ``fc(main(x).flatten(1))`` and the decoder ``main(fc(z).view(B, *feature_shape))``,
and ``main``'s modules act per channel (no channel concatenation, reshaping or random draws) apart from
the four layer types above. Any other layer with parameters or buffers makes the pack refuse the
backbone.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.base import ConvNet
from ..errors import UsageError
from ..training.kernels import Linear, linear

#: parameterless modules that act element-wise or per channel (run unchanged on the channel layout)
PER_CHANNEL = (
    nn.Identity,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.SiLU,
    nn.GELU,
    nn.Tanh,
    nn.Sigmoid,
    nn.AvgPool2d,
    nn.MaxPool2d,
    nn.Upsample,
    nn.Sequential,
)


class _Members:
    """The members of the current call, shared by a net's layers: ``idx`` (``None``: all) and ``k``."""

    idx: torch.Tensor | None = None
    k: int = 0


def member_linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, routed: bool = True) -> torch.Tensor:
    """``(k, B, in)`` -> ``(k, B, out)``: member j's product with its own weight, as its solo layer
    computes it: through :func:`introzoo.training.kernels.linear` for an :class:`introzoo.training.kernels.Linear`
    (``routed``), ``F.linear`` for a plain ``nn.Linear`` (a batched ``baddbmm`` sums in another order
    and so rounds differently in float32)."""
    bs = [None] * len(w) if b is None else b.unbind(0)
    f = linear if routed else F.linear
    return torch.stack([f(x, wj, bj) for x, wj, bj in zip(h.unbind(0), w.unbind(0), bs)])


def per_member(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, conv) -> torch.Tensor:
    """A convolution of the members on the channel layout ``(B, k*C, H, W)``: member j's own ``conv`` on
    its contiguous channels, with its own weight, the outputs concatenated along the channels. Each
    member's call is its solo call (same shapes, same kernel): a grouped convolution over the members
    is another algorithm and rounds differently in float32."""
    xs = h.chunk(len(w), dim=1)
    bs = [None] * len(w) if b is None else b.unbind(0)
    return torch.cat([conv(x.contiguous(), wj, bj) for x, wj, bj in zip(xs, w.unbind(0), bs)], dim=1)


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([t.detach() for t in tensors]).clone()


class _Stacked(nn.Module):
    """A layer of M members with parameters ``(M, *solo shape)``, under the solo names."""

    def __init__(self, mods: list[nn.Module], members: _Members) -> None:
        super().__init__()
        self._members = [members]  # not a submodule
        for name, p in mods[0]._parameters.items():  # a parameter set to None (bias=False) stays None
            self.register_parameter(name, None if p is None else nn.Parameter(_stack([getattr(m, name) for m in mods])))
        for name, b in mods[0].named_buffers(recurse=False):
            self.register_buffer(name, _stack([getattr(m, name) for m in mods]))

    @property
    def members(self) -> _Members:
        return self._members[0]

    def pick(self, t: torch.Tensor | None) -> torch.Tensor | None:
        idx = self.members.idx
        return t if t is None or idx is None else t[idx]


class StackedConv2d(_Stacked):
    def __init__(self, mods: list[nn.Conv2d], members: _Members) -> None:
        super().__init__(mods, members)
        m = mods[0]
        if m.padding_mode != "zeros":
            raise UsageError(f"Conv2d with padding_mode '{m.padding_mode}' does not pack (zeros only)")
        self.stride, self.padding, self.dilation, self.groups = m.stride, m.padding, m.dilation, m.groups

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return per_member(
            h,
            self.pick(self.weight),
            self.pick(self.bias),
            lambda x, w, b: F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups),
        )


class StackedConvTranspose2d(_Stacked):
    def __init__(self, mods: list[nn.ConvTranspose2d], members: _Members) -> None:
        super().__init__(mods, members)
        m = mods[0]
        self.stride, self.padding, self.output_padding = m.stride, m.padding, m.output_padding
        self.dilation, self.groups = m.dilation, m.groups

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return per_member(
            h,
            self.pick(self.weight),
            self.pick(self.bias),
            lambda x, w, b: F.conv_transpose2d(
                x, w, b, self.stride, self.padding, self.output_padding, self.groups, self.dilation
            ),
        )


class StackedBatchNorm2d(_Stacked):
    """Per-member ``BatchNorm2d`` (train mode: batch statistics and running averages, as
    ``nn.BatchNorm2d`` with a float ``momentum``; eval mode: the running averages)."""

    def __init__(self, mods: list[nn.BatchNorm2d], members: _Members) -> None:
        m = mods[0]
        if m.momentum is None:
            raise UsageError("BatchNorm2d with momentum=None (cumulative averages) does not pack")
        super().__init__(mods, members)
        self.eps, self.momentum, self.track = m.eps, m.momentum, m.track_running_stats

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        idx = self.members.idx
        w, b = self.pick(self.weight), self.pick(self.bias)
        w = None if w is None else w.reshape(-1)
        b = None if b is None else b.reshape(-1)
        if not self.track:
            return F.batch_norm(h, None, None, w, b, True, 0.0, self.eps)
        if idx is None:  # views of the stored buffers, updated in place
            mean, var = self.running_mean.view(-1), self.running_var.view(-1)
        else:
            mean, var = self.running_mean[idx].reshape(-1), self.running_var[idx].reshape(-1)
        out = F.batch_norm(h, mean, var, w, b, self.training, self.momentum, self.eps)
        if self.training:
            with torch.no_grad():
                if idx is None:
                    self.num_batches_tracked.add_(1)
                else:
                    shape = (len(idx), -1)
                    self.running_mean.index_copy_(0, idx, mean.reshape(shape))
                    self.running_var.index_copy_(0, idx, var.reshape(shape))
                    self.num_batches_tracked.index_add_(0, idx, torch.ones_like(idx, dtype=torch.long))
        return out


class StackedLinear(_Stacked):
    """``Linear`` of the members on ``(k, B, in)`` -> ``(k, B, out)``."""

    def __init__(self, mods: list[nn.Linear], members: _Members) -> None:
        super().__init__(mods, members)
        self.routed = isinstance(mods[0], Linear)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return member_linear(h, self.pick(self.weight), self.pick(self.bias), self.routed)


STACKED = {
    nn.Conv2d: StackedConv2d,
    nn.ConvTranspose2d: StackedConvTranspose2d,
    nn.BatchNorm2d: StackedBatchNorm2d,
    nn.Linear: StackedLinear,
    Linear: StackedLinear,
}


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


class PackedConvNet(nn.Module):
    """M members' image encoder (``role="encoder"``) or decoder, stacked; forward on ``(k, B, ...)``
    for the members ``idx`` (``None``: all)."""

    def __init__(self, modules: list[nn.Module], role: str) -> None:
        super().__init__()
        m0 = modules[0]
        if not isinstance(m0, ConvNet):
            attr = next(a for a in ConvNet.__annotations__ if not hasattr(m0, a))
            raise UsageError(f"the backbone's {role} has no '{attr}'; it does not pack")
        self.role, self.feature_shape = role, tuple(m0.feature_shape)
        self.members = _Members()
        net = copy.deepcopy(m0)
        solo = [dict(m.named_modules()) for m in modules]
        for name, sub in m0.named_modules():
            cls = STACKED.get(type(sub))
            if cls is not None:
                _replace(net, name, cls([s[name] for s in solo], self.members))
            elif (
                list(sub.parameters(recurse=False))
                or list(sub.buffers(recurse=False))
                or (not list(sub.children()) and not isinstance(sub, PER_CHANNEL))
            ):
                raise UsageError(f"layer '{name}' ({type(sub).__name__}) of the backbone does not pack")
        for name, child in net.named_children():  # the solo order of parameters (Adam states map 1:1)
            self.add_module(name, child)

    def forward(self, x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        self.members.idx, self.members.k = idx, x.shape[0]
        k, b = x.shape[0], x.shape[1]
        if self.role == "encoder":  # (k, B, C, H, W) -> (B, k*C, H, W) -> features (k, B, F)
            h = self.main(x.transpose(0, 1).reshape((b, -1) + tuple(x.shape[3:])))
            return self.fc(h.reshape(b, k, -1).transpose(0, 1))
        c, hh, ww = self.feature_shape  # (k, B, zdim) -> (B, k*c, h, w) -> images (k, B, C, H, W)
        h = self.fc(x).reshape(k, b, c, hh, ww).transpose(0, 1).reshape(b, k * c, hh, ww)
        out = self.main(h)
        return out.reshape((b, k, -1) + tuple(out.shape[2:])).transpose(0, 1)

    @torch.no_grad()
    def unstack(self, i: int, module: nn.Module) -> None:
        """Copy member i's parameters and buffers (BatchNorm's running statistics) into a solo module."""
        mine = dict(self.named_parameters())
        mine.update(self.named_buffers())
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            t.copy_(mine[name][i])
