"""A detector rebuilt after a restart (pure): replaying the input before the cut, as the
Kafka-source detector does (marketd.alerts.kafka_io), it raises exactly the alerts an
uninterrupted detector raises after the cut, for every rule kind without a volume filter.

A rule whose ``min_quote_volume_24h`` withheld signals in the replayed range is evaluated
there (a withheld signal is recorded nowhere but moves the rule's state). That matches
unless its resets had fallen out of step before the range: on 300 random streams, one of
292 differed for the filtered price rule below (65 without that evaluation), none for the
filtered volume and premium rules."""

from __future__ import annotations

import bisect
import random
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from marketd.alerts.detector import Detector
from marketd.alerts.kafka_io import MARGIN_MS, AlertState, decode_metadata, encode_metadata
from marketd.alerts.model import Alert
from marketd.config.alerts import RuleSettings
from marketd.data.events import Tick

M = "usdm"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
RULES = [
    RuleSettings(name="jump", window_s=20.0, threshold_pct=0.8, cooldown_s=10.0),
    RuleSettings(
        name="vol",
        kind="volume",
        window_s=5.0,
        baseline_s=30.0,
        multiple=3.0,
        min_notional=1_000.0,
        cooldown_s=8.0,
    ),
    RuleSettings(
        name="liq", kind="liquidation", window_s=10.0, min_notional=50_000.0, cooldown_s=15.0
    ),
    RuleSettings(name="prem", kind="premium", threshold_pct=0.3, cooldown_s=20.0),
    RuleSettings(name="fund", kind="funding", threshold_pct=0.05, cooldown_s=5.0),
    # Filtered by the 24 h volume: their withheld signals move their state all the same.
    RuleSettings(
        name="jump-big",
        window_s=10.0,
        threshold_pct=0.5,
        cooldown_s=6.0,
        min_quote_volume_24h=5e8,
    ),
    RuleSettings(
        name="vol-big",
        kind="volume",
        window_s=4.0,
        baseline_s=20.0,
        multiple=2.0,
        min_quote_volume_24h=5e8,
        cooldown_s=3.0,
    ),
    RuleSettings(
        name="prem-big",
        kind="premium",
        threshold_pct=0.2,
        cooldown_s=12.0,
        min_quote_volume_24h=5e8,
    ),
]
EXACT = {r.name for r in RULES if not r.min_quote_volume_24h}
# As kafka_io computes them: the replayed reach (a volume rule's window plus baseline) and
# how long a recorded alert matters (window or cooldown).
HORIZON_MS = 35_000
ALERT_REACH_MS = 20_000


def clock() -> int:
    return 42


def stream(rng: random.Random, seconds: int) -> list[Tick]:
    """Trades (bursts now and then), liquidations, and every second for each symbol a
    mark price (its premium and funding rate leave their bands for up to two and a half
    minutes) and a 24 h ticker (its volume crosses the filters' minimum now and then), and
    some out-of-order and duplicate ticks."""
    ticks: list[Tick] = []
    price = dict.fromkeys(SYMBOLS, 100.0)
    premium = dict.fromkeys(SYMBOLS, 0.0)
    funding = dict.fromkeys(SYMBOLS, 0.0001)
    regime_until = dict.fromkeys(SYMBOLS, 0)
    volume = dict.fromkeys(SYMBOLS, 9e8)
    t = 0
    next_mark = 0
    while t < seconds * 1000:
        t += rng.randint(20, 400)
        s = rng.choice(SYMBOLS)
        if t >= regime_until[s]:
            # Mostly short, sometimes longer than what a restart replays.
            long = rng.random() < 0.2
            regime_until[s] = t + (
                rng.randint(100_000, 150_000) if long else rng.randint(1_000, 30_000)
            )
            premium[s] = rng.choice((0.0, 0.1, 0.25, 0.5, -0.4))
            funding[s] = rng.choice((0.0001, 0.0003, 0.0006, -0.0007))
        jump = rng.choice((0.01, -0.01)) if rng.random() < 0.01 else 0.0
        price[s] *= 1 + rng.gauss(0, 0.001) + jump
        p = f"{price[s]:.2f}"
        roll = rng.random()
        if roll < 0.05:  # a burst
            for _ in range(rng.randint(3, 12)):
                ticks.append(Tick(M, s, t, p, "", f"{rng.uniform(5, 40):.3f}"))
        elif roll < 0.08:
            side = rng.choice(("BUY", "SELL"))
            ticks.append(Tick(M, s, t, p, "", f"{rng.uniform(50, 400):.3f}", "", "", side))
        else:
            ticks.append(Tick(M, s, t, p, "", f"{rng.uniform(0.01, 2):.3f}"))
        if t >= next_mark:
            next_mark = t + 1_000
            for sym in SYMBOLS:
                mark = price[sym] * (1 + premium[sym] / 100)
                ticks.append(
                    Tick(M, sym, t, f"{mark:.2f}", "", "", f"{price[sym]:.2f}", f"{funding[sym]}")
                )
                # A 24 h ticker every second, as Binance sends them: its volume sometimes
                # crosses the filters' minimum.
                if rng.random() < 0.02:
                    volume[sym] = 9e8 if volume[sym] < 5e8 else 1e8
                ticks.append(Tick(M, sym, t, f"{price[sym]:.2f}", f"{volume[sym]:.0f}"))
        if rng.random() < 0.02 and len(ticks) > 5:
            ticks.append(ticks[-rng.randint(1, 5)])  # a duplicate, or one out of order
    return ticks


def rebuilt_after(ticks: list[Tick], cut: int) -> tuple[list[Alert], list[Alert]]:
    """(what the uninterrupted detector raises from ``cut`` on, what a detector restarted
    at ``cut`` raises), the restarted one rebuilt as kafka_io does: the commit before the
    cut recorded the last alert per rule and direction with its offset (index), the
    replay starts where the record timestamps reach back the horizon and a margin."""
    whole = Detector(RULES, clock=clock)
    raised = [list(whole.observe_tick(t)) for t in ticks]
    state: AlertState = {}
    newest = 0
    for offset in range(cut):
        newest = max(newest, ticks[offset].time_ms)
        for a in raised[offset]:
            state[(a.market, a.symbol, a.rule, a.direction.value)] = (a.price_time_ms, offset)
    recorded = decode_metadata(encode_metadata(state, newest, ALERT_REACH_MS + MARGIN_MS))
    # Record timestamps: when the record was produced, never before an earlier one.
    stamps, stamp = [], 0
    for t in ticks:
        stamp = max(stamp, t.time_ms)
        stamps.append(stamp)
    start = min(bisect.bisect_left(stamps, stamps[cut - 1] - HORIZON_MS - MARGIN_MS), cut)

    again = Detector(RULES, clock=clock)
    by_offset: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for (market, symbol, rule, direction), (time_ms, offset) in recorded.items():
        again.restore_alert(market, symbol, rule, time_ms, direction)
        by_offset[offset].append((market, symbol, rule))
    for offset in range(start, cut):
        t = ticks[offset]
        names = [r for (m, s, r) in by_offset.get(offset, ()) if (m, s) == (t.market, t.symbol)]
        again.replay_tick(t, names)
    expected = [a for offset in range(cut, len(ticks)) for a in raised[offset]]
    return expected, [a for t in ticks[cut:] for a in again.observe_tick(t)]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), where=st.floats(0.4, 0.9))
def test_a_restarted_detector_raises_exactly_the_uninterrupted_alerts(
    seed: int, where: float
) -> None:
    ticks = stream(random.Random(seed), seconds=400)
    expected, got = rebuilt_after(ticks, cut=int(len(ticks) * where))
    assert [a for a in got if a.rule in EXACT] == [a for a in expected if a.rule in EXACT]


def test_every_kind_alerts_after_the_cut_in_this_stream() -> None:
    """The property above is about something: on a fixed stream, every rule raises
    alerts after the cut, and the replay starts long after the stream does (here the
    filtered rules match too)."""
    ticks = stream(random.Random(7), seconds=400)
    cut = len(ticks) // 2
    expected, got = rebuilt_after(ticks, cut)
    assert got == expected
    assert {a.rule for a in expected} == {r.name for r in RULES}
    assert ticks[cut].time_ms > HORIZON_MS + MARGIN_MS + 60_000


def _liquidation(time_ms: int, side: str) -> Tick:
    return Tick(M, "BTCUSDT", time_ms, "100", "", "20", "", "", side)  # 2,000 notional


def test_a_restored_liquidation_alert_quiets_its_own_side_only() -> None:
    """A liquidation rule is quiet per side: the recorded direction says which."""
    rule = RuleSettings(
        name="liq", kind="liquidation", window_s=10.0, min_notional=1_000.0, cooldown_s=30.0
    )
    det = Detector([rule], clock=clock)
    det.restore_alert(M, "BTCUSDT", "liq", 1_000, "down")  # longs liquidated at 1 s
    assert det.observe_tick(_liquidation(5_000, "SELL")) == ()
    assert [a.direction.value for a in det.observe_tick(_liquidation(6_000, "BUY"))] == ["up"]
    # Quiet until 31 s; by then the 5 s order has left the window: this one alone.
    [alert] = det.observe_tick(_liquidation(31_000, "SELL"))
    assert (alert.direction.value, alert.figures["count"]) == ("down", "1")


def test_offset_metadata_keeps_each_direction_and_reads_the_older_format() -> None:
    state: AlertState = {
        ("usdm", "BTCUSDT", "liq", "up"): (9_000, 17),
        ("usdm", "BTCUSDT", "liq", "down"): (8_000, 12),
        ("usdm", "ETHUSDT", "jump", "up"): (1_000, 3),  # older than the reach: left out
    }
    text = encode_metadata(state, newest_ms=10_000, horizon_ms=5_000)
    assert decode_metadata(text) == {k: v for k, v in state.items() if v[0] >= 5_000}
    older = '{"v":1,"a":[["usdm","BTCUSDT","liq",9000,17]]}'
    assert decode_metadata(older) == {("usdm", "BTCUSDT", "liq", ""): (9_000, 17)}


def _restart(rule: RuleSettings, ticks: list[Tick], cut: int) -> tuple[list[Alert], list[Alert]]:
    """(the uninterrupted alerts, those after a restart at ``cut`` that replays every tick
    before it); nothing before the cut alerted, so nothing was recorded."""
    whole = Detector([rule], clock=clock)
    expected = [a for t in ticks for a in whole.observe_tick(t)]
    again = Detector([rule], clock=clock)
    for t in ticks[:cut]:
        again.replay_tick(t)
    return expected, [a for t in ticks[cut:] for a in again.observe_tick(t)]


def test_a_jump_its_filter_withheld_keeps_the_rule_quiet_after_a_restart() -> None:
    """Withheld at 1 s (24 h volume below the minimum), the jump still reset the rule and
    started its quiet period: the replay evaluates it, so the move at 3 s does not alert
    after the restart either (replayed without evaluating, it would: 3 % over 100)."""
    rule = RuleSettings(
        name="big", window_s=60.0, threshold_pct=2.0, cooldown_s=30.0, min_quote_volume_24h=5e8
    )
    ticks = [
        Tick(M, "BTCUSDT", 0, "100", "100000000"),
        Tick(M, "BTCUSDT", 1_000, "103"),
        Tick(M, "BTCUSDT", 2_000, "100", "900000000"),
        Tick(M, "BTCUSDT", 3_000, "103"),
        Tick(M, "BTCUSDT", 31_000, "106"),
    ]
    expected, got = _restart(rule, ticks, cut=3)
    assert got == expected
    assert [(a.base_price, a.price, a.price_time_ms) for a in got] == [("103", "106", 31_000)]


def test_a_volume_spike_its_filter_withheld_keeps_the_rule_quiet_after_a_restart() -> None:
    """The same for a volume rule: the spike at 41 s, withheld, spent its window and
    started the quiet period, so the one at 43 s does not alert after the restart
    either; the larger one at 52 s does, as it does without the restart."""
    rule = RuleSettings(
        name="vol-big", kind="volume", window_s=5.0, baseline_s=30.0, multiple=3.0,
        cooldown_s=10.0, min_quote_volume_24h=5e8,
    )  # fmt: skip
    ticks = [Tick(M, "BTCUSDT", t * 1_000, "100", "", "1") for t in range(41)]
    ticks.append(Tick(M, "BTCUSDT", 40_500, "100", "100000000"))
    ticks += [Tick(M, "BTCUSDT", 41_000, "100", "", "20") for _ in range(10)]
    ticks.append(Tick(M, "BTCUSDT", 42_000, "100", "900000000"))
    cut = len(ticks)
    ticks += [Tick(M, "BTCUSDT", 43_000, "100", "", "20") for _ in range(10)]
    ticks += [Tick(M, "BTCUSDT", 52_000, "100", "", "60") for _ in range(10)]
    expected, got = _restart(rule, ticks, cut)
    assert got == expected
    assert [a.price_time_ms for a in got] == [52_000]
