"""The move on a card in a real headless Chromium: the sparkline, how long the move took and
how long ago it fired, the Binance and TradingView links, the outcomes filled in live (and
the filter and sort on them), the chart panel's fallback, and the rules panel's kinds."""

from __future__ import annotations

import datetime
import json
import re
import time
from typing import Any

import attrs
import pytest
import trio
from kit.browser import csp_violations, in_browser, new_page, requires_browser, wait_js

from marketd.alerts.detector import Detector
from marketd.alerts.model import Alert, AlertKind, Direction, Outcome
from marketd.config.alerts import RuleSettings
from marketd.data.events import Tick

from .support import TOKEN, http, make_alert, running_server

pytestmark = [pytest.mark.slow, requires_browser]

# One card as the tests compare it.
CARD = """id => {
  const c = document.querySelector(`li.card[data-id="${id}"]`);
  if (!c) return null;
  const q = (s) => c.querySelector(s);
  const t = (s) => q(s)?.textContent ?? null;
  const line = q('svg.spark polyline');
  return {
    hidden: c.hidden, kind: c.dataset.kind, direction: t('.direction'), headline: t('.pct'),
    prices: t('.prices'), detail: t('.detail'),
    spark: q('svg.spark')?.getAttribute('class') ?? null,
    points: line ? line.getAttribute('points').trim().split(/\\s+/).length : 0,
    binance: q('a.binance').href, tradingview: q('a.tradingview').href,
    symbol_href: q('a.symbol').href, time: t('.time'), ago: t('.ago'),
    outcomes: Object.fromEntries([...c.querySelectorAll('.outcome')].map((o) => [
      o.dataset.after,
      {text: o.querySelector('.value').textContent, state: o.dataset.state,
       cls: o.querySelector('.value').className}])),
  };
}"""

ORDER = "[...document.querySelectorAll('#alerts > li.card')].map(c => c.dataset.id)"
VISIBLE = "[...document.querySelectorAll('#alerts > li.card')].filter(c => !c.hidden)" \
    ".map(c => c.dataset.id)"  # fmt: skip


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def card(page: Any, alert: Alert) -> dict[str, Any]:
    found: dict[str, Any] | None = page.evaluate(CARD, alert.id)
    assert found is not None, f"no card for {alert.id}"
    return found


def with_path(alert: Alert, n: int, *, step_ms: int = 1000, **changes: Any) -> Alert:
    """``alert`` with a price path of ``n`` points (oldest first) ending at its price."""
    start = alert.price_time_ms - (n - 1) * step_ms
    path = tuple((start + i * step_ms, f"{63_800 + 30 * i:.2f}") for i in range(n))
    return attrs.evolve(alert, path=path, **changes)


def outcome(alert: Alert, after_s: int, change_pct: float, price: str = "1.0") -> Outcome:
    return Outcome(
        alert_id=alert.id,
        market=alert.market,
        symbol=alert.symbol,
        after_s=after_s,
        price=price,
        price_time_ms=alert.price_time_ms + after_s * 1000,
        change_pct=change_pct,
    )


async def test_sparkline_duration_links_and_words_per_kind() -> None:
    async with running_server() as server:
        at = now_ms()
        spot = with_path(make_alert("BTCUSDT", Direction.UP, 2.57, market="spot", at_ms=at), 12)
        usdm = with_path(make_alert("BTCUSDT", Direction.DOWN, -3.1, at_ms=at + 1), 60)
        ethbtc = with_path(make_alert("ETHBTC", Direction.UP, 2.2, market="spot", at_ms=at + 2), 2)
        fdusd = make_alert("ETHFDUSD", Direction.UP, 2.3, market="spot", at_ms=at + 3)
        odd = make_alert("QQQZZZ", Direction.UP, 2.4, market="spot", at_ms=at + 4)
        dated = make_alert("BTCUSDT_260626", Direction.UP, 2.5, at_ms=at + 5)
        one_point = with_path(make_alert("XRPUSDT", Direction.UP, 2.6, at_ms=at + 6), 1)
        server.hub.publish([spot, usdm, ethbtc])  # in the replay

        volume = with_path(
            make_alert("SOLUSDT", Direction.UP, 1.23, at_ms=at + 7),
            30,
            kind=AlertKind.VOLUME,
            window_s=60.0,
            figures={
                "window_notional": "1234567.8",
                "baseline_notional": "5000000",
                "baseline_s": "1800",
                "ratio": "7.33",
                "trades": "842",
            },
        )
        liquidation = with_path(
            make_alert("ETHUSDT", Direction.DOWN, -0.84, at_ms=at + 8),
            5,
            kind=AlertKind.LIQUIDATION,
            window_s=30.0,
            figures={"side": "SELL", "notional": "1200000", "count": "37"},
        )
        premium = attrs.evolve(
            make_alert("DOGEUSDT", Direction.UP, 0.84, price="0.1512", base_price="0.1499",
                       at_ms=at + 9),
            kind=AlertKind.PREMIUM,
            base_time_ms=at + 9,
            figures={"mark_price": "0.1512", "index_price": "0.1499"},
        )  # fmt: skip
        funding = attrs.evolve(
            make_alert("BNBUSDT", Direction.DOWN, -0.075, at_ms=at + 10),
            kind=AlertKind.FUNDING,
            base_time_ms=at + 10,
            figures={"funding_rate": "-0.00075", "mark_price": "612.3"},
        )

        def script(browser: Any) -> None:
            page = new_page(browser, server.url)
            server.publish(fdusd, odd, dated, one_point, volume, liquidation, premium, funding)
            page.wait_for_selector(f'li.card[data-id="{funding.id}"]')

            # The sparkline: one point per path point, coloured by direction; none below 2.
            got = card(page, spot)
            assert (got["points"], got["spark"]) == (12, "spark up")
            assert card(page, usdm)["points"] == 60
            assert card(page, usdm)["spark"] == "spark down"
            assert card(page, ethbtc)["points"] == 2
            for alert in (fdusd, one_point, premium, funding):
                assert card(page, alert)["spark"] is None, alert.symbol

            # How long the move took (make_alert: 45 s from the base price).
            assert got["prices"] == "now 65432.10 from 63800.00 in 45 s"
            assert got["direction"] == "▲ pump"
            assert got["headline"] == "+2.57 %"

            # Binance: spot pairs split at their quote asset, futures by symbol.
            trade = "https://www.binance.com/en/trade/"
            futures = "https://www.binance.com/en/futures/"
            assert got["binance"] == trade + "BTC_USDT?type=spot"
            assert card(page, usdm)["binance"] == futures + "BTCUSDT"
            assert card(page, ethbtc)["binance"] == trade + "ETH_BTC?type=spot"
            assert card(page, fdusd)["binance"] == trade + "ETH_FDUSD?type=spot"
            assert card(page, odd)["binance"] == trade + "QQQZZZ?type=spot"
            assert card(page, dated)["binance"] == futures + "BTCUSDT_260626"

            # TradingView: .P for USD-M perpetuals only.
            chart = "https://www.tradingview.com/chart/?symbol="
            assert got["tradingview"] == got["symbol_href"] == chart + "BINANCE:BTCUSDT"
            assert card(page, usdm)["tradingview"] == chart + "BINANCE:BTCUSDT.P"
            assert card(page, usdm)["symbol_href"] == chart + "BINANCE:BTCUSDT.P"
            assert card(page, dated)["tradingview"] == chart + "BINANCE:BTCUSDT_260626"

            # Each kind in a trader's words.
            got = card(page, volume)
            assert (got["kind"], got["headline"], got["direction"]) == (
                "volume", "volume \u00d77.3", "▲ volume spike",
            )  # fmt: skip
            assert got["detail"] == (
                "$1.2M traded in 1 min (842 trades), 7.3\u00d7 the rate of the previous 30 min"
            )
            assert got["prices"] == "price 63800.00 → 65432.10 (+1.23 %) in 45 s"
            got = card(page, liquidation)
            assert (got["direction"], got["headline"]) == ("▼ longs liquidated", "$1.2M")
            assert got["detail"] == "37 liquidation orders within 30 s"
            got = card(page, premium)
            assert (got["direction"], got["headline"]) == ("▲ premium", "+0.84 %")
            assert got["prices"] == "mark 0.1512 · index 0.1499"
            assert got["detail"] == "mark price 0.84 % above the index price"
            got = card(page, funding)
            assert (got["direction"], got["headline"]) == ("▼ funding rate", "\u22120.0750 %")
            assert got["detail"] == "shorts pay longs"

            page.select_option("#filter-kind", "liquidation")
            assert page.evaluate(VISIBLE) == [liquidation.id]
            page.select_option("#filter-kind", "all")
            assert csp_violations(page) == []

        await in_browser(script)


async def test_outcomes_fill_in_live_and_filter_and_sort_the_list() -> None:
    async with running_server() as server:
        at = now_ms() - 20 * 60_000
        known = make_alert("KNOWNUSDT", Direction.DOWN, -2.0, at_ms=at)
        server.hub.publish([known])
        server.hub.publish_outcomes([outcome(known, 60, -0.31), outcome(known, 300, 0.12)])
        up = make_alert("AUSDT", Direction.UP, 2.4, at_ms=at + 1000)
        down = make_alert("BUSDT", Direction.DOWN, -2.2, at_ms=at + 2000)
        pending = make_alert("CUSDT", Direction.UP, 2.6, at_ms=at + 3000)

        def publish_outcomes(*outcomes: Outcome) -> None:
            trio.from_thread.run_sync(server.hub.publish_outcomes, list(outcomes))

        def script(browser: Any) -> None:
            page = new_page(browser, server.url)
            # The replay brings the outcomes known so far.
            got = card(page, known)["outcomes"]
            assert got["60"] == {"text": "\u22120.31 %", "state": "continued", "cls": "value neg"}
            assert got["300"] == {"text": "+0.12 %", "state": "reversed", "cls": "value pos"}
            assert got["900"] == {"text": "…", "state": "pending", "cls": "value"}

            server.publish(up, down, pending)
            page.wait_for_selector(f'li.card[data-id="{pending.id}"]')
            assert {a: c["text"] for a, c in card(page, up)["outcomes"].items()} == {
                "60": "…", "300": "…", "900": "…",
            }  # fmt: skip

            # A minute later (event time), the hub knows: the card's +1m cell fills in.
            publish_outcomes(outcome(up, 60, 0.84, "65981.72"))
            wait_js(
                page,
                f'document.querySelector(\'li.card[data-id="{up.id}"] '
                ".outcome[data-after=\"60\"] .value').textContent === '+0.84 %'",
            )
            cell = card(page, up)["outcomes"]["60"]
            assert (cell["state"], cell["cls"]) == ("continued", "value pos")
            title = page.get_attribute(
                f'li.card[data-id="{up.id}"] .outcome[data-after="60"]', "title"
            )
            assert title == "1 min after the alert: 65981.72 (+0.84 % vs 65432.10), continued"
            publish_outcomes(outcome(down, 60, 0.5))  # a dump that bounced
            wait_js(
                page,
                f"document.querySelector('li.card[data-id=\"{down.id}\"]').dataset.outcome60"
                " === 'reversed'",
            )
            assert card(page, down)["outcomes"]["60"]["text"] == "+0.50 %"

            # Filter on the +1m outcome; the horizon is the filter's and the sort's.
            page.select_option("#outcome-horizon", "60")
            page.select_option("#filter-outcome", "continued")
            assert page.evaluate(VISIBLE) == [up.id, known.id]
            page.select_option("#filter-outcome", "reversed")
            assert page.evaluate(VISIBLE) == [down.id]
            page.select_option("#filter-outcome", "pending")
            assert page.evaluate(VISIBLE) == [pending.id]
            assert page.text_content("#count") == "1 of 4 shown"
            # A new outcome moves a card between the filtered sets at once.
            publish_outcomes(outcome(pending, 60, -1.5))
            wait_js(page, f"JSON.stringify({VISIBLE}) === '[]'")
            page.select_option("#filter-outcome", "reversed")
            assert page.evaluate(VISIBLE) == [pending.id, down.id]
            page.select_option("#outcome-horizon", "300")
            assert page.evaluate(VISIBLE) == [known.id]
            page.select_option("#filter-outcome", "all")

            # Sorted by the outcome: most continued first, pending last (newest first).
            page.select_option("#outcome-horizon", "60")
            page.select_option("#sort", "continued")
            assert page.evaluate(ORDER) == [up.id, known.id, down.id, pending.id]
            page.select_option("#sort", "reversed")
            assert page.evaluate(ORDER) == [pending.id, down.id, known.id, up.id]
            page.select_option("#sort", "newest")
            assert page.evaluate(ORDER) == [pending.id, down.id, up.id, known.id]
            # The newest card stays highlighted whatever the order.
            assert page.evaluate("document.querySelector('li.card.newest').dataset.id") == (
                pending.id
            )
            assert csp_violations(page) == []

        await in_browser(script)


async def test_ago_ticks_and_the_date_shows_for_older_alerts() -> None:
    async with running_server() as server:
        now = now_ms()
        older = make_alert("OLDUSDT", at_ms=now - 125_000)
        days = make_alert("DAYSUSDT", at_ms=now - 2 * 86_400_000 - 60_000)
        server.hub.publish([days, older])
        fresh = make_alert("NEWUSDT", at_ms=now_ms())

        def script(browser: Any) -> None:
            page = new_page(browser, server.url, timezone_id="UTC")
            server.publish(fresh)
            page.wait_for_selector(f'li.card[data-id="{fresh.id}"]')
            first = card(page, fresh)["ago"]
            assert re.fullmatch(r"just now|[1-5] s ago", first), first
            # The text follows the clock (the page re-renders it every second).
            wait_js(
                page,
                f"(t => /^[1-9]\\d* s ago$/.test(t) && t !== {json.dumps(first)})("
                f"document.querySelector('li.card[data-id=\"{fresh.id}\"] .ago').textContent)",
                timeout_s=5,
            )
            assert card(page, older)["ago"] == "2 min ago"
            assert card(page, days)["ago"] == "2 days ago"

            # Today's alerts show the time; older ones the date in front.
            assert re.fullmatch(r"\d\d:\d\d:\d\d", card(page, fresh)["time"])
            day = datetime.datetime.fromtimestamp(days.price_time_ms / 1000, datetime.UTC)
            assert card(page, days)["time"] == day.strftime("%Y-%m-%d %H:%M:%S")
            assert csp_violations(page) == []

        await in_browser(script)


# A TradingView frame stand-in that says it is up, as the widget does to its parent.
TALKING_FRAME = "<html><body>chart<script>parent.postMessage('{}', '*')</script></body></html>"


async def test_chart_panel_says_so_when_tradingview_does_not_load() -> None:
    async with running_server() as server:
        alert = make_alert("BTCUSDT")
        server.hub.publish([alert])
        link = "https://www.tradingview.com/chart/?symbol=BINANCE:BTCUSDT.P"

        def state(page: Any) -> str:
            return str(page.get_attribute("#chart", "data-state"))

        def script(browser: Any) -> None:
            page = new_page(browser, server.url)
            page.clock.install()
            symbol = f'li.card[data-id="{alert.id}"] a.symbol'

            # Nothing answers: after the timeout, a message and the plain link instead.
            page.route("https://s.tradingview.com/**", lambda route: None)  # hangs
            page.click(symbol)
            page.wait_for_selector("#chart:not([hidden])")
            assert state(page) == "loading"
            assert page.is_hidden("#chart-fallback")
            page.clock.fast_forward(7000)
            page.wait_for_selector('#chart[data-state="failed"]')
            assert page.is_hidden("#chart-frame")
            assert page.text_content("#chart-fallback-text") == (
                "The TradingView chart could not be shown here: "
                "no answer from TradingView within 6 s."
            )
            opens = "Open BINANCE:BTCUSDT.P on TradingView"
            assert page.text_content("#chart-fallback-link") == opens
            assert page.get_attribute("#chart-fallback-link", "href") == link

            # The frame loads but never says it is up (an error page loads too): a note
            # with the link above the frame.
            page.unroute("https://s.tradingview.com/**")
            page.route("https://s.tradingview.com/**", lambda route: route.abort())
            page.click(symbol)
            wait_js(page, "document.querySelector('#chart').dataset.state === 'loading'")
            assert page.is_visible("#chart-frame")
            page.wait_for_timeout(300)  # the error page's load
            page.clock.fast_forward(7000)
            page.wait_for_selector('#chart[data-state="unconfirmed"]')
            assert page.is_visible("#chart-frame")
            assert page.is_visible("#chart-fallback-link")
            assert "If the chart stays blank" in str(page.text_content("#chart-fallback-text"))

            # The TradingView frame speaks: the chart is up, no note.
            page.unroute("https://s.tradingview.com/**")
            page.route(
                "https://s.tradingview.com/**",
                lambda route: route.fulfill(content_type="text/html", body=TALKING_FRAME),
            )
            page.click(symbol)
            page.wait_for_selector('#chart[data-state="loaded"]')
            assert page.is_hidden("#chart-fallback")
            assert page.is_visible("#chart-frame")
            page.clock.fast_forward(7000)
            assert state(page) == "loaded"
            page.click("#chart-close")
            page.wait_for_selector("#chart", state="hidden")
            assert csp_violations(page) == []

        await in_browser(script)


def field_shown(page: Any, row: int, field: str) -> bool:
    return bool(
        page.evaluate(
            f"!document.querySelectorAll('#rules-body tr.rule')[{row}]"
            f".querySelector('label.field[data-field=\"{field}\"]').hidden"
        )
    )


async def test_rules_panel_edits_every_kind() -> None:
    async with running_server() as server:

        def script(browser: Any) -> None:
            page = new_page(browser, server.url)
            page.click("#rules-toggle")
            page.wait_for_selector("#rules-body tr.rule")
            first = page.locator("#rules-body tr.rule").nth(0)
            assert first.locator('select[name="kind"]').input_value() == "price"
            for field in ("window_s", "threshold_pct", "cooldown_s", "notify", "symbols"):
                assert field_shown(page, 0, field), field
            for field in ("baseline_s", "multiple", "min_notional"):
                assert not field_shown(page, 0, field), field

            page.click("#rule-add")
            row = page.locator("#rules-body tr.rule").nth(1)
            row.locator('input[name="name"]').fill("spikes")
            row.locator('select[name="kind"]').select_option("volume")
            shown = {"window_s", "baseline_s", "multiple", "min_notional", "cooldown_s"}
            for field in shown:
                assert field_shown(page, 1, field), field
            assert not field_shown(page, 1, "threshold_pct")
            assert row.locator('input[name="multiple"]').input_value() == "5"  # the default
            row.locator('input[name="window_s"]').fill("30")
            row.locator('input[name="baseline_s"]').fill("900")
            row.locator('input[name="multiple"]').fill("4.5")
            row.locator('input[name="min_notional"]').fill("250000")
            row.locator('input[name="cooldown_s"]').fill("120")
            row.locator('input[name="markets"]').fill("usdm")
            page.fill("#token", TOKEN)
            page.click("#rules-save")
            page.wait_for_selector('#rules-message[data-kind="ok"]')

            # Liquidations and premiums show their own fields.
            row = page.locator("#rules-body tr.rule").nth(1)
            assert row.locator('select[name="kind"]').input_value() == "volume"
            row.locator('select[name="kind"]').select_option("liquidation")
            assert [f for f in ("window_s", "min_notional", "cooldown_s", "threshold_pct",
                                "multiple", "baseline_s") if field_shown(page, 1, f)] == [
                "window_s", "min_notional", "cooldown_s",
            ]  # fmt: skip
            row.locator('select[name="kind"]').select_option("premium")
            assert field_shown(page, 1, "threshold_pct")
            assert not field_shown(page, 1, "window_s")
            label = row.locator('label.field[data-field="threshold_pct"] .field-name')
            assert label.text_content() == "premium %"
            assert "mark price" in str(row.locator(".kind-help").text_content())

            # A bad value: the server's own message, verbatim.
            row.locator('select[name="kind"]').select_option("volume")
            row.locator('input[name="multiple"]').fill("0.5")
            page.click("#rules-save")
            page.wait_for_selector('#rules-message[data-kind="error"]')
            with pytest.raises(ValueError, match="multiple") as refused:
                RuleSettings(kind="volume", multiple=0.5)
            assert page.text_content("#rules-message") == f"rules[1]: {refused.value}"
            assert csp_violations(page) == []

        await in_browser(script)
        assert server.served is not None
        status, _, body = await http(server.served, "GET", "/api/rules")
        assert status == 200
        default, spikes = json.loads(body)["rules"]
        assert default["kind"] == "price"
        assert {k: spikes[k] for k in (
            "name", "kind", "window_s", "baseline_s", "multiple", "min_notional", "cooldown_s",
            "markets",
        )} == {
            "name": "spikes", "kind": "volume", "window_s": 30, "baseline_s": 900,
            "multiple": 4.5, "min_notional": 250000, "cooldown_s": 120, "markets": ["usdm"],
        }  # fmt: skip


async def test_the_detector_fills_in_an_outcome_when_event_time_moves_on() -> None:
    """The real detector: a jump alerts; ticks a minute (event time) later make its +1m
    outcome, which the hub pushes and the card shows, exact against the tick's price."""
    rule = RuleSettings(name="jump", window_s=60.0, threshold_pct=2.0, cooldown_s=30.0)
    detector = Detector([rule])
    t0 = now_ms() - 120_000
    async with running_server() as server:
        (alert,) = detector.observe_many(
            [Tick("usdm", "BTCUSDT", t0, "100.00"), Tick("usdm", "BTCUSDT", t0 + 5_000, "103.00")]
        )
        server.hub.publish([alert])

        def feed(ticks: list[Tick]) -> None:
            def step() -> None:
                server.hub.publish(list(detector.observe_many(ticks)))
                server.hub.publish_outcomes(detector.take_outcomes())

            trio.from_thread.run_sync(step)

        def script(browser: Any) -> None:
            page = new_page(browser, server.url)
            page.wait_for_selector(f'li.card[data-id="{alert.id}"]')
            # Event time moves, but not past +1 min: still pending.
            feed([Tick("usdm", "BTCUSDT", t0 + 30_000, "104.00")])
            assert card(page, alert)["outcomes"]["60"]["text"] == "…"
            # The first tick past +1 min: the outcome is the last price at or before it.
            feed([Tick("usdm", "BTCUSDT", t0 + 64_000, "102.50"),
                  Tick("usdm", "BTCUSDT", t0 + 66_000, "101.00")])  # fmt: skip
            selector = f'li.card[data-id="{alert.id}"] .outcome[data-after="60"]'
            wait_js(page, f"document.querySelector('{selector} .value').textContent !== '…'")
            cell = card(page, alert)["outcomes"]["60"]
            # 102.50 against the alert's 103.00: -0.4854 %, a move that went back.
            assert (cell["text"], cell["state"]) == ("\u22120.49 %", "reversed")
            assert "102.50" in (page.get_attribute(selector, "title") or "")
            assert card(page, alert)["outcomes"]["300"]["text"] == "…"
            assert csp_violations(page) == []

        await in_browser(script)
    (body,) = [a for a in server.hub.recent(10) if a.id == alert.id]
    assert server.hub.alert_json(body)["outcomes"]["60"]["price"] == "102.50"
