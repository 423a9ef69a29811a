"""``--rec-loss``: the objectives' reconstruction distance (REC), the summed squared error by default or LORD's
VGG perceptual distance (Soft-IntroVAE §6.4, Appendix 9.3)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from introzoo import perceptual
from introzoo.cli import main
from introzoo.losses import rec
from introzoo.model import VAE
from introzoo.objectives.vae import VAEConfig
from introzoo.objectives.vae import build as build_vae
from introzoo.priors.gaussian import StandardGaussian

RUN = [
    "run",
    "-d",
    "shapes,size=16",
    "-b",
    "lord,channels=[4,4,4,4],hidden=8,adain_channels=4,last_channels=4",
    "-n",
    "2",
    "--zdim",
    "6",
    "--batch-size",
    "4",
    "-q",
    "--threads",
    "1",
    "--metric",
    "content_transfer,n=4",
]


def _l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).abs().flatten(1).sum(1)


def test_the_objective_uses_the_model_distance_in_its_rec_term():
    """A VAE step's REC is the model's distance: with an L1 distance set, ``rec`` of the step equals the
    hand-computed L1 of the decoded means (beta_kl = 0, the deterministic part), where the default is REC."""
    torch.manual_seed(0)
    enc, dec = nn.Linear(3, 4), nn.Linear(2, 3)
    model = VAE(enc, dec, StandardGaussian(2), (3,), 2)
    x, y = torch.rand(5, 3), torch.rand(5, 3)
    assert torch.equal(model.rec(x, y), rec(x, y))
    model.set_rec_loss(_l1)
    assert torch.equal(model.rec(x, y), _l1(x, y))
    assert "rec_loss" not in dict(model.named_modules()) and set(model.state_dict()) == {
        "encoder.weight",
        "encoder.bias",
        "decoder.weight",
        "decoder.bias",
    }  # not part of the checkpoint
    obj = build_vae(VAEConfig(beta_rec=1.0, beta_kl=0.0), model)
    with torch.no_grad():  # by hand, with the weights before the step and the step's noise
        mu, logvar = enc(x).chunk(2, dim=1)
        torch.manual_seed(1)
        expected = _l1(x, dec(mu + torch.randn_like(mu) * torch.exp(0.5 * logvar))).mean()
    torch.manual_seed(1)
    losses = obj.train_step(x, 0)
    assert losses["rec"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-6)  # beta_kl = 0
    with pytest.raises(RuntimeError, match="does not run in a pack"):
        model.rec(x[None], y[None], lead=1)


def _tiny_features(weights):
    """A stand-in for VGG16's features with 31 modules (the distance reads modules 2, 7, 12, 21, 30)."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 2, 3, padding=1)] + [nn.ReLU() for _ in range(30)]
    return nn.Sequential(*layers).eval().requires_grad_(False)


def test_a_run_with_the_perceptual_distance_trains_and_records_it(tmp_path, monkeypatch):
    monkeypatch.setattr(perceptual, "load_vgg16_features", _tiny_features)
    calls = []
    forward = perceptual.PerceptualDistance.forward
    monkeypatch.setattr(
        perceptual.PerceptualDistance, "forward", lambda self, x, y: calls.append(x.shape) or forward(self, x, y)
    )
    out, ref = tmp_path / "p", tmp_path / "m"
    assert main([*RUN, "-o", "soft,num_vae=1", "--rec-loss", "perceptual,weights=vgg.pth", "--out", str(out)]) == 0
    assert main([*RUN, "-o", "soft,num_vae=1", "--out", str(ref)]) == 0
    # the warm-up step's REC, then the adversarial step's real, fake-and-reconstructed and re-decoded REC
    assert [s[0] for s in calls] == [1, 4, 4, 8, 8]  # (the size check at the build, one image)
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["rec_loss"] == "perceptual,weights=vgg.pth"
    assert json.loads((ref / "config.json").read_text())["train"].get("rec_loss", "mse") == "mse"
    assert json.loads((out / "metrics.json").read_text())["status"] == "finished"
    state = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert not any("features" in k for k in state)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--rec-loss", "perceptual,weights=/nowhere/vgg.pth"], "VGG16 weights not found at /nowhere/vgg.pth"),
        (["--rec-loss", "l1"], "--rec-loss: 'l1': choose mse or perceptual,weights=FILE"),
    ],
)
def test_bad_rec_loss_is_one_line_exit_2(tmp_path, capsys, args, message):
    assert main([*RUN, "-o", "vae", "--out", str(tmp_path / "r"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "r").exists()


def test_perceptual_on_2d_data_or_small_images_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(perceptual, "load_vgg16_features", _tiny_features)
    assert (
        main(
            [
                "run",
                "-o",
                "vae",
                "-d",
                "rings",
                "-n",
                "1",
                "-q",
                "--rec-loss",
                "perceptual,weights=v.pth",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "--rec-loss perceptual needs images" in capsys.readouterr().err
    pools = lambda w: nn.Sequential(*[nn.MaxPool2d(2) for _ in range(31)])  # noqa: E731
    monkeypatch.setattr(perceptual, "load_vgg16_features", pools)
    assert main([*RUN, "-o", "vae", "--rec-loss", "perceptual,weights=v.pth", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "images of 16x16 are too small for the feature network" in err
