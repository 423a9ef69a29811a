"""Published reference values: one table in the package (introzoo/references.py), the same as the sweep
files' [published] / [references.*] tables, printed beside a finished run's metrics with a note when the
run is shorter than the papers' protocol."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from introzoo import references
from introzoo.cli import main
from introzoo.plugins import registry

ROOT = Path(__file__).resolve().parents[1]


def _toml(name: str) -> dict:
    return tomllib.loads((ROOT / "benchmarks" / name).read_text())


def test_the_package_table_is_the_benchmark_files_table():
    best = _toml("toy2d_best.toml")
    assert best["published"] == references.TABLE2.values
    assert best["sweep"]["published_n"] == references.TABLE2.n
    assert best["sweep"]["published_source"] == references.TABLE2.source
    official = best["references"][references.OFFICIAL_RERUN.column]
    assert {k: v for k, v in official.items() if isinstance(v, dict)} == references.OFFICIAL_RERUN.values
    assert official["n"] == references.OFFICIAL_RERUN.n and official["source"] == references.OFFICIAL_RERUN.source
    assert _toml("toy2d.toml")["published"] == references.TABLE2.values  # the selection protocol's file too
    tables = references.sweep_tables()
    assert tables["published"] == best["published"] and set(tables["references"]) == {"official_reproduced"}


def test_the_prior_learning_papers_columns_are_the_benchmark_files_tables():
    replicated = _toml("toy2d_replicated.toml")["references"][references.REPLICATED.column]
    assert {k: v for k, v in replicated.items() if isinstance(v, dict)} == references.REPLICATED.values
    assert replicated["n"] == references.REPLICATED.n and replicated["source"] == references.REPLICATED.source
    prior = _toml("toy2d_prior.toml")
    assert prior["published"] == references.TABLE1.values
    assert prior["sweep"]["published_n"] == references.TABLE1.n
    assert prior["sweep"]["published_source"] == references.TABLE1.source
    # Table 1's column 2 (S-IntroVAE, SG) is Table 4's column 5 (replicated)
    assert {d: rows["soft @ sg"] for d, rows in references.TABLE1.values.items()} == {
        d: rows["soft"] for d, rows in references.REPLICATED.values.items()
    }
    # the sweep files' hyperparameters are Table 3's
    for data, (beta_rec, beta_kl, beta_neg) in references.TABLE3.items():
        soft = f"soft,beta_rec={beta_rec},beta_kl={beta_kl},beta_neg={beta_neg}"
        assert _toml("toy2d_replicated.toml")["sweep"]["objective"][data] == [soft]
        assert soft in prior["sweep"]["objective"][data]
    # neither column is printed by `introzoo run` (other hyperparameters or priors than its defaults)
    assert references.REPLICATED not in references.REFERENCES and references.TABLE1 not in references.REFERENCES


def test_the_protocol_length_is_the_datasets_default():
    reg = registry()
    for data, iterations in references.PROTOCOL_ITERATIONS.items():
        comp = reg.get("datasets", data)
        assert comp.build(comp.config()).train_defaults["iterations"] == iterations == 30_000
    assert set(references.PROTOCOL_ITERATIONS) == set(references.TABLE2.values)


def test_which_references_a_run_has():
    found = references.for_run("8gaussians", "soft")
    assert [ref.name for ref, _ in found] == ["Soft-IntroVAE Table 2", "official code rerun"]
    assert found[0][1]["kl"] == [1.25, 0.11]
    assert [ref.name for ref, _ in references.for_run("rings", "vae")] == ["Soft-IntroVAE Table 2"]
    assert references.for_run("rings", "soft", prior="mog") == []  # the papers' 2D numbers are for sg
    assert references.for_run("rings", "soft", regularizers=1) == []
    assert references.for_run("moons", "vae") == [] and references.protocol_iterations("moons") is None
    assert references.fmt(8.13, 0.3) == "8.13 ± 0.3"


def test_internal_paper_labels_become_paper_names():
    assert (
        references.plain("seed 001 Table 2 (mean ± std over 5 seeds)") == "Soft-IntroVAE Table 2 (mean ± std over 5 seeds)"
    )
    assert references.plain("seed 003 Table 4 column 2") == "Prior Learning in Introspective VAEs Table 4 column 2"
    assert references.plain("seed 004's Table 2; seed 002 Table 5") == "dpVAE's Table 2; Soft-IntroVAE Table 5"
    assert references.plain("50 seeds, seed 0") == "50 seeds, seed 0"


CHEAP = ["-m", "kl,n_samples=300", "-m", "jsd,n_samples=300"]


def test_a_short_2d_run_prints_the_papers_values_and_says_it_is_shorter(tmp_path, capsys):
    out = tmp_path / "soft"
    assert (
        main(
            [
                "run",
                "-o",
                "soft,num_vae=10",
                "-d",
                "8gaussians",
                "-n",
                "30",
                *CHEAP,
                "--threads",
                "1",
                "-q",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "Soft-IntroVAE Table 2" in text and "official code rerun" in text
    assert "1.25 ± 0.11" in text and "0.96 ± 0.15" in text  # Table 2: soft on 8gaussians, KL and JSD
    assert "1.33 ± 0.52" in text  # the official code rerun's KL
    assert "shorter than the protocol (30,000 iterations on 8gaussians)" in text
    assert "not comparable" in text and "num_vae=10" in text  # and it says what differs from the paper
    assert "seed 00" not in text and "SPEC" not in text

    # the same command again: nothing trained, it says where the finished run is
    before = (out / "metrics.json").stat().st_mtime_ns
    assert (
        main(
            [
                "run",
                "-o",
                "soft,num_vae=10",
                "-d",
                "8gaussians",
                "-n",
                "30",
                *CHEAP,
                "--threads",
                "1",
                "-q",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    again = capsys.readouterr().out
    assert again.startswith(f"already finished: {out}") and "1.25 ± 0.11" in again
    assert (out / "metrics.json").stat().st_mtime_ns == before
    assert (
        main(
            [
                "run",
                "-o",
                "soft,num_vae=10",
                "-d",
                "8gaussians",
                "-n",
                "30",
                *CHEAP,
                "--threads",
                "1",
                "--json",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "finished" and "already finished" in captured.err


def test_no_reference_for_a_prior_the_papers_did_not_use(tmp_path, capsys):
    assert (
        main(
            [
                "run",
                "-o",
                "vae",
                "-p",
                "mog:2",
                "-d",
                "rings",
                "-n",
                "5",
                "-m",
                "kl,n_samples=200",
                "--threads",
                "1",
                "-q",
                "--out",
                str(tmp_path / "mog"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "Soft-IntroVAE Table 2" not in text and "protocol" not in text
