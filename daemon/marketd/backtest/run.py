"""The backtest driver: a recording's entries → ticks → the real detector → alerts, their
outcomes and the price paths to chart them on (synchronous file reading, no trio).

Entries are read in time order a block at a time (:func:`marketd.recorder.read_blocks`,
as columns), turned into the ticks the live detector would get (:mod:`.ticks`) and fed to a
:class:`~marketd.alerts.detector.Detector` with the given rules, so each alert, and its
id, is the one a live detector fed the same frames raises. Outcomes (+1/+5/+15 min) come
from the detector's own tracking (:meth:`~marketd.alerts.detector.Detector.take_outcomes`).

Time bounds apply to the time a frame was **received**: the alerts reported are those
raised by frames received in ``[start_ns, end_ns)``. The detector starts empty at
``start_ns`` (live it would have had the window before), and after ``end_ns`` reading goes
on for up to :data:`OUTCOME_GRACE_NS` so the last alerts get their outcomes; alerts raised
in that stretch are not reported.

``detected_at_ms`` of an alert is the receive time of the frame that raised it (live: the
wall clock a moment later), so a run depends on nothing but its input.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence

import attrs

from marketd.alerts.detector import Detector, DetectorStatistics
from marketd.alerts.model import OUTCOME_AFTER_S, Alert, Outcome
from marketd.backtest.paths import Point, PricePaths, bucket_ms_for
from marketd.backtest.ticks import FrameTicks, TickStatistics
from marketd.config.alerts import RuleSettings
from marketd.data.events import Tick
from marketd.data.records import Market
from marketd.recorder import ReadStatistics, Summary, directory_summary, read_blocks

"""Entries taken from the reader at a time."""

OUTCOME_GRACE_NS = (OUTCOME_AFTER_S[-1] + 60) * 1_000_000_000
"""How far past ``end_ns`` reading goes on for outcomes: the last horizon, and a minute
for the first tick after it to arrive."""

_HORIZONS = len(OUTCOME_AFTER_S)

Progress = Callable[[float, int, int], None]
"""Called now and then with the fraction of the time range read, the entries read and
the alerts found so far."""


@attrs.frozen
class Found:
    """An alert, when the frame that raised it was received, and its outcomes (one per
    :data:`~marketd.alerts.model.OUTCOME_AFTER_S` horizon; None: the recording ended, or
    the detector had too many waiting, before it was known)."""

    alert: Alert
    received_ns: int
    outcomes: tuple[Outcome | None, ...]


@attrs.frozen
class RunResult:
    summary: Summary  # the recording, from its indexes
    start_ns: int | None
    end_ns: int | None
    rules: tuple[RuleSettings, ...]
    kinds: tuple[str, ...]
    markets: tuple[str, ...]
    alerts: tuple[Found, ...]  # in the order raised
    # Of the instruments that alerted (none kept without ``charts``).
    paths: Mapping[tuple[str, str], tuple[Point, ...]]
    read: ReadStatistics
    ticks: TickStatistics
    detector: DetectorStatistics
    outcomes_skipped: int  # alerts the detector kept no outcomes for (too many waiting)


def run_backtest(
    directory: str | os.PathLike[str],
    rules: Sequence[RuleSettings],
    *,
    kinds: Collection[str],
    markets: Collection[str],
    start_ns: int | None = None,
    end_ns: int | None = None,
    charts: bool = True,
    progress: Progress | None = None,
) -> RunResult:
    """Run ``rules`` over the recording in ``directory`` (see the module documentation);
    with ``charts``, keep the price paths of the instruments that alerted (a sixth of
    the time). ``OSError`` if the directory cannot be listed; damaged data is counted,
    never raised. The cyclic garbage collector is paused while it runs (process-wide:
    the command runs it in a process of its own)."""
    summary = directory_summary(directory)
    stop_ns = None if end_ns is None else end_ns + OUTCOME_GRACE_NS
    low = _bound(summary["first_ns"], start_ns, max)
    high = _bound(summary["last_ns"], end_ns, min)
    decoder = FrameTicks(kinds, [Market(m) for m in markets])
    # No wall clock: detected_at_ms is set from the frame's receive time below.
    detector = Detector(rules, clock=lambda: 0)
    paths = PricePaths(bucket_ms_for(low, high)) if charts else None
    reading = read_blocks(directory, start_ns=start_ns, end_ns=stop_ns)
    alerts: list[Alert] = []
    received_at: list[int] = []
    outcomes: dict[str, list[Outcome | None]] = {}
    waiting = 0  # outcomes of reported alerts not known yet
    entries = 0
    ticks: list[Tick] = []
    times: list[int] = []
    observe = detector.observe_tick
    with _collector_paused():
        for block in reading:
            entries += sum(map(len, block))
            ticks.clear()
            times.clear()
            decoder.decode_columns(block, ticks, times)
            # Every tick through the detector (the loop in C), then the few that alerted.
            raised = list(map(observe, ticks))
            for found, ns in itertools.compress(zip(raised, times, strict=True), raised):
                if end_ns is None or ns < end_ns:
                    for alert in found:
                        alerts.append(attrs.evolve(alert, detected_at_ms=ns // 1_000_000))
                        received_at.append(ns)
                        outcomes[alert.id] = [None] * _HORIZONS
                        waiting += _HORIZONS
            if paths is not None:
                paths.add(ticks)
            for outcome in detector.take_outcomes():
                slots = outcomes.get(outcome.alert_id)
                if slots is not None:
                    slots[OUTCOME_AFTER_S.index(outcome.after_s)] = outcome
                    waiting -= 1
            last_ns = block[-1].ns[-1]
            if progress is not None:
                progress(_fraction(last_ns, low, high), entries, len(alerts))
            if end_ns is not None and last_ns >= end_ns and not waiting:
                break  # past the range, and every reported alert has its outcomes
    alerted = sorted({(a.market, a.symbol) for a in alerts})
    return RunResult(
        summary=summary,
        start_ns=start_ns,
        end_ns=end_ns,
        rules=tuple(rules),
        kinds=tuple(sorted(kinds)),
        markets=tuple(sorted(markets)),
        alerts=tuple(
            Found(a, ns, tuple(outcomes[a.id])) for a, ns in zip(alerts, received_at, strict=True)
        ),
        paths={} if paths is None else paths.paths(alerted),
        read=reading.statistics(),
        ticks=decoder.statistics(),
        detector=detector.statistics(),
        outcomes_skipped=detector.outcomes_skipped,
    )


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off, then as it was. A run makes next to no reference
    cycles (tens in a million frames), while the collector's passes over what the
    detector keeps (a tuple per tick in its windows) cost about a tenth of the run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _bound(edge: int | None, given: int | None, pick: Callable[[int, int], int]) -> int | None:
    if edge is None or given is None:
        return given if edge is None else edge
    return pick(edge, given)


def _fraction(ns: int, low: int | None, high: int | None) -> float:
    if low is None or high is None or high <= low:
        return 1.0
    return min(1.0, max(0.0, (ns - low) / (high - low)))
