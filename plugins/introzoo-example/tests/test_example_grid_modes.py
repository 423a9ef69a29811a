"""The gaussgrid dataset against its definition (scipy's tests of the mode frequencies and the noise) and
the modes metric against counts by hand, through the metric and on the command line."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from introzoo.cli import main
from introzoo.metrics.base import EvalContext
from introzoo_example.grid import GaussGrid, GridConfig
from introzoo_example.modes import Modes, ModesConfig, mode_coverage


def test_grid_centres_are_the_square_lattice_around_the_origin():
    ds = GaussGrid(GridConfig(side=3, spacing=2.0))
    expected = {(a, b) for a in (-2.0, 0.0, 2.0) for b in (-2.0, 0.0, 2.0)}
    assert {tuple(map(float, c)) for c in ds.centres} == expected
    assert ds.metric_range == 3.0  # half-width: the square [-3, 3]^2 holds every mode with a margin


def test_grid_samples_pick_modes_uniformly_with_gaussian_noise():
    c = GridConfig(side=5, spacing=1.0, std=0.05)
    ds = GaussGrid(c)
    x = ds.sample(20_000, torch.Generator().manual_seed(0)).double()
    nearest = torch.cdist(x, ds.centres.double()).argmin(1)
    counts = torch.bincount(nearest, minlength=25).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3  # each of the 25 modes equally likely
    noise = (x - ds.centres.double()[nearest]).numpy().ravel()
    assert stats.kstest(noise / c.std, "norm").pvalue > 1e-3
    assert torch.equal(ds.sample(5, torch.Generator().manual_seed(1)), ds.sample(5, torch.Generator().manual_seed(1)))


def by_hand(x, centres, std, radius, min_count):
    good, per_mode = 0, [0] * len(centres)
    for p in x:
        d = [math.dist(p, c) for c in centres]
        k = int(np.argmin(d))
        if d[k] <= radius * std:
            good += 1
            per_mode[k] += 1
    return sum(n >= min_count for n in per_mode), good / len(x)


@pytest.mark.parametrize("min_count", [1, 2])
def test_mode_coverage_against_counts_by_hand(min_count):
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    x = torch.tensor([[0.01, 0.0], [0.0, -0.02], [1.0, 0.12], [1.2, 0.0], [0.5, 0.5], [0.0, 1.1], [0.0, 0.98]])
    covered, hq = mode_coverage(x, centres, std=0.05, radius=3.0, min_count=min_count)
    assert (covered, hq) == pytest.approx(by_hand(x.tolist(), centres.tolist(), 0.05, 3.0, min_count))
    assert (covered, hq) == ((3, 5 / 7) if min_count == 1 else (2, 5 / 7))  # (1, 0) has one, (1, 1) none


class Points:
    """A 'model' whose samples are given points (cycled), to check the metric end to end."""

    def __init__(self, points):
        self.points = points

    def eval(self):
        return self

    def sample(self, n):
        return self.points[torch.arange(n) % len(self.points)]


def test_metric_reports_coverage_of_the_models_samples_and_refuses_other_datasets():
    ds = GaussGrid(GridConfig(side=2, spacing=1.0, std=0.1))
    pts = ds.centres[[0, 0, 1]] + torch.tensor([[0.0, 0.0], [0.05, 0.0], [0.0, 0.5]])  # two good, one off
    out = Modes(ModesConfig(n_samples=3)).compute(EvalContext(Points(pts), ds, torch.device("cpu")))
    assert out == {"modes_covered": 1.0, "hq_fraction": pytest.approx(2 / 3)}

    class NoModes:
        kind, name = "2d", "8gaussians"

    assert not Modes(ModesConfig()).applies_to(NoModes()) and Modes(ModesConfig()).applies_to(ds)


def test_modes_on_the_command_line(tmp_path, capsys):
    assert main(["run", "-d", "8gaussians", "--metric", "modes", "-n", "2", "-q"]) == 2
    assert "does not apply to dataset '8gaussians': the dataset declares no mode centres" in capsys.readouterr().err
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "-o",
                "soft,num_vae=10",
                "-d",
                "gaussgrid:3",
                "-n",
                "20",
                "--metric",
                "modes,n_samples=500",
                "--metric",
                "kl,n_samples=300",
                "--out",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    import json

    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert 0 <= metrics["modes_covered"] <= 9 and 0 <= metrics["hq_fraction"] <= 1 and "kl" in metrics
