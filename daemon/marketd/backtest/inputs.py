"""What ``marketd backtest`` reads besides the recording: the rules file, times, and the
event kinds and markets to watch (pure except for reading the rules file).

The rules file is one of the shapes marketd already reads, in YAML or JSON:

* a list of rules, or ``{"rules": [...]}`` — the gateway's saved ``rules.json``
  (:mod:`marketd.alerts.rules`);
* a marketd configuration file — its ``alerts.rules``, and its ``alerts.kinds`` and
  ``alerts.markets`` (the daemon's defaults where it sets none), so a backtest watches
  what that daemon watched.

Rules are validated by :func:`marketd.alerts.rules.parse_rules`, with its messages.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from marketd.alerts.rules import RulesError, parse_rules
from marketd.config.alerts import ALERT_MARKETS, PRICE_KINDS, AlertSettings, RuleSettings

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_DEFAULTS = AlertSettings()


class InputError(ValueError):
    """An input the backtest cannot use; the message says which and why, on one line."""


@attrs.frozen
class RulesFile:
    rules: tuple[RuleSettings, ...]
    # From a configuration file (else None: the command line's or every one).
    kinds: tuple[str, ...] | None = None
    markets: tuple[str, ...] | None = None


def load_rules_file(path: Path) -> RulesFile:
    """The rules (and, from a configuration file, the watched kinds and markets) of
    ``path``; :class:`InputError` naming the file and each problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the rules file {str(path)!r}: {_reason(exc)}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: not valid {_syntax(path)}: {_one_line(str(exc))}") from None
    try:
        return _rules_file(raw)
    except RulesError as exc:
        raise InputError(f"{path}: {exc}") from None


def _rules_file(raw: object) -> RulesFile:
    if not isinstance(raw, Mapping) or "rules" in raw:
        return RulesFile(parse_rules(raw))
    alerts = raw.get("alerts")
    if alerts is None:
        keys = sorted(map(str, raw))
        raise RulesError([
            'expected a list of rules, {"rules": [...]} or a marketd configuration with '
            f"alerts.rules, got keys {keys}"
        ])  # fmt: skip
    if not isinstance(alerts, Mapping):
        raise RulesError([f"alerts: expected a mapping, got {type(alerts).__name__}"])
    if "rules" in alerts:
        try:
            rules = parse_rules(alerts["rules"])
        except RulesError as exc:
            raise RulesError([f"alerts.{p}" for p in exc.problems]) from None
    else:
        rules = _DEFAULTS.rules
    kinds = _names(alerts, "kinds", PRICE_KINDS, _DEFAULTS.kinds)
    markets = _names(alerts, "markets", ALERT_MARKETS, _DEFAULTS.markets)
    return RulesFile(rules, kinds, markets)


def _names(
    alerts: Mapping[Any, Any], key: str, known: tuple[str, ...], default: tuple[str, ...]
) -> tuple[str, ...]:
    if key not in alerts:
        return default
    value = alerts[key]
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise RulesError([f"alerts.{key}: expected a list of {', '.join(known)}"])
    unknown = [v for v in value if v not in known]
    if unknown:
        raise RulesError([f"alerts.{key}: {unknown} not among {', '.join(known)}"])
    return tuple(dict.fromkeys(value))


def _syntax(path: Path) -> str:
    return "JSON" if path.suffix == ".json" else "YAML"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _one_line(str(exc))


# -- argparse value types -----------------------------------------------------------------


def time_ns(text: str) -> int:
    """An argparse type: an ISO-8601 time (UTC unless it gives an offset; a date alone is
    its midnight) or epoch milliseconds, as epoch nanoseconds."""
    value = text.strip()
    if value.isdigit():
        return int(value) * 1_000_000
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "must be an ISO-8601 time such as 2024-05-01T12:00:00Z or epoch milliseconds, "
            f"got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def kinds(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated event kinds that carry a price."""
    return _choices(text, PRICE_KINDS, "event kinds carrying a price")


def markets(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated markets."""
    return _choices(text, ALERT_MARKETS, "markets")


def _choices(text: str, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not values or any(v not in known for v in values):
        raise argparse.ArgumentTypeError(
            f"must be comma-separated {what} ({', '.join(known)}), got {text!r}"
        )
    return values
