"""Detector throughput: ticks/s through the pure detector, 500 symbols, one and three rules
(and three of which two are filtered out by symbol / market).

    .venv/bin/python bench/bench_detector.py [--symbols N] [--seconds S] [--repeat N]

Each symbol follows a random walk (0.1 % per tick, 4-8 significant digits) with a 3-6 %
jump now and then, one tick per symbol per second of event time (``!miniTicker@arr``),
plus a "busy" variant at 10 ticks/s per symbol (trades). Prints a table (µs/tick, ticks/s,
alerts) and one JSON line for machines; best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from marketd.alerts.detector import Detector
from marketd.config.alerts import RuleSettings

T0 = 1_700_000_000_000
ONE_RULE = (RuleSettings(name="default"),)
THREE_RULES = (
    RuleSettings(name="default"),
    RuleSettings(name="fast", window_s=10.0, threshold_pct=1.0, cooldown_s=10.0),
    RuleSettings(name="slow", window_s=300.0, threshold_pct=5.0, cooldown_s=120.0),
)
# THREE_RULES with two filtered out for every symbol: should cost about ONE_RULE.
FILTERED = (
    RuleSettings(name="default"),
    RuleSettings(name="fast", window_s=10.0, threshold_pct=1.0, cooldown_s=10.0,
                 symbols=("BTC*",)),
    RuleSettings(name="slow", window_s=300.0, threshold_pct=5.0, cooldown_s=120.0,
                 markets=("spot",)),
)  # fmt: skip


def ticks(symbols: int, seconds: int, per_second: int, seed: int) -> list[tuple[str, int, str]]:
    rng = random.Random(seed)
    names = [f"SYM{i:04d}USDT" for i in range(symbols)]
    decimals = [rng.randint(1, 6) for _ in names]
    prices = [10 ** rng.randint(4, 7) for _ in names]  # in units of 10**-decimals
    out = []
    step = 1000 // per_second
    for s in range(seconds * per_second):
        t = T0 + s * step
        for i, name in enumerate(names):
            p = prices[i]
            p += round(p * rng.gauss(0, 0.001))
            if rng.random() < 0.0005:
                p += round(p * rng.choice((-1, 1)) * rng.uniform(0.03, 0.06))
            prices[i] = p = max(p, 1)
            d = decimals[i]
            out.append((name, t, f"{p / 10**d:.{d}f}"))
    return out


def run(rules: tuple[RuleSettings, ...], data: list[tuple[str, int, str]]) -> tuple[float, int]:
    det = Detector(rules, clock=lambda: 0)
    observe = det.observe
    alerts = 0
    start = time.perf_counter()
    for symbol, t, p in data:
        found = observe("usdm", symbol, t, p)
        if found:
            alerts += len(found)
    return time.perf_counter() - start, alerts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    results = []
    print(f"{'case':<36} {'ticks':>9} {'us/tick':>8} {'ticks/s':>11} {'alerts':>7}")
    for per_second, label in ((1, "miniTicker 1/s"), (10, "trades 10/s")):
        seconds = args.seconds if per_second == 1 else max(1, args.seconds // 10)
        data = ticks(args.symbols, seconds, per_second, seed=7)
        for rules in (ONE_RULE, THREE_RULES, FILTERED):
            best, alerts = min(run(rules, data) for _ in range(args.repeat))
            case = f"{label}, {len(rules)} rule{'s' if len(rules) > 1 else ''}"
            if rules is FILTERED:
                case += " (2 filtered)"
            rate = len(data) / best
            print(f"{case:<36} {len(data):>9} {best / len(data) * 1e6:>8.2f} {rate:>11,.0f} "
                  f"{alerts:>7}")  # fmt: skip
            results.append({"case": case, "symbols": args.symbols, "ticks": len(data),
                            "rules": len(rules), "us_per_tick": round(best / len(data) * 1e6, 3),
                            "ticks_per_s": round(rate), "alerts": alerts})  # fmt: skip
    print(json.dumps({"bench": "detector", "python": sys.version.split()[0], "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
