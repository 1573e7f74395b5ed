"""The chaos suite's shared machinery: the measured window, the read-back, the report row.

Events. The suite counts the *sequenced* events the fake exchange generates for the
subscribed symbols: spot trades (trade id ``t``) and USD-M aggregate trades (aggregate id
``a``). Both are consecutive per symbol at the exchange, so "every one of them reached
Kafka" is checkable exactly, including the ones marketd had to backfill from REST.

The window, per (market, symbol), is the id range ``start < id <= end``:

* ``start`` — the fake's last id at the moment marketd had subscribed. The fake is paused
  (it generates nothing) before marketd starts; marketd connects and subscribes every
  stream; only then is the last id read and generation resumed. So the first event of the
  window is the first one generated after the subscription took effect: marketd must have
  it, and anything it lost at the start would show as missing.
* ``end`` — the fake's last id when the scenario's faults are over (read while it trades
  on). The window is closed only once Kafka holds, for every symbol, an id above ``end``:
  marketd detects a trade gap when the next live trade arrives, so an id missed just
  before ``end`` is backfilled only then.
* ``final`` — the fake's last id once it is paused for the drain; no id above it exists,
  so an id in Kafka outside ``start < id <= final`` was invented (never generated then).

Generated = the number of ids in the windows; distinct = how many of them are in Kafka
(distinct ids); equal = nothing missing and nothing invented. Duplicates = records of these
kinds in Kafka minus distinct ids (all records read back, the window and after). Worst
latency = max over those records of (Kafka record timestamp - exchange event time ``E``),
ms: the record timestamp is CreateTime, set by marketd's producer when it puts the record
in a batch for the broker, so it includes any time spent in the spool; for a backfilled
trade ``E`` is the trade time, so it includes the time the trade was missing.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio
from kit.daemon import collector_config
from kit.wait import poll_until

from marketd.testing.devkafka import ConsumedRecord
from marketd.testing.processes import (
    DaemonProcess,
    FakeExchangeProcess,
    metric_value,
    peak_rss_bytes,
)
from marketd.v1.market_data_pb2 import MarketEvent

# The delivery mode every scenario runs in: CHAOS_DELIVERY=exactly_once runs the suite
# with kafka.delivery: exactly_once and reads Kafka with read_committed.
DELIVERY = os.environ.get("CHAOS_DELIVERY", "at_least_once")
EXACTLY_ONCE = DELIVERY == "exactly_once"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")
# market -> (MarketEvent oneof, the id field in it, the fake's state field, the `type` header)
SEQUENCED: dict[str, tuple[str, str, str, bytes]] = {
    "spot": ("trade", "trade_id", "last_trade_id", b"trade"),
    "usdm": ("agg_trade", "agg_trade_id", "last_agg_id", b"aggTrade"),
}
MARKET_NAMES = {1: "spot", 2: "usdm"}  # marketd.v1.Market values
REPORT_ENV = "CHAOS_REPORT_DIR"
MIB = 1024 * 1024

Key = tuple[str, str]  # (market, symbol)
Ids = dict[Key, int]
Consume = Callable[..., Awaitable[list[ConsumedRecord]]]
# How often the suite polls marketd's /metrics and /readyz (and the fake's state): five
# times a second is precise enough for the reported recovery times and keeps the polling
# itself from adding measurable load to the daemon under test.
POLL_S = 0.2


# -- configuration ------------------------------------------------------------------------


@attrs.frozen
class Topics:
    raw: str
    depth: str
    orderbook: str
    alerts: str
    status: str

    @classmethod
    def unique(cls, kafka_topic: Callable[[str], str]) -> Topics:
        names = ("raw", "depth", "orderbook", "alerts", "status")
        return cls(*(kafka_topic(n) for n in names))


def daemon_config(
    fx: FakeExchangeProcess, bootstrap: str, topics: Topics, tmp: Path, **kafka: Any
) -> dict[str, Any]:
    """Spot trade + depth@100ms, USD-M aggTrade + ``!miniTicker@arr``, spool on."""
    config = collector_config(fx, bootstrap=bootstrap, topics=attrs.asdict(topics), symbols=SYMBOLS)
    config["kafka"].update(kafka)
    config["kafka"]["delivery"] = DELIVERY
    config["spool"] = {"enabled": True, "directory": str(tmp / "spool")}
    config["alerts"] = {"state_dir": str(tmp / "state")}
    return config


def fake_args(symbols: int, rate: float, seed: int, *extra: str) -> list[str]:
    # Enough history for REST backfills over a whole scenario at the highest rate.
    args = ["--symbols", str(symbols), "--rate", str(rate), "--seed", str(seed)]
    return [*args, "--history", "200000", *extra]


def metric(daemon: DaemonProcess, name: str, **labels: str) -> float:
    return metric_value(daemon.metrics(), name, **labels)


def alive(daemon: DaemonProcess) -> bool:
    if daemon.proc.poll() is not None:
        raise AssertionError(f"marketd exited ({daemon.proc.returncode}):\n{daemon.log_tail()}")
    return True


def last_ids(fx: FakeExchangeProcess) -> dict[Key, int | None]:
    """The fake's last trade / aggregate trade id per subscribed (market, symbol)."""
    state = fx.state()["markets"]
    out: dict[Key, int | None] = {}
    for market, (_, _, field, _) in SEQUENCED.items():
        for symbol in SYMBOLS:
            out[(market, symbol)] = state[market]["symbols"][symbol][field]
    return out


def known_ids(fx: FakeExchangeProcess) -> Ids:
    ids = last_ids(fx)
    missing = [k for k, v in ids.items() if v is None]
    assert not missing, f"no trade yet for {missing}"
    return {k: v for k, v in ids.items() if v is not None}


# -- the window ---------------------------------------------------------------------------


@attrs.define
class Window:
    """Where the measured window starts; ``close`` and ``finish`` fill in the rest."""

    started: float = attrs.field(factory=time.monotonic)  # wall clock of the scenario
    start: Ids = attrs.field(factory=dict)
    end: Ids = attrs.field(factory=dict)
    final: Ids = attrs.field(factory=dict)
    rss_peak: int = 0
    notes: dict[str, Any] = attrs.field(factory=dict)

    def duration_s(self) -> float:
        return time.monotonic() - self.started


async def pause_before_start(fx: FakeExchangeProcess, window: Window) -> None:
    """Let the fake trade every symbol once, then pause it (before marketd starts)."""
    await poll_until(
        lambda: None not in last_ids(fx).values(),
        timeout=20,
        what="a trade of every symbol",
        interval=POLL_S,
    )
    fx.control("pause")
    window.start = known_ids(fx)


async def resume_when_subscribed(
    fx: FakeExchangeProcess, daemon: DaemonProcess, window: Window
) -> None:
    """Wait until every feed connection of ``daemon`` has subscribed; open the window."""

    def subscribed() -> bool:
        alive(daemon)
        try:
            text = daemon.metrics()
        except OSError:
            return False
        flags = [
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.startswith("marketd_feed_connected{")
        ]
        return len(flags) >= 2 and all(f == 1.0 for f in flags)

    await poll_until(
        subscribed, timeout=40, what="marketd subscribed on every connection", interval=POLL_S
    )
    assert known_ids(fx) == window.start, "the fake generated events while paused"
    fx.control("resume")
    await wait_ready(daemon)


async def wait_ready(daemon: DaemonProcess, limit_s: float = 40) -> float:
    """Seconds until ``daemon`` answers /readyz 200 (it must stay alive meanwhile)."""
    return await poll_until(
        lambda: alive(daemon) and daemon.ready()[0] == 200,
        timeout=limit_s,
        what="/readyz 200",
        interval=POLL_S,
    )


def sequenced(records: Iterable[ConsumedRecord]) -> Iterable[tuple[ConsumedRecord, Key, int, Any]]:
    """(record, key, id, event) for every trade / aggregate trade record of the subscribed kinds."""
    wanted = {h for (_, _, _, h) in SEQUENCED.values()}
    for rec in records:
        kind = dict(rec.headers).get("type")
        if kind not in wanted or rec.value is None:
            continue
        event = MarketEvent.FromString(rec.value)
        market = MARKET_NAMES.get(event.market, "?")
        oneof, id_field, _, _ = SEQUENCED.get(market, ("?", "?", "?", b""))
        if event.WhichOneof("event") != oneof:
            continue
        payload = getattr(event, oneof)
        yield rec, (market, event.symbol), int(getattr(payload, id_field)), event


async def close_window(
    fx: FakeExchangeProcess,
    consume: Consume,
    topic: str,
    bootstrap: str,
    window: Window,
    wait_s: float,
) -> float:
    """End the window now; wait until Kafka holds an id above its end for every symbol.

    Returns the seconds that took (the catch-up). The fake keeps trading meanwhile.
    """
    window.end = known_ids(fx)
    began = time.monotonic()
    passed: set[Key] = set()
    seen = 0

    def past_end(records: list[ConsumedRecord]) -> bool:
        nonlocal seen
        fresh, seen = records[seen:], len(records)
        for _, key, seq, _ in sequenced(fresh):
            if key in window.end and seq > window.end[key]:
                passed.add(key)
        return len(passed) == len(window.end)

    await consume(
        [topic], until=past_end, wait_s=wait_s, bootstrap=bootstrap, committed=EXACTLY_ONCE
    )
    missing = sorted(set(window.end) - passed)
    assert not missing, f"no id past the window's end in Kafka within {wait_s} s for {missing}"
    return time.monotonic() - began


async def finish(
    fx: FakeExchangeProcess, daemon: DaemonProcess, window: Window, drain_s: float = 60
) -> None:
    """Pause the fake, wait for the spool to drain, note peak RSS, stop marketd (exit 0)."""
    fx.control("pause")
    window.final = known_ids(fx)
    await poll_until(
        lambda: alive(daemon) and metric(daemon, "marketd_spool_records_pending") == 0,
        timeout=drain_s,
        what="the spool drained (marketd_spool_records_pending == 0)",
        interval=POLL_S,
    )
    exposition = daemon.metrics()
    window.notes["backfilled"] = int(metric_value(exposition, "marketd_trades_backfilled_total"))
    window.notes["unfilled"] = int(metric_value(exposition, "marketd_trades_unfilled_total"))
    window.notes["reconnects"] = int(metric_value(exposition, "marketd_feed_reconnects_total"))
    window.notes["dropped_as_duplicates"] = int(
        metric_value(exposition, "marketd_duplicates_dropped_total")
    )
    window.rss_peak = max(window.rss_peak, peak_rss_bytes(daemon.proc.pid))
    code = await trio.to_thread.run_sync(daemon.stop, 60.0)
    assert code == 0, f"marketd exited {code}:\n{daemon.log_tail()}"


# -- measuring ----------------------------------------------------------------------------


@attrs.define
class Measurement:
    generated: int
    distinct: int
    duplicates: int
    worst_latency_ms: int
    missing: dict[Key, list[int]]
    invented: dict[Key, list[int]]
    out_of_order: list[Key]
    backfilled_records: int
    records: int

    @property
    def equal(self) -> bool:
        return not self.missing and not self.invented

    def problems(self) -> str:
        parts = []
        for key, ids in sorted(self.missing.items()):
            parts.append(f"{key}: {len(ids)} missing, e.g. {summarize(ids)}")
        for key, ids in sorted(self.invented.items()):
            parts.append(f"{key}: {len(ids)} outside the generated ids, e.g. {summarize(ids)}")
        return "; ".join(parts)


# report(scenario, title, measurement, window) -> the row written (the ``report`` fixture)
Report = Callable[[str, str, Measurement, Window], dict[str, Any]]


def summarize(ids: Sequence[int]) -> str:
    """Runs of consecutive ids, at most five: ``101-150, 170``."""
    runs: list[tuple[int, int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    text = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs[:5])
    return text + (" ..." if len(runs) > 5 else "")


def measure(records: Sequence[ConsumedRecord], window: Window) -> Measurement:
    """Compare what reached Kafka with what the fake generated in the window."""
    first_seen: dict[Key, list[int]] = defaultdict(list)
    seen: dict[Key, set[int]] = defaultdict(set)
    total = backfilled = 0
    worst = 0
    for rec, key, seq, event in sequenced(records):
        total += 1
        if seq not in seen[key]:
            seen[key].add(seq)
            first_seen[key].append(seq)
        payload = getattr(event, event.WhichOneof("event"))
        backfilled += int(payload.backfilled)
        worst = max(worst, rec.timestamp_ms - event.event_time_ms)
    generated = distinct = 0
    missing: dict[Key, list[int]] = {}
    invented: dict[Key, list[int]] = {}
    for key, start in window.start.items():
        expected = range(start + 1, window.end[key] + 1)
        ids = seen.get(key, set())
        generated += len(expected)
        distinct += sum(1 for i in ids if start < i <= window.end[key])
        if lost := [i for i in expected if i not in ids]:
            missing[key] = lost
        if wrong := [i for i in ids if not start < i <= window.final[key]]:
            invented[key] = wrong
    for key in set(seen) - set(window.start):
        invented[key] = sorted(seen[key])
    all_distinct = sum(len(s) for s in seen.values())
    return Measurement(
        generated=generated,
        distinct=distinct,
        duplicates=total - all_distinct,
        worst_latency_ms=worst,
        missing=missing,
        invented=invented,
        out_of_order=sorted(k for k, ids in first_seen.items() if ids != sorted(ids)),
        backfilled_records=backfilled,
        records=total,
    )


async def read_back(consume: Consume, topic: str, bootstrap: str) -> list[ConsumedRecord]:
    """Every record of ``topic`` up to its end offsets (marketd has stopped by now), as a
    consumer of the delivery mode reads them (exactly once: read_committed)."""
    return await consume([topic], wait_s=120, bootstrap=bootstrap, committed=EXACTLY_ONCE)


# -- the report ---------------------------------------------------------------------------


def write_row(
    directory: Path | None,
    test_name: str,
    scenario: str,
    title: str,
    result: Measurement,
    window: Window,
) -> dict[str, Any]:
    """The scenario's row of docs/CHAOS.md, as JSON into ``directory`` (when given)."""
    row = {
        "test": test_name,
        "scenario": scenario,
        "title": title,
        "generated": result.generated,
        "distinct": result.distinct,
        "equal": result.equal,
        "duplicates": result.duplicates,
        "worst_latency_ms": result.worst_latency_ms,
        "peak_rss_mib": round(window.rss_peak / MIB, 1),
        "duration_s": round(window.duration_s(), 1),
        "notes": {
            **window.notes,
            "records": result.records,
            "backfilled_in_kafka": result.backfilled_records,
            "out_of_order": [list(k) for k in result.out_of_order],
            "problems": result.problems(),
        },
        "python": platform.python_version(),
    }
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{scenario}.json").write_text(json.dumps(row, indent=2) + "\n")
    return row


def allowed_duplicates(at_least_once: int) -> int:
    """Repeats a scenario may show: ``at_least_once``'s bound, none with exactly once."""
    return 0 if EXACTLY_ONCE else at_least_once


def assert_exact(result: Measurement) -> None:
    """Every generated id of the window in Kafka, none invented, first deliveries in order."""
    assert result.generated > 0
    assert result.equal, result.problems()
    assert result.generated == result.distinct
    assert not result.out_of_order, f"first deliveries out of order for {result.out_of_order}"
