"""Spec strings: ``[plugin:]name[:value][,key=value...]`` -> a component's closed pydantic config.

Examples: ``mog:100`` (``K=100``, the prior's primary option), ``soft,beta_neg=0.9``,
``mog:64,learn_weights=true``, ``resnet,channels=[64,128]``. Values are converted by pydantic
(``true``/``false``, numbers, ``[a,b]`` lists); commas inside brackets do not split options.

A name may be qualified by the plugin that registered it: ``myplugin:soft-boot`` selects the plugin's
``soft-boot`` where a built-in has the bare name (the only way to select it then), ``example:laplace``
the same as ``laplace``, ``introzoo:soft`` the built-in. The rule that keeps this apart from the
primary option's ``name:value``: ``a:b`` is a qualified name when ``a`` is the name of a loaded plugin
that registered a component ``b`` of the kind parsed; otherwise ``b`` is the value of ``a``'s primary
option (``mog:100``, ``student-t:3``). ``myplugin:mog:100`` is both.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import UsageError, unknown
from .registry import SINGULAR, Component, Registry


@dataclass(frozen=True)
class Spec:
    """A parsed spec string: component name and the options the user wrote (still strings)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    #: the spec string as the user wrote it (messages echo it unchanged: ``mog:0``, not ``mog,K=0``)
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        if self.text:
            return self.text
        options = dict(self.options)
        primary = options.pop(":", None)
        return format_spec(self.name if primary is None else f"{self.name}:{primary}", options)


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split at ``sep`` outside brackets: ``"a,[1,2],b"`` -> ``["a", "[1,2]", "b"]``; raises
    ``ValueError`` for unbalanced brackets. Spec strings split at ``,``, sweep alternatives at ``|``."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise ValueError("unbalanced brackets")
    parts.append("".join(cur))
    return parts


def _value(raw: str) -> Any:
    raw = raw.strip()
    if raw.startswith("[") and raw.endswith("]"):
        inner = raw[1:-1].strip()
        return [_value(v) for v in split_top_level(inner)] if inner else []
    return raw


def _qualified(registry: Registry | None, kind: str, plugin: str, name: str) -> str | None:
    """The registered name of ``plugin``'s component ``name`` of ``kind``, if there is one."""
    if registry is None:
        from .plugins import registry as current

        registry = current()
    comp = registry.find(kind, f"{plugin}:{name}") if plugin and name else None
    return comp.name if comp is not None else None


def parse_spec(text: str, kind: str, registry: Registry | None = None) -> Spec:
    """Split a spec string; raises :class:`UsageError` on malformed input. ``registry`` (default: the
    process-wide one) tells a plugin-qualified name (``myplugin:soft-boot``) from ``name:value``; the
    spec's name is then the component's registered name (``myplugin:soft-boot``, or ``laplace`` for
    ``example:laplace``)."""
    what = SINGULAR[kind]
    text = text.strip()
    if not text:
        raise UsageError(f"empty {what} spec; expected 'name[:value][,key=value...]'")
    try:
        head, *rest = split_top_level(text)
    except ValueError:
        raise UsageError(f"malformed {what} spec '{text}': unbalanced brackets") from None
    name, primary = head, None
    if ":" in head:
        name, primary = head.split(":", 1)
        base, sep, value = primary.partition(":")
        qualified = _qualified(registry, kind, name.strip(), base.strip())
        if qualified is not None:
            name, primary = qualified, (value if sep else None)
        if primary is not None and not primary.strip():
            raise UsageError(f"malformed {what} spec '{text}': nothing after ':'")
    name = name.strip()
    if not name:
        raise UsageError(f"malformed {what} spec '{text}': missing the {what} name")
    options: dict[str, Any] = {}
    if primary is not None:
        options[":"] = _value(primary)
    for item in rest:
        if "=" not in item:
            raise UsageError(f"malformed {what} spec '{text}': '{item}' is not key=value")
        key, val = item.split("=", 1)
        key = key.strip()
        if not key:
            raise UsageError(f"malformed {what} spec '{text}': '{item}' has no option name")
        if key in options:
            raise UsageError(f"malformed {what} spec '{text}': option '{key}' given twice")
        options[key] = _value(val)
    return Spec(name, options, text)


def format_spec(name: str, options: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return "[" + ",".join(fmt(x) for x in v) + "]"
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    return ",".join([name] + [f"{k}={fmt(v)}" for k, v in options.items()])


def _resolve_primary(comp: Component, options: dict[str, Any], text: str) -> dict[str, Any]:
    options = dict(options)
    if ":" in options:
        primary = getattr(comp.config, "primary", None)
        value = options.pop(":")
        if primary is None:
            raise UsageError(
                f"{SINGULAR[comp.kind]} '{comp.name}' takes no ':value' (in '{text}'); "
                f"use key=value with options: {', '.join(comp.config.model_fields) or '(none)'}"
            )
        if primary in options:
            raise UsageError(f"malformed spec '{text}': '{primary}' given both after ':' and as an option")
        options[primary] = value
    return options


def validation_message(comp: Component, exc: ValidationError, text: str) -> str:
    """One line for a pydantic error: which option, what is wrong, what is allowed."""
    what = f"{SINGULAR[comp.kind]} '{comp.name}'"
    fields = list(comp.config.model_fields)
    msgs = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(config)"
        if err["type"] == "extra_forbidden":
            msgs.append(unknown("option", loc, fields))
        elif err["type"] == "missing":
            desc = comp.config.model_fields[loc].description if loc in comp.config.model_fields else ""
            msgs.append(f"option '{loc}' is required" + (f" ({desc})" if desc else ""))
        else:
            got = err.get("input")
            msgs.append(f"option '{loc}': {err['msg'].rstrip('.')} (got {json.dumps(got, default=str)})")
    return f"invalid {what} in '{text}': " + "; ".join(msgs)


def make_config(comp: Component, options: dict[str, Any], text: str | None = None) -> BaseModel:
    """Validate ``options`` (user's and defaults, primary already resolved) into ``comp.config``."""
    text = text or format_spec(comp.name, options)
    try:
        config = comp.config(**options)
    except ValidationError as exc:
        raise UsageError(validation_message(comp, exc, text)) from None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid {SINGULAR[comp.kind]} '{comp.name}' in '{text}': {exc}") from None
    _check_finite(comp, config, text)
    return config


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return any(_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    return False


def _check_finite(comp: Component, config: BaseModel, text: str) -> None:
    """inf and nan are bad input for every option (``beta_rec=inf``, ``beta_kl=1e400``), unless the
    config declares ``model_config = ConfigDict(allow_inf_nan=True)`` itself."""
    if comp.config.model_config.get("allow_inf_nan") is True:
        return
    for name in comp.config.model_fields:
        value = getattr(config, name)
        if _non_finite(value):
            raise UsageError(
                f"invalid {SINGULAR[comp.kind]} '{comp.name}' in '{text}': option '{name}' "
                f"must be a finite number (got {value!r})"
            )


def resolve(
    registry: Registry,
    kind: str,
    text: str | Spec,
    defaults: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[Component, BaseModel]:
    """Parse and validate a spec: returns the component and its config.

    ``defaults`` (e.g. a dataset's paper hyperparameters) sit between the config's own defaults and the
    user's options; keys the config does not declare are ignored. ``overrides`` (options given as
    values, e.g. the ``sweep`` command's ``--workers``) win over the spec string's.
    """
    spec = text if isinstance(text, Spec) else parse_spec(text, kind, registry)
    if ":" in spec.options and registry.find(kind, spec.name) is None and spec.name in registry.plugins():
        mine = [c.base_name for c in registry.all(kind) if c.plugin == spec.name]
        raise UsageError(
            f"plugin '{spec.name}' registers no {SINGULAR[kind]} '{spec.options[':']}' (in '{text}'); "
            f"its {kind}: {', '.join(mine) or 'none'}"
        )
    comp = registry.get(kind, spec.name)
    user = _resolve_primary(comp, spec.options, str(text))
    merged = {k: v for k, v in (defaults or {}).items() if k in comp.config.model_fields}
    merged.update(user)
    merged.update(overrides or {})
    return comp, make_config(comp, merged, str(text))
