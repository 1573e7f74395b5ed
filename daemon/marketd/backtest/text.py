"""The backtest report for a terminal: the run in a few lines, then per rule a table of
alerts by kind and direction with their outcomes, and the list of its alerts (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from marketd.alerts.model import OUTCOME_AFTER_S
from marketd.backtest.report import (
    Report,
    RuleReport,
    figure,
    horizon_label,
    move_pct,
    pct,
    utc_ms,
    utc_ns,
)

ALERTS_LISTED: Final = 100
"""Alerts listed per rule in the terminal (the JSON and CSV hold all)."""


def render_text(report: Report, *, listed: int = ALERTS_LISTED) -> str:
    lines = summary_lines(report)
    for rr in report.rules:
        lines += ["", *_rule(rr, listed)]
    return "\n".join(lines) + "\n"


def summary_lines(report: Report) -> list[str]:
    """The run in a few lines: the recording, the range, what was read, decoded and
    detected, and any damage found."""
    r = report.result
    s = r.summary
    read, ticks, det = r.read, r.ticks, r.detector
    lines = [
        f"recording {s['directory']}: {s['segments']} segments, {s['entries']:,} entries, "
        f"{s['bytes']:,} bytes, {utc_ns(s['first_ns'])} .. {utc_ns(s['last_ns'])}",
        f"range     {'start' if r.start_ns is None else utc_ns(r.start_ns)} .. "
        f"{'end' if r.end_ns is None else utc_ns(r.end_ns)} (receive time); "
        f"watching {', '.join(r.kinds)} on {', '.join(r.markets)}",
        f"read      {read.entries:,} entries of {read.segments_read} segments "
        f"({read.segments_skipped} skipped by their index)",
        f"decoded   {ticks.frames:,} frames -> {ticks.ticks:,} ticks; skipped "
        f"{ticks.skipped:,} frames of other kinds, {ticks.control:,} control frames and "
        f"markers, {ticks.rest:,} REST responses; dropped {ticks.duplicates:,} duplicate "
        f"trades; {ticks.gaps:,} trade id gaps (not backfilled)",
        f"detector  {det.ticks:,} ticks of {det.instruments:,} instruments; dropped "
        f"{det.duplicates:,} duplicate, {det.out_of_order:,} out of order, "
        f"{det.invalid:,} invalid; {len(r.alerts):,} alerts",
    ]
    damage = {
        "corrupt blocks": read.corrupt_blocks,
        "corrupt records": read.corrupt_records,
        "torn tails": read.torn_tails,
        "unreadable segments": read.unreadable_segments,
        "malformed frames": ticks.malformed,
        "unknown frames": ticks.unknown,
        "entries of unknown connections": ticks.unknown_connections,
        "alerts without outcomes (too many waiting)": r.outcomes_skipped,
    }
    found = [f"{n:,} {what}" for what, n in damage.items() if n]
    lines.append(f"damage    {'; '.join(found) if found else 'none'}")
    return lines


def _rule(rr: RuleReport, listed: int) -> list[str]:
    lines = [f"rule {rr.text} [{rr.rule.kind}]"]
    head = ["kind", "direction", "alerts"]
    for after in OUTCOME_AFTER_S:
        label = horizon_label(after)
        head += [f"{label} mean", "median", "cont/rev"]
    rows = [head]
    for g in rr.groups:
        row = [g.kind, g.direction, str(g.alerts)]
        for h in g.horizons:
            row += [pct(h.mean_pct), pct(h.median_pct), f"{h.continued}/{h.reversed}"]
        rows.append(row)
    lines += _table(rows, right_from=2)
    if not rr.alerts:
        return [*lines, "  no alerts"]
    lines.append("")
    rows = [["time (UTC)", "market", "symbol", "kind", "dir", "figure", "price",
             *(f"{horizon_label(a)}" for a in OUTCOME_AFTER_S)]]  # fmt: skip
    for f in rr.alerts[:listed]:
        a = f.alert
        rows.append(
            [utc_ms(a.price_time_ms), a.market, a.symbol, a.kind.value, a.direction.value,
             figure(a), a.price,
             *(pct(None if o is None else move_pct(a, o)) for o in f.outcomes)]
        )  # fmt: skip
    lines += _table(rows, right_from=5)
    if len(rr.alerts) > listed:
        lines.append(f"  ... {len(rr.alerts) - listed:,} more alerts (see --json or --csv)")
    lines.append("  outcomes are moves in the alert's direction: + continued, - reversed")
    return lines


def _table(rows: Sequence[Sequence[str]], *, right_from: int) -> list[str]:
    """Columns padded to their widest cell; those from ``right_from`` right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            cell.rjust(width) if i >= right_from else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        out.append(("  " + "  ".join(cells)).rstrip())
    return out
