"""Typed hyperparameters. A strategy's ``Config`` is a dataclass whose fields are declared with
:func:`hp`; the CLI generates one flag per field and values are checked once, at the edge."""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from retain.errors import ConfigError


def hp(default: Any, help: str, *, low: float | None = None, high: float | None = None,
       choices: tuple | None = None, low_open: bool = False) -> Any:
    """A hyperparameter field with its help text and its valid range or choices."""
    meta = {"help": help, "low": low, "high": high, "choices": choices, "low_open": low_open}
    return field(default=default, metadata=meta)


@dataclass
class StrategyConfig:
    """Base of every strategy's hyperparameters (none in common)."""

    @classmethod
    def fields(cls) -> list[tuple[dataclasses.Field, type]]:
        return list(_fields(cls))

    @classmethod
    def from_params(cls, strategy: str, params: dict[str, Any]) -> StrategyConfig:
        """Build and validate from a name->value mapping; keys not of this config are ignored."""
        values = {}
        for f, typ in cls.fields():
            if f.name in params and params[f.name] is not None:
                values[f.name] = _coerce(strategy, f.name, typ, params[f.name])
        cfg = cls(**values)
        cfg.validate(strategy)
        return cfg

    def validate(self, strategy: str) -> None:
        for f, _ in self.fields():
            value, m = getattr(self, f.name), f.metadata
            where = f"{strategy}: {f.name.replace('_', '-')}"
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{where} must be a finite number, got {value}")
            if m.get("choices") and value not in m["choices"]:
                raise ConfigError(f"{where} must be one of {list(m['choices'])}, got {value!r}")
            low, high = m.get("low"), m.get("high")
            if low is not None and (value < low or (m.get("low_open") and value == low)):
                op = ">" if m.get("low_open") else ">="
                raise ConfigError(f"{where} must be {op} {low}, got {value}")
            if high is not None and value > high:
                raise ConfigError(f"{where} must be <= {high}, got {value}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@functools.cache
def _fields(cls: type) -> tuple[tuple[dataclasses.Field, type], ...]:
    """A config class's fields with their resolved types (resolved once: every run key validates)."""
    hints = get_type_hints(cls)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls))


def parse_bool(text: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case); anything else raises ValueError."""
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def type_name(typ: Any) -> str:
    """``int`` -> 'an integer', for messages that say what was expected."""
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        typ, getattr(typ, "__name__", str(typ)))


def check_type(typ: Any, value: Any) -> Any:
    """``value`` if it is of type ``typ`` (an int also passes for a float, and becomes one);
    raises ValueError otherwise. Nothing is coerced: a bool is not an int, a string is not a
    number. One rule for every value that enters (study files, presets, stored configs)."""
    if typ is bool:
        ok = isinstance(value, bool)
    elif typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif typ is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif typ is str:
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        raise ValueError(value)
    return value


def parse_typed(typ: Any, text: str) -> Any:
    """A command-line string read as ``typ`` (bool: true/false, yes/no, on/off, 1/0); ValueError if it is not one."""
    if typ is bool:
        return parse_bool(text)
    if typ is int:
        return int(text)
    if typ is float:
        return float(text)
    return text


def _coerce(strategy: str, name: str, typ: Any, value: Any) -> Any:
    """Strings (from the command line) are parsed by the field's type; any other value must
    already be of it."""
    try:
        return parse_typed(typ, value) if isinstance(value, str) else check_type(typ, value)
    except (TypeError, ValueError):
        raise ConfigError(f"{strategy}: {name.replace('_', '-')} must be {type_name(typ)}, "
                          f"got {value!r}") from None
