"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright's sync API.

The browser runs in one worker thread (Playwright's sync API is bound to the thread that
started it); the gateway runs in the test's trio loop. The thread reaches back into trio
with ``trio.from_thread`` to publish alerts or restart the server.

A module of browser tests sets ``pytestmark = [requires_browser, ...]``: its tests are
skipped, with the reason, where Playwright or Chromium is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from kit.wait import poll_until_blocking

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Counts oscillator starts: the page's "beep" is observable without audio hardware.
COUNT_BEEPS = """
(() => {
  window.__oscillatorStarts = 0;
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) {
    window.__oscillatorStarts += 1;
    return start.apply(this, args);
  };
})();
"""

T = TypeVar("T")


def _missing_browser() -> str | None:
    """Why no browser test can run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "the Python package 'playwright' is not installed (pip install playwright)"
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        return "Chromium is not installed (apt-get install chromium)"
    return None


_WHY_NOT = _missing_browser()
# A mark rather than an autouse fixture in each module: the check is the same for every
# browser test and needs nothing from the test, so it is made once, at import.
requires_browser = pytest.mark.skipif(_WHY_NOT is not None, reason=_WHY_NOT or "")


async def in_browser(
    script: Callable[[Any], T], *, extra_args: tuple[str, ...] = (), timeout_s: float = 60
) -> T:
    """Run ``script(browser)`` in a worker thread with a fresh headless Chromium."""

    def run() -> T:
        from playwright.sync_api import sync_playwright

        # Playwright runs its own asyncio loop in this thread. Once trio-asyncio has been
        # imported (by other tests in the session) its policy would hand out a trio loop;
        # trio-asyncio scopes set_event_loop_policy() to the calling thread.
        asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), args=[*LAUNCH_ARGS, *extra_args], timeout=20_000
            )
            try:
                return script(browser)
            finally:
                browser.close()

    with trio.fail_after(timeout_s):
        return await trio.to_thread.run_sync(run)


def new_page(
    browser: Any, url: str, *, init_scripts: tuple[str, ...] = (), **context_args: Any
) -> Any:
    """A page of a new context (``context_args``) at ``url``, once its badge says live.
    ``init_scripts`` run in every document of the context before the page's own."""
    context = browser.new_context(**context_args)
    context.set_default_timeout(10_000)
    context.add_init_script(COUNT_BEEPS)
    for script in init_scripts:
        context.add_init_script(script)
    page = context.new_page()
    page.console_messages_seen = []  # type: ignore[attr-defined]
    page.on("console", lambda m: page.console_messages_seen.append(m.text))
    page.goto(url)
    page.wait_for_selector('#status[data-state="live"]')
    return page


def wait_js(page: Any, expression: str, timeout_s: float = 10.0) -> None:
    """Poll ``expression`` until truthy. (``page.wait_for_function`` evaluates strings in
    the page, which the UI's CSP - rightly - forbids; ``evaluate`` goes through CDP.)"""
    poll_until_blocking(
        lambda: page.evaluate(expression), timeout=timeout_s, what=expression, interval=0.05
    )


def csp_violations(page: Any) -> list[str]:
    return [m for m in page.console_messages_seen if "Content Security Policy" in m]


def cards(page: Any) -> list[dict[str, str]]:
    """The alert cards on the page, newest first, as the fields a test compares."""
    result: list[dict[str, str]] = page.eval_on_selector_all(
        "#alerts > li.card",
        """els => els.map(e => ({
            id: e.dataset.id, symbol: e.querySelector('.symbol').textContent,
            href: e.querySelector('.symbol').href,
            direction: e.querySelector('.direction').textContent,
            pct: e.querySelector('.pct').textContent,
            price: e.querySelector('.price').textContent,
            base: e.querySelector('.base-price').textContent,
            hidden: String(e.hidden)}))""",
    )
    return result


def visible_symbols(page: Any) -> list[str]:
    return [c["symbol"] for c in cards(page) if c["hidden"] == "false"]
