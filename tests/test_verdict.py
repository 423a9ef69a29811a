"""Reference columns and the leaderboard's verdict: Welch's t-test of our mean ± std (n seeds) against
each reference column's, checked against a computation by hand; the summary line; the formats."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats

from introzoo.sweeps import leaderboard as lb
from introzoo.cli import main
from introzoo.training.run_dir import atomic_write_json
from introzoo.sweeps.grid import load_sweep_file

ROOT = Path(__file__).resolve().parents[1]


def _by_hand(m1, sd0, n1, m2, s2, n2):
    """Welch by hand: our ddof=0 std to the sample std, t, Welch-Satterthwaite df, two-sided p."""
    s1 = sd0 * math.sqrt(n1 / (n1 - 1))
    v1, v2 = s1**2 / n1, s2**2 / n2
    t = (m1 - m2) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    return t, df, 2 * stats.t.sf(abs(t), df)


def test_welch_against_a_hand_computation():
    # 2spirals KL: the paper's 8.13 ± 0.3 against the official code rerun, 10.21 ± 0.39 (5 seeds each)
    sd0 = 0.3 * math.sqrt(4 / 5)  # a sample std of 0.3 as the leaderboard shows it (ddof=0)
    t, df, p = _by_hand(8.13, sd0, 5, 10.21, 0.39, 5)
    assert t == pytest.approx(-2.08 / math.sqrt(0.09 / 5 + 0.1521 / 5))  # -9.453
    assert df == pytest.approx(7.506, abs=1e-3)
    assert lb.welch((8.13, sd0, 5), (10.21, 0.39, 5)) == ("differs", pytest.approx(p))
    assert p < 1e-4
    # 8gaussians KL: 1.25 ± 0.11 reported, 1.33 ± 0.52 rerun: within noise
    verdict, p2 = lb.welch((1.25, 0.11 * math.sqrt(4 / 5), 5), (1.33, 0.52, 5))
    assert verdict == "agrees" and p2 == pytest.approx(_by_hand(1.25, 0.11 * math.sqrt(4 / 5), 5, 1.33, 0.52, 5)[2])
    # at the edge of the level: a mean placed where p is just under / over 5%
    crit = stats.t.ppf(0.975, 8.0)  # equal stds and n: df = 2(n-1) = 8
    half = crit * math.sqrt(2 * 0.5**2 / 5)
    sd0 = 0.5 * math.sqrt(4 / 5)
    assert lb.welch((half * 1.01, sd0, 5), (0.0, 0.5, 5))[0] == "differs"
    assert lb.welch((half * 0.99, sd0, 5), (0.0, 0.5, 5))[0] == "agrees"
    # what cannot be tested
    assert lb.welch((1.0, 0.1, 1), (1.0, 0.1, 5)) == ("untested", None)
    assert lb.welch((1.0, 0.1, 3), (1.0, float("nan"), 5)) == ("untested", None)
    assert lb.welch((1.0, 0.1, 3), (1.0, 0.1, 0)) == ("untested", None)


def _fake_run(root: Path, h: str, data: str, obj: str, seed: int, metrics: dict):
    d = root / "runs" / h
    d.mkdir(parents=True)
    atomic_write_json(
        d / "config.json",
        {
            "hash": h,
            "config_key": f"{data}-{obj}",
            "seed": seed,
            "train": {"iterations": 100},
            "objective": {"name": obj, "options": {}},
            "prior": {"name": "sg", "options": {}},
            "data": {"name": data, "options": {}},
        },
    )
    atomic_write_json(d / "metrics.json", {"status": "finished", "metrics": metrics, "directions": {"kl": "min"}})


def test_leaderboard_judges_every_cell_against_every_column(tmp_path, capsys):
    spec = load_sweep_file(ROOT / "benchmarks" / "toy2d_best.toml").model_dump(mode="json")
    assert spec["published_n"] == 5 and set(spec["references"]) == {"official_reproduced"}
    atomic_write_json(tmp_path / "sweep.json", {"runs": [f"r{i}" for i in range(8)], "spec": spec})
    for s, kl in enumerate((10.0, 10.4, 10.2, 10.3, 10.1)):  # soft on 2spirals: about the rerun's 10.21
        _fake_run(tmp_path, f"r{s}", "2spirals", "soft", s, {"kl": kl})
    for s, kl in enumerate((1.2, 1.3, 1.25)):  # soft on 8gaussians
        _fake_run(tmp_path, f"r{5 + s}", "8gaussians", "soft", s, {"kl": kl})
    assert main(["leaderboard", str(tmp_path), "--published", "-f", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    refs = {(r["data"], r["column"]): r for r in out["rows"] if r["published"] and r["objective"].startswith("soft")}
    assert refs[("2spirals", "reported")]["verdict"]["kl"]["verdict"] == "differs"  # 8.13 ± 0.3
    assert refs[("2spirals", "official_reproduced")]["verdict"]["kl"]["verdict"] == "agrees"  # 10.21 ± 0.39
    assert refs[("8gaussians", "reported")]["verdict"]["kl"]["verdict"] == "agrees"
    ours = [r for r in out["rows"] if not r["published"] and r["data"] == "2spirals"][0]["metrics"]["kl"]
    p = _by_hand(ours["mean"], ours["std"], 5, 10.21, 0.39, 5)[2]
    assert refs[("2spirals", "official_reproduced")]["verdict"]["kl"]["p"] == pytest.approx(p)
    assert out["summary"]["reported"] == {"agree": 1, "cells": 2}
    assert out["summary"]["official_reproduced"] == {"agree": 2, "cells": 2}
    assert main(["leaderboard", str(tmp_path), "--published"]) == 0
    text = capsys.readouterr().out
    assert "1 of 2 cells agree with reported" in text and "2 of 2 cells agree with official_reproduced" in text
    assert main(["leaderboard", str(tmp_path), "--published", "-f", "md"]) == 0
    md = capsys.readouterr().out
    assert "| verdict |" in md and "differs: kl p=" in md and "cells agree with" in md
    assert main(["leaderboard", str(tmp_path), "--published", "-f", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("column,verdict,code")
