"""Who is subscribed to what, and the fan-out of one market's events (pure, no trio).

The index is a list per channel indexed by symbol, each slot a group (``fakex.fanout``:
the combined-frame prefix, ``None`` for raw ``/ws`` connections, to the subscribers). A
payload is formatted only when a slot has subscribers, and once per event; a combined frame
once per stream name. The kinds pushed on a clock live in ``fakex.timed`` and cost nothing
while nobody subscribes to them.
"""

from __future__ import annotations

import attrs

from marketd.fakex.events import DepthEvent, TradeEvent
from marketd.fakex.fanout import Group, Subscriber, join, leave, send
from marketd.fakex.frames import SymbolFrames, array_payload, combined_prefix
from marketd.fakex.market import MarketModel
from marketd.fakex.protocol import GLOBAL_CHANNELS, TIMED_CHANNELS, Channel, StreamRef
from marketd.fakex.timed import TimedFeeds

__all__ = ["CorruptedLevel", "Group", "MarketHub", "Subscriber"]


@attrs.frozen
class CorruptedLevel:
    """A level a ``corrupt_level`` fault sent wrong (the true book kept ``true_qty``)."""

    symbol: str
    update_id: int  # the ``u`` of the diff that carried it
    side: str  # "bid" or "ask"
    price: str
    sent_qty: str
    true_qty: str


class MarketHub:
    """One market: its model, its formatters, its subscription index and its counters.

    ``kline_ms`` > 0 gives every kline interval that length (tests: candles close without
    waiting real minutes)."""

    def __init__(self, model: MarketModel, *, kline_ms: int = 0) -> None:
        self.model = model
        self.market = model.market
        self.frames = [SymbolFrames(m) for m in model.symbols]
        self.symbol_index = {m.spec.stream_symbol: i for i, m in enumerate(model.symbols)}
        n = len(model.symbols)
        self._slots: dict[Channel, list[Group | None]] = {
            c: [None] * (1 if c in GLOBAL_CHANNELS else n)
            for c in Channel
            if c not in TIMED_CHANNELS
        }
        self.timed = TimedFeeds(model, self.frames, kline_ms)
        self._depth_watchers = self.timed.depth_watchers  # the same list: one lookup a diff
        self.frames_sent = [0] * n
        # Depth diffs a per-symbol `gap` fault still has to swallow, per symbol.
        self.skip_depth = [0] * n
        self.depth_skipped = 0
        # Depth diffs a `corrupt_level` fault still has to corrupt, per symbol; and what
        # it sent.
        self.corrupt_depth = [0] * n
        self.corrupted: list[CorruptedLevel] = []
        self.global_frames_sent = 0
        self.events = 0
        self.seconds = 0

    # -- subscriptions --------------------------------------------------------------------

    def add(self, sub: Subscriber, ref: StreamRef, *, combined: bool) -> None:
        prefix = combined_prefix(ref.name) if combined else None
        if ref.channel in TIMED_CHANNELS:
            self.timed.add(sub, ref, prefix)
            return
        slot = self._slots[ref.channel]
        i = max(ref.symbol, 0)
        group = slot[i]
        if group is None:
            group = slot[i] = {}
        join(group, sub, prefix)

    def remove(self, sub: Subscriber, ref: StreamRef, *, combined: bool) -> None:
        prefix = combined_prefix(ref.name) if combined else None
        if ref.channel in TIMED_CHANNELS:
            self.timed.remove(sub, ref, prefix)
            return
        slot = self._slots[ref.channel]
        i = max(ref.symbol, 0)
        group = slot[i]
        if group is None:
            return
        leave(group, sub, prefix)
        if not group:
            slot[i] = None

    def subscribers(self) -> int:
        """How many (subscriber, stream) pairs are registered (for tests)."""
        slots = self._slots.values()
        return sum(len(s) for slot in slots for g in slot if g for s in g.values()) + len(
            self.timed
        )

    # -- fan-out --------------------------------------------------------------------------

    _send = staticmethod(send)

    def tick(self, now_ms: int) -> None:
        """Push the timed kinds that are due (klines, partial depth, ...): call it often."""
        timed = self.timed
        if now_ms >= timed.next_due:
            self.global_frames_sent += timed.tick(now_ms, self.frames_sent)

    def run_steps(self, n: int, now_ms: int) -> None:
        """Generate ``n`` events and send them to their subscribers."""
        slots = self._slots
        trade_slot, agg_slot = slots[Channel.TRADE], slots[Channel.AGG_TRADE]
        depth_slot, bt_slot = slots[Channel.DEPTH], slots[Channel.BOOK_TICKER]
        symbols = self.model.symbols
        for idx in self.model.schedule(n):
            trade, diff = symbols[idx].step(now_ms)
            if trade is not None:
                self._publish_trade(idx, trade, now_ms, trade_slot[idx], agg_slot[idx])
            self._publish_depth(idx, diff, now_ms, depth_slot[idx], bt_slot[idx])
        self.events += n

    def _publish_trade(
        self, idx: int, ev: TradeEvent, now_ms: int, trades: Group | None, aggs: Group | None
    ) -> None:
        if trades is None and aggs is None:
            return
        fr, sent = self.frames[idx], 0
        if trades is not None:
            for payload in fr.trades(ev, now_ms):
                sent += self._send(trades, payload, True)
        if aggs is not None:
            sent += self._send(aggs, fr.agg_trade(ev, now_ms), True)
        self.frames_sent[idx] += sent

    def _publish_depth(
        self, idx: int, ev: DepthEvent, now_ms: int, depth: Group | None, bt: Group | None
    ) -> None:
        sent = 0
        if self._depth_watchers[idx] is not None:
            self.timed.saw_diff(idx, ev)
        if self.skip_depth[idx]:
            self.skip_depth[idx] -= 1
            self.depth_skipped += 1
            depth = None
        if depth is not None:
            sent_ev = self.corrupt(idx, ev) if self.corrupt_depth[idx] else ev
            sent += self._send(depth, self.frames[idx].depth(sent_ev, now_ms), True)
        all_bt = self._slots[Channel.ALL_BOOK_TICKERS][0]
        if (bt is not None or all_bt is not None) and ev.best_changed:
            payload = self.frames[idx].book_ticker(ev.last_id, now_ms)
            if bt is not None:
                sent += self._send(bt, payload, False)
            if all_bt is not None:
                self.global_frames_sent += self._send(all_bt, payload, False)
        if sent:
            self.frames_sent[idx] += sent

    def corrupt(self, idx: int, ev: DepthEvent) -> DepthEvent:
        """``ev`` as a ``corrupt_level`` fault sends it: plus one level it does not touch,
        in the middle of a side (far from the best, where the market rarely changes it),
        at its true quantity plus one lot. Same ids; the true book is left alone. The
        sides take turns (bids first)."""
        model = self.model.symbols[idx]
        bid = len(self.corrupted) % 2 == 0
        side = model.book.bids if bid else model.book.asks
        touched = {p for p, _ in (ev.bids if bid else ev.asks)}
        candidates = [side.nth_from_best(k) for k in range(len(side) // 2, len(side))]
        price = next((p for p in candidates if p not in touched), None)
        if price is None:
            return ev  # nothing to corrupt in this one: the next diff gets it
        self.corrupt_depth[idx] -= 1
        true_qty = side.qty[price]
        levels = sorted([*(ev.bids if bid else ev.asks), (price, true_qty + 1)])
        fr = self.frames[idx]
        self.corrupted.append(
            CorruptedLevel(
                model.spec.symbol,
                ev.last_id,
                "bid" if bid else "ask",
                fr.fmt_p(price),
                fr.fmt_q(true_qty + 1),
                fr.fmt_q(true_qty),
            )
        )
        bids, asks = (levels, ev.asks) if bid else (ev.bids, levels)
        return DepthEvent(ev.first_id, ev.last_id, ev.prev_id, bids, asks, ev.time, ev.best_changed)

    def publish(self, idx: int, trade: TradeEvent | None, diff: DepthEvent, now_ms: int) -> None:
        """Send events made outside ``run_steps`` (a price jump)."""
        s = self._slots
        if trade is not None:
            self._publish_trade(
                idx, trade, now_ms, s[Channel.TRADE][idx], s[Channel.AGG_TRADE][idx]
            )
        self._publish_depth(idx, diff, now_ms, s[Channel.DEPTH][idx], s[Channel.BOOK_TICKER][idx])

    def tick_second(self, now_ms: int) -> None:
        """Once a second: mini tickers and tickers of changed symbols, mark prices."""
        slots = self._slots
        mini_slot, ticker_slot = slots[Channel.MINI_TICKER], slots[Channel.TICKER]
        all_minis = slots[Channel.ALL_MINI_TICKERS][0]
        all_tickers = slots[Channel.ALL_TICKERS][0]
        items: list[str] = []
        tickers: list[str] = []
        for idx in self.model.take_changed():
            mini_g, ticker_g = mini_slot[idx], ticker_slot[idx]
            if mini_g is None and ticker_g is None and all_minis is None and all_tickers is None:
                continue
            fr, sent = self.frames[idx], 0
            if mini_g is not None or all_minis is not None:
                mini = fr.mini_ticker(now_ms)
                if all_minis is not None:
                    items.append(mini)
                if mini_g is not None:
                    sent += self._send(mini_g, mini, False)
            if ticker_g is not None or all_tickers is not None:
                ticker = fr.ticker(now_ms)
                if all_tickers is not None:
                    tickers.append(ticker)
                if ticker_g is not None:
                    sent += self._send(ticker_g, ticker, False)
            self.frames_sent[idx] += sent
        if all_minis is not None and items:
            self.global_frames_sent += self._send(all_minis, array_payload(items), False)
        if all_tickers is not None and tickers:
            self.global_frames_sent += self._send(all_tickers, array_payload(tickers), False)
        self.seconds += 1
        self._mark_prices(now_ms, Channel.MARK_PRICE_1S, Channel.ALL_MARK_PRICES_1S)
        if self.seconds % 3 == 0:
            self._mark_prices(now_ms, Channel.MARK_PRICE, Channel.ALL_MARK_PRICES)

    def _mark_prices(self, now_ms: int, each: Channel, every: Channel) -> None:
        slot, all_g = self._slots[each], self._slots[every][0]
        if all_g is None and not any(slot):
            return
        items: list[str] = []
        for idx, fr in enumerate(self.frames):
            g = slot[idx]
            if g is None and all_g is None:
                continue
            payload = fr.mark_price(now_ms)
            if g is not None:
                self.frames_sent[idx] += self._send(g, payload, False)
            if all_g is not None:
                items.append(payload)
        if all_g is not None:
            self.global_frames_sent += self._send(all_g, array_payload(items), False)
