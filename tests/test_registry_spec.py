"""Registry, plugin manager and spec strings."""

from __future__ import annotations

import re
from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from introzoo import hookimpl, plugins
from introzoo.errors import RegistryError, UsageError
from introzoo.spec import format_spec, parse_spec, resolve


class KConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    primary: ClassVar[str] = "K"  # the option that "name:value" sets
    K: int = Field(10, gt=0)
    learn_weights: bool = False
    init: str = "random"


class FakePrior:
    @hookimpl
    def introzoo_register_priors(self, register):
        register("fakemog", lambda config, zdim: ("built", config, zdim), KConfig, "A test prior.\nSecond line.")


def test_builtins_register_through_hooks():
    st = plugins.build(load_entry_points=False)
    reg = st.registry
    assert reg.names("objectives") == ["intro", "soft", "soft-boot", "soft-prior", "vae"]
    assert reg.names("priors") == ["flow", "mog", "sg", "vamp"]
    assert reg.names("regularizers") == ["beta-b", "beta-h", "clip-logvar", "factor", "info", "resp-entropy", "tcvae"]
    assert reg.names("executors") == ["local", "submitit"]
    assert set(reg.names("datasets")) == {
        "8gaussians",
        "2spirals",
        "checkerboard",
        "rings",
        "mnist",
        "fashion-mnist",
        "cifar10",
        "svhn",
        "digits",
        "shapes",
        "cars3d",
        "kth",
        "moons",
        "factors2d",
        "celeba",
        "folder",
        "points",
    }
    assert reg.names("backbones") == ["conv", "lord", "mlp", "resnet", "style"]
    assert reg.names("extractors") == ["classifier", "inception"]
    assert reg.names("metrics") == [
        "content_transfer",
        "factor_score",
        "fid_cond",
        "fid_gen",
        "fid_rec",
        "gnelbo",
        "jsd",
        "kl",
        "knn100",
        "knn5",
        "nll",
        "resp_entropy",
        "svm",
    ]
    builtin = [p for p in st.plugins if p.builtin]
    assert len(builtin) == 1 and builtin[0].name == "introzoo"
    assert builtin[0].registers["objectives"] == ["intro", "soft", "soft-boot", "soft-prior", "vae"]


def test_plugin_component_is_attributed_and_built():
    st = plugins.build(extra_plugins=[("fake-plugin", FakePrior())], load_entry_points=False)
    comp = st.registry.get("priors", "fakemog")
    assert comp.plugin == "fake-plugin" and comp.doc == "A test prior."
    c, cfg = resolve(st.registry, "priors", "fakemog:64,learn_weights=true")
    assert cfg == KConfig(K=64, learn_weights=True)
    assert c.build(cfg, zdim=2) == ("built", cfg, 2)
    info = {p.name: p for p in st.plugins}["fake-plugin"]
    assert info.registers == {"priors": ["fakemog"]}


def test_a_taken_name_is_registered_qualified_and_a_name_given_twice_is_an_error():
    class Dup:
        @hookimpl
        def introzoo_register_priors(self, register):
            register("sg", lambda c, zdim: None, KConfig, "another sg")

    with pytest.warns(plugins.PluginClashWarning, match="plugin 'dup' registers names that are taken: prior 'sg'"):
        st = plugins.build(extra_plugins=[("dup", Dup())], load_entry_points=False)
    assert st.registry.get("priors", "sg").plugin == "introzoo" and st.registry.get("priors", "dup:sg").plugin == "dup"

    class Twice:
        @hookimpl
        def introzoo_register_priors(self, register):
            register("fakemog", lambda c, zdim: None, KConfig, "one")
            register("fakemog", lambda c, zdim: None, KConfig, "two")

    with pytest.raises(RegistryError, match="'fakemog' is registered twice: by plugin 'twice' and by plugin 'twice'"):
        plugins.build(extra_plugins=[("twice", Twice())], load_entry_points=False)
    reg = plugins.build(load_entry_points=False).registry  # built-ins never take a qualified name
    with pytest.raises(RegistryError, match="'sg' is registered twice: by plugin 'introzoo' and by plugin 'introzoo'"):
        reg.add_all([reg.get("priors", "sg")])


def test_misspelled_hook_is_caught():
    class Typo:
        @hookimpl
        def introzoo_register_prior(self, register):  # missing 's'
            pass

    with pytest.raises(RegistryError, match="plugin 'typo': unknown hook 'introzoo_register_prior'"):
        plugins.build(extra_plugins=[("typo", Typo())], load_entry_points=False)


class FakeEntryPoint:
    """An installed plugin as ``importlib.metadata`` lists it: ``load()`` gives the plugin object."""

    def __init__(self, name: str) -> None:
        self.name, self.value, self.dist = name, f"{name}_module", None

    def load(self):
        name = self.name

        class Plugin:
            @hookimpl
            def introzoo_register_priors(self, register):
                register(f"{name}-prior", lambda config, zdim: None, KConfig, "An installed test prior.")

        return Plugin()


@pytest.mark.parametrize(
    "env,loaded",
    [
        ("all", []),
        ("*", []),
        ("one", ["two"]),
        ("two, one", []),
        ("three", ["one", "two"]),
        ("", ["one", "two"]),
    ],
)
def test_disable_plugins_env(monkeypatch, env, loaded):
    monkeypatch.setattr(plugins, "entry_points", lambda group: [FakeEntryPoint("one"), FakeEntryPoint("two")])
    monkeypatch.setenv("INTROZOO_DISABLE_PLUGINS", env)
    st = plugins.build()
    assert [p.name for p in st.plugins] == ["introzoo", *loaded]
    assert sorted(st.disabled) == sorted({"one", "two"} - set(loaded))
    assert [n for n in st.registry.names("priors") if n.endswith("-prior")] == [f"{n}-prior" for n in loaded]


def test_first_line_of_an_error():
    from introzoo.errors import first_line

    assert first_line(RuntimeError("boom\nsecond line")) == "boom"
    assert first_line(RuntimeError("  \n boom")) == "boom"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(ValueError("bad\nmore"), with_type=True) == "ValueError: bad"
    assert first_line(ValueError(), with_type=True) == "ValueError"


@pytest.mark.parametrize(
    "text,name,options",
    [
        ("soft", "soft", {}),
        ("mog:100", "mog", {":": "100"}),
        ("soft,beta_neg=0.9", "soft", {"beta_neg": "0.9"}),
        ("mog:64,learn_weights=true", "mog", {":": "64", "learn_weights": "true"}),
        ("resnet,channels=[64,128],zdim=32", "resnet", {"channels": ["64", "128"], "zdim": "32"}),
        (" intro , m = 2 ", "intro", {"m": "2"}),
    ],
)
def test_parse_spec(text, name, options):
    spec = parse_spec(text, "objectives")
    assert spec.name == name and spec.options == options


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "empty objective spec"),
        ("soft,beta_neg", "'beta_neg' is not key=value"),
        ("soft,=3", "has no option name"),
        ("mog:", "nothing after ':'"),
        (":3", "missing the objective name"),
        ("soft,beta_kl=1,beta_kl=2", "given twice"),
        ("resnet,channels=[64,128", "unbalanced brackets"),
    ],
)
def test_malformed_specs(text, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        parse_spec(text, "objectives")


def test_unknown_component_suggests_nearest():
    reg = plugins.registry()
    with pytest.raises(UsageError) as e:
        resolve(reg, "objectives", "sotf")
    assert str(e.value) == "unknown objective 'sotf'; did you mean 'soft'? known: intro, soft, soft-boot, soft-prior, vae"
    with pytest.raises(UsageError, match="unknown prior 'xyz'; known: flow, mog, sg, vamp"):
        resolve(reg, "priors", "xyz")


def test_unknown_option_and_bad_values():
    reg = plugins.registry()
    with pytest.raises(UsageError, match=re.escape("unknown option 'beta_nge'; did you mean 'beta_neg'? known: beta_rec")):
        resolve(reg, "objectives", "soft,beta_nge=1")
    with pytest.raises(UsageError, match="option 'beta_neg': Input should be greater than or equal to 0"):
        resolve(reg, "objectives", "soft,beta_neg=-1")
    with pytest.raises(UsageError, match="option 'beta_kl': Input should be a valid number"):
        resolve(reg, "objectives", "soft,beta_kl=abc")
    with pytest.raises(UsageError, match="option 'm' is required"):
        resolve(reg, "objectives", "intro")
    with pytest.raises(UsageError, match="takes no ':value'"):
        resolve(reg, "objectives", "soft:3")
    with pytest.raises(UsageError, match="Input should be 'batch' or 'sample'"):
        resolve(reg, "objectives", "intro,m=1,hinge=mean")


def test_defaults_layering():
    reg = plugins.registry()
    d = {"beta_rec": 0.2, "beta_kl": 0.3, "unrelated": 5}
    _, cfg = resolve(reg, "objectives", "soft,beta_kl=0.5", defaults=d)
    assert (cfg.beta_rec, cfg.beta_kl, cfg.beta_neg) == (0.2, 0.5, 1.0)


def test_format_spec_round_trip():
    text = format_spec("mog", {"K": 64, "learn_weights": True, "channels": [1, 2]})
    assert text == "mog,K=64,learn_weights=true,channels=[1,2]"
    assert parse_spec(text, "priors").options == {"K": "64", "learn_weights": "true", "channels": ["1", "2"]}
