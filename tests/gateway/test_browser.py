"""The UI in a real headless Chromium against the gateway served by Hypercorn."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import trio
from kit.browser import (
    cards,
    csp_violations,
    in_browser,
    new_page,
    requires_browser,
    visible_symbols,
    wait_js,
)
from kit.wait import poll_until_blocking

from marketd.alerts.model import Direction
from marketd.config.alerts import GatewaySettings

from .support import TOKEN, make_alert, running_server

pytestmark = [pytest.mark.slow, requires_browser]


async def test_live_alert_card_link_chart_and_sound() -> None:
    async with running_server() as server:
        alert = make_alert("BTCUSDT", Direction.UP, 2.57, price="65432.10", base_price="63800.00")

        def script(browser: Any) -> None:
            page = new_page(browser, server.url)
            assert page.evaluate("window.__oscillatorStarts") == 0
            server.publish(alert)
            page.wait_for_selector(f'li.card[data-id="{alert.id}"]')
            (card,) = cards(page)
            assert card["symbol"] == "BTCUSDT"
            assert card["direction"] == "▲ pump"
            assert card["pct"] == "+2.57 %"
            assert (card["price"], card["base"]) == ("65432.10", "63800.00")
            assert card["href"] == "https://www.tradingview.com/chart/?symbol=BINANCE:BTCUSDT.P"
            # Chromium (which negotiates permessage-deflate) read it as written by the
            # fan-out writer, uncompressed, after its replay compressed through Quart.
            assert server.served is not None
            fanout = trio.from_thread.run_sync(server.served.gateway.fanout.statistics)
            assert fanout.clients == 1, fanout
            assert fanout.writes >= 1, fanout
            # The page tried to play the beep (an oscillator started) once for the alert.
            wait_js(page, "window.__oscillatorStarts === 1")
            assert page.get_attribute("body", "data-beeps") == "1"

            down = make_alert("ETHUSDT", Direction.DOWN, -3.1)
            server.publish(down)
            wait_js(page, "window.__oscillatorStarts === 2")
            assert [c["symbol"] for c in cards(page)] == ["ETHUSDT", "BTCUSDT"]  # newest first
            assert cards(page)[0]["direction"] == "▼ dump"
            assert cards(page)[0]["pct"] == "\u22123.10 %"  # a minus sign

            # The symbol opens the embedded chart panel for BINANCE:<SYMBOL>.P.
            page.click(f'li.card[data-id="{alert.id}"] a.symbol')
            page.wait_for_selector("#chart:not([hidden])")
            assert page.get_attribute("#chart", "data-symbol") == "BINANCE:BTCUSDT.P"
            src = page.get_attribute("#chart-frame", "src")
            assert src.startswith(
                "https://s.tradingview.com/widgetembed/?symbol=BINANCE%3ABTCUSDT.P"
            )
            assert page.get_attribute("#chart-link", "href") == card["href"]

            # A spot pair and a dated delivery contract are no perpetuals: no .P.
            spot = make_alert("SOLUSDT", Direction.UP, 2.2, market="spot")
            dated = make_alert("BTCUSDT_260626", Direction.UP, 2.4)
            server.publish(spot, dated)
            page.wait_for_selector(f'li.card[data-id="{dated.id}"]')
            hrefs = {c["symbol"]: c["href"] for c in cards(page)}
            chart = "https://www.tradingview.com/chart/?symbol=BINANCE:"
            assert hrefs["SOLUSDT"] == chart + "SOLUSDT"
            assert hrefs["BTCUSDT_260626"] == chart + "BTCUSDT_260626"
            page.click(f'li.card[data-id="{spot.id}"] a.symbol')
            wait_js(page, "document.querySelector('#chart').dataset.symbol === 'BINANCE:SOLUSDT'")
            assert csp_violations(page) == []

        await in_browser(script)


async def test_new_client_gets_replay_and_reconnect_shows_no_duplicates() -> None:
    async with running_server(GatewaySettings(replay=50)) as server:
        before = [make_alert(s) for s in ("AUSDT", "BUSDT", "CUSDT")]
        server.hub.publish(before)

        def script(browser: Any) -> None:
            page = new_page(browser, server.url)
            assert [c["symbol"] for c in cards(page)] == ["CUSDT", "BUSDT", "AUSDT"]
            assert page.evaluate("window.__oscillatorStarts") == 0  # replay is silent

            trio.from_thread.run(server.stop)
            page.wait_for_selector('#status[data-state="reconnecting"]')
            missed = make_alert("DUSDT", Direction.DOWN, -2.2)
            server.publish(missed)  # while the page is disconnected
            trio.from_thread.run(server.start)
            page.wait_for_selector('#status[data-state="live"]', timeout=20_000)
            page.wait_for_selector(f'li.card[data-id="{missed.id}"]')
            got = cards(page)
            assert [c["symbol"] for c in got] == ["DUSDT", "CUSDT", "BUSDT", "AUSDT"]
            assert len({c["id"] for c in got}) == len(got)

            # A second page (a new client) gets the same replay.
            other = new_page(browser, server.url)
            assert [c["id"] for c in cards(other)] == [c["id"] for c in got]

        await in_browser(script)


async def test_filters_by_symbol_and_direction() -> None:
    async with running_server() as server:
        server.hub.publish(
            [
                make_alert("BTCUSDT", Direction.UP),
                make_alert("ETHUSDT", Direction.DOWN, -2.5),
                make_alert("ETHBTC", Direction.UP),
                make_alert("SOLUSDT", Direction.DOWN, -4.0),
            ]
        )

        def script(browser: Any) -> None:
            page = new_page(browser, server.url)
            assert visible_symbols(page) == ["SOLUSDT", "ETHBTC", "ETHUSDT", "BTCUSDT"]
            page.fill("#filter-symbol", "eth")
            assert visible_symbols(page) == ["ETHBTC", "ETHUSDT"]
            page.select_option("#filter-direction", "down")
            assert visible_symbols(page) == ["ETHUSDT"]
            page.fill("#filter-symbol", "")
            assert visible_symbols(page) == ["SOLUSDT", "ETHUSDT"]
            server.publish(make_alert("XRPUSDT", Direction.UP))
            wait_js(page, "document.querySelectorAll('li.card').length === 5")
            assert visible_symbols(page) == ["SOLUSDT", "ETHUSDT"]  # new cards are filtered too
            assert page.text_content("#count") == "2 of 5 shown"

        await in_browser(script)


async def test_sound_controls_when_autoplay_is_blocked() -> None:
    async with running_server() as server:

        def script(browser: Any) -> None:
            page = new_page(browser, server.url)
            page.wait_for_selector("#enable-sound:not([hidden])")
            assert page.get_attribute("body", "data-sound") == "blocked"
            page.click("#enable-sound")
            page.wait_for_selector("#enable-sound", state="hidden")
            assert page.get_attribute("body", "data-sound") == "on"
            page.click("#mute")
            assert page.text_content("#mute") == "Sound: off"
            alert = make_alert("BNBUSDT")
            server.publish(alert)
            page.wait_for_selector(f'li.card[data-id="{alert.id}"]')
            assert page.evaluate("window.__oscillatorStarts") == 0  # muted

        await in_browser(
            script, extra_args=("--autoplay-policy=document-user-activation-required",)
        )


async def test_rules_panel_shows_errors_and_saves() -> None:
    async with running_server() as server:

        def script(browser: Any) -> None:
            page = new_page(browser, server.url)
            page.click("#rules-toggle")
            page.wait_for_selector("#rules-body tr.rule")
            assert page.input_value('#rules-body input[name="name"]') == "default"
            assert page.input_value('#rules-body input[name="window_s"]') == "60"
            page.click("#rules-save")
            page.wait_for_selector('#rules-message[data-kind="error"]')
            assert page.text_content("#rules-message") == "Enter the API token to change the rules."
            page.fill("#token", "wrong")
            page.click("#rules-save")
            wait_js(
                page, "document.getElementById('rules-message').textContent.includes('rejected')"
            )
            page.fill("#token", TOKEN)
            page.fill('#rules-body input[name="window_s"]', "-5")
            page.click("#rules-save")
            wait_js(
                page, "document.getElementById('rules-message').textContent.includes('window_s')"
            )
            assert page.get_attribute("#rules-message", "data-kind") == "error"
            page.fill('#rules-body input[name="window_s"]', "15")
            page.fill('#rules-body input[name="threshold_pct"]', "1.5")
            assert page.input_value('#rules-body input[name="notify"]') == ""
            page.fill('#rules-body input[name="notify"]', "ops, chat")
            page.click("#rules-save")
            page.wait_for_selector('#rules-message[data-kind="ok"]')
            # The token is kept for the session: a second save needs no typing.
            page.fill('#rules-body input[name="cooldown_s"]', "10")
            page.click("#rules-save")
            wait_js(
                page,
                "document.querySelector('#rules-body input[name=cooldown_s]').value"
                " === '10' && document.getElementById('rules-message').dataset.kind"
                " === 'ok' && !document.getElementById('token').value",
            )
            poll_until_blocking(
                lambda: server.rules.rules()[0].cooldown_s == 10,
                timeout=10,
                what="the second save to reach the server",
                interval=0.05,
            )

        await in_browser(script)
        (rule,) = server.rules.rules()
        assert (rule.window_s, rule.threshold_pct, rule.cooldown_s) == (15, 1.5, 10)
        assert list(rule.notify) == ["ops", "chat"]  # kept across the second save, too


async def test_phone_viewport_and_screenshots() -> None:
    shots = Path(os.environ.get("MARKETD_SCREENSHOTS", tempfile.gettempdir())) / "marketd-ui"
    shots.mkdir(parents=True, exist_ok=True)
    async with running_server() as server:
        server.hub.publish(
            [
                make_alert("BTCUSDT", Direction.UP, 2.57, price="65432.10", base_price="63800.00"),
                make_alert("ETHUSDT", Direction.DOWN, -3.42, price="2412.55", base_price="2498.00"),
                make_alert(
                    "1000PEPEUSDT", Direction.UP, 7.9, price="0.0123456", base_price="0.011"
                ),
            ]
        )

        def script(browser: Any) -> None:
            desktop = new_page(browser, server.url, viewport={"width": 1280, "height": 800})
            desktop.click("li.card a.symbol")  # open the chart panel
            desktop.wait_for_selector("#chart:not([hidden])")
            desktop.screenshot(path=str(shots / "desktop.png"))
            phone = new_page(
                browser,
                server.url,
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
            )
            assert len(cards(phone)) == 3
            assert phone.evaluate("document.documentElement.scrollWidth") <= 390
            box = phone.locator("li.card").first.bounding_box()
            assert box is not None
            assert 0 <= box["x"] <= box["x"] + box["width"] <= 390
            assert phone.locator("#filter-symbol").is_visible()
            phone.screenshot(path=str(shots / "phone.png"), full_page=True)

        await in_browser(script)
    assert (shots / "desktop.png").stat().st_size > 0
    assert (shots / "phone.png").stat().st_size > 0
