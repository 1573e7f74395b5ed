"""The state of one WebSocket connection attempt of a feed (see :mod:`marketd.feed.connection`).

A feed has one *primary* link; during a make-before-break handover it also has a
*successor*, whose data frames go to its own ``held`` buffer until it is promoted.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import trio

from marketd.feed.buffer import FrameBuffer
from marketd.feed.handover import Overlap


@attrs.define(eq=False)
class Link:
    """One connection attempt, from connect to close.

    ``buffer`` is where its data frames go *now*: the feed's buffer, or ``held`` while it
    is a successor. ``on_data`` (when set) sees every data frame after it was buffered —
    the handover's overlap bookkeeping. ``replace`` is the planned end the connection
    asked for (``_Rotate`` or ``ServerShutdown``); ``failure`` the error that ended it
    (None when it was retired on purpose). ``done`` is set once it is closed and every
    frame it read is buffered.
    """

    number: int
    buffer: FrameBuffer
    held: FrameBuffer | None = None
    overlap: Overlap | None = None
    on_data: Callable[[str], None] | None = None
    acks: dict[int, trio.Event] = attrs.field(factory=dict)
    connected: bool = False
    connected_at: float | None = None
    subscribed_at: float | None = None
    first_data_at: float | None = None
    # The staleness reference: last frame, or connect, or the end of a backpressure wait
    # (infinite during one).
    alive_at: float = 0.0
    replace: BaseException | None = None
    failure: BaseException | None = None
    # (code, reason) trio-websocket reports once the connection is closed (for the recorder).
    closed_with: tuple[int, str | None] | None = None
    retiring: bool = False
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    inner: trio.CancelScope | None = None
    done: trio.Event = attrs.field(factory=trio.Event)

    @property
    def subscribed(self) -> bool:
        return self.connected and self.subscribed_at is not None

    def healthy_for(self, now: float) -> float:
        """Seconds since the subscription completed (0 if it never did)."""
        return 0.0 if self.subscribed_at is None else max(0.0, now - self.subscribed_at)

    def retire(self) -> None:
        """End on purpose: stop reading and close with a handshake (or stop connecting)."""
        self.retiring = True
        if self.inner is not None:
            self.inner.cancel()
        else:
            self.scope.cancel()

    def pending(self) -> int:
        return 0 if self.held is None else len(self.held)

    def stale_at(self, stale_after: float) -> float:
        return self.alive_at + stale_after if self.alive_at != math.inf else math.inf
