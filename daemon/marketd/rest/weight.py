"""REST request weights: the sliding budget of one exchange API (spot or USD-M), per IP (pure).

Binance counts weight per wall-clock minute and reports it in ``X-MBX-USED-WEIGHT-1M``;
past the limit it answers 429 with ``Retry-After``, and repeated abuse gets 418 bans. marketd
may use ``budget`` (a fraction of the limit), shared by every REST user of that API (book
snapshots, trade backfill: see :mod:`marketd.rest.budget`), and keeps to it three ways:

* its own requests over any sliding 60 s stay within ``budget`` (so every wall-clock
  minute does too);
* the server's count for the current minute (which includes any other user of the IP)
  plus the next request stays within ``budget``, else wait for the next minute;
* requests are paced by a token bucket (``budget / 60`` per second, a burst of a tenth of
  the budget), so start-up, mass resyncs and mass backfills are spread out, never fired
  at once.

A 429 or 418 blocks the whole API until its ``Retry-After`` has passed.

A positive wait is never shorter than ``MIN_DELAY_S``: float rounding can leave a token
deficit of ~1e-16 whose wait (~1e-14 s) is below the resolution of the clock at that time
(``now + wait == now``); a caller sleeping it would find the same deficit, and spin.
Times: ``now`` is monotonic seconds, ``wall`` is Unix seconds (minute boundaries).
"""

from __future__ import annotations

import math
from collections import deque

WINDOW_S = 60.0
# Seconds added after a wall-clock minute boundary (clock skew with the exchange).
MINUTE_MARGIN_S = 1.0
BURST_FRACTION = 0.1
DEFAULT_RETRY_AFTER_S = 60.0
DEFAULT_BAN_S = 120.0
# The shortest positive wait :meth:`WeightBudget.delay` returns (see above).
MIN_DELAY_S = 1e-3


class WeightBudget:
    def __init__(self, budget: int) -> None:
        self.budget = max(1, budget)
        self._sent: deque[tuple[float, int]] = deque()
        self._sent_weight = 0
        self.burst = max(1.0, self.budget * BURST_FRACTION)
        self._tokens = self.burst
        self._tokens_at: float | None = None
        self.server_used = 0  # the last X-MBX-USED-WEIGHT-1M seen ...
        self.server_minute = -1  # ... in this wall-clock minute
        self.blocked_until = 0.0  # monotonic: 429 / 418
        self.weight_requested = 0  # total, since start

    def _expire(self, now: float) -> None:
        sent = self._sent
        while sent and sent[0][0] <= now - WINDOW_S:
            self._sent_weight -= sent.popleft()[1]

    def _refill(self, now: float) -> None:
        if self._tokens_at is None:
            self._tokens_at = now
        elif now > self._tokens_at:
            # Only forward: a caller's earlier ``now`` (read before another's later one)
            # must not move the clock back, or that interval would be credited twice.
            elapsed = now - self._tokens_at
            self._tokens = min(self.burst, self._tokens + elapsed * self.budget / WINDOW_S)
            self._tokens_at = now

    def used(self, now: float, wall: float) -> int:
        """The weight counted against the budget now (own window or server, the larger)."""
        if now != float("-inf"):
            self._expire(now)
        server = self.server_used if self.server_minute == int(wall // 60) else 0
        return max(self._sent_weight, server)

    def delay(self, weight: int, now: float, wall: float) -> float:
        """Seconds to wait before a request of ``weight`` may be sent (0: send now)."""
        waits = [self.blocked_until - now]
        self._expire(now)
        if self._sent and self._sent_weight + weight > self.budget:
            # Wait until enough of our own weight leaves the window.
            excess = self._sent_weight + weight - self.budget
            for t, w in self._sent:
                excess -= w
                if excess <= 0:
                    waits.append(t + WINDOW_S - now)
                    break
        if self.server_minute == int(wall // 60) and self.server_used + weight > self.budget:
            waits.append((math.floor(wall / 60) + 1) * 60 + MINUTE_MARGIN_S - wall)
        self._refill(now)
        need = min(float(weight), self.burst)
        if self._tokens < need:
            waits.append((need - self._tokens) * WINDOW_S / self.budget)
        wait = max(waits)
        # Rounded up, so that sleeping it always moves the clock and refills the bucket.
        return 0.0 if wait <= 0 else max(wait, MIN_DELAY_S)

    def charge(self, weight: int, now: float) -> None:
        """A request of ``weight`` is being sent (call only when :meth:`delay` is 0)."""
        self._refill(now)
        self._tokens -= min(float(weight), self.burst)
        self._sent.append((now, weight))
        self._sent_weight += weight
        self.weight_requested += weight

    def observe(self, used: int | None, wall: float) -> None:
        """Remember the server's ``X-MBX-USED-WEIGHT-1M`` of a response received at ``wall``."""
        if used is None:
            return
        minute = int(wall // 60)
        if minute != self.server_minute:
            self.server_minute, self.server_used = minute, used
        else:
            self.server_used = max(self.server_used, used)

    def block(self, seconds: float, now: float) -> None:
        """Send nothing for ``seconds`` (429 Retry-After, 418 ban)."""
        self.blocked_until = max(self.blocked_until, now + seconds)


def retry_after(value: str | None, default: float) -> float:
    """A ``Retry-After`` header in seconds (integer or not); ``default`` when absent/bad."""
    if value:
        try:
            seconds = float(value)
        except ValueError:
            return default
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return default
