"""AlertHub: the cap on alerts pushed live, the suppression summaries, the push latency
(a hand-driven clock; the summaries' task under trio's mock clock)."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.testing

from marketd.gateway import AlertHub
from marketd.gateway.hub import HubClient
from marketd.gateway.livelog import Notice

from .support import make_alert

WALL_MS = 1_760_000_000_000


class Clocks:
    """The hub's monotonic clock and wall clock, moved by hand together."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def wall_ns(self) -> int:
        return (WALL_MS + round(self.now * 1000)) * 1_000_000


def hub_with(clocks: Clocks, per_s: int, **kwargs: Any) -> AlertHub:
    return AlertHub(
        history=1000, replay=0, client_queue=1000, max_alerts_per_s=per_s,
        clock=clocks.clock, wall_ns=clocks.wall_ns, **kwargs,
    )  # fmt: skip


def drain(client: HubClient) -> tuple[list[str], list[dict[str, Any]]]:
    """(ids of the alerts queued, the notices decoded), in queue order."""
    alerts, notices = [], []
    while True:
        try:
            item = client.messages.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return alerts, notices
        if isinstance(item, Notice):
            notices.append(json.loads(item.text))
        else:
            alerts.append(json.loads(item)["id"])


def test_alerts_over_the_cap_are_counted_summarised_and_kept_in_the_history() -> None:
    clocks = Clocks()
    hub = hub_with(clocks, per_s=5)
    burst = [make_alert(f"S{i}USDT") for i in range(12)]
    with hub.subscribe() as client:
        for alert in burst:
            hub.publish([alert])
            clocks.now += 0.01
        live, notices = drain(client)
        assert live == [a.id for a in burst[:5]]
        assert notices == []  # the summary waits for its second
        hub.flush_summaries(1.0)
        assert drain(client) == ([], [])
        hub.flush_summaries(1.05)  # one second after the first alert held back
        live, notices = drain(client)
        assert live == []
        assert notices == [
            {"type": "suppressed", "count": 7, "since_ms": WALL_MS + 50, "limit_per_s": 5}
        ]
        hub.flush_summaries(3.0)
        assert drain(client) == ([], [])  # nothing held back since: no summary
    assert [a.id for a in hub.recent(100)] == [a.id for a in reversed(burst)]
    st = hub.statistics()
    assert (st.published, st.suppressed) == (12, 7)


def test_a_summary_goes_out_once_a_second_while_suppression_lasts() -> None:
    clocks = Clocks()
    hub = hub_with(clocks, per_s=2)
    with hub.subscribe() as client:
        counts = []
        for tick in range(40):  # 4 alerts a second for 4 s: 2 live, 2 held back a second
            clocks.now = tick * 0.25
            hub.publish([make_alert()])
            counts += [n["count"] for n in drain(client)[1]]
        clocks.now = 11.0  # the last window's second is over
        hub.flush_summaries(clocks.now)
        counts += [n["count"] for n in drain(client)[1]]
    assert sum(counts) == hub.statistics().suppressed == 20
    assert len(counts) == 10  # one summary per second of suppression, not per alert


def test_each_client_is_told_only_what_it_missed() -> None:
    clocks = Clocks()
    hub = hub_with(clocks, per_s=1)
    with hub.subscribe() as early:
        hub.publish([make_alert() for _ in range(4)])  # 1 live, 3 held back
        clocks.now = 0.5
        with hub.subscribe() as late:
            hub.publish([make_alert() for _ in range(2)])  # both held back
            clocks.now = 1.0
            hub.flush_summaries(clocks.now)
            assert [n["count"] for n in drain(early)[1]] == [5]
            late_notices = drain(late)[1]
            assert [n["count"] for n in late_notices] == [2]
            assert late_notices[0]["since_ms"] == WALL_MS + 500  # since it subscribed


def test_push_latency_is_the_ticks_event_time_to_the_offer_of_each_live_alert() -> None:
    clocks = Clocks()
    hub = hub_with(clocks, per_s=3)
    offered_ms = WALL_MS
    hub.publish([make_alert(at_ms=offered_ms - 40) for _ in range(2)])  # 40 ms old
    hub.publish([make_alert(at_ms=offered_ms - 3_000) for _ in range(2)])  # 1 live, 1 held
    hub.publish([make_alert(at_ms=offered_ms + 5)])  # from a clock ahead: counted as 0
    latency = hub.statistics().push_latency
    assert latency is not None
    buckets = dict(zip(latency.bounds, latency.counts, strict=False))
    assert latency.count == 3  # the alerts offered live only
    assert buckets[0.05] == 2
    assert buckets[5.0] == 1
    assert abs(latency.total - 3.08) < 1e-9


async def test_serve_summaries_sends_each_summary_when_it_is_due(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = AlertHub(history=100, replay=0, client_queue=100, max_alerts_per_s=1)
    with trio.fail_after(5), hub.subscribe() as client:
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.serve_summaries)
            started = trio.current_time()
            hub.publish([make_alert() for _ in range(3)])
            first = await client.messages.receive()
            assert isinstance(first, str)  # the live one
            notice = await client.messages.receive()
            assert isinstance(notice, Notice)
            assert json.loads(notice.text)["count"] == 2
            assert trio.current_time() - started >= 1.0
            hub.publish([make_alert() for _ in range(3)])  # a second later: 1 live, 2 held
            assert isinstance(await client.messages.receive(), str)
            notice = await client.messages.receive()
            assert isinstance(notice, Notice)
            assert json.loads(notice.text)["count"] == 2
            nursery.cancel_scope.cancel()


def test_preloaded_alerts_are_history_only() -> None:
    clocks = Clocks()
    hub = hub_with(clocks, per_s=2)
    old = [make_alert(f"OLD{i}USDT") for i in range(10)]
    with hub.subscribe() as client:
        hub.preload(old)
        hub.preload(old[:3])  # already held: duplicates
        assert drain(client) == ([], [])
        hub.flush_summaries(5.0)
        assert drain(client) == ([], [])
    assert [a.id for a in hub.recent(10)] == [a.id for a in reversed(old)]
    st = hub.statistics()
    assert (st.published, st.duplicates, st.suppressed, st.push_latency.count) == (10, 3, 0, 0)
