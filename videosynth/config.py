"""Typed configuration: YAML files and ``--set key=value`` overrides mapped onto dataclasses.

Configs are plain ``@dataclass`` trees (fields of type int, float, str, bool,
``list[...]``, ``tuple[...]``, ``X | None`` or nested dataclasses, all with
defaults).  Everything a user types goes through :func:`from_dict`, so an
unknown or mistyped key is always a one-line :class:`ConfigError` naming the key
and the closest valid one::

    >>> from_dict(TrainConfig, {"stpes": 10}, where="train")
    ConfigError: unknown key 'train.stpes' (did you mean 'train.steps'?)
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml

from videosynth.errors import ConfigError

T = TypeVar("T")


def choice_hint(value: str, options) -> str:
    """``did you mean 'x'?`` for the option closest to ``value``, else the list of options.

    For one-line ConfigErrors about a value that must be one of ``options`` (names, kinds).
    """
    options = list(options)
    match = difflib.get_close_matches(str(value), options, n=1, cutoff=0.5)
    return f"did you mean '{match[0]}'?" if match else f"choose one of {', '.join(options)}"


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric config field or option: finite, ``low <= v <= high``.

    ``low_open`` / ``high_open`` make an end strict. Calling it returns an error text for a bad
    value and None for a good one (lists are checked item by item); types are checked elsewhere.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high}"
        return "a finite number"

    def __call__(self, value: Any) -> str | None:
        if isinstance(value, (list, tuple)):
            return next((self(v) for v in value if self(v) is not None), None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return None if self.contains(value) else f"must be {self.describe()}"


def at_least(low: float) -> Range:
    """``v >= low``."""
    return Range(low)


def positive() -> Range:
    """``v > 0``."""
    return Range(0, low_open=True)


def in_range(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Range:
    """``low <= v <= high`` (ends strict where asked)."""
    return Range(low, high, low_open, high_open)


def checked(default: Any = dataclasses.MISSING, check: Range | None = None, *, factory: Any = dataclasses.MISSING):
    """A dataclass field whose value :func:`from_dict` checks against ``check`` (the one place it is checked)::

        batch_size: int = checked(16, at_least(1))
    """
    return dataclasses.field(default=default, default_factory=factory, metadata={"check": check})


def field_check(cls: type, name: str) -> Range | None:
    """The :class:`Range` declared for field ``name`` of config class ``cls`` (None = none)."""
    return {f.name: f for f in dataclasses.fields(cls)}[name].metadata.get("check")


def _closest(name: str, options: list[str], where: str = "") -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    if match:
        return f" (did you mean '{_join(where, match[0])}'?)"
    return f" (valid keys: {', '.join(sorted(options))})" if options else ""


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where lossless."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"invalid value for '{where}': {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"'{where}' must be a mapping of keys, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{where}' must be a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"'{where}' must have {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{where}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"'{where}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"'{where}' must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"'{where}' must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"'{where}' must be a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict | None, where: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) dict, validating every key and type.

    Raises:
        ConfigError: unknown key (with the closest valid key) or a value of the wrong type.
    """
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"unknown key '{_join(where, key)}'{_closest(key, list(fields), where)}")
        kwargs[key] = _coerce(value, hints[key], _join(where, key))
        check = fields[key].metadata.get("check")
        problem = check(kwargs[key]) if check is not None else None
        if problem:
            raise ConfigError(f"{_join(where, key)}={value!r}: {problem}")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid config for '{where or cls.__name__}': {exc}") from None
    return obj


def to_dict(obj: Any) -> Any:
    """Dataclass tree -> plain dict/list tree (tuples become lists), for YAML and JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# A config is a few kilobytes (a text run's vocabulary lives in vocab.json); far more is not a config.
MAX_CONFIG_BYTES = 4 << 20
# Nesting deeper than any config needs; PyYAML composes nodes recursively, so without a bound a file
# of 100000 '[' exhausts the stack before it can be refused.
MAX_CONFIG_DEPTH = 64


class _Refused(Exception):
    """A YAML construct the config reader does not accept (raised inside the loader, named by the caller)."""

    def __init__(self, text: str, mark) -> None:
        super().__init__(text)
        self.line = mark.line + 1 if mark is not None else None


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without anchors or aliases and with bounded nesting.

    An alias lets a few hundred bytes stand for billions of nodes (an "alias bomb") once
    anything walks the result; configs never need one, so both anchors and aliases are refused.
    """

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused("YAML anchors and aliases (&name, *name) are not accepted in configs; "
                           "write the values out", event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_CONFIG_DEPTH:
                raise _Refused(f"nested deeper than {MAX_CONFIG_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(text: str, where: str):
    """``text`` parsed as YAML by the one config reader (no anchors or aliases, bounded nesting).

    ``where`` names the source in messages (a file, ``--set key``).

    Raises:
        ConfigError: malformed YAML, an anchor or alias, or nesting deeper than ``MAX_CONFIG_DEPTH``.
    """
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        line = f" line {exc.line}" if exc.line is not None else ""
        raise ConfigError(f"{where}:{line} {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}:{line} is not valid YAML: {getattr(exc, 'problem', None) or exc}") from None


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping with the bounded reader of :func:`parse_yaml`.

    Raises:
        ConfigError: a missing file, one over ``MAX_CONFIG_BYTES``, not UTF-8 text, malformed or
            refused YAML (see :func:`parse_yaml`), or not a mapping at the top level; each names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES >> 20} MB, which no config is; "
                          "is it the right file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded): is it a binary file? "
                          "write the config again as YAML") from None
    data = parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys at the top level")
    return data


class _PlainDumper(yaml.SafeDumper):
    """Writes shared objects out again instead of as anchors, which :func:`parse_yaml` refuses."""

    def ignore_aliases(self, data) -> bool:
        return True


def dump_yaml(obj: Any) -> str:
    """A dataclass tree or dict as YAML text that :func:`load_yaml` reads back (keys in order, no aliases)."""
    return yaml.dump(to_dict(obj), Dumper=_PlainDumper, sort_keys=False)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` strings to a nested dict; values parse as YAML scalars/lists.

    Raises:
        ConfigError: an override without ``=``.
    """
    data = _deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = parse_yaml(raw, f"--set {key}") if raw.strip() else ""
        except ConfigError:
            value = raw
        if isinstance(value, str):
            try:  # YAML 1.1 reads "3e-4" as a string
                value = float(value)
            except ValueError:
                pass
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def _deepcopy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data


def merge(base: dict, update: dict) -> dict:
    """Recursive dict merge: ``update`` wins; nested mappings merge key by key."""
    out = _deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = _deepcopy(value)
    return out
