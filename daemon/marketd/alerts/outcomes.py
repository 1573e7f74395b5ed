"""What happened after alerts: the instrument's price 1, 5 and 15 minutes later (pure).

The detector keeps one :class:`Waiting` per instrument and hands it each of the
instrument's price ticks whose event time reaches its ``due``; the outcome at ``+h`` is the
last price at or before ``price_time_ms + h``: the tick itself when it is exactly on time,
else the newest tick before it (known when the first tick at or after that moment arrives).
"""

from __future__ import annotations

import decimal
from decimal import Decimal

from marketd.alerts.model import OUTCOME_AFTER_S, Alert, Outcome

_CTX = decimal.Context(prec=80, Emax=999_999, Emin=-999_999)
_HUNDRED = Decimal(100)
_NEVER = 2**63
_AFTER_MS = tuple(h * 1000 for h in OUTCOME_AFTER_S)


class _Pending:
    """An alert waiting for its outcomes."""

    __slots__ = ("alert", "next")

    def __init__(self, alert: Alert) -> None:
        self.alert = alert
        self.next = 0  # index into OUTCOME_AFTER_S of the next outcome due


class Waiting:
    """The alerts of one instrument waiting for outcomes; ``due`` is the earliest event
    time one is due (a large number when none is)."""

    __slots__ = ("due", "pending")

    def __init__(self) -> None:
        self.pending: list[_Pending] = []
        self.due = _NEVER

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, alert: Alert) -> None:
        self.pending.append(_Pending(alert))
        self.due = min(self.due, alert.price_time_ms + _AFTER_MS[0])

    def reached(
        self, time_ms: int, price: str, seen_time: int, seen_price: str, out: list[Outcome]
    ) -> int:
        """Append to ``out`` the outcomes a price tick at ``time_ms`` makes known
        (``seen_*``: the instrument's previous price tick); return how many alerts have
        all their outcomes now."""
        keep: list[_Pending] = []
        earliest = _NEVER
        done = 0
        for waiting in self.pending:
            alert = waiting.alert
            while waiting.next < len(_AFTER_MS):
                due = alert.price_time_ms + _AFTER_MS[waiting.next]
                if time_ms < due:
                    earliest = min(earliest, due)
                    break
                at, text = (time_ms, price) if time_ms == due else (seen_time, seen_price)
                if at < alert.price_time_ms:  # nothing seen since the alert: this tick
                    at, text = time_ms, price
                out.append(outcome(alert, OUTCOME_AFTER_S[waiting.next], at, text))
                waiting.next += 1
            if waiting.next < len(_AFTER_MS):
                keep.append(waiting)
            else:
                done += 1
        self.pending = keep
        self.due = earliest
        return done


def outcome(alert: Alert, after_s: int, time_ms: int, price: str) -> Outcome:
    """The outcome of ``alert`` at ``+after_s``: ``price`` (at ``time_ms``) against the
    alert's price."""
    base = Decimal(alert.price)
    change = _CTX.divide(_CTX.multiply(_CTX.subtract(Decimal(price), base), _HUNDRED), base)
    return Outcome(
        alert_id=alert.id,
        market=alert.market,
        symbol=alert.symbol,
        after_s=after_s,
        price=price,
        price_time_ms=time_ms,
        change_pct=round(float(change), 4),
    )
