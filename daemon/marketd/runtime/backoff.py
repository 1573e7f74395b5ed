"""Capped exponential backoff with full jitter, reset after a healthy period (pure)."""

from __future__ import annotations

import random

import attrs

from marketd.config.settings import BackoffSettings


@attrs.frozen
class BackoffPolicy:
    """How long to wait before retry ``n`` (0-based).

    ``delay(n)`` is uniformly drawn from ``[base * (1 - jitter), base]`` where
    ``base = min(cap, initial * multiplier**n)``: never above the cap, never zero.
    """

    initial: float = 0.5
    cap: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5
    reset_after: float = 60.0

    def base(self, attempt: int) -> float:
        # Bound the exponent so a long outage cannot overflow the float.
        return min(self.cap, self.initial * self.multiplier ** min(attempt, 64))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        base = self.base(attempt)
        low = base * (1.0 - self.jitter)
        return (rng or random).uniform(low, base)


@attrs.define
class Backoff:
    """Stateful attempt counter over a :class:`BackoffPolicy`.

    Call :meth:`next_delay` after a failure and :meth:`healthy` with the time a run
    lasted: a run longer than ``policy.reset_after`` resets the attempt count.
    """

    policy: BackoffPolicy = attrs.field(factory=BackoffPolicy)
    rng: random.Random = attrs.field(factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        delay = self.policy.delay(self.attempt, self.rng)
        self.attempt += 1
        return delay

    def ran_for(self, seconds: float) -> None:
        if seconds >= self.policy.reset_after:
            self.attempt = 0


def policy_from_settings(settings: BackoffSettings) -> BackoffPolicy:
    """The :class:`BackoffPolicy` a configuration section (``*.reconnect``, ...) describes."""
    return BackoffPolicy(
        initial=settings.initial_s,
        cap=settings.max_s,
        multiplier=settings.multiplier,
        jitter=settings.jitter,
        reset_after=settings.reset_after_s,
    )
