"""The backtest report as one self-contained HTML page: inline CSS, inline SVG, no script
and no external URL, so it opens from a file anywhere (pure).

Per rule: its table of alerts by kind and direction with their outcomes, one chart, and
the list of its alerts. The chart is one ``<svg>`` with a band per instrument the rule
alerted on (those with the most alerts first, at most :data:`CHART_INSTRUMENTS`): the
instrument's price path over the run (each band on its own price scale, one time scale
for all), each alert a triangle at its price and time (up green, down red) with a line
from the base price it was measured against; hovering a marker shows the alert.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Final

from marketd.alerts.model import OUTCOME_AFTER_S, Alert, AlertKind, Direction
from marketd.backtest.paths import Point
from marketd.backtest.report import (
    Report,
    RuleReport,
    figure,
    horizon_label,
    move_pct,
    pct,
    utc_ms,
)
from marketd.backtest.run import Found
from marketd.backtest.text import summary_lines

CHART_INSTRUMENTS: Final = 24
"""Instruments drawn per rule's chart (the tables list every alert)."""
ALERTS_LISTED: Final = 1000
"""Alerts listed per rule on the page (the JSON and CSV hold all)."""

_WIDTH = 960
_LEFT = 120  # the instrument's name
_RIGHT = 80  # its price range
_BAND = 72
_GAP = 14
_AXIS = 28  # the time axis' labels below the bands
_TOP = 8  # room above the first band for its price label
_COLOUR = {Direction.UP: "#1a7f37", Direction.DOWN: "#cf222e"}

_MOVES_NOTE = (
    '<p class="note">Outcomes are moves in the alert&#x27;s direction: + continued, - reversed.</p>'
)
_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1000px;
  color: #1f2328; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 12px; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 12px; }
th, td { padding: 2px 8px; border-bottom: 1px solid #d0d7de; text-align: right;
  white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
td.text { text-align: left; }
.up { color: #1a7f37; } .down { color: #cf222e; }
svg { display: block; margin: 0.8em 0; }
svg text { font: 11px system-ui, sans-serif; fill: #57606a; }
svg .path { fill: none; stroke: #57606a; stroke-width: 1; }
svg .band { fill: #f6f8fa; }
.note { color: #57606a; font-size: 12px; }
"""


def render_page(report: Report) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><title>marketd backtest</title>',
        f"<style>{_CSS}</style></head>",
        "<body>",
        "<h1>marketd backtest</h1>",
        f"<pre>{_e(chr(10).join(summary_lines(report)))}</pre>",
    ]
    for rr in report.rules:
        parts += _rule(rr)
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _sign(value: float | None) -> str:
    if value is None or value == 0:
        return ""
    return ' class="up"' if value > 0 else ' class="down"'


def _rule(rr: RuleReport) -> list[str]:
    name = _e(rr.rule.name)
    out = [f'<section id="rule-{name}">', f"<h2>{_e(rr.text)} [{_e(rr.rule.kind)}]</h2>"]
    head = "".join(
        f"<th>{horizon_label(a)} mean</th><th>{horizon_label(a)} median</th>"
        f"<th>{horizon_label(a)} cont/rev</th>"
        for a in OUTCOME_AFTER_S
    )
    out.append(f"<table><tr><th>kind</th><th>direction</th><th>alerts</th>{head}</tr>")
    for g in rr.groups:
        cells = "".join(
            f"<td{_sign(h.mean_pct)}>{pct(h.mean_pct)}</td>"
            f"<td{_sign(h.median_pct)}>{pct(h.median_pct)}</td>"
            f"<td>{h.continued}/{h.reversed}</td>"
            for h in g.horizons
        )
        out.append(
            f'<tr><td>{_e(g.kind)}</td><td class="text">{_e(g.direction)}</td>'
            f"<td>{g.alerts}</td>{cells}</tr>"
        )
    out.append("</table>")
    out.append(_MOVES_NOTE)
    out += chart(rr)
    out += _alerts(rr.alerts)
    out.append("</section>")
    return out


def _alerts(found: Sequence[Found]) -> list[str]:
    if not found:
        return ['<p class="note">No alerts.</p>']
    outcomes = "".join(f"<th>{horizon_label(a)}</th>" for a in OUTCOME_AFTER_S)
    out = [
        "<table><tr><th>time (UTC)</th><th>market</th><th>symbol</th><th>kind</th>"
        f"<th>dir</th><th>figure</th><th>price</th>{outcomes}</tr>"
    ]
    for f in found[:ALERTS_LISTED]:
        a = f.alert
        moves = [None if o is None else move_pct(a, o) for o in f.outcomes]
        cells = "".join(f"<td{_sign(m)}>{pct(m)}</td>" for m in moves)
        out.append(
            f"<tr><td>{utc_ms(a.price_time_ms)}</td><td>{_e(a.market)}</td>"
            f"<td>{_e(a.symbol)}</td><td>{_e(a.kind.value)}</td>"
            f'<td class="{a.direction.value}">{a.direction.value}</td>'
            f"<td>{_e(figure(a))}</td><td>{_e(a.price)}</td>{cells}</tr>"
        )
    out.append("</table>")
    if len(found) > ALERTS_LISTED:
        out.append(f'<p class="note">{len(found) - ALERTS_LISTED:,} more alerts: see the '
                   "JSON or CSV report.</p>")  # fmt: skip
    return out


def chart(rr: RuleReport) -> list[str]:
    """The rule's chart: one ``<svg>`` (see the module documentation)."""
    counts = Counter((f.alert.market, f.alert.symbol) for f in rr.alerts)
    shown = sorted(counts, key=lambda key: (-counts[key], key))[:CHART_INSTRUMENTS]
    times = [t for key in shown for t, _ in rr.paths.get(key, ())]
    for f in rr.alerts:
        if (f.alert.market, f.alert.symbol) in counts:
            times += (f.alert.base_time_ms, f.alert.price_time_ms)
    height = _TOP + _AXIS + max(1, len(shown)) * (_BAND + _GAP)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-label="price paths and alerts of rule {_e(rr.rule.name)}">'
    ]
    if not shown:
        out.append(f'<text x="{_LEFT}" y="20">no alerts</text>')
        return [*out, "</svg>"]
    t0, t1 = min(times), max(times)
    span = max(1, t1 - t0)
    plot = _WIDTH - _LEFT - _RIGHT

    def x(t: int) -> float:
        return _LEFT + (t - t0) * plot / span

    for row, key in enumerate(shown):
        top = _TOP + row * (_BAND + _GAP)
        market, symbol = key
        found = [f for f in rr.alerts if (f.alert.market, f.alert.symbol) == key]
        out += _band(rr.paths.get(key, ()), found, top, x)
        out.append(f'<text x="4" y="{top + _BAND / 2 + 4:.1f}">{_e(symbol)} {_e(market)}</text>')
    bottom = _TOP + len(shown) * (_BAND + _GAP) + 12
    out.append(f'<text x="{_LEFT}" y="{bottom}">{utc_ms(t0)}</text>')
    out.append(f'<text x="{_WIDTH - _RIGHT}" y="{bottom}" text-anchor="end">{utc_ms(t1)}</text>')
    if len(counts) > len(shown):
        out.append(
            f'<text x="{_WIDTH - _RIGHT}" y="{bottom + 14}" text-anchor="end">'
            f"{len(counts) - len(shown)} more instruments not drawn</text>"
        )
    out.append("</svg>")
    return out


def _band(
    path: Sequence[Point], found: Sequence[Found], top: int, x: Callable[[int], float]
) -> list[str]:
    """One instrument's band: its path, its price range, its alerts."""
    prices = [float(p) for _, p in path]
    for f in found:
        prices.append(float(f.alert.price))
        if _base_is_price(f.alert):
            prices.append(float(f.alert.base_price))
    low, high = min(prices), max(prices)
    pad = (high - low) * 0.08 or abs(high) * 0.01 or 1.0
    low, high = low - pad, high + pad

    def y(price: str) -> float:
        return top + _BAND - (float(price) - low) * _BAND / (high - low)

    out = [f'<rect class="band" x="{_LEFT}" y="{top}" width="{_WIDTH - _LEFT - _RIGHT}" '
           f'height="{_BAND}"/>']  # fmt: skip
    if path:
        points = " ".join(f"{x(t):.1f},{y(p):.1f}" for t, p in path)
        out.append(f'<polyline class="path" points="{points}"/>')
    right = _WIDTH - _RIGHT + 4
    out.append(f'<text x="{right}" y="{top + 10}">{_e(_price_text(high - pad))}</text>')
    out.append(f'<text x="{right}" y="{top + _BAND - 2}">{_e(_price_text(low + pad))}</text>')
    for f in found:
        a = f.alert
        colour = _COLOUR[a.direction]
        x1, y1 = x(a.price_time_ms), y(a.price)
        x0, y0 = (x(a.base_time_ms), y(a.base_price)) if _base_is_price(a) else (x1, y1)
        tip = y1 + (-6 if a.direction is Direction.UP else 6)
        base = y1 + (4 if a.direction is Direction.UP else -4)
        moves = ", ".join(
            f"{horizon_label(after)} {pct(None if o is None else move_pct(a, o))}"
            for after, o in zip(OUTCOME_AFTER_S, f.outcomes, strict=True)
        )
        title = (
            f"{utc_ms(a.price_time_ms)} {a.symbol} {a.market} {a.direction.value} "
            f"{figure(a)} at {a.price} (base {a.base_price}); {moves}"
        )
        out.append(
            f'<g class="alert {a.direction.value}"><title>{_e(title)}</title>'
            f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" '
            f'stroke="{colour}" stroke-width="1.5"/>'
            f'<polygon points="{x1:.1f},{tip:.1f} {x1 - 5:.1f},{base:.1f} '
            f'{x1 + 5:.1f},{base:.1f}" fill="{colour}"/></g>'
        )
    return out


def _base_is_price(alert: Alert) -> bool:
    """Whether the alert's base is a price of the instrument (a funding alert's is the
    funding rate)."""
    return alert.kind is not AlertKind.FUNDING


def _price_text(value: float) -> str:
    return f"{value:.6g}"
