"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright's sync API.

The browser runs in one worker thread (Playwright's sync API is bound to the thread that
started it); the gateway runs in the test's trio loop. The thread reaches back into trio
with ``trio.from_thread`` to publish alerts or restart the server.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

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


def skip_without_browser() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the Python package 'playwright' is not installed (pip install playwright)")
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")


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


def new_page(browser: Any, url: str, **context_args: Any) -> Any:
    context = browser.new_context(**context_args)
    context.set_default_timeout(10_000)
    context.add_init_script(COUNT_BEEPS)
    page = context.new_page()
    page.console_messages_seen = []  # type: ignore[attr-defined]
    page.on("console", lambda m: page.console_messages_seen.append(m.text))
    page.goto(url)
    page.wait_for_selector('#status[data-state="live"]')
    return page


def wait_js(page: Any, expression: str, timeout_s: float = 10.0) -> None:
    """Poll ``expression`` until truthy. (``page.wait_for_function`` evaluates strings in
    the page, which the UI's CSP - rightly - forbids; ``evaluate`` goes through CDP.)"""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {expression}")
        time.sleep(0.05)


def csp_violations(page: Any) -> list[str]:
    return [m for m in page.console_messages_seen if "Content Security Policy" in m]
