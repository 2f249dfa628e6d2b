"""The one configuration layer: YAML files with ``base`` chains, ``--set`` overrides, and typed,
range-checked dataclasses, each error naming the file and the dotted key.

Why in-house rather than OmegaConf: orpose's configs are plain dataclasses with unions
(``float | None``), tuples and a student section whose class depends on its ``family`` field;
what they need from a library is small (merge, override, check) and the messages must name the
file and the key in one line. Every config of the package (training, teacher, lifter training,
experiment specs) is read through :func:`read_yaml` / :func:`build`.

Checks come from the field's type annotation (``int`` refuses ``2.5``, ``"6"`` and ``True``;
``float`` refuses non-finite numbers and strings; ``bool`` refuses ``"no"``; ``list[str]``
refuses a single string) and from field metadata made with :func:`option`: ``min`` / ``max`` /
``above`` (exclusive) and ``choices``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from orpose.errors import ConfigError


def option(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
           min: float | None = None, max: float | None = None, above: float | None = None,
           choices: tuple | None = None, merge: bool = False) -> Any:  # fmt: skip
    """A dataclass field with checks: bounds (``min`` <= v <= ``max``, v > ``above``),
    allowed ``choices``; ``merge``: a dict given in a file updates the default dict."""
    meta = {"min": min, "max": max, "above": above, "choices": choices, "merge": merge}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# -- files ----------------------------------------------------------------------------------------


def read_yaml(path: Path | str) -> dict:
    """A YAML mapping; syntax errors and other top-level types are ConfigErrors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where} ({problem})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def read_yaml_with_base(path: Path | str, _chain: tuple[Path, ...] = ()) -> dict:
    """A YAML mapping with its ``base`` chain merged under it (paths relative to each file)."""
    path = Path(path)
    resolved = path.resolve()
    if resolved in _chain:
        loop = " -> ".join(str(p) for p in (*_chain, resolved))
        raise ConfigError(f"{path}: base: the chain of base files loops ({loop})")
    data = read_yaml(path)
    if "base" in data:
        base = data.pop("base")
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{path}: base: expected a file name, got {base!r}")
        data = deep_merge(read_yaml_with_base(path.parent / base, (*_chain, resolved)), data)
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``solver.lr=0.01`` -> (["solver", "lr"], 0.01), the value parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. solver.lr=0.01")
    key, value = text.split("=", 1)
    keys = key.strip().split(".")
    if not all(keys):
        raise ConfigError(f"--set {text}: empty key")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"--set {text}: the value is not valid YAML") from None
    return keys, parsed


def apply_overrides(data: dict, overrides: typing.Iterable[str]) -> dict:
    """``--set`` overrides applied to a config mapping (in place; returned)."""
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            child = node.setdefault(k, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text}: {k} is not a section")
            node = child
        node[keys[-1]] = value
    return data


# -- typed building -------------------------------------------------------------------------------


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def _is_union(kind: Any) -> bool:
    return typing.get_origin(kind) in (typing.Union, types.UnionType)


def check_value(value: Any, kind: Any, where: str) -> Any:
    """``value`` converted to ``kind`` (lists to tuples) or a ConfigError naming ``where``."""
    if kind is Any or kind is object:
        return value
    if _is_union(kind):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option_kind in options:
            if option_kind is type(None):
                continue
            try:
                return check_value(value, option_kind, where)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    origin = typing.get_origin(kind)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(kind)
        item = args[0] if args else Any
        items = [check_value(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_kind, value_kind = typing.get_args(kind) or (Any, Any)
        return {
            check_value(k, key_kind, where): check_value(v, value_kind, f"{where}.{k}")
            for k, v in value.items()
        }
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(kind, type) and not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {_type_name(kind)}, got {value!r}")
    return value


def _check_range(value: Any, meta: typing.Mapping, where: str) -> None:
    if value is None:
        return
    values = value if isinstance(value, list | tuple) else [value]
    for v in values:
        if meta.get("choices") is not None and v not in meta["choices"]:
            allowed = ", ".join(str(c) for c in meta["choices"])
            raise ConfigError(f"{where}: expected one of {allowed}, got {v!r}")
        if not isinstance(v, int | float) or isinstance(v, bool):
            continue
        if meta.get("min") is not None and v < meta["min"]:
            raise ConfigError(f"{where}: must be >= {meta['min']:g}, got {v!r}")
        if meta.get("max") is not None and v > meta["max"]:
            raise ConfigError(f"{where}: must be <= {meta['max']:g}, got {v!r}")
        if meta.get("above") is not None and v <= meta["above"]:
            raise ConfigError(f"{where}: must be > {meta['above']:g}, got {v!r}")


def build(cls: type, values: Any, where: str, prefix: str = "") -> Any:
    """An instance of dataclass ``cls`` from a mapping, every field checked; unknown keys and
    wrong types are ConfigErrors naming the file ``where`` and the dotted key (``prefix`` +
    field name, e.g. ``config.yaml: solver.lr: ...``)."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        section = f" {prefix.rstrip('.')}:" if prefix else ""
        raise ConfigError(f"{where}:{section} expected a mapping of settings, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        keys = ", ".join(f"{prefix}{k}" for k in unknown)
        raise ConfigError(f"{where}: unknown key(s) {keys} (known: {', '.join(sorted(known))})")
    kwargs = {}
    for name, value in values.items():
        f = known[name]
        key = f"{where}: {prefix}{name}"
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = build(kind, value, where, f"{prefix}{name}.")
            continue
        checked = check_value(value, kind, key)
        if f.metadata.get("merge") and isinstance(checked, dict):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else {}
            checked = {**default, **checked}
        _check_range(checked, f.metadata, key)
        kwargs[name] = checked
    return cls(**kwargs)


def to_plain(obj: Any) -> Any:
    """A dataclass (nested) as plain dicts and lists, tuples turned into lists (for YAML)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj
