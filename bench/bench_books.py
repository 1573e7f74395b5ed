"""Order books: diffs applied per second on one core, and memory per book.

100 symbols with 1000 levels per side; diffs of 1-20 levels (updates near the top, new
levels, deletions), spot sequencing. Measures the state machine alone
(``SymbolSync.on_diff``: sequence checks, apply, crossed check) and the books stage's
per-record path (``Books.take``: Protobuf decode of the depth record + the same), then the
memory of one 1000-level book (tracemalloc, the strings it keeps included): after its
snapshot, and after 20,000 diffs. Prints a table and one JSON line.

    .venv/bin/python bench/bench_books.py [--symbols 100] [--levels 1000] [--diffs 200000]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
import tracemalloc

from marketd.books.service import Books
from marketd.books.sync import SymbolSync
from marketd.config.books import BookSettings
from marketd.config.settings import Settings, Subscription
from marketd.data.events import DepthDiff
from marketd.data.records import Market, Record
from marketd.v1.market_data_pb2 import MARKET_SPOT, MarketEvent


def fmt(ticks: int) -> str:
    return f"{ticks // 100}.{ticks % 100:02d}000000"


def make_book(levels: int, mid: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    bids = [(fmt(mid - 1 - i), "1.50000000") for i in range(levels)]
    asks = [(fmt(mid + 1 + i), "2.25000000") for i in range(levels)]
    return bids, asks


def make_diffs(
    rng: random.Random, n: int, levels: int, mid: int
) -> list[tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
    """Diffs that keep the book around ``levels`` per side and never cross it."""
    out = []
    for _ in range(n):
        bids, asks = [], []
        for _ in range(rng.randint(1, 20)):
            r = rng.random()
            depth = int(rng.expovariate(1 / 30)) % levels  # most changes near the top
            qty = (
                "0.00000000" if r < 0.3 else f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}000000"
            )
            if rng.random() < 0.5:
                bids.append((fmt(mid - 1 - depth), qty))
            else:
                asks.append((fmt(mid + 1 + depth), qty))
        out.append((bids, asks))
    return out


def bench_sync(symbols: int, levels: int, n: int) -> tuple[float, int]:
    rng = random.Random(1)
    mid = 2_712_345
    syncs = []
    for _ in range(symbols):
        s = SymbolSync(chained=False, depth=levels + 100, snapshot_limit=5000)
        s.on_diff(DepthDiff(1, 1, None, [], []))
        s.on_snapshot(1, *make_book(levels, mid))
        syncs.append(s)
    pool = make_diffs(rng, 20_000, levels, mid)
    ids = [2] * symbols
    order = [rng.randrange(symbols) for _ in range(n)]
    work = []
    for i, sym in enumerate(order):
        b, a = pool[i % len(pool)]
        u = ids[sym]
        ids[sym] = u + 1
        work.append((syncs[sym], DepthDiff(u, u, None, b, a)))
    level_count = sum(len(d.bids) + len(d.asks) for _, d in work)
    gc.collect()
    t0 = time.perf_counter()
    for s, d in work:
        s.on_diff(d)
    dt = time.perf_counter() - t0
    assert all(s.synced for s in syncs), "a bench book lost sync"
    return n / dt, level_count


def bench_take(symbols: int, levels: int, n: int) -> float:
    rng = random.Random(2)
    mid = 2_712_345
    names = [f"SYM{i:04d}USDT" for i in range(symbols)]
    settings = Settings(
        subscriptions=(
            Subscription(market=Market.SPOT, symbols=tuple(names), channels=("depth",)),
        ),
        books=BookSettings(depth=levels + 100, snapshot_limit=5000),
    )
    books = Books(settings)
    for name in names:
        sync = books.syncs[(Market.SPOT, name)]
        sync.on_diff(DepthDiff(1, 1, None, [], []))
        sync.on_snapshot(1, *make_book(levels, mid))
    pool = make_diffs(rng, 5_000, levels, mid)
    ids = [2] * symbols
    ev = MarketEvent(market=MARKET_SPOT)
    records = []
    for i in range(n):
        sym = rng.randrange(symbols)
        b, a = pool[i % len(pool)]
        ev.symbol = names[sym]
        d = ev.depth_diff
        d.first_update_id = d.final_update_id = ids[sym]
        ids[sym] += 1
        del d.bids[:], d.asks[:]
        for p, q in b:
            d.bids.add(price=p, quantity=q)
        for p, q in a:
            d.asks.add(price=p, quantity=q)
        records.append(
            Record("marketdata.depth", names[sym].encode(), ev.SerializeToString(), (), 0,
                   Market.SPOT, "depthUpdate", names[sym], ids[sym] - 1)
        )  # fmt: skip
    batches = [records[i : i + 500] for i in range(0, n, 500)]
    gc.collect()
    t0 = time.perf_counter()
    for batch in batches:
        books.take(batch)
    dt = time.perf_counter() - t0
    assert not books.statistics().not_synced
    return n / dt


def _fresh(levels: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Strings as they arrive from a decoder: new objects, not shared literals."""
    return [(p.encode().decode(), q.encode().decode()) for p, q in levels]


def book_memory(levels: int, diffs: int = 20_000) -> tuple[int, int, int]:
    """``(bytes after the snapshot, bytes after diffs, levels then)`` of one book."""
    mid = 2_712_345
    bids, asks = make_book(levels, mid)
    pool = make_diffs(random.Random(3), diffs, levels, mid)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    s = SymbolSync(chained=False, depth=levels, snapshot_limit=5000)
    s.on_diff(DepthDiff(1, 1, None, [], []))
    s.on_snapshot(1, _fresh(bids), _fresh(asks))
    gc.collect()
    loaded = tracemalloc.get_traced_memory()[0] - before
    for u, (b, a) in enumerate(pool, start=2):
        s.on_diff(DepthDiff(u, u, None, _fresh(b), _fresh(a)))
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert s.synced
    return loaded, used, len(s.book.bids) + len(s.book.asks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--levels", type=int, default=1000)
    parser.add_argument("--diffs", type=int, default=200_000)
    args = parser.parse_args()
    sync_rate, level_count = bench_sync(args.symbols, args.levels, args.diffs)
    take_rate = bench_take(args.symbols, args.levels, min(args.diffs, 100_000))
    loaded, used, held = book_memory(args.levels)
    levels_per_diff = level_count / args.diffs
    rows = [
        ("symbols x levels/side", f"{args.symbols} x {args.levels}"),
        ("levels per diff (mean)", f"{levels_per_diff:.1f}"),
        ("state machine: diffs/s", f"{sync_rate:,.0f}"),
        ("state machine: levels/s", f"{sync_rate * levels_per_diff:,.0f}"),
        ("stage (protobuf decode + apply): diffs/s", f"{take_rate:,.0f}"),
        (f"memory per book ({args.levels} levels/side)", f"{loaded / 1024:,.0f} KiB"),
        ("  per level, after the snapshot", f"{loaded / (2 * args.levels):,.0f} B"),
        ("  per level, after 20,000 diffs", f"{used / held:,.0f} B"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v:>14}")
    print(
        json.dumps(
            {
                "bench": "books",
                "symbols": args.symbols,
                "levels": args.levels,
                "levels_per_diff": round(levels_per_diff, 2),
                "sync_diffs_per_s": round(sync_rate),
                "stage_diffs_per_s": round(take_rate),
                "book_bytes": loaded,
                "level_bytes_loaded": round(loaded / (2 * args.levels)),
                "level_bytes_after_diffs": round(used / held),
            }
        )
    )


if __name__ == "__main__":
    main()
