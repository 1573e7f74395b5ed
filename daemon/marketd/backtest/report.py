"""The backtest report: per rule, the alerts by kind and direction and what the price did
after them (+1/+5/+15 min), with the run's statistics; and its JSON and CSV (pure).

An outcome's **move** is its change against the alert's price signed by the alert's
direction: positive when the price went on the way the alert said (it *continued*),
negative when it went back (it *reversed*), zero when it stayed (*flat*). Means and
medians are of the moves known (an alert near the end of the recording may have none).

Everything here is a function of the run's result: the same recording and rules give
byte-identical JSON and CSV (no wall-clock time, stable order: alerts as raised, rules as
given).
"""

from __future__ import annotations

import csv
import datetime
import io
import statistics
from collections.abc import Sequence
from typing import Any, Final

import attrs
import orjson

from marketd.alerts.model import OUTCOME_AFTER_S, Alert, AlertKind, Direction, Outcome
from marketd.alerts.rules import rule_text, rules_to_json
from marketd.backtest.paths import Point
from marketd.backtest.run import Found, RunResult
from marketd.config.alerts import RuleSettings

REPORT_VERSION: Final = 1
DIRECTIONS: Final = (Direction.UP.value, Direction.DOWN.value)
ALL: Final = "all"
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@attrs.frozen
class Horizon:
    """What the price did ``after_s`` after a group of alerts."""

    after_s: int
    known: int  # alerts with this outcome
    mean_pct: float | None  # of the moves (see the module documentation)
    median_pct: float | None
    continued: int
    reversed: int
    flat: int


@attrs.frozen
class Group:
    """The alerts of one rule of one kind in one direction (or both: ``all``)."""

    kind: str
    direction: str
    alerts: int
    horizons: tuple[Horizon, ...]


@attrs.frozen
class RuleReport:
    rule: RuleSettings
    text: str  # as an operator reads it (marketd.alerts.rules.rule_text)
    groups: tuple[Group, ...]  # up, down, all
    alerts: tuple[Found, ...]
    paths: dict[tuple[str, str], tuple[Point, ...]]  # of the instruments it alerted on


@attrs.frozen
class Report:
    result: RunResult
    rules: tuple[RuleReport, ...]


def build_report(result: RunResult) -> Report:
    reports = []
    for rule in result.rules:
        found = tuple(f for f in result.alerts if f.alert.rule == rule.name)
        groups = [
            _group(rule.kind, d, [f for f in found if f.alert.direction.value == d])
            for d in DIRECTIONS
        ]
        groups.append(_group(rule.kind, ALL, list(found)))
        instruments = sorted({(f.alert.market, f.alert.symbol) for f in found})
        reports.append(
            RuleReport(
                rule=rule,
                text=rule_text(rule),
                groups=tuple(groups),
                alerts=found,
                paths={key: result.paths.get(key, ()) for key in instruments},
            )
        )
    return Report(result, tuple(reports))


def move_pct(alert: Alert, outcome: Outcome) -> float:
    """The outcome's change signed by the alert's direction (positive: continued)."""
    change = outcome.change_pct
    return change if alert.direction is Direction.UP else 0.0 - change  # never -0.0


def _group(kind: str, direction: str, found: Sequence[Found]) -> Group:
    horizons = []
    for i, after_s in enumerate(OUTCOME_AFTER_S):
        moves = [
            move_pct(f.alert, outcome) for f in found if (outcome := f.outcomes[i]) is not None
        ]
        horizons.append(
            Horizon(
                after_s=after_s,
                known=len(moves),
                mean_pct=round(statistics.fmean(moves), 4) if moves else None,
                median_pct=round(statistics.median(moves), 4) if moves else None,
                continued=sum(m > 0 for m in moves),
                reversed=sum(m < 0 for m in moves),
                flat=sum(m == 0 for m in moves),
            )
        )
    return Group(kind, direction, len(found), tuple(horizons))


# -- presentation helpers shared by the table, the page and the CSV ----------------------


def utc_ms(ms: int) -> str:
    """``2024-05-01T12:00:00.123Z``."""
    moment = _EPOCH + datetime.timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def utc_ns(ns: int | None) -> str:
    return "-" if ns is None else utc_ms(ns // 1_000_000)


def figure(alert: Alert) -> str:
    """What made the alert, in a few characters: ``+3.21%`` (price), ``x7.31 +1.20%``
    (volume), ``longs 1250000.5 in 3`` (liquidation), ``premium +0.85%``, ``funding
    +0.2500%``."""
    f = alert.figures
    if alert.kind is AlertKind.VOLUME:
        return f"x{f.get('ratio', '?')} {alert.change_pct:+.2f}%"
    if alert.kind is AlertKind.LIQUIDATION:
        who = "longs" if f.get("side") == "SELL" else "shorts"
        return f"{who} {f.get('notional', '?')} in {f.get('count', '?')}"
    if alert.kind is AlertKind.PREMIUM:
        return f"premium {alert.change_pct:+.2f}%"
    if alert.kind is AlertKind.FUNDING:
        return f"funding {alert.change_pct:+.4f}%"
    return f"{alert.change_pct:+.2f}%"


def pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:+.{digits}f}%"


def horizon_label(after_s: int) -> str:
    return f"+{after_s // 60}m" if after_s % 60 == 0 else f"+{after_s}s"


# -- JSON ---------------------------------------------------------------------------------


def to_json(report: Report) -> bytes:
    """The report as JSON (UTF-8, indented, keys in a fixed order, a final newline)."""
    r = report.result
    document: dict[str, Any] = {
        "version": REPORT_VERSION,
        "recording": {k: v for k, v in r.summary.items() if k != "streams"},
        "range": {"from_ns": r.start_ns, "to_ns": r.end_ns},
        "watched": {"kinds": list(r.kinds), "markets": list(r.markets)},
        "statistics": statistics_json(r),
        "rules": [
            {
                "rule": rules_to_json((rr.rule,))[0],
                "text": rr.text,
                "groups": [attrs.asdict(g) for g in rr.groups],
            }
            for rr in report.rules
        ],
        "alerts": [_alert_json(f) for f in r.alerts],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def statistics_json(r: RunResult) -> dict[str, Any]:
    detector = attrs.asdict(r.detector)
    detector["alerts"] = [
        {"rule": rule, "direction": direction, "count": count}
        for (rule, direction), count in sorted(r.detector.alerts.items())
    ]
    return {
        "read": attrs.asdict(r.read),
        "decode": attrs.asdict(r.ticks),
        "detector": detector,
        "outcomes_skipped": r.outcomes_skipped,
        "outcomes_missing": sum(o is None for f in r.alerts for o in f.outcomes),
    }


def _alert_json(found: Found) -> dict[str, Any]:
    out = found.alert.to_json()
    out["kind"] = found.alert.kind.value
    out["received_ns"] = found.received_ns
    out["outcomes"] = {
        str(after_s): None if o is None else {**o.to_json(), "move_pct": move_pct(found.alert, o)}
        for after_s, o in zip(OUTCOME_AFTER_S, found.outcomes, strict=True)
    }
    return out


# -- CSV ----------------------------------------------------------------------------------

CSV_HEADER: Final = (
    "rule", "kind", "id", "market", "symbol", "direction", "price_time", "price_time_ms",
    "price", "base_price", "base_time_ms", "change_pct", "figure", "received_ns",
    *(f"{name}_{after}s" for after in OUTCOME_AFTER_S
      for name in ("outcome_price", "outcome_time_ms", "outcome_change_pct", "outcome_move_pct")),
)  # fmt: skip


def to_csv(report: Report) -> str:
    """One row per alert (rules in order, each rule's alerts as raised), with a header;
    an unknown outcome is empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for rr in report.rules:
        for f in rr.alerts:
            a = f.alert
            row: list[object] = [
                a.rule, a.kind.value, a.id, a.market, a.symbol, a.direction.value,
                utc_ms(a.price_time_ms), a.price_time_ms, a.price, a.base_price,
                a.base_time_ms, a.change_pct, figure(a), f.received_ns,
            ]  # fmt: skip
            for o in f.outcomes:
                if o is None:
                    row += ["", "", "", ""]
                else:
                    row += [o.price, o.price_time_ms, o.change_pct, move_pct(a, o)]
            writer.writerow(row)
    return out.getvalue()
