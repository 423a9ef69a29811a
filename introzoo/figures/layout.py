"""Compact annotated figures, drawn with Pillow: scatter, heat-map and curve panels with small axis ticks and
axis labels, a colour bar for densities, a legend for curves, row labels for image grids, and a caption with
the run's information.

A figure is first described (:class:`Panel` and :class:`Figure`, :class:`ImageRows`: titles, tick values,
axis labels, colour-bar range, legend, row labels, caption), then drawn by ``render()``; the description is
what the tests inspect. :mod:`introzoo.figures.pictures` builds the run's figures from these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

FONT_SIZE = 11
TICK = 3  # tick length, pixels
BAR_W = 10  # colour-bar width, pixels
PAD = 6


@lru_cache(maxsize=4)
def font(size: int = FONT_SIZE) -> ImageFont.ImageFont:
    """Pillow's built-in font at ``size`` pixels (its bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def text_size(text: str, size: int = FONT_SIZE) -> tuple[int, int]:
    if not text:
        return 0, 0
    left, top, right, bottom = font(size).getbbox(text)
    return int(right - min(left, 0)), int(bottom)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round values (multiples of 1, 2 or 5 times a power of ten) inside ``[lo, hi]``, as close to ``n`` of
    them as such a step gives (on a tie, the finer step)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return []
    e = math.floor(math.log10((hi - lo) / max(1, n - 1)))
    best: list[float] = []
    for step in sorted(m * 10.0**k for k in (e - 1, e, e + 1) for m in (1, 2, 5)):
        ticks = [round(i * step, 10) for i in range(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)]
        if not best or abs(len(ticks) - n) < abs(len(best) - n):
            best = ticks
    return best


def tick_label(v: float) -> str:
    """A short label: ``2``, ``-0.5``, ``1.2e-05``."""
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-2:
        return f"{v:.1e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:.3g}"


def jet(v: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 with the 'jet' colormap."""
    v = np.clip(v, 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


@dataclass
class Panel:
    """One square plot: ``image`` covers ``[-extent, extent]^2`` (ticks on both axes when ``extent`` is
    given), or ``limits`` = (low, high) on both axes; ``colorbar``: the (low, high) values the heat map's
    colours stand for; ``xlabel`` / ``ylabel``: what the axes measure; ``legend``: (label, colour) per
    curve, drawn in the lower right corner."""

    title: str
    image: Image.Image
    extent: float | None = None
    colorbar: tuple[float, float] | None = None
    limits: tuple[float, float] | None = None
    xlabel: str = ""
    ylabel: str = ""
    legend: list[tuple[str, tuple[int, int, int]]] = field(default_factory=list)

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The axes' (low, high): ``limits``, else ``(-extent, extent)``; None without ticks."""
        if self.limits is not None:
            return self.limits
        return (-self.extent, self.extent) if self.extent else None

    @property
    def ticks(self) -> list[float]:
        return nice_ticks(*self.bounds) if self.bounds else []

    @property
    def tick_labels(self) -> list[str]:
        return [tick_label(t) for t in self.ticks]

    @property
    def colorbar_labels(self) -> list[str]:
        return [tick_label(v) for v in self.colorbar] if self.colorbar else []


def _draw_ticks(draw: ImageDraw.ImageDraw, p: Panel, x0: int, y0: int) -> None:
    w, h = p.image.size
    lo, hi = p.bounds
    for t, label in zip(p.ticks, p.tick_labels):
        f = (t - lo) / (hi - lo)
        px, py = x0 + f * (w - 1), y0 + (1 - f) * (h - 1)
        draw.line([px, y0 + h, px, y0 + h + TICK], fill="black")  # x axis, below
        tw, th = text_size(label)
        draw.text((px - tw / 2, y0 + h + TICK + 1), label, fill="black", font=font())
        draw.line([x0 - TICK - 1, py, x0 - 1, py], fill="black")  # y axis, left
        draw.text((x0 - TICK - 3 - tw, py - th / 2 - 1), label, fill="black", font=font())


def _draw_axis_labels(
    canvas: Image.Image, draw: ImageDraw.ImageDraw, p: Panel, x_left: int, x0: int, y0: int, bottom: int
) -> None:
    """``xlabel`` centred under the x axis, ``ylabel`` turned upright at the panel's left edge."""
    w, h = p.image.size
    if p.xlabel:
        tw, _ = text_size(p.xlabel)
        draw.text((x0 + (w - tw) / 2, y0 + h + bottom - FONT_SIZE - 2), p.xlabel, fill="black", font=font())
    if p.ylabel:
        tw, _ = text_size(p.ylabel)
        label = Image.new("RGB", (tw + 2, FONT_SIZE + 3), "white")
        ImageDraw.Draw(label).text((1, 0), p.ylabel, fill="black", font=font())
        label = label.rotate(90, expand=True)
        canvas.paste(label, (x_left, int(y0 + (h - label.height) / 2)))


def _draw_legend(draw: ImageDraw.ImageDraw, p: Panel, x0: int, y0: int) -> None:
    """A white box in the panel's lower right corner: a short line in each curve's colour and its label."""
    w, h = p.image.size
    line_h = FONT_SIZE + 4
    box_w = 22 + max(text_size(label)[0] for label, _ in p.legend) + 2 * PAD
    box_h = line_h * len(p.legend) + PAD
    bx, by = x0 + w - box_w - PAD, y0 + h - box_h - PAD
    draw.rectangle([bx, by, bx + box_w, by + box_h], fill="white", outline="gray")
    for i, (label, colour) in enumerate(p.legend):
        y = by + PAD // 2 + i * line_h + line_h / 2
        draw.line([bx + PAD, y, bx + PAD + 16, y], fill=colour, width=2)
        draw.text((bx + PAD + 22, y - FONT_SIZE / 2 - 1), label, fill="black", font=font())


def _draw_colorbar(canvas: Image.Image, draw: ImageDraw.ImageDraw, p: Panel, x0: int, y0: int) -> None:
    h = p.image.height
    ramp = jet(np.linspace(1, 0, h)[:, None].repeat(BAR_W, 1))
    canvas.paste(Image.fromarray(ramp), (x0, y0))
    draw.rectangle([x0 - 1, y0 - 1, x0 + BAR_W, y0 + h], outline="gray")
    lo, hi = p.colorbar_labels
    draw.text((x0 + BAR_W + 3, y0 - 2), hi, fill="black", font=font())
    draw.text((x0 + BAR_W + 3, y0 + h - FONT_SIZE - 1), lo, fill="black", font=font())


@dataclass
class Figure:
    """Panels side by side under their titles, with a caption line (the run's information)."""

    panels: list[Panel]
    caption: str = ""

    def _margins(self, p: Panel) -> tuple[int, int, int]:
        left = (TICK + 4 + max(text_size(t)[0] for t in p.tick_labels)) if p.ticks else 0
        left += FONT_SIZE + 6 if p.ylabel else 0
        bottom = TICK + FONT_SIZE + 3 if p.ticks else 0
        bottom += FONT_SIZE + 4 if p.xlabel else 0
        right = (BAR_W + 5 + max(text_size(t)[0] for t in p.colorbar_labels)) if p.colorbar else 0
        return left, bottom, right

    def render(self) -> Image.Image:
        title_h = FONT_SIZE + 5
        cap_h = FONT_SIZE + 6 if self.caption else 0
        widths = [m[0] + p.image.width + m[2] for p, m in ((p, self._margins(p)) for p in self.panels)]
        w = max(sum(widths) + PAD * (len(self.panels) + 1), text_size(self.caption)[0] + 2 * PAD)
        h = cap_h + PAD + title_h + max(p.image.height + self._margins(p)[1] for p in self.panels) + PAD
        canvas = Image.new("RGB", (w, h), "white")
        draw = ImageDraw.Draw(canvas)
        if self.caption:
            draw.text((PAD, PAD // 2 + 1), self.caption, fill=(60, 60, 60), font=font())
        x = PAD
        for p, width in zip(self.panels, widths):
            left, bottom, _ = self._margins(p)
            y0 = cap_h + PAD + title_h
            draw.text((x + left, cap_h + PAD), p.title, fill="black", font=font())
            canvas.paste(p.image, (x + left, y0))
            draw.rectangle([x + left - 1, y0 - 1, x + left + p.image.width, y0 + p.image.height], outline="gray")
            if p.ticks:
                _draw_ticks(draw, p, x + left, y0)
            if p.colorbar:
                _draw_colorbar(canvas, draw, p, x + left + p.image.width + 4, y0)
            if p.xlabel or p.ylabel:
                _draw_axis_labels(canvas, draw, p, x, x + left, y0, bottom)
            if p.legend:
                _draw_legend(draw, p, x + left, y0)
            x += width + PAD
        return canvas

    def save(self, path) -> None:
        self.render().save(path)


@dataclass
class ImageRows:
    """An image grid with a label at the start of each row and a caption (e.g. iteration and epoch).
    ``rows``: (label, images ``(N, C, H, W)`` in [0, 1]) per row; every row has the same count."""

    rows: list[tuple[str, torch.Tensor]]
    caption: str = ""
    padding: int = 2
    #: images under this width are enlarged, pixel for pixel, to be seen
    min_width: int = field(default=32, repr=False)

    @property
    def row_labels(self) -> list[str]:
        return [label for label, _ in self.rows]

    def render(self) -> Image.Image:
        from torchvision.utils import make_grid

        x = torch.cat([imgs for _, imgs in self.rows]).detach().float().cpu().clamp(0, 1)
        if x.shape[-1] < self.min_width:
            x = torch.nn.functional.interpolate(x, scale_factor=-(-self.min_width // x.shape[-1]), mode="nearest")
        per_row = self.rows[0][1].shape[0]
        grid = make_grid(x, nrow=per_row, padding=self.padding, pad_value=1.0)
        grid = Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        label_w = max(text_size(t)[0] for t in self.row_labels) + PAD
        cap_h = FONT_SIZE + 6 if self.caption else 0
        width = max(label_w + grid.width, text_size(self.caption)[0] + PAD)
        canvas = Image.new("RGB", (width, cap_h + grid.height), "white")
        canvas.paste(grid, (label_w, cap_h))
        draw = ImageDraw.Draw(canvas)
        if self.caption:
            draw.text((PAD // 2, 3), self.caption, fill=(60, 60, 60), font=font())
        cell = x.shape[-2] + self.padding
        for i, label in enumerate(self.row_labels):
            y = cap_h + self.padding + i * cell + (x.shape[-2] - FONT_SIZE) / 2
            draw.text((PAD // 2, y), label, fill="black", font=font())
        return canvas

    def save(self, path) -> None:
        self.render().save(path)
