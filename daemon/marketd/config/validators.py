"""Generic attrs validators for configuration values, and the error they raise.

Every settings module uses these so that each field carries its own range check and the
loader (:mod:`marketd.config.load`) can report every problem with its dotted key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import attrs

SECRET: dict[str, Any] = {"secret": True}
"""Field metadata marking a secret: shown as ``"***"`` when set."""


class InvalidValue(ValueError):
    """A field value is out of range or inconsistent with its siblings.

    ``problems`` say what is wrong, without the key. ``relational`` are those that
    compare with sibling fields (``max_s`` against ``initial_s``), listed after the
    others; ``whole`` is true when the problems are about the enclosing object.
    """

    def __init__(
        self,
        name: str,
        problems: Iterable[str],
        *,
        relational: Iterable[str] = (),
        whole: bool = False,
    ) -> None:
        self.name = name
        self.relational = tuple(relational)
        self.problems = (*problems, *self.relational)
        self.whole = whole
        super().__init__("; ".join(f"{name}: {p}" for p in self.problems))


Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _fail(attribute: attrs.Attribute[Any], problem: str) -> InvalidValue:
    return InvalidValue(attribute.name, [problem])


def _fail_relational(attribute: attrs.Attribute[Any], problem: str) -> InvalidValue:
    return InvalidValue(attribute.name, [], relational=[problem])


def greater_than(low: float) -> Validator:
    """``value > low`` (and finite)."""

    def check(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
        if not (math.isfinite(value) and value > low):
            raise _fail(attribute, f"must be > {low:g}, got {value!r}")

    return check


def at_least(low: float) -> Validator:
    """``value >= low`` (and finite)."""

    def check(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
        if not (math.isfinite(value) and value >= low):
            raise _fail(attribute, f"must be >= {low:g}, got {value!r}")

    return check


def within(low: float, high: float, *, low_open: bool = False) -> Validator:
    """``low <= value <= high``, or ``low < value <= high`` with ``low_open``."""
    shown = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"

    def check(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
        above = value > low if low_open else value >= low
        if not (math.isfinite(value) and above and value <= high):
            raise _fail(attribute, f"must be in {shown}, got {value!r}")

    return check


def one_of(choices: Iterable[str]) -> Validator:
    allowed = tuple(choices)
    shown = ", ".join(repr(c) if c == "" else c for c in allowed)

    def check(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in allowed:
            raise _fail(attribute, f"must be one of {shown}; got {value!r}")

    return check


def url(*schemes: str) -> Validator:
    """An absolute URL with one of ``schemes`` and a host."""
    shown = " or ".join(f"{s}://" for s in schemes)

    def check(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError:
            raise _fail(attribute, f"must be a {shown} URL, got {value!r}") from None
        if parts.scheme not in schemes or not parts.hostname:
            raise _fail(attribute, f"must be a {shown} URL with a host, got {value!r}")

    return check
