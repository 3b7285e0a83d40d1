"""The one exception type a user can cause, and small validators that raise it."""

from __future__ import annotations

from typing import Any, Iterable


class AudiostyleError(ValueError):
    """A problem the user can fix: the message names the bad value and the fix."""


def check_range(name: str, value: float, low: float, high: float, *, fix: str = "") -> None:
    """Raise :class:`AudiostyleError` unless ``low <= value <= high``."""
    if not (low <= value <= high):
        hint = f" {fix}" if fix else ""
        raise AudiostyleError(f"{name}={value!r} is out of range: expected {low} ≤ {name} ≤ {high}.{hint}")


def check_choice(name: str, value: Any, options: Iterable[Any]) -> None:
    """Raise :class:`AudiostyleError` unless ``value`` is one of ``options``."""
    options = tuple(options)
    if value not in options:
        raise AudiostyleError(f"{name}={value!r} is not supported: choose one of {', '.join(map(repr, options))}.")


def check_positive(name: str, value: float, *, fix: str = "") -> None:
    """Raise :class:`AudiostyleError` unless ``value > 0`` (a learning rate, a scale)."""
    if not value > 0:
        hint = f" {fix}" if fix else ""
        raise AudiostyleError(f"{name}={value!r} is out of range: expected {name} > 0.{hint}")


class PlatformError(RuntimeError):
    """The platform failed a trial (reporting to Ray Tune, persisting a checkpoint, a GPU that torch cannot use or
    that failed: :mod:`audiostyle.sweep._gpu`), not the method: Ray retries it."""
