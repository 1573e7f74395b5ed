"""What the chaos scenarios check on the status stream (issue 15): each fault a scenario
causes appears there with the right range, and nothing else does.

The depth topic is the referee for depth: its diffs, in order per symbol, form an update-id
chain (spot: a diff follows when ``U <= last u + 1``; USD-M: when ``pu <= last u``, written
here independently of marketd's own check). Every break in that chain must be a
``depthGap`` with exactly its ids, or fall in a window that the stream events already say
was not seen (between a process killed without a ``streamDown`` and its successor's
``collectorStarted``); every ``depthGap`` must be such a break. Streams must go up and down
in turn, end ``stopped`` (every scenario stops marketd gracefully), and go down only where
the scenario cut them.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import attrs
from chaoskit import MARKET_NAMES, SYMBOLS, Consume, Topics, read_back

from marketd.status.events import EVENT_TYPES
from marketd.testing.devkafka import ConsumedRecord
from marketd.v1.market_data_pb2 import MarketEvent
from marketd.v1.status_pb2 import StatusEvent

# The streams of chaoskit.daemon_config's subscriptions, as (market, stream name).
EXPECTED_STREAMS: frozenset[tuple[str, str]] = frozenset(
    [("spot", f"{s.lower()}@{c}") for s in SYMBOLS for c in ("trade", "depth@100ms")]
    + [("usdm", f"{s.lower()}@aggTrade") for s in SYMBOLS]
    + [("usdm", "!miniTicker@arr")]
)

Break = tuple[str, str, int, int]  # (market, symbol, last update id, first present again)


@attrs.frozen
class Change:
    """A stream going up or down, in the order its symbol's partition holds it."""

    up: bool
    time_ms: int
    reason: str = ""
    last_frame_ms: int = 0


@attrs.define
class StatusLog:
    events: list[StatusEvent]
    streams: dict[tuple[str, str], list[Change]]
    started_ms: list[int]  # collectorStarted times, ascending
    gaps: set[Break]
    breaks: list[tuple[Break, int, int]]  # (break, received ns before it, after it)

    def count(self) -> dict[str, int]:
        kinds = Counter(EVENT_TYPES[str(e.WhichOneof("event"))] for e in self.events)
        return dict(sorted(kinds.items()))

    def of(self, kind: str) -> list[StatusEvent]:
        return [e for e in self.events if e.WhichOneof("event") == kind]

    def downs(self, key: tuple[str, str]) -> list[Change]:
        return [c for c in self.streams[key] if not c.up]


def read_status(status: Sequence[ConsumedRecord], depth: Sequence[ConsumedRecord]) -> StatusLog:
    """Decode the status topic (repeats of one event, as at least once may deliver them,
    counted once) and find the breaks in the depth topic's chains."""
    events: list[StatusEvent] = []
    seen: set[bytes] = set()
    for rec in status:
        if rec.value is None or rec.value in seen:
            continue
        seen.add(rec.value)
        events.append(StatusEvent.FromString(rec.value))
    streams: dict[tuple[str, str], list[Change]] = defaultdict(list)
    for e in events:
        kind = e.WhichOneof("event")
        market = MARKET_NAMES.get(e.market, "?")
        if kind == "stream_up":
            streams[(market, e.stream_up.stream)].append(Change(True, e.time_ms))
        elif kind == "stream_down":
            d = e.stream_down
            streams[(market, d.stream)].append(Change(False, e.time_ms, d.reason, d.last_frame_ms))
    gaps = {
        (MARKET_NAMES.get(e.market, "?"), e.symbol, g.last_update_id, g.first_missing_below)
        for e in events
        if e.WhichOneof("event") == "depth_gap"
        for g in (e.depth_gap,)
    }
    started = sorted(e.time_ms for e in events if e.WhichOneof("event") == "collector_started")
    return StatusLog(events, dict(streams), started, gaps, list(depth_breaks(depth)))


def depth_breaks(records: Iterable[ConsumedRecord]) -> Iterable[tuple[Break, int, int]]:
    """Each break in the depth chains: (break, received ns of the diff before, after)."""
    last: dict[tuple[str, str], tuple[int, int]] = {}  # -> (highest u, its received ns)
    for rec in records:
        if rec.value is None:
            continue
        event = MarketEvent.FromString(rec.value)
        if event.WhichOneof("event") != "depth_diff":
            continue
        diff, key = event.depth_diff, (MARKET_NAMES.get(event.market, "?"), event.symbol)
        before = last.get(key)
        if before is not None:
            top, received = before
            if diff.HasField("prev_final_update_id"):
                if diff.prev_final_update_id > top:
                    yield (*key, top, diff.prev_final_update_id + 1), received, event.received_ns
            elif diff.first_update_id > top + 1:
                yield (*key, top, diff.first_update_id), received, event.received_ns
        if before is None or diff.final_update_id > before[0]:
            last[key] = (diff.final_update_id, event.received_ns)


def assert_streams_alternate(log: StatusLog) -> None:
    """Every configured stream went up; up and down alternate (an up may repeat only across
    a restart, whose killed process could not say down); the last word is ``stopped``."""
    assert set(log.streams) == EXPECTED_STREAMS, sorted(set(log.streams) ^ EXPECTED_STREAMS)
    for key, changes in log.streams.items():
        assert changes[0].up, (key, changes)
        for a, b in itertools.pairwise(changes):
            if a.up and b.up:
                assert restarted_between(log, a.time_ms, b.time_ms), (key, a, b)
            else:
                assert a.up != b.up, (key, a, b)
        final = changes[-1]
        assert not final.up, (key, final)
        assert final.reason == "stopped", (key, final)
        for down in changes[:-1]:
            assert down.up or down.reason != "stopped", (key, down)


def restarted_between(log: StatusLog, after_ms: int, before_ms: int) -> bool:
    return any(after_ms <= t <= before_ms for t in log.started_ms[1:])


def assert_gaps_are_the_breaks(log: StatusLog) -> None:
    """``depthGap`` events are exactly the depth topic's breaks, except a break across a
    restart (covered by the stream events: up again after ``collectorStarted``)."""
    unreported = [
        (b, before, after)
        for b, before, after in log.breaks
        if b not in log.gaps and not restarted_between(log, before // 10**6, after // 10**6)
    ]
    assert not unreported, f"depth chain breaks with no depthGap: {unreported[:5]}"
    found = {b for b, _, _ in log.breaks}
    invented = sorted(log.gaps - found)
    assert not invented, f"depthGap events with no such break in the depth topic: {invented[:5]}"


def assert_books_recovered(log: StatusLog) -> None:
    """Each book that resynced is synced again afterwards; no audit found a difference."""
    assert not log.of("book_mismatch"), log.of("book_mismatch")[:3]
    pending: dict[tuple[int, str], StatusEvent] = {}
    for e in log.events:
        kind = e.WhichOneof("event")
        if kind == "book_resync":
            pending[(e.market, e.symbol)] = e
        elif kind == "book_synced":
            pending.pop((e.market, e.symbol), None)
    assert not pending, f"books left resyncing: {list(pending.values())[:3]}"


def assert_truthful(log: StatusLog) -> None:
    """What every scenario's status stream must show, whatever its fault: streams in turn,
    gaps = breaks, books recovered, no trade lost for good."""
    assert log.started_ms, "no collectorStarted"
    assert_streams_alternate(log)
    assert_gaps_are_the_breaks(log)
    assert_books_recovered(log)
    assert not log.of("trades_unfilled"), log.of("trades_unfilled")[:3]


def assert_never_down(log: StatusLog) -> None:
    """A fault that costs no visibility: each stream up once and down once, ``stopped``;
    no depth gap, no break, no intake stop."""
    for key, changes in log.streams.items():
        assert [c.up for c in changes] == [True, False], (key, changes)
    assert not log.gaps, sorted(log.gaps)[:3]
    assert not log.breaks, log.breaks[:3]
    assert not log.of("intake_stopped"), log.of("intake_stopped")[:3]


async def read_status_back(consume: Consume, topics: Topics, bootstrap: str) -> StatusLog:
    """The status and depth topics read back as the delivery mode's consumer reads them."""
    status = await read_back(consume, topics.status, bootstrap)
    depth = await read_back(consume, topics.depth, bootstrap)
    return read_status(status, depth)


def summary(log: StatusLog) -> str:
    """Counts by event type, for the report's notes."""
    return ", ".join(f"{n} {kind}" for kind, n in log.count().items())
