"""The run's pictures (introzoo/figures/layout.py, introzoo/figures/pictures.py): 2D panels with ticks, a colour bar beside each
density and a caption naming the run and iteration; image grids with row labels and the epoch; compact.
The figures' descriptions are inspected, not their pixels. ``.npy`` samples are clamped like the PNGs. The
pictures of ``sample``, ``traverse``, ``interpolate`` and ``ood`` (ROC curves) are captioned with the run and
what they show, with labelled axes; they are caught where their description is saved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from introzoo.figures import pictures as plots
from introzoo.cli import main
from introzoo.figures.layout import Figure, ImageRows, Panel, nice_ticks, tick_label


def test_nice_ticks_are_round_and_inside_the_range():
    assert nice_ticks(-2, 2) == [-2, -1, 0, 1, 2]
    assert nice_ticks(-4.5, 4.5) == [-4, -2, 0, 2, 4]
    assert nice_ticks(-0.3, 0.3) == pytest.approx([-0.3, -0.2, -0.1, 0, 0.1, 0.2, 0.3])
    assert nice_ticks(1, 1) == [] and nice_ticks(0, float("nan")) == []
    assert [tick_label(v) for v in (0, 2.0, -0.5, 1.23e-5, 25000)] == ["0", "2", "-0.5", "1.2e-5", "2.5e4"]


@pytest.fixture(scope="module")
def g8_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "g8"
    assert main(["run", "-d", "8gaussians", "-n", "20", "--metric", "kl,n_samples=100", "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def run_2d(g8_dir):
    from introzoo.training.loop import load

    return load(g8_dir)


def test_2d_figures_have_ticks_a_density_colour_bar_and_the_run(run_2d):
    run, _ = run_2d
    caption = plots.run_caption(run, 20)
    assert caption == "soft | 8gaussians | prior sg | seed 0 | iteration 20"
    rng = np.random.default_rng(0)
    density = rng.random((32, 32))
    figs = plots.two_d_figures(rng.normal(size=(50, 2)), rng.normal(size=(50, 2)), density, 2.0, caption)
    assert set(figs) == {"samples.png", "density.png", "overview.png"}
    for fig in figs.values():
        assert fig.caption == caption
        for panel in fig.panels:
            assert panel.tick_labels == ["-2", "-1", "0", "1", "2"]
    (dens,) = figs["density.png"].panels
    assert dens.colorbar == (0.0, pytest.approx(float(density.max()))) and dens.colorbar_labels[0] == "0"
    assert all(p.colorbar is None for p in figs["samples.png"].panels)  # scatter plots have none
    img = figs["overview.png"].render()
    assert img.height < 384 + 80 and img.width < 3 * (384 + 80)  # compact: labels add a thin margin


def test_latent_figure_has_ticks_and_a_colour_bar():
    fig = plots.latent_figure(np.zeros((5, 2)), np.full((8, 8), 0.25), 3.0, None, "cap")
    (p,) = fig.panels
    assert p.ticks == [-3, -2, -1, 0, 1, 2, 3] and p.colorbar == (0.0, 0.25) and fig.caption == "cap"


def test_render_reserves_room_for_ticks_and_the_colour_bar():
    from PIL import Image

    base = Panel("t", Image.new("RGB", (100, 100)))
    bare = Figure([base]).render()
    ticked = Figure([Panel("t", base.image, 1.0, (0.0, 1.0))], "caption").render()
    assert ticked.width > bare.width and ticked.height > bare.height


def test_image_progress_grid_has_row_labels_and_the_epoch(run_2d, tmp_path):
    from introzoo.data import images
    from introzoo.training.loop import Built

    ds = images.factory("digits")(images.ImageConfig())
    run, built = run_2d
    torch.manual_seed(0)
    model = _tiny_image_model()
    x = ds.to_float(ds.images("train")[0][:6])
    rows = plots.progress_rows(Built(model, None, ds, torch.device("cpu")), x, "iteration 46, epoch 2")
    assert rows.row_labels == ["data", "reconstruction", "samples"]
    assert all(imgs.shape == (6, 1, 8, 8) for _, imgs in rows.rows) and "epoch 2" in rows.caption
    img = rows.render()
    assert img.height < 3 * (32 + 2) + 40  # three rows of enlarged 8x8 images and one caption line
    run.train["batch_size"] = 64
    assert plots.run_caption(run, 46, ds.steps_per_epoch(64)).endswith("iteration 46, epoch 2")


def _tiny_image_model():
    from introzoo.backbones.conv import ConvConfig, build
    from introzoo.model import VAE
    from introzoo.priors.gaussian import StandardGaussian

    enc, dec = build(ConvConfig(channels=[4, 8]), (1, 8, 8), 3)
    return VAE(enc, dec, StandardGaussian(3), (1, 8, 8), 3).eval()


def test_image_rows_take_the_caption_width_and_label_column():
    rows = ImageRows(
        [("data", torch.rand(2, 1, 8, 8)), ("reconstruction", torch.rand(2, 1, 8, 8))],
        caption="a long caption that is wider than two small images",
    )
    img = rows.render()
    assert img.width >= 200 and rows.row_labels == ["data", "reconstruction"]


def test_npy_samples_are_clamped_to_the_data_range(tmp_path, monkeypatch):
    monkeypatch.setenv("INTROZOO_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "digits"
    assert main(["run", "-d", "digits", "-n", "3", "--metric", "knn5", "--out", str(run), "-q"]) == 0
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)  # push the decoder's outputs past 1
    last_bias = [k for k in ckpt["model"] if k.startswith("decoder.") and k.endswith(".bias")][-1]
    ckpt["model"][last_bias] += 1.0
    torch.save(ckpt, run / "checkpoint.pt")
    out = tmp_path / "s.npy"
    assert main(["sample", str(run), "--n", "64", "--out", str(out), "--seed", "1"]) == 0
    x = np.load(out)
    assert x.shape == (64, 1, 8, 8) and x.min() >= 0.0 and x.max() <= 1.0
    from introzoo.training.loop import load

    _, built = load(run)
    torch.manual_seed(1)
    raw = built.model.sample(64)
    assert raw.min() < 0 or raw.max() > 1  # the decoder has no output activation: clamping did something
    assert np.allclose(x, raw.clamp(0, 1).numpy(), atol=1e-6)


# -- the saved-run commands' pictures: captioned like the run's own, axes labelled ---------------------------

G8_RUN = "soft | 8gaussians | prior sg | seed 0 | iteration 20"


@pytest.fixture
def saved(monkeypatch):
    """The figures the commands write, by file name: the description (:class:`Figure`, :class:`ImageRows`)
    whose ``save`` wrote it."""
    figures = {}
    for cls in (Figure, ImageRows):

        def save(self, path, _real=cls.save):
            figures[Path(path).name] = self
            _real(self, path)

        monkeypatch.setattr(cls, "save", save)
    return figures


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("INTROZOO_CACHE", str(tmp_path_factory.mktemp("cache")))
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["run", "-d", "digits", "-n", "3", "--metric", "knn5", "--out", str(out), "-q"]) == 0
    yield out
    mp.undo()


def _has_data_axes(panel: Panel, half: float) -> bool:
    return (panel.xlabel, panel.ylabel) == ("x1", "x2") and panel.bounds == (-half, half) and bool(panel.ticks)


def test_render_reserves_room_for_axis_labels_and_draws_a_legend():
    from PIL import Image

    base = Panel("t", Image.new("RGB", (100, 100), "white"), 1.0)
    labelled = Panel("t", base.image, 1.0, xlabel="x1", ylabel="x2", legend=[("a: AUROC 0.500", (255, 0, 0))])
    bare, big = Figure([base]).render(), Figure([labelled]).render()
    assert big.width > bare.width and big.height > bare.height
    assert Panel("roc", base.image, limits=(0.0, 1.0)).tick_labels == ["0", "0.2", "0.4", "0.6", "0.8", "1"]


def test_sample_scatter_is_captioned_with_axes_over_the_data_range(g8_dir, tmp_path, saved):
    assert main(["sample", str(g8_dir), "--n", "50", "--seed", "3", "--out", str(tmp_path / "s.png")]) == 0
    fig = saved["s.png"]
    assert isinstance(fig, Figure) and fig.caption == f"{G8_RUN} | 50 prior samples, sampling seed 3"
    (panel,) = fig.panels
    assert _has_data_axes(panel, 2.0) and panel.tick_labels == ["-2", "-1", "0", "1", "2"]
    assert "data range ±2" in panel.title and (tmp_path / "s.png").is_file()


def test_traverse_and_interpolate_of_2d_data_are_captioned_with_labelled_axes(g8_dir, tmp_path, saved):
    assert main(["traverse", str(g8_dir), "--range", "2", "--steps", "5", "--out", str(tmp_path / "t.png")]) == 0
    assert (
        main(
            [
                "interpolate",
                str(g8_dir),
                "--pairs",
                "2",
                "--steps",
                "4",
                "--mode",
                "linear",
                "--seed",
                "1",
                "--out",
                str(tmp_path / "i.png"),
            ]
        )
        == 0
    )
    trav, interp = saved["t.png"], saved["i.png"]
    assert trav.caption == f"{G8_RUN} | latent traversal around the prior mean: each dim over ±2, 5 steps"
    assert [p.title for p in trav.panels] == ["latent dim 0", "latent dim 1"]
    assert interp.caption == f"{G8_RUN} | linear interpolation between test points (seed 1), 4 steps"
    assert [p.title for p in interp.panels] == ["pair 0", "pair 1"]
    assert all(_has_data_axes(p, 2.0) for p in trav.panels + interp.panels)


def test_image_commands_caption_the_run_and_label_their_rows(digits_dir, tmp_path, saved):
    run = "soft | digits | prior sg | seed 0 | iteration 3, epoch"
    assert main(["sample", str(digits_dir), "--n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["traverse", str(digits_dir), "--steps", "3", "--out", str(tmp_path / "t.png")]) == 0
    assert main(["interpolate", str(digits_dir), "--pairs", "2", "--steps", "3", "--out", str(tmp_path / "i.png")]) == 0
    grid, trav, interp = saved["s.png"], saved["t.png"], saved["i.png"]
    assert all(isinstance(f, ImageRows) and f.caption.startswith(run) for f in (grid, trav, interp))
    assert grid.caption.endswith("| 16 prior samples, sampling seed 0") and len(grid.rows) == 4
    assert trav.row_labels == [f"latent dim {i}" for i in range(16)] and "around the prior mean" in trav.caption
    assert interp.row_labels == ["pair 0", "pair 1"] and "spherical interpolation" in interp.caption


def test_ood_draws_captioned_roc_curves_with_the_auroc_in_the_legend(digits_dir, tmp_path, saved, capsys):
    import json

    assert main(["ood", str(digits_dir), "--against", "digits", "--n", "20", "--json", "-q"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["figure"] == str(digits_dir / "ood_digits_elbo_s0.png") and (digits_dir / "ood_digits_elbo_s0.png").is_file()
    fig = saved["ood_digits_elbo_s0.png"]
    assert fig.caption.startswith("soft | digits | prior sg | seed 0 | iteration 3, epoch")
    assert fig.caption.endswith("| OOD: digits test vs digits test, elbo score, 20 + 20 images, seed 0")
    (panel,) = fig.panels
    assert (panel.xlabel, panel.ylabel, panel.bounds) == ("false positive rate", "true positive rate", (0.0, 1.0))
    assert [label for label, _ in panel.legend] == [f"soft, prior sg: AUROC {row['auroc']:.3f}"]

    out = tmp_path / "roc.png"  # --out: every run's curve in one figure
    assert main(["ood", str(digits_dir), str(digits_dir), "--against", "digits", "--n", "20", "-q", "--out", str(out)]) == 0
    assert f"ROCcurves->{out}" in "".join(capsys.readouterr().out.split()) and out.is_file()  # lines may wrap
    (panel,) = saved["roc.png"].panels
    assert len(panel.legend) == 2 and all(label.startswith("digits (soft, prior sg): AUROC ") for label, _ in panel.legend)
    assert saved["roc.png"].caption == "OOD: test data vs digits test, elbo score, seed 0"
