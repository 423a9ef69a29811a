"""Leaderboards for papers: one precision per metric column, published rows right after the row they are
compared with, the iteration count beside the protocol's, options that define a row, LaTeX, a terminal
table within 120 columns, and one line when a sweep has no published numbers."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from introzoo.sweeps import leaderboard as lb
from introzoo.cli import main
from introzoo.training.run_dir import atomic_write_json
from introzoo.sweeps.grid import load_sweep_file

ROOT = Path(__file__).resolve().parents[1]
DIRECTIONS = {"kl": "min", "jsd": "min", "gnelbo": "min"}


def _run(
    root: Path,
    h: str,
    data: str,
    obj: str,
    seed: int,
    metrics: dict,
    options: dict | None = None,
    iterations: int = 3000,
    prior: str = "sg",
) -> None:
    d = root / "runs" / h
    d.mkdir(parents=True)
    atomic_write_json(
        d / "config.json",
        {
            "hash": h,
            "config_key": f"{data}-{obj}-{json.dumps(options or {}, sort_keys=True)}-{prior}",
            "seed": seed,
            "train": {"iterations": iterations, "batch_size": 512},
            "objective": {"name": obj, "options": options or {}},
            "prior": {"name": prior, "options": {}},
            "backbone": {"name": "mlp", "options": {"hidden": 256}},
            "data": {"name": data, "options": {}},
        },
    )
    atomic_write_json(d / "metrics.json", {"status": "finished", "metrics": metrics, "directions": DIRECTIONS})


def _paper_like_store(root: Path, iterations: int = 3000, seeds: int = 5) -> None:
    """toy2d_best's 60 runs, each seed within about a std of Table 2, the manifest of the sweep file."""
    spec = load_sweep_file(ROOT / "benchmarks" / "toy2d_best.toml").model_dump(mode="json")
    runs = []
    for data in spec["data"]:
        for obj in spec["objective"]:
            ref = spec["published"][data][obj]
            for s in range(seeds):
                h = f"{data}-{obj}-{s}"
                runs.append(h)
                shift = (s - (seeds - 1) / 2) / 2
                _run(
                    root,
                    h,
                    data,
                    obj,
                    s,
                    {m: v[0] + shift * v[1] for m, v in ref.items()},
                    {"beta_rec": 0.2, "beta_kl": 0.3},
                    iterations,
                )
    atomic_write_json(root / "sweep.json", {"runs": runs, "spec": spec})


def _board(root: Path, capsys, *args: str) -> str:
    assert main(["leaderboard", str(root), *args]) == 0
    return capsys.readouterr().out


def test_one_precision_per_column():
    assert lb.column_decimals([(1.25, 0.11, 5), (10.0, 0.5, 5)]) == 2  # 0.11 starts with 1: two digits
    assert lb.column_decimals([(8.13, 0.3, 5), (10.2, 0.39, 5)]) == 1
    assert lb.column_decimals([(5.21, 0.04, 5), (5.47, 0.05, 5)]) == 2
    assert lb.column_decimals([(367.0, 12.0, 5), (410.0, 35.0, 5)]) == 0
    assert lb.column_decimals([(1.34, 0.0, 1), (10.82, 0.0, 1)]) == 1  # single seeds: the spread
    assert lb.column_decimals([(197.1, 0.0, 1), (197.3, 0.0, 1)]) == 2
    assert lb.column_decimals([(0.542, 0.0, 1)]) == 3  # a lone value: three significant digits
    assert lb.fmt_stat((1.5, 0.0, 1), places=2) == "1.50"  # one seed: no "± 0"
    assert lb.fmt_stat((7.4, 0.07, 5), places=2) == "7.40 ± 0.07"


def test_the_terminal_table_fits_120_columns_and_puts_references_beside_ours(tmp_path, capsys):
    _paper_like_store(tmp_path)
    out = tmp_path / "board.txt"  # written at 200 columns: the table's own width, not the terminal's
    assert main(["leaderboard", str(tmp_path), "--published", "--out", str(out)]) == 0
    text = out.read_text()
    table = [line for line in text.splitlines() if "±" in line or line.lstrip().startswith("#")]
    assert max(len(line) for line in table) <= 120, "\n".join(table)
    assert len([line for line in table if "(published)" in line]) == 12  # every row on one line
    assert "every row: prior sg, backbone mlp" in text  # equal columns leave the table
    assert "diverged" not in text.splitlines()[2]  # and so do the counts when all are 0
    assert "[1] soft (official_reproduced)" in text  # a long label moves to a legend
    assert "published: Soft-IntroVAE Table 2 (mean ± std over 5 seeds)" in text
    # interleaved: each group is ours, then the paper's row, then the rerun's (soft)
    rows = [line.split() for line in table if "±" in line]
    for i, cells in enumerate(rows):
        if "(published)" in " ".join(cells):
            ours = rows[i - 1]
            assert ours[0].isdigit() and ours[2] == cells[1] and ours[1] == cells[0]  # rank, data, objective
    # the iteration count beside the protocol's
    assert "3,000 / 30,000" in text and "iterations a / b: 12 row(s)" in text and "not comparable" in text


def test_every_format_has_the_new_columns_and_keeps_the_verdict(tmp_path, capsys):
    _paper_like_store(tmp_path, iterations=30_000)
    board = json.loads(_board(tmp_path, capsys, "--published", "-f", "json"))
    order = [(r["data"], r["objective"]) for r in board["rows"]]
    i = order.index(("8gaussians", "soft"))
    assert order[i + 1 : i + 3] == [("8gaussians", "soft (published)"), ("8gaussians", "soft (official_reproduced)")]
    ours = board["rows"][i]
    assert ours["iterations"] == [30_000] and ours["protocol_iterations"] == 30_000
    assert board["summary"]["reported"]["cells"] == 12
    md = _board(tmp_path, capsys, "--published", "-f", "md")
    assert md.splitlines()[2].startswith("| rank | data | objective |") and "| iterations |" in md
    assert "| 30,000 |" in md and "/ 30,000" not in md  # at the protocol: no note
    assert "differs: " in md or "| agrees |" in md
    header = _board(tmp_path, capsys, "--published", "-f", "csv").splitlines()[0]
    assert "unfinished,iterations,protocol_iterations," in header and header.endswith("column,verdict,code")
    html = _board(tmp_path, capsys, "--published", "-f", "html")
    assert "<th>iterations</th>" in html and "cells agree with reported" in html


def test_precision_is_shared_down_a_column(tmp_path, capsys):
    _run(tmp_path, "a0", "rings", "soft", 0, {"kl": 9.0, "jsd": 4.0})
    _run(tmp_path, "a1", "rings", "soft", 1, {"kl": 9.5, "jsd": 4.1})
    _run(tmp_path, "b0", "rings", "vae", 0, {"kl": 13.04, "jsd": 7.2})
    _run(tmp_path, "b1", "rings", "vae", 1, {"kl": 13.12, "jsd": 7.3})
    md = _board(tmp_path, capsys, "-f", "md")
    kl = [line.split("|")[8].strip(" *") for line in md.splitlines() if "| rings |" in line]
    # stds 0.25 and 0.04: both rows to the second decimal (the smaller std's first digit)
    assert kl == ["9.25 ± 0.25", "13.08 ± 0.04"]
    decimals = {len(c.split(" ± ")[0].split(".")[1]) for c in kl}
    assert decimals == {2}


def test_options_the_sweep_wrote_define_the_row(tmp_path, capsys):
    spec = {
        "objective": ["vae,beta_rec=0.05,beta_kl=1.0", "soft,num_vae=300"],
        "data": ["8gaussians"],
        "prior": ["sg"],
        "iterations": 900,
        "batch_size": 256,
    }
    for s in range(2):
        _run(tmp_path, f"v{s}", "8gaussians", "vae", s, {"kl": 20.0 + s}, {"beta_rec": 0.05, "beta_kl": 1.0}, 900)
        _run(
            tmp_path,
            f"s{s}",
            "8gaussians",
            "soft",
            s,
            {"kl": 2.0 + s},
            {"beta_rec": 0.2, "beta_kl": 0.3, "beta_neg": 0.9, "num_vae": 300},
            900,
        )
    atomic_write_json(tmp_path / "sweep.json", {"runs": ["v0", "v1", "s0", "s1"], "spec": spec})
    board = json.loads(_board(tmp_path, capsys, "-f", "json"))
    assert {r["objective"] for r in board["rows"]} == {"vae,beta_rec=0.05,beta_kl=1.0", "soft,num_vae=300"}
    text = _board(tmp_path, capsys)
    assert "vae,beta_rec=0.05,beta_kl=1.0" in text and "sweep settings: iterations=900, batch_size=256" in text
    assert "900 / 30,000" in text  # shorter than the protocol of 8gaussians
    # without a manifest (or without options written), only what varies, as before
    assert lb.axis_labels([{"objective": {"name": "vae", "options": {"beta_kl": 1.0}}}])[0]["objective"] == "vae"


def test_published_says_so_when_the_sweep_has_no_numbers(tmp_path, capsys):
    for s in range(2):
        _run(tmp_path, f"r{s}", "rings", "soft", s, {"kl": 9.0 + s})
    atomic_write_json(tmp_path / "sweep.json", {"runs": ["r0", "r1"], "spec": {"objective": ["soft"], "data": ["rings"]}})
    assert main(["leaderboard", str(tmp_path), "--published", "-f", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["rows"]  # the machine-readable output stays clean
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "no published numbers for this sweep" in lines[0]
    # numbers for other datasets only
    spec = load_sweep_file(ROOT / "benchmarks" / "toy2d_best.toml").model_dump(mode="json")
    spec["published"] = {"8gaussians": spec["published"]["8gaussians"]}
    spec["references"] = {}
    atomic_write_json(tmp_path / "sweep.json", {"runs": ["r0", "r1"], "spec": spec})
    assert main(["leaderboard", str(tmp_path), "--published"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no published numbers for the datasets of this sweep (rings)" in err[0]
    assert main(["leaderboard", str(tmp_path)]) == 0  # without --published: nothing said
    assert capsys.readouterr().err == ""


def test_latex_is_a_booktabs_table(tmp_path, capsys):
    _paper_like_store(tmp_path)
    tex = _board(tmp_path, capsys, "--published", "-f", "latex")
    for part in (r"\begin{tabular}", r"\toprule", r"\midrule", r"\bottomrule", r"\end{table}", r"\caption{"):
        assert part in tex
    rows = [line for line in tex.splitlines() if line.endswith(r"\\") and r"\pm" in line]
    assert len(rows) == 12 + 12 + 4  # ours, the paper's, the rerun's (soft)
    assert re.search(r"\$\\mathbf\{\d+\.\d+ \\pm \d+\.\d+\}\$", tex)  # the best per group in bold
    assert r"$1.25 \pm 0.11$" in tex  # Table 2, soft on 8gaussians, KL: mean ± std in math mode
    assert "official\\_reproduced" in tex and "±" not in tex and "$$" not in tex
    assert tex.count(r"\midrule") == 1 + 3  # under the header, and between the four datasets
    body = tex[tex.index(r"\toprule") : tex.index(r"\bottomrule")]
    assert all(line.count("&") == body.splitlines()[1].count("&") for line in body.splitlines()[1:] if line.endswith(r"\\"))
    out = tmp_path / "t.tex"
    assert main(["leaderboard", str(tmp_path), "--published", "-f", "latex", "--out", str(out)]) == 0
    assert out.read_text() == tex


@pytest.mark.parametrize("fmt", ["table", "md", "csv", "json", "html", "latex"])
def test_every_format_renders(tmp_path, capsys, fmt):
    for s in range(3):
        _run(tmp_path, f"r{s}", "rings", "soft", s, {"kl": 9.0 + s / 10, "jsd": math.pi})
    assert main(["leaderboard", str(tmp_path), "-f", fmt]) == 0
    assert "9.1" in capsys.readouterr().out


def test_a_reference_naming_a_regularizer_follows_that_row(tmp_path, capsys):
    regs = {"beta-h": [{"name": "beta-h", "options": {"beta": 4.0}}], "tcvae": [{"name": "tcvae", "options": {"beta": 4.0}}]}
    names = []
    for reg, kl in (("beta-h", 1.0), ("tcvae", 2.0)):  # beta-h ranks first
        for s in range(2):
            h = f"{reg}{s}"
            names.append(h)
            _run(tmp_path, h, "moons", "vae", s, {"kl": kl + s / 10}, prior="flow")
            config = json.loads((tmp_path / "runs" / h / "config.json").read_text())
            config["regularizers"], config["config_key"] = regs[reg], f"moons-vae-{reg}"
            atomic_write_json(tmp_path / "runs" / h / "config.json", config)
    spec = {
        "objective": ["vae"],
        "data": ["moons"],
        "prior": ["flow"],
        "published_source": "dpVAE Table 2",
        "published": {"moons": {"vae + tcvae @ flow": {"kl": [2.05, 0.1]}}},
        "published_n": 5,
    }
    atomic_write_json(tmp_path / "sweep.json", {"runs": names, "spec": spec})
    rows = json.loads(_board(tmp_path, capsys, "--published", "-f", "json"))["rows"]
    assert [r["objective"].split(",")[0] for r in rows] == ["vae + beta-h", "vae + tcvae", "vae + tcvae (published)"]
    assert rows[2]["verdict"]["kl"]["verdict"] == "agrees"  # judged against the tcvae row, not the best one
