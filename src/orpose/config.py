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
``above`` / ``below`` (exclusive) and ``choices``.

Numbers given on the command line go through the same checks: :func:`cli_number` and
:func:`cli_numbers` make the argparse ``type=`` of every numeric option of every verb (finite,
the right kind, within bounds that always include an upper one), so that ``nan``, ``inf`` or
``1e308`` stop at the parser with exit code 2 and one line naming the option
(tests/test_cli_numbers.py walks every option of the real parser).
"""

from __future__ import annotations

import argparse
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
           below: float | None = None, choices: tuple | None = None,
           merge: bool = False) -> Any:  # fmt: skip
    """A dataclass field with checks: bounds (``min`` <= v <= ``max``, ``above`` < v <
    ``below``), allowed ``choices``; ``merge``: a dict given in a file updates the default."""
    meta = {"min": min, "max": max, "above": above, "below": below, "choices": choices,
            "merge": merge}  # fmt: skip
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
        if meta.get("below") is not None and v >= meta["below"]:
            raise ConfigError(f"{where}: must be < {meta['below']:g}, got {v!r}")


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


def check_fields(obj: Any, prefix: str = "") -> None:
    """Every field of a dataclass instance checked as :func:`build` checks a file's values (type,
    bounds, choices): for instances made in code or from the command line. ConfigError naming
    the field (``prefix`` + name); nested dataclasses are checked by their own class."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if dataclasses.is_dataclass(hints[f.name]):
            continue
        key = f"{prefix}{f.name}"
        _check_range(check_value(getattr(obj, f.name), hints[f.name], key), f.metadata, key)


def to_plain(obj: Any) -> Any:
    """A dataclass (nested) as plain dicts and lists, tuples turned into lists (for YAML)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj


# -- numbers on the command line ------------------------------------------------------------------


def describe_range(kind: type, min: float | None = None, max: float | None = None,
                   above: float | None = None, below: float | None = None) -> str:  # fmt: skip
    """``a finite number in (0, 1]``, ``a whole number in [1, 1000000]``..."""
    noun = "a whole number" if kind is int else "a finite number"
    low = f"[{min:g}" if min is not None else f"({above:g}" if above is not None else "(-inf"
    high = f"{max:g}]" if max is not None else f"{below:g})" if below is not None else "inf)"
    return f"{noun} in {low}, {high}"


def _parse_number(text: str, kind: type, bounds: dict, expected: str) -> float | int:
    stripped = text.strip()
    try:
        value = int(stripped) if kind is int else float(stripped)
    except ValueError:  # also Python's limit on the digits of an int
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    if (
        (bounds["min"] is not None and value < bounds["min"])
        or (bounds["max"] is not None and value > bounds["max"])
        or (bounds["above"] is not None and value <= bounds["above"])
        or (bounds["below"] is not None and value >= bounds["below"])
    ):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def cli_number(kind: type = float, *, min: float | None = None, max: float | None = None,
               above: float | None = None, below: float | None = None,
               words: tuple[str, ...] = ()) -> Any:  # fmt: skip
    """The argparse ``type=`` of a numeric option: the text as ``kind`` (``int`` refuses
    ``2.5``), finite, within the bounds (``min`` <= v <= ``max``, ``above`` < v < ``below``);
    an upper bound is required, so that no option takes ``1e308``. ``words``: texts taken as
    they are (e.g. ``auto``). Anything else is argparse's error: exit code 2, one line
    ``orpose VERB: error: argument --x: expected ..., got 'nan'``."""
    if kind not in (int, float):
        raise TypeError(f"cli_number: kind must be int or float, got {kind!r}")
    if max is None and below is None:
        raise TypeError("cli_number: an upper bound (max or below) is required")
    bounds = {"min": min, "max": max, "above": above, "below": below}
    expected = describe_range(kind, **bounds)
    if words:
        expected += " or " + " or ".join(repr(w) for w in words)

    def parse(text: str) -> float | int | str:
        if text.strip().lower() in words:
            return text.strip().lower()
        return _parse_number(text, kind, bounds, expected)

    parse.__name__ = f"checked_{kind.__name__}"
    parse.checked_number = True  # type: ignore[attr-defined]  # (found by the parser walk test)
    return parse


def cli_numbers(kind: type = float, *, min: float | None = None, max: float | None = None,
                above: float | None = None, below: float | None = None) -> Any:  # fmt: skip
    """The argparse ``type=`` of a comma-separated list (``1,1.5``): a tuple of at least one
    number, each checked as by :func:`cli_number`."""
    item = cli_number(kind, min=min, max=max, above=above, below=below)
    noun = describe_range(kind, min=min, max=max, above=above, below=below)

    def parse(text: str) -> tuple:
        parts = [part for part in text.split(",") if part.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
        try:
            return tuple(item(part) for part in parts)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated numbers, each {noun}, got {text!r}"
            ) from None

    parse.__name__ = f"checked_{kind.__name__}_list"
    parse.checked_number = True  # type: ignore[attr-defined]
    return parse


def cli_input_path(text: str) -> Path:
    """The argparse ``type=`` of an input path: a Path, but never from an empty text, which
    Path makes ``.`` (the whole current folder, unasked: an unset shell variable)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"an empty name ({text!r}: an unset shell variable?); give '.' for the current folder"
        )
    return Path(text)
