"""Per-dataset component axes of a sweep ([sweep.objective] / [sweep.prior] tables), constraints on the
components' names, and the two sweep files built on them: benchmarks/toy2d_replicated.toml (the
prior-learning paper's Table 3 hyperparameters) and benchmarks/toy2d_prior.toml (its Table 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from introzoo.sweeps import leaderboard as lb
from introzoo import plugins
from introzoo.cli import main
from introzoo.errors import UsageError
from introzoo.sweeps.grid import SweepSpec, component_names, expand, load_sweep_file, satisfies
from introzoo.cli.sweep_run import build_spec

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _run(t) -> tuple:
    """(data, objective, its beta options, prior, prior options, regularizer names) of a task."""
    c = t.config
    o, p = c["objective"], c["prior"]
    betas = tuple(o["options"].get(k) for k in ("beta_rec", "beta_kl", "beta_neg"))
    return (
        c["data"]["name"],
        o["name"],
        betas,
        p["name"],
        json.dumps(p["options"], sort_keys=True),
        tuple(r["name"] for r in c["regularizers"]),
    )


def test_each_dataset_is_crossed_with_its_own_alternatives_only():
    reg = plugins.registry()
    spec = SweepSpec(
        data=["8gaussians", "rings"],
        seeds=2,
        objective={"8gaussians": ["soft,beta_kl=0.1|0.3"], "rings": ["vae,beta_rec=0.5"]},
        prior={"rings": ["mog:4|6"]},
    )
    tasks = expand(spec, reg)
    assert len(tasks) == (2 * 1 + 1 * 2) * 2
    got = {
        (
            t.config["data"]["name"],
            t.config["objective"]["name"],
            t.config["objective"]["options"].get("beta_kl"),
            t.config["objective"]["options"]["beta_rec"],
            t.config["prior"]["name"],
            t.config["prior"]["options"].get("K"),
        )
        for t in tasks
    }
    assert got == {
        ("8gaussians", "soft", 0.1, 0.2, "sg", None),  # beta_rec 0.2: the dataset's default; a prior table
        ("8gaussians", "soft", 0.3, 0.2, "sg", None),  # that leaves 8gaussians out gives it sg
        ("rings", "vae", 0.05, 0.5, "mog", 4),  # rings: its own objective and priors, nothing of 8gaussians'
        ("rings", "vae", 0.05, 0.5, "mog", 6),
    }
    assert [t.config["seed"] for t in tasks] == [0, 1] * 4
    # the table form of a single dataset is the list form: the same runs
    listed = SweepSpec(data=["rings"], seeds=2, objective=["vae,beta_rec=0.5"], prior=["mog:4|6"])
    tabled = SweepSpec(data=["rings"], seeds=2, objective={"rings": ["vae,beta_rec=0.5"]}, prior={"rings": "mog:4|6"})
    assert [t.hash for t in expand(listed, reg)] == [t.hash for t in expand(tabled, reg)]


def test_a_table_naming_a_dataset_not_in_the_sweep_or_missing_one_is_refused(tmp_path):
    reg = plugins.registry()
    spec = SweepSpec(data=["8gaussians", "rings"], objective={"8gaussians": ["vae"], "ringz": ["vae"]})
    with pytest.raises(UsageError, match=r"\[sweep.objective\] table names dataset 'ringz'.*valid: 8gaussians, rings"):
        expand(spec, reg)
    with pytest.raises(UsageError, match=r"\[sweep.prior\] table names dataset 'moons'"):
        expand(SweepSpec(data=["rings"], prior={"moons": ["mog:4"]}), reg)
    with pytest.raises(UsageError, match=r"no entry for dataset 'rings'.*--objective"):
        expand(SweepSpec(data=["8gaussians", "rings"], objective={"8gaussians": ["vae"]}), reg)
    f = tmp_path / "s.toml"
    f.write_text('[sweep]\ndata = ["8gaussians", "rings"]\n[sweep.objective]\n8gaussians = ["vae"]\nringz = ["vae"]\n')
    with pytest.raises(UsageError, match=r"s.toml.*'ringz'.*valid: 8gaussians, rings"):
        load_sweep_file(f)
    f.write_text('[sweep]\n[sweep.prior]\n8gaussians = 3\n')
    with pytest.raises(UsageError, match=r"s.toml.*prior.*list of prior specs.*table"):
        load_sweep_file(f)


def test_the_command_line_overrides_a_table_and_narrows_it():
    replicated = BENCH / "toy2d_replicated.toml"
    assert build_spec(replicated, objective=["vae"]).objective == ["vae"]  # -o over the file's table
    only_rings = build_spec(replicated, data=["rings"])  # -d keeps the table's entries of those datasets
    assert only_rings.objective == {"rings": ["soft,beta_rec=0.2,beta_kl=0.2,beta_neg=0.6"]}
    assert len(expand(only_rings, plugins.registry())) == 5
    with pytest.raises(UsageError, match="no entry for dataset 'moons' \\(it names 8gaussians, 2spirals"):
        build_spec(replicated, data=["moons"])
    assert len(expand(build_spec(replicated, data=["moons"], objective=["vae"]), plugins.registry())) == 5
    # so does a metrics table: dpvae.toml's names fashion-mnist, which -d moons leaves out
    assert build_spec(BENCH / "dpvae.toml", data=["moons"]).metrics == {}


def test_constraints_on_component_names():
    names = component_names("soft-prior,beta_kl=0.3", "mog:64,learn_weights=true", "clip-logvar", "rings")
    assert names == {"objective": "soft-prior", "prior": "mog", "regularizer": "clip-logvar", "data": "rings"}
    pair = ["(objective == 'soft-prior') == (regularizer == 'clip-logvar')"]
    assert satisfies(pair, names)
    assert not satisfies(pair, {**names, "regularizer": "none"})
    assert satisfies(["beta_neg <= 5 * beta_kl", "prior != 'sg'"], {**names, "beta_kl": 0.3, "beta_neg": 0.9})
    # a name constraint is decided before a run is resolved: soft-prior with sg (refused by soft-prior
    # itself) never reaches it
    spec = SweepSpec(
        data=["rings"],
        objective=["vae", "soft-prior"],
        prior=["sg", "mog:4"],
        constraints=["objective != 'soft-prior' or prior != 'sg'", "objective != 'vae' or prior == 'sg'"],
    )
    assert sorted((_run(t)[1], _run(t)[3]) for t in expand(spec, plugins.registry())) == [
        ("soft-prior", "mog"),
        ("vae", "sg"),
    ]


def test_list_form_hashes_are_unchanged():
    """Hashes the sweep files' runs had before the tables existed (their dry runs, saved then): rerunning
    an older sweep still finds its finished runs."""
    reg = plugins.registry()
    smoke = [t.hash for t in expand(load_sweep_file(BENCH / "toy2d_smoke.toml"), reg)]
    assert smoke == ["762c3177b713", "3f979422420f", "f173bb492b97", "53d42e0ea938"]
    best = [t.hash for t in expand(load_sweep_file(BENCH / "toy2d_best.toml"), reg)]
    assert len(best) == 60 and best[:3] == ["29cd470a0b78", "6a6098cf8e88", "72a8b020dd8b"] and best[-1] == "8e31948ee1f6"
    committed = {p.name for p in (BENCH / "results" / "toy2d_best" / "runs").iterdir() if p.is_dir()}
    assert committed and committed <= set(best)


# The prior-learning paper's Table 3 (Soft-IntroVAE under SG, the authors' grid search), read from the paper:
TABLE3 = {
    "8gaussians": (0.2, 0.3, 0.9),
    "2spirals": (0.2, 0.05, 0.2),
    "checkerboard": (0.05, 0.2, 0.8),
    "rings": (0.2, 0.2, 0.6),
}
# The authors' 2D configuration, 2D/utils/configs.py get_config, "VAE": (beta_rec, beta_kl)
VAE = {"8gaussians": (0.8, 0.05), "2spirals": (1.0, 0.05), "checkerboard": (0.8, 0.1), "rings": (0.8, 0.05)}


def test_toy2d_replicated_is_table3_with_five_seeds():
    spec = load_sweep_file(BENCH / "toy2d_replicated.toml")
    tasks = expand(spec, plugins.registry())
    assert len(tasks) == 20
    for data, betas in TABLE3.items():
        mine = [t for t in tasks if t.config["data"]["name"] == data]
        assert sorted(t.config["seed"] for t in mine) == [0, 1, 2, 3, 4]
        assert {_run(t) for t in mine} == {(data, "soft", betas, "sg", "{}", ())}
        assert all(
            t.config["train"]["iterations"] == 30_000 and t.config["objective"]["options"]["num_vae"] == 2000 for t in mine
        )
    # on 8gaussians Table 3 is the dataset's default: the same runs as toy2d_best's soft on 8gaussians
    best = {t.hash for t in expand(load_sweep_file(BENCH / "toy2d_best.toml"), plugins.registry())}
    assert {t.hash for t in tasks if t.config["data"]["name"] == "8gaussians"} <= best


def test_toy2d_prior_is_table1s_six_columns():
    spec = load_sweep_file(BENCH / "toy2d_prior.toml")
    tasks = expand(spec, plugins.registry())
    assert len(tasks) == 6 * 4 * 5
    vamp = {"K": 64, "clamp": None, "to_mog": True, "mog_learnable": True, "kl_samples": 100}
    mog = {"K": 64, "learn_means": True, "learn_logvars": True, "learn_weights": True, "init": "data", "kl_samples": 100}
    for data, betas in TABLE3.items():
        mine = [t for t in tasks if t.config["data"]["name"] == data]
        assert {_run(t) for t in mine} == {
            (data, "vae", (*VAE[data], None), "sg", "{}", ()),
            (data, "soft", betas, "sg", "{}", ()),
            (data, "soft", betas, "vamp", json.dumps(vamp, sort_keys=True), ()),
            (data, "soft-prior", betas, "vamp", json.dumps(vamp, sort_keys=True), ("clip-logvar",)),
            (data, "soft", betas, "mog", json.dumps(mog, sort_keys=True), ()),
            (data, "soft-prior", betas, "mog", json.dumps(mog, sort_keys=True), ("clip-logvar",)),
        }
        assert sorted(t.config["seed"] for t in mine) == sorted(list(range(5)) * 6)
        for t in mine:
            c = t.config
            assert c["train"]["iterations"] == 30_000
            if c["objective"]["name"] != "vae":
                assert c["objective"]["options"]["num_vae"] == 2000
            if c["objective"]["name"] == "soft-prior":
                assert c["objective"]["options"]["gamma"] == 1.0
                assert [(r["name"], r["options"]) for r in c["regularizers"]] == [("clip-logvar", {"K": 10.0})]
    # columns 1 and 2 are runs of the other files: the VAE's are toy2d_best's (the datasets' defaults),
    # Soft-IntroVAE with SG toy2d_replicated's (Table 3); one store trains each once
    reg = plugins.registry()
    best = {t.hash for t in expand(load_sweep_file(BENCH / "toy2d_best.toml"), reg)}
    replicated = {t.hash for t in expand(load_sweep_file(BENCH / "toy2d_replicated.toml"), reg)}
    assert {t.hash for t in tasks if t.config["objective"]["name"] == "vae"} <= best
    assert {t.hash for t in tasks if (_run(t)[1], _run(t)[3]) == ("soft", "sg")} == replicated
    # every published row is matched by exactly one row of the grid (its key: objective[ + reg] @ prior)
    rows, _ = lb.build_rows(
        [lb.Record(t.hash, t.key, t.config, "unfinished", {}, {}) for t in tasks if t.config["seed"] == 0]
    )
    refs = lb.published_rows(spec.model_dump(), {"8gaussians", "2spirals", "checkerboard", "rings"})
    assert len(refs) == 24
    for ref in refs:
        assert len([r for r in rows if lb._matches(ref, r)]) == 1, ref.label


def test_written_options_of_a_table():
    shown = lb.written_options(
        {"objective": {"rings": ["soft,beta_kl=0.2"], "8gaussians": "vae,beta_rec=0.5"}, "prior": {"rings": ["mog:4"]}}
    )
    assert shown["objective"] == {"soft": {"beta_kl"}, "vae": {"beta_rec"}} and shown["prior"] == {"mog": {"K"}}


def test_dry_run_of_the_prior_file(capsys):
    assert main(["sweep", str(BENCH / "toy2d_prior.toml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "120 runs, 120 to run" in out
