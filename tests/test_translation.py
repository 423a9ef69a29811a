"""Image translation: the lord backbone (AdaIN, code layout, KL per encoder), the shapes dataset's ground
truth, content transfer (translate, the metric against hand computations) and ``introzoo translate``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from introzoo.backbones.lord import LordConfig, LordDecoder, adain, build
from introzoo.cli import main
from introzoo.data.shapes import N_CONTENT, SCALES, Shapes, ShapesConfig, content_factors
from introzoo.losses import kl_standard_normal
from introzoo.metrics.base import EvalContext
from introzoo.metrics.translation import ContentTransfer, ContentTransferConfig
from introzoo.model import VAE
from introzoo.priors.gaussian import StandardGaussian
from introzoo.translation import transfer_grid, translate

TINY = LordConfig(channels=[4, 4, 4, 4], hidden=8, adain_channels=4, last_channels=4)


@pytest.fixture(scope="module")
def shapes():
    return Shapes(ShapesConfig(size=16))


def test_adain_against_a_hand_computation():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 2.0]]]])  # (1, 2, 2, 2)
    gamma, beta = torch.tensor([[2.0, -1.0]]), torch.tensor([[0.5, 3.0]])
    # channel 0: mean 2.5, biased variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25
    s0 = math.sqrt(1.25 + 1e-5)
    c0 = [[2 * (v - 2.5) / s0 + 0.5 for v in row] for row in ([1, 2], [3, 4])]
    # channel 1: mean 0.5, variance (3 * 0.25 + 2.25) / 4 = 0.75
    s1 = math.sqrt(0.75 + 1e-5)
    c1 = [[-(v - 0.5) / s1 + 3.0 for v in row] for row in ([0, 0], [0, 2])]
    assert torch.allclose(adain(x, gamma, beta), torch.tensor([[c0, c1]]), atol=1e-6)


def test_encoder_layout_and_one_kl_per_encoder():
    torch.manual_seed(0)
    enc, dec = build(TINY, (3, 16, 16), 6)  # class 4 (two thirds), content 2
    assert (enc.class_dim, enc.content_dim, dec.class_dim) == (4, 2, 4)
    x = torch.rand(3, 3, 16, 16)
    model = VAE(enc, dec, StandardGaussian(6), (3, 16, 16), 6)
    mu, logvar = model.encode(x)
    mu_c, lv_c = enc.class_encoder(x).chunk(2, 1)
    mu_s, lv_s = enc.content_encoder(x).chunk(2, 1)
    assert torch.equal(mu, torch.cat([mu_c, mu_s], 1)) and torch.equal(logvar, torch.cat([lv_c, lv_s], 1))
    # the model's KL is the class encoder's plus the content encoder's, each by the closed form
    assert torch.allclose(model.kl(mu, logvar), kl_standard_normal(mu_c, lv_c) + kl_standard_normal(mu_s, lv_s))
    assert tuple(dec(torch.randn(3, 6)).shape) == (3, 3, 16, 16)


def test_lord_refuses_impossible_sizes():
    with pytest.raises(ValueError, match="class_dim 6 leaves nothing of zdim 6"):
        build(LordConfig(class_dim=6), (3, 16, 16), 6)
    with pytest.raises(ValueError, match="not divisible by 16"):
        build(TINY, (3, 24, 24), 6)


def test_class_code_acts_only_through_adain():
    """With the AdaIN modulation's weights zero the class code has no way in: two class codes give one image;
    with them, only the class part of z differs and the output changes."""
    torch.manual_seed(0)
    dec = LordDecoder((1, 16, 16), 3, 2, 4, 4)
    z1, z2 = torch.randn(1, 5), torch.randn(1, 5)
    z2[:, 3:] = z1[:, 3:]  # same content, other class
    assert not torch.allclose(dec(z1), dec(z2))
    for mod in dec.modulation:
        nn.init.zeros_(mod.weight)
    assert torch.equal(dec(z1), dec(z2))


class KnownCodes(nn.Module):
    """An encoder whose codes are known: class code = the image's mean of channel 0 and of channel 1,
    content code = its mean of channel 2 (logvar 0)."""

    def forward(self, x):
        m = x.mean(dim=(2, 3))
        return torch.cat([m, torch.zeros_like(m)], 1)


def test_translate_decodes_class_of_the_first_and_content_of_the_second():
    torch.manual_seed(0)
    dec = LordDecoder((3, 16, 16), 2, 1, 4, 4)
    model = VAE(KnownCodes(), dec, StandardGaussian(3), (3, 16, 16), 3)
    a, b = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    ma, mb = a.mean(dim=(2, 3)), b.mean(dim=(2, 3))
    expected = dec(torch.cat([ma[:, :2], mb[:, 2:]], 1))
    assert torch.allclose(translate(model, a, b), expected, atol=1e-6)
    grid = transfer_grid(model, a, b)
    assert grid.shape == (2, 2, 3, 16, 16)
    assert torch.allclose(grid[0, 1], dec(torch.cat([ma[:1, :2], mb[1:, 2:]], 1))[0], atol=1e-6)


def test_shapes_ground_truth(shapes):
    x, y = shapes.images("train")
    xt, _ = shapes.images("test")
    assert x.shape == (15 * 96, 3, 16, 16) and xt.shape == (3 * 96, 3, 16, 16) and N_CONTENT == 96
    c, k = shapes.class_content("train")
    assert torch.equal(y, c) and set(shapes.class_content("test")[0].tolist()).isdisjoint(c.tolist())
    assert torch.equal(shapes.render(c[:50], k[:50]), x[:50])  # the stored images are the renderings
    ix, iy, isc, irot = content_factors(np.array([95, 0, 7]))
    assert list(zip(ix, iy, isc, irot)) == [(3, 3, 2, 1), (0, 0, 0, 0), (0, 1, 0, 1)]
    # covered area against the closed forms (in pixels^2 of a 64-pixel render, unrotated, scale 2)
    big = Shapes(ShapesConfig(size=64))
    r = SCALES[2] * 64
    areas = {
        0: 4 * r * r,
        7: math.pi * r * r * 0.6,
        14: 3 * math.sqrt(3) / 4 * r * r,
    }  # red square/green ellipse/yellow triangle
    for cls, area in areas.items():
        img = big.render(torch.tensor([cls]), torch.tensor([4])).double() / 255
        assert img.max(1).values.sum().item() == pytest.approx(area, rel=0.03)


class Perfect(nn.Module):
    """Decodes (class, content) indices to the dataset's ground truth."""

    def __init__(self, ds):
        super().__init__()
        self.ds, self.class_dim = ds, 1

    def forward(self, z):
        cls, content = z[:, 0].round().long(), z[:, 1].round().long()
        return self.ds.to_float(self.ds.render(cls, content))


class Lookup(nn.Module):
    """Encodes a test image to its (class, content) indices by finding it in the split."""

    def __init__(self, ds):
        super().__init__()
        self.ds = ds

    def forward(self, x):
        imgs, _ = self.ds.images("test")
        cls, content = self.ds.class_content("test")
        flat = self.ds.to_float(imgs).flatten(1)
        idx = torch.cdist(x.flatten(1), flat).argmin(1)
        codes = torch.stack([cls[idx], content[idx]], 1).float()
        return torch.cat([codes, torch.zeros_like(codes)], 1)


class CopyContent(nn.Module):
    """The translator that returns the content source: class code empty, content code the image."""

    def __init__(self, shape):
        super().__init__()
        self.shape, self.class_dim = shape, 1

    def forward(self, z):
        return z[:, 1:].view(z.shape[0], *self.shape)


class Flatten(nn.Module):
    def forward(self, x):
        f = x.flatten(1)
        mu = torch.cat([torch.zeros(f.shape[0], 1), f], 1)
        return torch.cat([mu, torch.zeros_like(mu)], 1)


def test_content_transfer_on_known_translators(shapes):
    n, seed = 40, 3
    metric = ContentTransfer(ContentTransferConfig(n=n))

    def value(encoder, decoder, zdim):
        model = VAE(encoder, decoder, StandardGaussian(zdim), shapes.shape, zdim)
        return metric.compute(EvalContext(model, shapes, torch.device("cpu"), seed=seed, chunk=16))

    assert value(Lookup(shapes), Perfect(shapes), 2) == {"content_transfer": 0.0}
    copy = value(Flatten(), CopyContent(shapes.shape), 1 + 3 * 16 * 16)["content_transfer"]
    # by hand: the same pairs (the metric's documented draw), the error of x_b against G(class a, content b)
    g = EvalContext(None, shapes, torch.device("cpu"), seed=seed).generator("content_transfer")
    imgs, _ = shapes.images("test")
    a = torch.randint(0, imgs.shape[0], (n,), generator=g)
    b = torch.randint(0, imgs.shape[0], (n,), generator=g)
    cls, content = shapes.class_content("test")
    errs = []
    for i, j in zip(a.tolist(), b.tolist()):
        truth = shapes.render(cls[i : i + 1], content[j : j + 1])[0].numpy() / 255.0
        errs.append(np.mean((imgs[j].numpy() / 255.0 - truth) ** 2))
    assert copy == pytest.approx(float(np.mean(errs)), rel=1e-6) and copy > 0.01


def test_content_transfer_reports_nothing_without_codes(shapes, tiny_model):
    from introzoo.testing.checks_base import tiny_model as make

    model = make(StandardGaussian(2), data_shape=shapes.shape)
    ctx = EvalContext(model, shapes, torch.device("cpu"))
    assert ContentTransfer(ContentTransferConfig(n=4)).compute(ctx) == {}
    assert "lord" in ctx.info["content_transfer"]["skipped"]


LORD_RUN = [
    "-d",
    "shapes,size=16",
    "-b",
    "lord,channels=[4,4,4,4],hidden=8,adain_channels=4,last_channels=4",
    "-n",
    "1",
    "--zdim",
    "6",
    "--batch-size",
    "16",
    "-q",
    "--threads",
    "1",
]


def test_translate_command_writes_the_grid(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "-o", "soft", *LORD_RUN, "--metric", "content_transfer,n=8", "--out", str(run)]) == 0
    out = tmp_path / "grid.png"
    assert main(["translate", str(run), "--n", "3", "--seed", "1", "--out", str(out)]) == 0
    assert Image.open(out).size == (4 * 16 + 5 * 2, 4 * 16 + 5 * 2)  # (n + 1)^2 tiles, padding 2
    assert main(["translate", str(run), "--n", "2"]) == 0 and (run / "translate_n2_s0.png").exists()
    capsys.readouterr()
    assert main(["translate", str(run), "--split", "val"]) == 2
    assert "--split 'val': choose test or train" in capsys.readouterr().err


def test_translate_refuses_a_backbone_without_codes(tmp_path, capsys):
    run = tmp_path / "conv"
    assert (
        main(
            [
                "run",
                "-o",
                "vae",
                "-d",
                "shapes,size=16",
                "-b",
                "conv,channels=[4]",
                "-n",
                "1",
                "-q",
                "--threads",
                "1",
                "--metric",
                "content_transfer,n=4",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["translate", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "backbone 'conv' has no class and content codes" in err


def test_lord_zdim_too_small_is_one_line(capsys):
    assert main(["run", "-o", "vae", *LORD_RUN[:4], "--zdim", "1", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "class_dim" in err


def test_list_shows_the_new_components(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("lord", "shapes", "content_transfer"))


def test_perceptual_distance_against_a_hand_computation(tmp_path):
    from introzoo.errors import UsageError
    from introzoo.perceptual import IMAGENET_MEAN, IMAGENET_STD, PerceptualDistance, load_vgg16_features

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1), nn.ReLU())
    dist = PerceptualDistance(net, layers=(1, 3))
    x, y = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)  # grey: repeated to 3 channels
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def phis(v):
        h1 = torch.relu(net[0]((v.repeat(1, 3, 1, 1) - mean) / std))
        return h1, torch.relu(net[2](h1))

    (a1, a2), (b1, b2) = phis(x), phis(y)
    for i in range(2):
        expected = (x[i] - y[i]).abs().mean() + (a1[i] - b1[i]).abs().mean() + (a2[i] - b2[i]).abs().mean()
        assert dist(x, y)[i].item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.equal(dist(x, x), torch.zeros(2))
    with pytest.raises(UsageError, match="VGG16 weights not found at .*vgg16-397923af.pth"):
        load_vgg16_features(tmp_path / "nowhere.pth")


def test_cars3d_and_kth_read_their_file_layouts(tmp_path, monkeypatch):
    from scipy.io import savemat

    from introzoo.data.translation_sets import KTH, Cars3D
    from introzoo.errors import UsageError

    monkeypatch.setenv("INTROZOO_DATA_ROOT", str(tmp_path))
    with pytest.raises(UsageError, match=r"no .mat files .*nips2015-analogy-data.tar.gz"):
        Cars3D().images("train")
    with pytest.raises(UsageError, match=r"no videos or frame folders .*cvap/actions"):
        KTH().images("train")
    (tmp_path / "cars3d").mkdir()
    rng = np.random.default_rng(0)
    ims = [rng.integers(0, 256, (8, 8, 3, 24, 4), dtype=np.uint8) for _ in range(2)]
    for i, im in enumerate(ims):
        savemat(tmp_path / "cars3d" / f"car_{i:03d}_mesh.mat", {"im": im})
    cars = Cars3D()
    x, y = cars.images("train")
    xt, _ = cars.images("test")
    assert x.shape == (96, 3, 64, 64) and xt.shape == (96, 3, 64, 64) and set(y.tolist()) == {0}
    c, k = cars.class_content("test")
    assert c[0] == 1 and k[5] == 5  # content = azimuth * 4 + elevation: azimuth 1, elevation 1
    # a constant view stays constant through the resize: its image is the .mat's colour
    ims[1][:, :, :, 1, 1] = 7
    savemat(tmp_path / "cars3d" / "car_001_mesh.mat", {"im": ims[1]})
    assert torch.all(Cars3D().render(torch.tensor([1]), torch.tensor([5])) == 7)
    for person, n in ((1, 12), (2, 8)):
        folder = tmp_path / "kth" / "walking" / f"person{person:02d}_walking_d1_uncomp"
        folder.mkdir(parents=True)
        for f in range(n):
            Image.new("L", (16, 12), color=10 * f).save(folder / f"{f:04d}.png")
    kth = KTH()
    x, y = kth.images("train")
    xt, yt = kth.images("test")
    assert x.shape[1:] == (1, 64, 64) and len(x) + len(xt) == 20 and len(xt) == 2
    assert sorted(torch.cat([y, yt]).tolist()) == [0] * 12 + [1] * 8
