"""Codecs throughput: decode + encode cost per frame, by event type.

    .venv/bin/python bench/bench_codec.py [--frames N] [--batch N] [--repeat N]

Builds realistic combined-stream frames (Binance's documented shapes, varied ids and
prices), runs ``Codecs.decode_batch`` over them in batches, and prints a table of µs/frame
and frames/s (each batch's best of ``--repeat`` runs) followed by one JSON line for machines.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable

from marketd.config.settings import TopicSettings
from marketd.data.records import FrameBatch, Market
from marketd.pipeline.codecs import Codecs

T0 = 1_700_000_000_000


def _px(rng: random.Random) -> str:
    return f"{rng.uniform(10, 70_000):.8f}"


def _qty(rng: random.Random) -> str:
    return f"{rng.uniform(0, 5):.8f}"


def _frame(stream: str, data: object) -> str:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


def spot_trade(i: int, rng: random.Random) -> str:
    data = {
        "e": "trade", "E": T0 + i, "s": "BTCUSDT", "t": 3_000_000_000 + i, "p": _px(rng),
        "q": _qty(rng), "T": T0 + i, "m": rng.random() < 0.5, "M": True,
    }  # fmt: skip
    return _frame("btcusdt@trade", data)


def usdm_agg_trade(i: int, rng: random.Random) -> str:
    q = _qty(rng)
    data = {
        "e": "aggTrade", "E": T0 + i, "s": "BTCUSDT", "a": 2_000_000_000 + i, "p": _px(rng),
        "q": q, "nq": q, "f": 5_000_000_000 + 3 * i, "l": 5_000_000_002 + 3 * i, "T": T0 + i,
        "m": rng.random() < 0.5,
    }  # fmt: skip
    return _frame("btcusdt@aggTrade", data)


def spot_book_ticker(i: int, rng: random.Random) -> str:
    data = {
        "u": 60_000_000_000 + i, "s": "BTCUSDT", "b": _px(rng), "B": _qty(rng),
        "a": _px(rng), "A": _qty(rng),
    }  # fmt: skip
    return _frame("btcusdt@bookTicker", data)


def _levels(rng: random.Random, n: int) -> list[list[str]]:
    return [[_px(rng), _qty(rng)] for _ in range(n)]


def spot_depth_20(i: int, rng: random.Random) -> str:
    data = {
        "e": "depthUpdate", "E": T0 + i, "s": "BTCUSDT", "U": 70_000_000_000 + 20 * i,
        "u": 70_000_000_019 + 20 * i, "b": _levels(rng, 10), "a": _levels(rng, 10),
    }  # fmt: skip
    return _frame("btcusdt@depth@100ms", data)


def usdm_depth_20(i: int, rng: random.Random) -> str:
    data = {
        "e": "depthUpdate", "E": T0 + i, "T": T0 + i - 1, "s": "BTCUSDT",
        "U": 80_000_000_000 + 20 * i, "u": 80_000_000_019 + 20 * i,
        "pu": 80_000_000_000 + 20 * i - 1, "b": _levels(rng, 10), "a": _levels(rng, 10),
    }  # fmt: skip
    return _frame("btcusdt@depth@100ms", data)


def _mini(i: int, rng: random.Random, symbol: str) -> dict[str, object]:
    return {
        "e": "24hrMiniTicker", "E": T0 + i, "s": symbol, "c": _px(rng), "o": _px(rng),
        "h": _px(rng), "l": _px(rng), "v": _qty(rng), "q": _qty(rng),
    }  # fmt: skip


def usdm_mini_ticker_arr_item(i: int, rng: random.Random) -> str:
    # One frame of !miniTicker@arr with 50 symbols; the cost is reported per item.
    return _frame("!miniTicker@arr", [_mini(i, rng, f"SYM{k}USDT") for k in range(50)])


def spot_ticker(i: int, rng: random.Random) -> str:
    data = {
        "e": "24hrTicker", "E": T0 + i, "s": "BTCUSDT", "p": "-94.99999800", "P": "-0.95",
        "w": _px(rng), "x": _px(rng), "c": _px(rng), "Q": _qty(rng), "b": _px(rng),
        "B": _qty(rng), "a": _px(rng), "A": _qty(rng), "o": _px(rng), "h": _px(rng),
        "l": _px(rng), "v": _qty(rng), "q": _qty(rng), "O": T0 - 86_400_000, "C": T0 + i,
        "F": 3_000_000_000, "L": 3_000_100_000 + i, "n": 100_001 + i,
    }  # fmt: skip
    return _frame("btcusdt@ticker", data)


def usdm_mark_price(i: int, rng: random.Random) -> str:
    data = {
        "e": "markPriceUpdate", "E": T0 + i, "s": "BTCUSDT", "p": _px(rng), "i": _px(rng),
        "P": _px(rng), "r": "0.00010000", "T": T0 + 28_800_000,
    }  # fmt: skip
    return _frame("btcusdt@markPrice@1s", data)


# name → (market, frame maker, events per frame)
CASES: dict[str, tuple[Market, Callable[[int, random.Random], str], int]] = {
    "spot trade": (Market.SPOT, spot_trade, 1),
    "usdm aggTrade": (Market.USDM, usdm_agg_trade, 1),
    "spot bookTicker": (Market.SPOT, spot_book_ticker, 1),
    "usdm markPrice": (Market.USDM, usdm_mark_price, 1),
    "spot 24hrTicker": (Market.SPOT, spot_ticker, 1),
    "spot depth (20 levels)": (Market.SPOT, spot_depth_20, 1),
    "usdm depth (20 levels)": (Market.USDM, usdm_depth_20, 1),
    "usdm !miniTicker@arr (per item)": (Market.USDM, usdm_mini_ticker_arr_item, 50),
}


def run_case(
    codec: Codecs, market: Market, frames: list[str], batch_size: int, repeat: int
) -> float:
    """Time (s) to decode all ``frames`` in batches of ``batch_size``.

    Each batch is timed ``repeat`` times and its best time kept, so a burst of load from
    other processes on a shared machine inflates the result less than a whole-run best.
    """
    now = time.time_ns()
    batches = [
        FrameBatch(market, "bench", chunk, [now] * len(chunk))
        for chunk in (frames[i : i + batch_size] for i in range(0, len(frames), batch_size))
    ]
    best = [float("inf")] * len(batches)
    clock = time.perf_counter
    for _ in range(repeat):
        for i, batch in enumerate(batches):
            start = clock()
            result = codec.decode_batch(batch)
            elapsed = clock() - start
            if result.malformed or result.unknown:
                raise SystemExit(f"bench frames failed to decode: {result.error}")
            best[i] = min(best[i], elapsed)
    return sum(best)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="marketd codec benchmark")
    parser.add_argument("--frames", type=int, default=50_000, help="frames per event type")
    parser.add_argument("--batch", type=int, default=500, help="frames per FrameBatch")
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per case (each batch's best is kept)"
    )
    args = parser.parse_args(argv)
    codec = Codecs(TopicSettings())
    rng = random.Random(42)
    results: dict[str, dict[str, float]] = {}
    print(f"{'event type':34} {'µs/frame':>9} {'frames/s':>12}")
    for name, (market, make, per_frame) in CASES.items():
        n_frames = max(1, args.frames // per_frame)
        frames = [make(i, rng) for i in range(n_frames)]
        seconds = run_case(codec, market, frames, args.batch, args.repeat)
        events = n_frames * per_frame
        us = seconds / events * 1e6
        results[name] = {"us_per_frame": round(us, 3), "frames_per_s": round(events / seconds)}
        print(f"{name:34} {us:9.2f} {events / seconds:12,.0f}")
    print(json.dumps({"bench": "codec", "python": sys.version.split()[0], "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
