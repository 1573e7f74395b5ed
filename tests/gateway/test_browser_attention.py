"""Attention in a real headless Chromium: the tab title's count of unseen alerts, the newest
card's highlight, desktop notifications, and muting a symbol from its card."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from kit.browser import cards, csp_violations, in_browser, new_page, requires_browser, wait_js

from marketd.alerts.model import Direction
from marketd.config.alerts import GatewaySettings
from marketd.gateway.mutes import MUTES_FILE, Mute

from .support import TOKEN, make_alert, running_server

pytestmark = [pytest.mark.slow, requires_browser]

TITLE = "marketd · price-jump alerts"

# Headless Chromium keeps every page visible; the page reads document.visibilityState
# (and hidden), which these override on the document and announce as the browser does.
HIDE = """(() => {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
  Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
  document.dispatchEvent(new Event("visibilitychange"));
})()"""
SHOW = """(() => {
  delete document.visibilityState;
  delete document.hidden;
  document.dispatchEvent(new Event("visibilitychange"));
})()"""


def notification_stub(permission: str) -> str:
    """A ``window.Notification`` that records what the page does with it: permission
    requests (answered "granted", kept for the tab's session) and notifications."""
    return f"""(() => {{
  window.__permissionRequests = 0;
  window.__notifications = [];
  class FakeNotification {{
    constructor(title, options = {{}}) {{
      Object.assign(this, {{ title, body: options.body, tag: options.tag, closed: false }});
      this.onclick = null;
      window.__notifications.push(this);
    }}
    close() {{ this.closed = true; }}
    static requestPermission() {{
      window.__permissionRequests += 1;
      sessionStorage.setItem("stub.permission", "granted");
      return Promise.resolve("granted");
    }}
    static get permission() {{
      return sessionStorage.getItem("stub.permission") || "{permission}";
    }}
  }}
  window.Notification = FakeNotification;
}})()"""


NO_NOTIFICATIONS = "delete window.Notification;"


def newest(page: Any) -> list[dict[str, str]]:
    """The cards that carry the highlight, with its badge and aria-current."""
    found: list[dict[str, str]] = page.eval_on_selector_all(
        "#alerts > li.card.newest",
        """els => els.map(e => ({id: e.dataset.id,
            badge: e.querySelector('.newest-badge')?.textContent ?? '',
            current: e.getAttribute('aria-current') ?? ''}))""",
    )
    return found


def badges(page: Any) -> int:
    return int(page.evaluate("document.querySelectorAll('#alerts .newest-badge').length"))


async def test_title_counts_unseen_alerts_and_the_newest_card_is_highlighted() -> None:
    # No cap on alerts pushed live: a burst of 20 below must reach the page whole.
    async with running_server(GatewaySettings(api_token=TOKEN, max_alerts_per_s=0)) as server:
        first = make_alert("BTCUSDT")

        def script(browser: Any) -> None:
            page = new_page(browser, server.url, viewport={"width": 1280, "height": 720})
            assert page.title() == TITLE
            server.publish(first)
            page.wait_for_selector(f'li.card[data-id="{first.id}"]')
            assert newest(page) == [{"id": first.id, "badge": "newest", "current": "true"}]
            assert page.title() == TITLE  # seen: the page is visible and the card on screen

            page.evaluate(HIDE)
            hidden = [make_alert("ETHUSDT", Direction.DOWN, -3.0), make_alert("SOLUSDT")]
            for alert in hidden:
                server.publish(alert)
                page.wait_for_selector(f'li.card[data-id="{alert.id}"]', state="attached")
            wait_js(page, f"document.title === '(2) {TITLE}'")
            # The highlight moved to the newest card; one badge on the page.
            assert newest(page) == [{"id": hidden[1].id, "badge": "newest", "current": "true"}]
            assert badges(page) == 1
            page.evaluate(SHOW)
            wait_js(page, f"document.title === '{TITLE}'")

            # Scrolled away from the top of the list, new alerts are unseen too.
            server.publish(*[make_alert(f"FILL{i}USDT") for i in range(20)])
            wait_js(page, "document.querySelectorAll('li.card').length === 23")
            assert page.title() == TITLE
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            wait_js(page, "window.scrollY > 300")
            away = make_alert("XRPUSDT")
            server.publish(away)
            page.wait_for_selector(f'li.card[data-id="{away.id}"]', state="attached")
            wait_js(page, f"document.title === '(1) {TITLE}'")
            assert newest(page)[0]["id"] == away.id
            page.evaluate("window.scrollTo(0, 0)")
            wait_js(page, f"document.title === '{TITLE}'")
            assert [c["symbol"] for c in cards(page)][:2] == ["XRPUSDT", "FILL19USDT"]
            assert csp_violations(page) == []

        await in_browser(script)


async def test_desktop_notifications_are_asked_for_only_by_the_button() -> None:
    async with running_server() as server:
        shown = make_alert("ETHUSDT", Direction.DOWN, -3.1, price="2412.55", base_price="2498.00")

        def script(browser: Any) -> None:
            page = new_page(browser, server.url, init_scripts=(notification_stub("default"),))
            assert page.evaluate("window.__permissionRequests") == 0  # never on load
            assert page.get_attribute("body", "data-notify") == "off"
            assert page.text_content("#notify") == "Desktop notifications"
            visible = make_alert("BTCUSDT")
            server.publish(visible)
            page.wait_for_selector(f'li.card[data-id="{visible.id}"]')
            assert page.evaluate("window.__permissionRequests") == 0

            page.click("#notify")
            page.wait_for_selector('body[data-notify="on"]')
            assert page.evaluate("window.__permissionRequests") == 1
            assert page.text_content("#notify") == "Desktop notifications: on"
            assert page.get_attribute("#notify", "aria-pressed") == "true"
            assert page.evaluate("localStorage.getItem('marketd.notify')") == "1"

            also_visible = make_alert("BNBUSDT")
            server.publish(also_visible)  # the tab is visible: no notification
            page.wait_for_selector(f'li.card[data-id="{also_visible.id}"]')
            page.evaluate(HIDE)
            server.publish(shown)
            wait_js(page, "window.__notifications.length === 1")
            note = page.evaluate(
                "(({title, body, tag}) => ({title, body, tag}))(window.__notifications[0])"
            )
            assert note == {
                "title": "ETHUSDT \u22123.10 %",
                "body": "now 2412.55 (from 2498.00) · rule default · usdm",
                "tag": shown.id,
            }
            # A click on it brings the tab and that card.
            page.evaluate(SHOW)
            page.evaluate("window.__notifications[0].onclick()")
            wait_js(page, f"document.activeElement.dataset.id === '{shown.id}'")
            assert page.evaluate("window.__notifications[0].closed") is True

            # The choice persists; turning it off needs no permission either.
            page.reload()
            page.wait_for_selector('body[data-notify="on"]')
            assert page.evaluate("window.__permissionRequests") == 0
            page.click("#notify")
            page.wait_for_selector('body[data-notify="off"]')
            assert page.evaluate("localStorage.getItem('marketd.notify')") == "0"

            # Blocked by the browser, or missing: said so, and the button is disabled.
            denied = new_page(browser, server.url, init_scripts=(notification_stub("denied"),))
            assert denied.get_attribute("body", "data-notify") == "denied"
            assert denied.text_content("#notify") == "Desktop notifications: blocked"
            assert denied.is_disabled("#notify")
            missing = new_page(browser, server.url, init_scripts=(NO_NOTIFICATIONS,))
            assert missing.get_attribute("body", "data-notify") == "unsupported"
            assert missing.text_content("#notify") == "Desktop notifications: unavailable"
            assert missing.is_disabled("#notify")

            # The real API, permission granted to the context: the button turns them on.
            real = new_page(browser, server.url)
            real.context.grant_permissions(["notifications"], origin=server.url.rstrip("/"))
            real.reload()
            real.wait_for_selector('body[data-notify="off"]')
            real.click("#notify")
            real.wait_for_selector('body[data-notify="on"]')
            assert csp_violations(page) == []

        await in_browser(script)


async def test_mute_from_a_card_with_the_token(tmp_path: Path) -> None:
    async with running_server(state_dir=str(tmp_path)) as server:
        btc, eth = make_alert("BTCUSDT"), make_alert("ETHUSDT", Direction.DOWN, -2.4)
        server.hub.publish([btc, eth])

        def button(page: Any, alert_id: str) -> str:
            return str(page.text_content(f'li.card[data-id="{alert_id}"] .mute-symbol'))

        def script(browser: Any) -> None:
            page = new_page(browser, server.url)
            assert button(page, eth.id) == "Mute"
            # Without a token, the panel asks for it; nothing changes on the server.
            page.click(f'li.card[data-id="{eth.id}"] .mute-symbol')
            page.wait_for_selector("#mutes:not([hidden])")
            assert page.text_content("#mutes-message") == (
                "Enter the API token to mute ETHUSDT, then press its button again."
            )
            page.fill("#mute-token", "wrong")
            page.click(f'li.card[data-id="{eth.id}"] .mute-symbol')
            wait_js(
                page, "document.getElementById('mutes-message').textContent.includes('rejected')"
            )
            page.fill("#mute-token", TOKEN)
            page.click(f'li.card[data-id="{eth.id}"] .mute-symbol')
            page.wait_for_selector('#mutes-message[data-kind="ok"]')
            assert page.text_content("#mutes-message") == "ETHUSDT muted."
            assert button(page, eth.id) == "Unmute"
            assert button(page, btc.id) == "Mute"
            assert page.text_content("#mutes-list li") == "ETHUSDT until unmutedUnmute"

            beeps = page.evaluate("window.__oscillatorStarts")
            eth2, btc2 = make_alert("ETHUSDT", Direction.UP, 5.0), make_alert("BTCUSDT")
            server.publish(eth2)
            server.publish(btc2)
            page.wait_for_selector(f'li.card[data-id="{btc2.id}"]')
            # ETH's alert, pushed before BTC's, never reached the page: no card, one beep.
            assert page.query_selector(f'li.card[data-id="{eth2.id}"]') is None
            assert page.evaluate("window.__oscillatorStarts") == beeps + 1

            # After a reload it is in the replay, marked muted and hidden until asked for.
            page.reload()
            page.wait_for_selector(f'li.card[data-id="{eth2.id}"]', state="attached")
            muted = page.locator(f'li.card[data-id="{eth2.id}"]')
            assert muted.get_attribute("data-muted") == "true"
            assert muted.is_hidden()
            assert page.text_content("#muted-count") == "(1)"
            assert [c["symbol"] for c in cards(page) if c["hidden"] == "false"] == [
                "BTCUSDT", "ETHUSDT", "BTCUSDT",
            ]  # fmt: skip
            assert newest(page)[0]["id"] == btc2.id  # never a muted card
            page.check("#show-muted")
            assert muted.is_visible()
            assert muted.locator(".muted-badge").text_content() == "muted"

            # The token is kept for the session: unmuting needs no typing.
            page.click(f'li.card[data-id="{btc.id}"] .mute-symbol')  # mute BTC too
            page.wait_for_selector(f'li.card[data-id="{btc.id}"] .mute-symbol[aria-pressed="true"]')
            page.click(f'li.card[data-id="{eth.id}"] .mute-symbol')
            page.wait_for_selector(
                f'li.card[data-id="{eth.id}"] .mute-symbol[aria-pressed="false"]'
            )
            eth3 = make_alert("ETHUSDT")
            server.publish(eth3)
            page.wait_for_selector(f'li.card[data-id="{eth3.id}"]')
            assert csp_violations(page) == []

        await in_browser(script)
        assert server.served is not None
        assert server.served.gateway.mutes.mutes(int(time.time() * 1000)) == (Mute("BTCUSDT"),)
        saved = json.loads((tmp_path / MUTES_FILE).read_text())
        assert saved == {"mutes": [{"symbol": "BTCUSDT", "until_ms": None}]}
