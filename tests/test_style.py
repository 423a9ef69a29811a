"""The ``style`` backbone (seed 001 §6.3): AdaIN and the encoder's style statistics against hand
computations, the encoder's w as the sum of its mapped styles, the blend of a new block, shapes at every stage."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from introzoo.backbones import style

TINY = style.StyleConfig(style=6, mapping_layers=2, encoder_mapping_layers=2, start_channels=4, max_channels=8)


def test_adain_against_hand_values():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 2.0, 2.0]).view(1, 2, 2, 2)
    y = torch.tensor([[0.5, -1.0, -1.0, 3.0]])  # y_s per channel (0.5, -1), then y_b (-1, 3)
    # channel 0: mean 2.5, var 1.25 -> (x - 2.5) / 1.1180340 ; scaled by 1.5, shifted by -1
    d = 1.25**0.5
    c0 = [1.5 * (v - 2.5) / d - 1 for v in (1, 2, 3, 4)]
    # channel 1: scale 1 + (-1) = 0 -> every pixel is the shift, 3
    expect = torch.tensor(c0 + [3.0] * 4).view(1, 2, 2, 2)
    assert torch.allclose(style.adain(x, y), expect, atol=1e-6)
    assert c0[0] == pytest.approx(-3.0124611, abs=1e-6)


def test_style_statistics_are_mean_and_biased_std():
    x = torch.tensor([1.0, 2.0, 3.0, 6.0]).view(1, 1, 2, 2)
    assert style.style_stats(x)[0].tolist() == pytest.approx([3.0, math.sqrt(3.5)])  # (4+1+0+9)/4 = 3.5


def test_equalized_linear_scales_its_weights():
    lin = style.EqualLinear(4, 2, gain=2.0, lrmul=0.5)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(3.0)
    # weight * gain * lrmul / sqrt(4) = 0.5 per entry; bias * lrmul = 1.5
    assert lin(torch.ones(1, 4))[0].tolist() == pytest.approx([3.5, 3.5])


def _enc_dec(side=16, zdim=3):
    torch.manual_seed(0)
    enc, dec = style.build(TINY, (3, side, side), zdim)
    return enc.eval(), dec.eval()


def test_encoder_w_is_the_sum_of_the_mapped_styles_and_the_new_block_is_weighted_by_alpha():
    enc, _ = _enc_dec()
    x = torch.rand(2, 3, 16, 16)
    for level, alpha in ((2, 1.0), (2, 0.3), (1, 0.6)):
        enc.set_stage(level, alpha)
        seen = []
        hooks = [
            m.register_forward_hook(lambda m, i, o: seen.append((m, i[0], o)))
            for b in enc.blocks
            for m in (b.style_1, b.style_2)
        ]
        side = 4 * 2**level
        w = enc.styles(F.avg_pool2d(x, 16 // side))
        for h in hooks:
            h.remove()
        newest = enc.blocks[enc.levels - 1 - level]
        assert len(seen) == 2 * (level + 1)
        total = sum(o * (alpha if m in (newest.style_1, newest.style_2) else 1.0) for m, _, o in seen)
        assert torch.allclose(w, total, atol=1e-6)
        for m, i, o in seen:  # each style is [mean, std] of a feature map, mapped by its own linear layer
            assert torch.allclose(o, F.linear(i, m.weight * m.scale, m.bias * m.lrmul), atol=1e-6)
        assert torch.allclose(enc(F.avg_pool2d(x, 16 // side)), enc.mapping(w))


def test_blend_at_alpha_zero_is_the_previous_stage():
    """alpha 0: the decoder's output is the previous level's, upsampled (nearest); the encoder's mu/logvar
    are the previous level's on the 2x-pooled input (the new block contributes nothing)."""
    enc, dec = _enc_dec()
    z = torch.randn(3, 3)
    x = torch.rand(3, 3, 16, 16)
    dec.set_stage(1)
    enc.set_stage(1)
    prev_out, prev_code = dec(z), enc(F.avg_pool2d(x, 2))
    dec.set_stage(2, 0.0)
    enc.set_stage(2, 0.0)
    assert torch.allclose(dec(z), F.interpolate(prev_out, scale_factor=2, mode="nearest"), atol=1e-6)
    assert torch.allclose(enc(x), prev_code, atol=1e-6)
    dec.set_stage(2, 0.25)  # in between: the lerp of the two
    new = dec.to_rgb[2](
        dec.blocks[2](
            dec.blocks[1](
                dec.blocks[0](dec.const.expand(3, -1, -1, -1), dec.mapping(style.pixel_norm(z))),
                dec.mapping(style.pixel_norm(z)),
            ),
            dec.mapping(style.pixel_norm(z)),
        )
    )
    expect = 0.75 * F.interpolate(prev_out, scale_factor=2, mode="nearest") + 0.25 * new
    assert torch.allclose(dec(z), expect, atol=1e-5)


def test_shapes_and_channels_at_every_stage():
    enc, dec = _enc_dec(side=32, zdim=5)
    assert enc.levels == dec.levels == 4
    # the official min(max, start * 2^i): 4, 8, 8, 8 at 32, 16, 8, 4 pixels (decoder: from 4x4 up)
    assert [b.conv_1.weight.shape[0] for b in enc.blocks] == [4, 8, 8, 8]
    assert [r.weight.shape[1] for r in dec.to_rgb] == [8, 8, 8, 4]
    z = torch.randn(2, 5)
    for level in range(4):
        side = 4 * 2**level
        for alpha in (0.5, 1.0) if level else (1.0,):
            enc.set_stage(level, alpha)
            dec.set_stage(level, alpha)
            assert enc(torch.rand(2, 3, side, side)).shape == (2, 10)
            assert dec(z).shape == (2, 3, side, side)


def test_noise_only_in_training_mode():
    _, dec = _enc_dec()
    with torch.no_grad():
        for b in dec.blocks:
            b.noise_1.fill_(1.0)
    z = torch.randn(2, 3)
    assert torch.equal(dec(z), dec(z))  # eval: deterministic
    dec.train()
    assert not torch.equal(dec(z), dec(z))


@pytest.mark.parametrize("shape", [(3, 12, 12), (3, 16, 8), (3, 2, 2), (16,)])
def test_impossible_sizes_are_refused(shape):
    with pytest.raises(ValueError, match="style backbone needs"):
        style.build(TINY, shape, 3)


def test_bad_stage_is_refused():
    enc, _ = _enc_dec()
    with pytest.raises(ValueError, match="outside"):
        enc.set_stage(3)
    with pytest.raises(ValueError, match="alpha"):
        enc.set_stage(0, 0.5)
