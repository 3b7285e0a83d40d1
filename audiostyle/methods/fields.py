"""A method config's fields by their declared types: values checked against them, text parsed by them.

:meth:`Method.make_config <audiostyle.methods.base.Method.make_config>` checks every value it is given (from code,
a ``--config`` file or ``--set``) with :func:`check_values` before the config's own range checks run, so a
wrong type is a clear :class:`~audiostyle.errors.AudiostyleError`, never a raw ``TypeError`` or a silently
accepted ``True`` for an integer. The sweep's ``--set KEY=VALUE`` parses its text with :func:`parse_text`,
by the field's type: ``pooling=none`` is the string ``"none"``, an ``Optional`` field takes ``none`` as None.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Mapping, Union

from audiostyle.errors import AudiostyleError

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_NONE = ("none", "null")


def field_types(config_cls: type) -> dict[str, Any]:
    """``{field: declared type}`` of a config dataclass (string annotations resolved)."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(config_cls)}


def _optional(kind: Any) -> tuple[Any, bool]:
    """``(inner type, True)`` for ``X | None`` / ``Optional[X]``; ``(kind, False)`` otherwise."""
    if typing.get_origin(kind) in (Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(kind)) == 2:
            return args[0], True
    return kind, False


def _wrong(name: str, value: Any, expected: str) -> AudiostyleError:
    return AudiostyleError(f"{name}={value!r} is not {expected}: give {expected} (e.g. --set {name}=...).")


def check_value(name: str, value: Any, kind: Any) -> Any:
    """``value`` as a value of ``kind`` (an int-valued float becomes an int, a list a tuple), or an error."""
    inner, optional = _optional(kind)
    if value is None:
        if optional or kind is Any:
            return None
        raise _wrong(name, value, f"a {getattr(inner, '__name__', inner)}")
    origin = typing.get_origin(inner)
    if inner is bool:
        if isinstance(value, bool):
            return value
        raise _wrong(name, value, "true or false")
    if inner is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _wrong(name, value, "an integer")
    if inner is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # inf passes every range check, and every trial would fail on it
                raise _wrong(name, value, "a finite number")
            return float(value)
        raise _wrong(name, value, "a number")
    if inner is str:
        if isinstance(value, str):
            return value
        raise _wrong(name, value, "a string")
    if origin is Literal:
        if value in typing.get_args(inner):
            return value
        raise _wrong(name, value, "one of " + ", ".join(map(repr, typing.get_args(inner))))
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        return origin(value)
    return value


def check_values(config_cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` checked and converted field by field (see :func:`check_value`); unknown keys pass through."""
    kinds = field_types(config_cls)
    return {k: check_value(k, v, kinds[k]) if k in kinds else v for k, v in values.items()}


def parse_text(name: str, text: str, kind: Any) -> Any:
    """The value of ``text`` for a field of type ``kind``: a string field takes the text as it is; an
    ``Optional`` field takes ``none``/``null`` as None; numbers and booleans are parsed strictly; containers
    are read as YAML (``[1, 2]``)."""
    inner, optional = _optional(kind)
    stripped = text.strip()
    if optional and stripped.lower() in _NONE:
        return None
    if inner is str:
        return text
    if inner is bool:
        lowered = stripped.lower()
        if lowered in _TRUE + _FALSE:
            return lowered in _TRUE
        raise _wrong(name, text, "true or false")
    if inner in (int, float):
        try:
            number = float(stripped) if inner is float else _int(stripped)
        except ValueError:
            raise _wrong(name, text, "an integer" if inner is int else "a number") from None
        return number
    import yaml

    try:
        return check_value(name, yaml.safe_load(stripped), kind)
    except yaml.YAMLError as exc:
        raise AudiostyleError(f"{name}={text!r} is not valid YAML: {exc}") from exc


def _int(text: str) -> int:
    """``"50"`` or ``"5e3"`` as an int; ``"1.5"`` or ``"abc"`` raise ValueError."""
    try:
        return int(text)
    except ValueError:
        number = float(text)
        if not number.is_integer():
            raise
        return int(number)
