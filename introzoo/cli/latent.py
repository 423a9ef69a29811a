"""The ``traverse`` and ``interpolate`` commands (registered on the app in :mod:`introzoo.cli`); their
bodies are in :mod:`introzoo.cli.saved`, imported when run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from .common import apply_execution, console, device_option, output_path, set_data_root, threads_option
from ..errors import UsageError
from ..inputs import check_seed
from ..paths import check_output_file

TRAVERSE_EPILOG = (
    "Examples:\n\n"
    "  introzoo traverse runs/first\n\n"
    "  introzoo traverse runs/fmnist-soft --range 2 --steps 8 --around test --index 3 --out trav.png\n\n"
    "One row per latent dimension: that dimension moves over centre ± RANGE, the others stay at the centre "
    "(the prior mean, or the latent mean of a test point). Images: a PNG grid, a label per row; 2D data: the "
    "decoded points over the data, one panel per dimension with labelled axes; a caption names the run and the "
    "traversal."
)


def traverse(
    run_dir: Path = typer.Argument(..., help="a finished run directory"),
    span: float = typer.Option(3.0, "--range", help="each dimension moves over centre ± RANGE"),
    steps: int = typer.Option(10, "--steps", help="codes per row"),
    around: str = typer.Option("prior", "--around", help="prior (the prior mean) | test (a test point's encoding)"),
    index: int = typer.Option(0, "--index", help="--around test: which test point (2D: which draw of --seed)"),
    out: Optional[Path] = typer.Option(
        None, "--out", parser=output_path, metavar="PATH", help=".png (default RUN/traverse_<around>.png)"
    ),
    seed: int = typer.Option(0, "--seed", "-s", help="seed of the data draws"),
    device: Optional[str] = device_option(),
    threads: Optional[int] = threads_option(),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="where image datasets are"),
) -> None:
    """Latent traversal of a saved run: a grid with one row per latent dimension."""
    from .saved import traverse as do_traverse

    if steps < 2 or span <= 0 or index < 0:
        raise UsageError("--steps must be at least 2, --range positive and --index at least 0")
    if not math.isfinite(span):
        raise UsageError(f"--range {span}: give a finite number, the distance from the centre")
    check_seed(seed)
    apply_execution(device, threads)
    if out is not None:
        check_output_file(out, suffixes=(".png",), create_parents=True)
    set_data_root(data_root)
    do_traverse(console, run_dir, out, span, steps, around, index, seed, device)


INTERPOLATE_EPILOG = (
    "Examples:\n\n"
    "  introzoo interpolate runs/first\n\n"
    "  introzoo interpolate runs/fmnist-soft --pairs 6 --steps 8 --mode linear --seed 2 --out interp.png\n\n"
    "Each row goes from the latent mean of one test point to another's (both ends included), as Soft-IntroVAE "
    "Fig. 5; spherical follows the great circle between the two codes. A caption names the run and the "
    "interpolation."
)


def interpolate(
    run_dir: Path = typer.Argument(..., help="a finished run directory"),
    pairs: int = typer.Option(4, "--pairs", help="pairs of test points (rows)"),
    steps: int = typer.Option(10, "--steps", help="codes per row, both ends included"),
    mode: str = typer.Option("spherical", "--mode", help="linear | spherical"),
    out: Optional[Path] = typer.Option(
        None, "--out", parser=output_path, metavar="PATH", help=".png (default RUN/interpolate_<mode>_s<seed>.png)"
    ),
    seed: int = typer.Option(0, "--seed", "-s", help="seed choosing the test points"),
    device: Optional[str] = device_option(),
    threads: Optional[int] = threads_option(),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="where image datasets are"),
) -> None:
    """Interpolate between the encodings of test points of a saved run (PNG grid, one row per pair)."""
    from .saved import interpolate as do_interpolate

    if steps < 2 or pairs < 1:
        raise UsageError("--steps must be at least 2 and --pairs at least 1")
    check_seed(seed)
    apply_execution(device, threads)
    if out is not None:
        check_output_file(out, suffixes=(".png",), create_parents=True)
    set_data_root(data_root)
    do_interpolate(console, run_dir, out, pairs, steps, mode, seed, device)
