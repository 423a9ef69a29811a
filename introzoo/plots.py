"""Pictures of a 2D run, drawn with Pillow: real data, generated samples, and the model's density
``exp(-negELBO(x))`` over the metric range (the official density plot)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

PANEL = 384


def jet(v: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 with the 'jet' colormap."""
    v = np.clip(v, 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def scatter_panel(points: np.ndarray, half_range: float, color=(40, 120, 200), size: int = PANEL) -> Image.Image:
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    px = (points[:, 0] + half_range) / (2 * half_range) * (size - 1)
    py = (half_range - points[:, 1]) / (2 * half_range) * (size - 1)  # y up
    for x, y in zip(px, py):
        if 0 <= x < size and 0 <= y < size:
            draw.ellipse([x - 1.2, y - 1.2, x + 1.2, y + 1.2], fill=color)
    return img


def density_panel(grid_values: np.ndarray, size: int = PANEL) -> Image.Image:
    """``grid_values``: n x n array in the 'ij' order of the evaluation grid (axis 0 = x, axis 1 = y)."""
    v = grid_values.T[::-1]  # rows = y from top (high) to bottom, columns = x
    v = v / v.max() if v.max() > 0 else v
    return Image.fromarray(jet(v)).resize((size, size), Image.BILINEAR)


def titled(panels: list[tuple[str, Image.Image]]) -> Image.Image:
    pad, title_h = 8, 22
    w = sum(p.width for _, p in panels) + pad * (len(panels) + 1)
    h = max(p.height for _, p in panels) + title_h + 2 * pad
    canvas = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    for title, panel in panels:
        draw.text((x + 4, pad), title, fill="black")
        canvas.paste(panel, (x, pad + title_h))
        draw.rectangle([x - 1, pad + title_h - 1, x + panel.width, pad + title_h + panel.height], outline="gray")
        x += panel.width + pad
    return canvas


def save_2d_figures(out_dir, real: np.ndarray, fake: np.ndarray, density: np.ndarray, half_range: float) -> list[str]:
    """Write ``samples.png`` (real | generated), ``density.png`` and ``overview.png`` (all three)."""
    real_p = scatter_panel(real, half_range)
    fake_p = scatter_panel(fake, half_range, color=(30, 150, 60))
    dens_p = density_panel(density)
    files = {
        "samples.png": titled([("real data", real_p), ("generated samples", fake_p)]),
        "density.png": titled([("density exp(-negELBO)", dens_p)]),
        "overview.png": titled([("real data", real_p), ("generated samples", fake_p),
                                ("density exp(-negELBO)", dens_p)]),
    }
    for name, img in files.items():
        img.save(f"{out_dir}/{name}")
    return list(files)


def latent_panel(z: np.ndarray, prior_density: np.ndarray, half_range: float, centers: np.ndarray | None = None,
                 size: int = PANEL) -> Image.Image:
    """The prior's density (heat map) with the aggregate posterior's samples (white dots) and, for
    mixtures, the components' means (black crosses). ``prior_density`` is n x n in 'ij' order."""
    img = density_panel(prior_density, size)
    draw = ImageDraw.Draw(img)
    to_px = lambda v: (v + half_range) / (2 * half_range) * (size - 1)  # noqa: E731
    for x, y in zip(to_px(z[:, 0]), (size - 1) - to_px(z[:, 1])):
        if 0 <= x < size and 0 <= y < size:
            draw.point((float(x), float(y)), fill="white")
    if centers is not None:
        for x, y in zip(to_px(centers[:, 0]), (size - 1) - to_px(centers[:, 1])):
            draw.line([x - 4, y - 4, x + 4, y + 4], fill="black", width=2)
            draw.line([x - 4, y + 4, x + 4, y - 4], fill="black", width=2)
    return img


def save_latent_figure(out_dir, z: np.ndarray, prior_density: np.ndarray, half_range: float,
                       centers: np.ndarray | None) -> str:
    titled([("latent: prior density, aggregate posterior (dots), components (x)",
             latent_panel(z, prior_density, half_range, centers))]).save(f"{out_dir}/latent.png")
    return "latent.png"


def save_image_grid(path, images, nrow: int = 8) -> str:
    """Save images ``(N, C, H, W)`` (values clipped to [0, 1]) as one PNG grid (torchvision's ``save_image``);
    images under 32 pixels wide are enlarged by nearest-neighbour repetition."""
    import torch
    from torchvision.utils import save_image

    x = images.detach().float().cpu().clamp(0, 1)
    if x.shape[-1] < 32:  # tiny images (8x8 digits) are enlarged, pixel for pixel, to be seen
        f = -(-32 // x.shape[-1])
        x = torch.nn.functional.interpolate(x, scale_factor=f, mode="nearest")
    save_image(x, str(path), nrow=nrow, padding=2, pad_value=1.0)
    return str(path.name if hasattr(path, "name") else path)
