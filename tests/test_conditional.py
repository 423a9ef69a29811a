"""Class-conditional models (--conditional): the official wiring of the one-hot, checked column by column
against the layers' weights; the labels a training step uses; run hashes; sampling by class; refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from introzoo.backbones import conv, mlp
from introzoo.cli import main
from introzoo.conditional.build import LabelledStream, build_model
from introzoo.conditional.model import ConditionalDecoder, ConditionalEncoder
from introzoo.config import RunConfig, resolve
from introzoo.data.images import Digits
from introzoo.errors import UsageError
from introzoo.plugins import state

K = 3


def _conv(shape, zdim):
    return conv.build(conv.ConvConfig(channels=[4]), data_shape=shape, zdim=zdim)


def test_decoder_takes_z_concatenated_with_the_one_hot():
    """D(z, y) = main(act(W [z; o(y)] + b)): the label adds column zdim + y of the first layer's weight."""
    torch.manual_seed(0)
    zdim = 5
    dec = ConditionalDecoder(_conv((1, 8, 8), zdim + K)[1], K).double()
    z, y = torch.randn(4, zdim, dtype=torch.float64), torch.tensor([0, 2, 1, 2])
    lin = dec.net.fc[0]
    w, b = lin.weight, lin.bias
    pre = z @ w[:, :zdim].T + w[:, zdim + y].T + b  # the one-hot selects one column per row
    want = dec.net.main(F.leaky_relu(pre, 0.2).view(4, *dec.net.feature_shape))
    torch.testing.assert_close(dec(z, y), want)
    # the output depends on the label: another class changes it
    assert not torch.allclose(dec(z, y), dec(z, (y + 1) % K))


def test_encoder_concatenates_the_one_hot_before_its_fc():
    """E(x, y) = W [main(x); o(y)] + b, the FC widened by K inputs (official Encoder, conditional=True)."""
    torch.manual_seed(1)
    enc = ConditionalEncoder.wrap(lambda s, z: _conv(s, z), (1, 8, 8), 2, K).double()
    assert enc.wiring == "fc" and enc.net.fc.in_features == 4 * 4 * 4 + K
    x, y = torch.rand(3, 1, 8, 8, dtype=torch.float64), torch.tensor([2, 0, 1])
    h = enc.net.main(x).flatten(1)
    w, b = enc.net.fc.weight, enc.net.fc.bias
    torch.testing.assert_close(enc(x, y), h @ w[:, : h.shape[1]].T + w[:, h.shape[1] + y].T + b)


def test_encoder_without_an_fc_takes_the_one_hot_as_extra_inputs():
    torch.manual_seed(2)
    build = lambda s, z: mlp.build(mlp.MLPConfig(hidden=8, layers=0), data_shape=s, zdim=z)  # noqa: E731
    enc = ConditionalEncoder.wrap(build, (2,), 2, K).double()
    assert enc.wiring == "channels"
    x, y = torch.randn(4, 2, dtype=torch.float64), torch.tensor([1, 1, 0, 2])
    first = enc.net.net[0]
    pre = x @ first.weight[:, :2].T + first.weight[:, 2 + y].T + first.bias
    rest = enc.net.net[1:]
    torch.testing.assert_close(enc(x, y), rest(pre))


def _digits_model(zdim=4):
    run = resolve(
        RunConfig(
            data="digits",
            objective="soft",
            conditional=True,
            zdim=zdim,
            batch_size=16,
            backbone="conv,channels=[4]",
            metrics=[],
        ),
        state().registry,
    )
    from introzoo.training.loop import build

    return run, build(run)


def test_the_stream_sets_each_batch_labels_and_draws_the_unconditional_batches():
    ds = Digits()
    x_all, y_all = ds.images("train")
    run, built = _digits_model()
    model = build_model(run.backbone, ds, built.model.prior, 4)
    stream = LabelledStream(ds, model).batches(100, torch.Generator().manual_seed(7))
    plain = ds.batches(100, torch.Generator().manual_seed(7))
    perm = torch.randperm(x_all.shape[0], generator=torch.Generator().manual_seed(7))  # the first epoch
    for i in range(3):
        x = next(stream)
        torch.testing.assert_close(x, next(plain))
        assert torch.equal(model.labels, y_all[perm[100 * i : 100 * (i + 1)]])
    stream.close()
    assert model.labels is None


def test_a_soft_step_encodes_and_decodes_with_the_batch_labels():
    """Every encoder and decoder call of a Soft-IntroVAE step (real, reconstructed and fake images, the
    fakes decoded from prior draws) gets the labels of the batch."""
    run, built = _digits_model()
    seen = []
    for net in (built.model.encoder, built.model.decoder):
        net.register_forward_hook(lambda m, args, out: seen.append((type(m).__name__, args[1].clone())))
    stream = built.dataset.batches(16, torch.Generator().manual_seed(0))
    x = next(stream)  # sets the batch's labels until the next batch
    y = built.model.labels.clone()
    built.objective.train_step(x, 0)
    assert {name for name, _ in seen} == {"ConditionalEncoder", "ConditionalDecoder"} and len(seen) >= 6
    for _, labels in seen:  # a pass over several B-row stacks (soft encodes [x_r; x_f] at once) repeats them
        assert torch.equal(labels, y.repeat(labels.numel() // y.numel()))


def test_the_hash_of_a_run_without_conditional_is_unchanged():
    reg = state().registry
    assert resolve(RunConfig(), reg).record()["hash"] == "392d2494421d"  # as before --conditional existed
    assert resolve(RunConfig(data="digits", metrics=["nll"]), reg).record()["hash"] == "429a37cd6d4f"
    assert resolve(RunConfig(data="digits", metrics=["nll"], conditional=False), reg).record()["hash"] == "429a37cd6d4f"
    assert resolve(RunConfig(data="digits", metrics=["nll"], conditional=True), reg).record()["hash"] != "429a37cd6d4f"


def _two_classes(root):
    """8x8 grey images: class 'a' dark (pixels near 0.1), class 'b' bright (near 0.9)."""
    rng = np.random.default_rng(0)
    for k, (name, level) in enumerate((("a", 25), ("b", 230))):
        (root / name).mkdir(parents=True)
        for i in range(40):
            img = np.clip(level + rng.integers(-10, 10, (8, 8)), 0, 255).astype(np.uint8)
            Image.fromarray(img, mode="L").save(root / name / f"{i}.png")
    return root


def test_trained_on_two_classes_it_samples_the_class_asked_for(tmp_path, capsys):
    data = _two_classes(tmp_path / "imgs")
    out = tmp_path / "run"
    rc = main(
        [
            "run",
            "-o",
            "vae,beta_kl=1",
            "-d",
            f"folder:{data}",
            "--conditional",
            "-n",
            "150",
            "--batch-size",
            "16",
            "--zdim",
            "2",
            "-b",
            "conv,channels=[8]",
            "--lr",
            "0.003",
            "--metric",
            "nll,k=2,n=8",
            "--threads",
            "1",
            "-q",
            "--out",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["train"]["conditional"] is True
    means = []
    for k in (0, 1):
        rc = main(
            ["sample", str(out), "--class", str(k), "--n", "32", "--out", str(tmp_path / f"c{k}.pt"), "--threads", "1"]
        )
        assert rc == 0, capsys.readouterr().err
        means.append(float(torch.load(tmp_path / f"c{k}.pt").mean()))
    assert means[0] < 0.3 and means[1] > 0.7, means  # dark class 0, bright class 1
    rc = main(["sample", str(out), "--class", "2", "--threads", "1"])
    assert rc == 2 and "--class 2 is out of range: this run has classes 0..1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["-d", "8gaussians"], "--conditional needs a dataset with class labels"),
        (["-d", "folder:FLAT"], "needs at least two classes"),
    ],
)
def test_datasets_without_labels_are_refused(tmp_path, capsys, args, message):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(6):
        Image.fromarray(np.full((8, 8), 30 * i, np.uint8), mode="L").save(flat / f"{i}.png")
    args = [a.replace("FLAT", str(flat)) for a in args]
    rc = main(["run", "-o", "vae", *args, "--conditional", "-n", "2", "--threads", "1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r" / "config.json").exists()


def test_class_on_an_unconditional_run_and_encoding_without_labels_are_refused(tmp_path, capsys):
    out = tmp_path / "plain"
    rc = main(
        [
            "run",
            "-o",
            "vae",
            "-d",
            "digits",
            "-n",
            "2",
            "-b",
            "conv,channels=[4]",
            "--metric",
            "nll,k=2,n=4",
            "--threads",
            "1",
            "-q",
            "--out",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    rc = main(["sample", str(out), "--class", "1", "--threads", "1"])
    assert rc == 2 and "--class needs a class-conditional run" in capsys.readouterr().err
    _, built = _digits_model()
    built.model.condition(None)
    with pytest.raises(UsageError, match="no labels are set"):
        built.model.encode(torch.zeros(2, 1, 8, 8))
    with built.model.conditioned(torch.tensor([0, 9])):
        assert built.model.encode(torch.zeros(2, 1, 8, 8))[0].shape == (2, 4)
    assert built.model.labels is None


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))


@pytest.mark.parametrize("kind", ["pooled", "per_class"])
def test_fid_cond_against_scipy_on_known_samples(monkeypatch, kind):
    """fid_cond with samples we know: class k's samples are the training images of class k in order, shifted
    by 0.1 k (clipped); features a fixed projection of the pixels. pooled: one Frechet distance (scipy)
    between the n reference images and the samples made with their labels; per_class: the mean over classes
    of the distance between a class's references and as many samples of that class."""
    from introzoo.metrics import fid_cond
    from introzoo.metrics.base import EvalContext

    run, built = _digits_model()
    ds = built.dataset.dataset if hasattr(built.dataset, "dataset") else built.dataset
    x, y = ds.images("train")
    pool = {k: ds.to_float(x[y == k]) for k in range(10)}
    shift = lambda k, imgs: (imgs + 0.1 * k).clamp(0, 1)  # noqa: E731

    def known(ctx, labels, batch_size):
        used = dict.fromkeys(range(10), 0)
        for lab in labels.split(batch_size):
            out = []
            for k in lab.tolist():
                out.append(shift(k, pool[k][used[k]]))
                used[k] += 1
            yield torch.stack(out)

    monkeypatch.setattr(fid_cond, "_generate", known)
    w = torch.randn(64, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    class Projection(torch.nn.Module):
        num_features, info = 6, {}

        def forward(self, imgs):
            return imgs.flatten(1).double() @ w

    ctx = EvalContext(built.model, ds, torch.device("cpu"), 0)
    ctx.cache["extractor:proj"] = ("proj", Projection())
    metric = fid_cond.FIDCond(fid_cond.FIDCondConfig(kind=kind, features="proj", n=1000, batch_size=300))
    got = metric.compute(ctx)
    idx = ctx.cache["fid:proj:1000"][3]  # the reference images fid_gen uses
    feats = lambda imgs: (imgs.flatten(1).double() @ w).numpy()  # noqa: E731
    real, labels = ds.to_float(x[idx]), y[idx]
    if kind == "pooled":
        seen = dict.fromkeys(range(10), 0)
        fake = []
        for k in labels.tolist():
            fake.append(shift(k, pool[k][seen[k]]))
            seen[k] += 1
        expected = _frechet(feats(real), feats(torch.stack(fake)))
        assert got == {"fid_cond@proj": pytest.approx(expected, rel=1e-4)}
    else:
        per = {
            k: _frechet(feats(real[labels == k]), feats(shift(k, pool[k][: int((labels == k).sum())]))) for k in range(10)
        }
        assert got == {"fid_intra@proj": pytest.approx(sum(per.values()) / 10, rel=1e-4)}
        assert ctx.info["fid_intra@proj"]["per_class"] == {str(k): pytest.approx(v, rel=1e-4) for k, v in per.items()}
    assert next(iter(got.values())) > 0.01  # the shifts are seen
