"""Draws docs/dataflow.svg, the data flow of a solo run and of a packed sweep (docs/architecture.md).

    python docs/figures/dataflow.py

Plain SVG from the standard library: boxes (module, then what it makes) joined by arrows, one row per
path; the boxes that a solo run and a pack member share are drawn in the same colour.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

W, BOX_W, BOX_H = 1320, 164, 78
SHARED, PACK, STORE, INPUT = "#dbeafe", "#fde68a", "#dcfce7", "#f3f4f6"

SOLO = [
    ("introzoo run", "CLI options, spec strings", INPUT),
    ("config.resolve()", "registry + dataset defaults -> ResolvedRun, hash", SHARED),
    ("training.loop.build()", "dataset, VAE(backbone, prior), objective", SHARED),
    ("objective.train_step(x)", "its optimisers, encoder then decoder", SHARED),
    ("RunRecorder", "history, divergence, hooks, grids, resume.pt", SHARED),
    ("run directory", "config.json, checkpoint.pt, pictures, metrics.json last", STORE),
]
PACKED = [
    ("introzoo sweep --pack", "sweep file: the grid", INPUT),
    ("config.resolve() x N", "once each, in the sweep's process", SHARED),
    ("sweeps.packs", "compatible records grouped; executor (local, Slurm)", PACK),
    ("packing.loop.train_pack", "one dataset, PackedVAE: members stacked", PACK),
    ("objective.train_step", "the same step, on a view of the members", SHARED),
    ("RunRecorder x N", "one per member, as in its solo run", SHARED),
    ("run directories", "each member's = its solo run's; leaderboard reads them", STORE),
]


def _text(x: float, y: float, s: str, size: int, weight: str = "normal") -> str:
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" font-weight="{weight}" text-anchor="middle" '
        f'font-family="DejaVu Sans, Arial, sans-serif">{escape(s)}</text>'
    )


def _wrap(s: str, width: int = 24) -> list[str]:
    lines, cur = [], ""
    for word in s.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
    return lines + [cur]


def row(boxes: list[tuple[str, str, str]], y: float, title: str) -> list[str]:
    out = [
        f'<text x="20" y="{y - 14:.0f}" font-size="15" font-weight="bold" '
        f'font-family="DejaVu Sans, Arial, sans-serif">{escape(title)}</text>'
    ]
    step = (W - 40 - BOX_W) / (len(boxes) - 1)
    for i, (name, what, colour) in enumerate(boxes):
        x = 20 + i * step
        out.append(
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{colour}" stroke="#374151"/>'
        )
        out.append(_text(x + BOX_W / 2, y + 18, name, 11, "bold"))
        for k, line in enumerate(_wrap(what)):
            out.append(_text(x + BOX_W / 2, y + 36 + 13 * k, line, 10))
        if i:
            x0 = 20 + (i - 1) * step + BOX_W
            out.append(
                f'<line x1="{x0 + 2:.0f}" y1="{y + BOX_H / 2:.0f}" x2="{x - 4:.0f}" y2="{y + BOX_H / 2:.0f}" '
                'stroke="#374151" stroke-width="1.5" marker-end="url(#arrow)"/>'
            )
    return out


def draw() -> str:
    h = 2 * (BOX_H + 60) + 70
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#374151"/></marker></defs>',
        f'<rect width="{W}" height="{h}" fill="white"/>',
    ]
    parts += row(SOLO, 40, "A solo run: introzoo run / introzoo.train()")
    parts += row(PACKED, 40 + BOX_H + 70, "A packed sweep: introzoo sweep --pack (N runs trained as one model)")
    y = 2 * (BOX_H + 70) + 20
    for i, (colour, what) in enumerate(
        [
            (SHARED, "the same code for solo runs and pack members"),
            (PACK, "packing only"),
            (STORE, "what is written"),
            (INPUT, "input"),
        ]
    ):
        x = 20 + i * 380
        parts.append(f'<rect x="{x}" y="{y}" width="18" height="14" fill="{colour}" stroke="#374151"/>')
        parts.append(
            f'<text x="{x + 26}" y="{y + 12}" font-size="12" '
            f'font-family="DejaVu Sans, Arial, sans-serif">{escape(what)}</text>'
        )
    return "\n".join(parts + ["</svg>"]) + "\n"


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "dataflow.svg"
    out.write_text(draw())
    print(f"wrote {out}")
