"""The commands that work on a saved run: the bodies of ``sample``, ``eval``, ``ood``, ``traverse`` and
``interpolate`` (registered in :mod:`introzoo.cli.commands` and :mod:`introzoo.cli.latent`); the latent-space
figures themselves are :mod:`introzoo.figures.latent`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from ..config import build_metric
from ..figures import latent
from ..metrics.stream import Phases, noise_key
from ..options import EVAL_CHUNK
from ..errors import UsageError
from ..training.run_dir import RunDir, atomic_write_json
from ..training.lifecycle import evaluate as evaluate_metrics
from ..training.loop import load


def sample(
    console: Console,
    run_dir: Path,
    n: int,
    out: Path | None,
    seed: int,
    device: str | None,
    low_posterior: bool = False,
    candidates: int = 10,
    klass: int | None = None,
) -> Path:
    """Draw ``n`` samples from the prior through the decoder: a PNG grid for images, a scatter with axes over
    the data's range for 2D data, both captioned with the run and what was drawn
    (:func:`introzoo.figures.pictures.samples_figure`); ``.pt`` / ``.npy`` outputs hold the tensor instead (images clamped
    to the data range [0, 1], as in the PNG). The prior's latents are decoded ``EVAL_CHUNK`` at a time.
    ``low_posterior``: the prior's low-posterior samples (LP-Gen, seed 004), the lowest of ``candidates * n``
    under the aggregate posterior; a prior without them is refused. ``klass``: a class-conditional run's
    samples of that class (:func:`introzoo.conditional.sampling.class_labels`)."""
    from ..conditional.sampling import class_labels
    from ..training.limits import check_sample

    run, built = load(run_dir, device=device)
    labels = class_labels(built.model, klass, n)
    check_sample(built.model, n, built.device)
    torch.manual_seed(seed)
    if labels is not None:
        labels = labels.split(EVAL_CHUNK)
    with torch.no_grad():
        if low_posterior:
            from ..figures.latent import low_posterior_latents

            z = low_posterior_latents(built, run.prior.component.name, n, candidates, seed)
        else:
            z = built.model.prior.sample(n)
        x = torch.cat(
            [decode_chunk(built.model, c, None if labels is None else labels[i]) for i, c in enumerate(z.split(EVAL_CHUNK))]
        )  # bounded passes
    if built.dataset.kind == "image":  # the data's range, as the PNG grids show them
        x = x.clamp(0, 1)
    out = out or Path(run_dir) / f"{'lp_' if low_posterior else ''}samples_n{n}_s{seed}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".pt":
        torch.save(x, out)
    elif out.suffix == ".npy":
        import numpy as np

        np.save(out, x.numpy())
    elif out.suffix == ".png":
        from ..figures.pictures import samples_figure, saved_caption

        what = (
            (f"{n} low-posterior samples (LP-Gen, lowest of {candidates} x {n})" if low_posterior else f"{n} prior samples")
            + ("" if klass is None else f" of class {klass}")
            + f", sampling seed {seed}"
        )
        samples_figure(built, x, saved_caption(run, built, what)).save(out)
    else:
        raise UsageError(f"unknown output type '{out.suffix}' for {out}; known: .png, .pt, .npy")
    console.print(f"{n} {'low-posterior ' if low_posterior else ''}samples -> {out}", highlight=False)
    return out


def decode_chunk(model, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """``model.decode(z)`` on the CPU; with ``labels``, a class-conditional model's decoder given them."""
    from ..conditional.model import conditioned

    with conditioned(model, labels):
        return model.decode(z).cpu()


def evaluate(
    console: Console,
    run_dir: Path,
    metrics: list[str],
    seed: int | None,
    device: str | None,
    save: bool,
    as_json: bool,
    chunk: int = EVAL_CHUNK,
    progress: Phases | None = None,
) -> dict[str, Any]:
    """Compute metrics on a saved run, at most ``chunk`` images per pass, phases and timings reported to
    ``progress``; with ``save`` merge them into its metrics.json (atomically)."""
    from ..metrics.base import EvalContext
    from ..plugins import state
    from ..spec import resolve

    registry = state().registry
    run, built = load(run_dir, registry, device=device)
    chosen = (
        [resolve(registry, "metrics", m) for m in metrics] if metrics else [(c.component, c.config) for c in run.metrics]
    )
    ctx = EvalContext(
        built.model,
        built.dataset,
        built.device,
        run.seed if seed is None else seed,
        chunk=chunk,
        progress=progress or Phases(),
    )
    values, directions = evaluate_metrics([build_metric(comp, cfg, built.dataset) for comp, cfg in chosen], ctx)
    if save:
        rd = RunDir(run_dir)
        result = rd.read_metrics() or {}
        result.setdefault("metrics", {}).update(values)
        result.setdefault("directions", {}).update(directions)
        if ctx.info:
            result.setdefault("metric_info", {}).update(ctx.info)
        result.setdefault("eval_times_s", {}).update(ctx.times)
        atomic_write_json(rd.metrics, result)
    if as_json:
        console.print_json(json.dumps({"metrics": values, "metric_info": ctx.info, "eval_times_s": ctx.times}))
    else:
        console.print(metrics_table(f"metrics of {run_dir}", values, directions))
    return values


def metrics_table(
    title: str,
    values: dict[str, float],
    directions: dict[str, str],
    references: list[tuple[str, dict[str, list[float]]]] = (),
) -> Table:
    """metric | value | better (an arrow): the table ``run`` and ``eval`` print; ``references``: a column
    per (name, metric -> [mean, std]) of published values (:func:`paper_comparison`)."""
    from ..references import fmt

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("better")
    for name, _ in references:
        table.add_column(name, justify="right")
    for k, v in values.items():
        table.add_row(
            k,
            f"{v:.4g}",
            {"min": "↓", "max": "↑"}.get(directions.get(k, ""), ""),
            *[fmt(*ref[k]) if k in ref else "-" for _, ref in references],
        )
    return table


def paper_comparison(
    resolved, iterations: int, metrics: dict[str, float]
) -> tuple[list[tuple[str, dict[str, list[float]]]], list[str]]:
    """The published values a finished run compares with (:func:`introzoo.references.for_run`), as
    (column name, metric -> [mean, std]), and the lines to print under them: where they come from, the
    protocol they were measured at, and whether this run is shorter than it or uses other hyperparameters."""
    from ..references import for_run, protocol_iterations

    data, objective = resolved.data.component.name, resolved.objective.component.name
    found = [
        (ref, values)
        for ref, values in for_run(data, objective, resolved.prior.component.name, len(resolved.regularizers))
        if set(values) & set(metrics)
    ]
    if not found:
        return [], []
    protocol = protocol_iterations(data)
    sources = "; ".join(
        f"{ref.name}: {ref.source}" for ref, _ in found if ref.source != ref.name and not ref.source.startswith(ref.name)
    )
    lines = [
        f"reference values: {objective} on {data} as published (mean ± std over {found[0][0].n} seeds"
        + (f", {protocol:,} iterations" if protocol else "")
        + ", the paper's hyperparameters)"
        + (f"; {sources}" if sources else "")
    ]
    defaults = (getattr(resolved.dataset, "objective_defaults", None) or {}).get(objective, {})
    options = resolved.objective.config.model_dump()
    changed = {k: options[k] for k in defaults if k in options and options[k] != defaults[k]}
    if protocol and iterations < protocol:
        lines.append(
            f"note: this run trained {iterations:,} iterations, shorter than the protocol ({protocol:,} "
            f"iterations on {data}): its numbers are not comparable with the reference values"
        )
    if changed:
        lines.append(
            "note: this run's hyperparameters differ from the paper's ("
            + ", ".join(f"{k}={v}" for k, v in changed.items())
            + ")"
        )
    return [(ref.name, values) for ref, values in found], lines


def _as_shape(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """uint8 images converted to another (C, H, W): grey <-> RGB (mean / repeat), bilinear resize."""
    c, h, w = shape
    xf = x.float()
    if xf.shape[1] != c:
        xf = xf.mean(1, keepdim=True) if c == 1 else xf.repeat(1, c // xf.shape[1], 1, 1)
    if xf.shape[2:] != (h, w):
        xf = torch.nn.functional.interpolate(xf, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return xf.round().clamp(0, 255).to(torch.uint8)


def ood(
    console: Console,
    runs: list[Path],
    against: str,
    score: str,
    k: int,
    n: int,
    seed: int,
    device: str | None,
    as_json: bool,
    chunk: int = EVAL_CHUNK,
    progress: Phases | None = None,
    out: Path | None = None,
) -> list[dict[str, Any]]:
    """AUROC of telling each run's test images from ``against``'s test images by ``score`` (seed 001 Table 7),
    at most ``chunk`` images (importance samples included) per pass; the ROC curves as captioned figures
    (AUROC in the legend): one per run in its directory (``RUN/ood_<against>_<score>_s<seed>.png``), or
    every run's curve in the one figure ``out``. Each row names its figure (``figure``)."""
    from ..metrics.likelihood import auroc, roc, scores
    from ..figures.pictures import roc_figure, saved_caption
    from ..plugins import state
    from ..spec import resolve

    if score not in ("elbo", "iw"):
        raise UsageError(f"unknown score '{score}'; known: elbo, iw")
    registry = state().registry
    comp, cfg = resolve(registry, "datasets", against)
    other = comp.build(cfg)
    if getattr(other, "kind", "") != "image":
        raise UsageError(f"--against needs an image dataset; '{comp.name}' is a {other.kind} dataset")
    how = f"{score} score" + (f", k {k}" if score == "iw" else "")
    rows, curves, captions = [], [], []  # the table's rows; per run its ROC curve and caption
    for run_dir in runs:
        run, built = load(run_dir, registry, device=device)
        ds = built.dataset
        if ds.kind != "image":
            raise UsageError(f"{run_dir} was trained on '{ds.name}', not an image dataset")
        x_in = ds.images("test")[0][:n]
        x_out = other.images("test")[0][:n]
        note = ""
        if tuple(x_out.shape[1:]) != tuple(ds.shape):
            note = f"{comp.name} converted {tuple(x_out.shape[1:])} -> {tuple(ds.shape)}"
            x_out = _as_shape(x_out, tuple(ds.shape))
        progress = progress or Phases()
        side = {}
        for name, x in (("in", x_in), ("out", x_out)):
            with progress.phase(
                f"ood {run_dir}: {score} scores of {ds.name if name == 'in' else comp.name}", x.shape[0]
            ) as advance:
                side[name] = scores(built.model, x, score, k, built.device, chunk, noise_key(seed, f"ood:{name}"), advance)
        s_in, s_out = side["in"], side["out"]
        rows.append(
            {
                "run": str(run_dir),
                "objective": run.objective.component.name,
                "prior": run.prior.component.name,
                "data": ds.name,
                "against": comp.name,
                "score": score,
                "k": k if score == "iw" else 1,
                "n_in": len(s_in),
                "n_out": len(s_out),
                "auroc": auroc(s_in, s_out),
                "mean_score_in": float(s_in.mean()),
                "mean_score_out": float(s_out.mean()),
                "note": note,
            }
        )
        curves.append((*roc(s_in, s_out), rows[-1]["auroc"]))
        captions.append(
            saved_caption(
                run, built, f"OOD: {ds.name} test vs {comp.name} test, {how}, {len(s_in)} + {len(s_out)} images, seed {seed}"
            )
        )
    title = f"ROC: in-distribution test data (positive) vs {comp.name}, {score} score"
    if out is None:  # one figure per run, in its directory
        for run_dir, r, curve, caption in zip(runs, rows, curves, captions):
            r["figure"] = str(Path(run_dir) / f"ood_{comp.name}_{score}_s{seed}.png")
            roc_figure([(f"{r['objective']}, prior {r['prior']}", *curve)], title, caption).save(r["figure"])
    else:  # every run's curve in one figure
        out.parent.mkdir(parents=True, exist_ok=True)
        caption = captions[0] if len(rows) == 1 else f"OOD: test data vs {comp.name} test, {how}, seed {seed}"
        roc_figure(
            [(f"{Path(r['run']).name} ({r['objective']}, prior {r['prior']})", *curve) for r, curve in zip(rows, curves)],
            title,
            caption,
        ).save(out)
        for r in rows:
            r["figure"] = str(out)
    if as_json:
        console.print_json(json.dumps(rows))
        return rows
    table = Table(title=f"OOD detection: in-distribution test data vs {comp.name} ({score} score)")
    for col in ("run", "objective", "prior", "data", "AUROC ↑", "mean score in", "mean score out"):
        table.add_column(col, justify="right" if col[0].isupper() or col.startswith("mean") else "left")
    for r in rows:
        table.add_row(
            r["run"],
            r["objective"],
            r["prior"],
            r["data"],
            f"{r['auroc']:.4f}",
            f"{r['mean_score_in']:.1f}",
            f"{r['mean_score_out']:.1f}",
        )
    console.print(table)
    for note in sorted({r["note"] for r in rows if r["note"]}):
        console.print(f"note: {note}", highlight=False)
    for figure in dict.fromkeys(r["figure"] for r in rows):
        console.print(f"ROC curves -> {figure}", highlight=False)
    return rows


def _load_run(run_dir: Path, device: str | None):
    return load(run_dir, device=device)


def traverse(
    console, run_dir: Path, out: Path | None, span: float, steps: int, around: str, index: int, seed: int, device: str | None
) -> Path:
    run, built = _load_run(run_dir, device)
    out = out or Path(run_dir) / f"traverse_{around}.png"
    latent.traverse_run(built, out, span, steps, around, index, seed, run)
    console.print(
        f"traversal ({built.model.zdim} dims x {steps} steps, ±{span:g} around the {around}) -> {out}", highlight=False
    )
    return out


def interpolate(
    console, run_dir: Path, out: Path | None, pairs: int, steps: int, mode: str, seed: int, device: str | None
) -> Path:
    run, built = _load_run(run_dir, device)
    out = out or Path(run_dir) / f"interpolate_{mode}_s{seed}.png"
    latent.interpolate_run(built, out, pairs, steps, mode, seed, run)
    console.print(f"{pairs} {mode} interpolations x {steps} steps -> {out}", highlight=False)
    return out
