"""The ``translate`` command (registered on the app in :mod:`introzoo.cli.commands`): the content-transfer
grid of a saved run (seed 001 §6.4, Figure 7; :mod:`introzoo.translation`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .common import apply_execution, console, device_option, output_path, set_data_root, threads_option
from ..errors import UsageError
from ..inputs import check_seed
from ..paths import check_output_file

TRANSLATE_EPILOG = (
    "Examples:\n\n"
    "  introzoo run -o soft -b lord -d shapes --epochs 8 --out runs/shapes-soft\n\n"
    "  introzoo translate runs/shapes-soft\n\n"
    "  introzoo translate runs/shapes-soft --n 6 --split train --seed 2 --out grid.png\n\n"
    "Row i, column j (from 1) is the class of the image at the start of row i with the content of the image "
    "at the top of column j: the decoder's input is the first image's class code and the second's content "
    "code (posterior means). Needs a backbone with class and content codes (lord)."
)


def translate(
    run_dir: Path = typer.Argument(..., help="a finished run directory (backbone lord)"),
    n: int = typer.Option(8, "--n", help="class sources (rows) and content sources (columns)"),
    split: str = typer.Option("test", "--split", help="where the images come from: test | train"),
    out: Optional[Path] = typer.Option(
        None, "--out", parser=output_path, metavar="PATH", help=".png (default RUN/translate_n<N>_s<seed>.png)"
    ),
    seed: int = typer.Option(0, "--seed", "-s", help="seed choosing the images"),
    device: Optional[str] = device_option(),
    threads: Optional[int] = threads_option(),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="where image datasets are"),
) -> None:
    """Content transfer of a saved run: a grid, rows the class sources, columns the content sources."""
    if n < 1:
        raise UsageError("--n must be at least 1")
    if split not in ("test", "train"):
        raise UsageError(f"--split {split!r}: choose test or train")
    check_seed(seed)
    apply_execution(device, threads)
    if out is not None:
        check_output_file(out, suffixes=(".png",), create_parents=True)
    set_data_root(data_root)
    write_grid(console, run_dir, n, split, out, seed, device)


def write_grid(console: Console, run_dir: Path, n: int, split: str, out: Path | None, seed: int, device: str | None) -> Path:
    """Load the run, pick ``n`` class sources and ``n`` content sources of ``split`` (seeded), and save the
    ``(n + 1) x (n + 1)`` grid: the content sources along the top, the class sources down the left, the
    translation of each pair inside."""
    import torch  # here, not at import: the CLI starts without torch
    from torchvision.utils import save_image

    from ..training.loop import load
    from ..translation import class_dim_of, transfer_grid

    run, built = load(run_dir, device=device)
    class_dim_of(built.model, run.backbone.component.name)
    ds = built.dataset
    if not hasattr(ds, "images"):
        raise UsageError(f"dataset '{ds.name}' has no stored images to translate")
    x, _ = ds.images(split)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(x.shape[0], generator=g)[: 2 * n]
    if pick.shape[0] < 2:
        raise UsageError(f"the {split} split has {x.shape[0]} image(s); translation needs two")
    k = pick.shape[0] // 2
    dtype = next(built.model.parameters()).dtype
    a = ds.to_float(x[pick[:k]]).to(built.device, dtype)
    b = ds.to_float(x[pick[k : 2 * k]]).to(built.device, dtype)
    built.model.eval()
    grid = transfer_grid(built.model, a, b).float().cpu().clamp(0, 1)
    corner = torch.ones(1, *a.shape[1:])
    rows = [torch.cat([corner, b.float().cpu()])] + [torch.cat([a[i : i + 1].float().cpu(), grid[i]]) for i in range(k)]
    out = out or Path(run_dir) / f"translate_n{k}_s{seed}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(torch.cat(rows), out, nrow=k + 1, padding=2, pad_value=1.0)
    console.print(f"content transfer, {k} class sources x {k} content sources ({split} split) -> {out}", highlight=False)
    return out
