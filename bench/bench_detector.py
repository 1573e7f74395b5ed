"""Detector throughput: ticks/s through the pure detector, 500 symbols, one and three price
rules (and three of which two are filtered out by symbol / market), then every rule kind.

    .venv/bin/python bench/bench_detector.py [--symbols N] [--seconds S] [--repeat N]

Each symbol follows a random walk (0.1 % per tick, 4-8 significant digits) with a 3-6 %
jump now and then, one tick per symbol per second of event time (``!miniTicker@arr``),
plus a "busy" variant at 10 ticks/s per symbol (trades). The "every kind" case feeds, per
symbol and second, 10 trades with quantities (a burst of 20x volume now and then), one
mark price update (index price and funding rate; the premium strays past 0.5 % now and
then) and a liquidation with probability 1/20, through ``observe_many`` in batches of
1,000 ticks as the service does, to five rules: price, volume, liquidation, premium and
funding (outcomes tracked for every alert). Prints a table (µs/tick, ticks/s, alerts) and
one JSON line for machines; best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time

from marketd.alerts.detector import Detector
from marketd.config.alerts import RuleSettings
from marketd.data.events import Tick

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


EVERY_KIND = (
    RuleSettings(name="price"),
    RuleSettings(name="volume", kind="volume", window_s=5.0, baseline_s=30.0, multiple=5.0,
                 cooldown_s=60.0),
    RuleSettings(name="liquidations", kind="liquidation", window_s=60.0,
                 min_notional=50_000.0, cooldown_s=60.0),
    RuleSettings(name="premium", kind="premium", threshold_pct=0.5, cooldown_s=60.0),
    RuleSettings(name="funding", kind="funding", threshold_pct=0.1, cooldown_s=60.0),
)  # fmt: skip


def mixed_ticks(symbols: int, seconds: int, seed: int) -> list[Tick]:
    """Trades (10/s per symbol), a mark price (1/s) and now and then a liquidation."""
    rng = random.Random(seed)
    names = [f"SYM{i:04d}USDT" for i in range(symbols)]
    prices = [rng.uniform(1, 50_000) for _ in names]
    out = []
    for s in range(seconds):
        for i, name in enumerate(names):
            t = T0 + s * 1000
            burst = rng.random() < 0.002
            for k in range(10):
                p = prices[i] = prices[i] * (1 + rng.gauss(0, 0.0005))
                qty = rng.uniform(0.01, 2) * (20 if burst else 1)
                out.append(Tick("usdm", name, t + k * 100, f"{p:.4f}", "", f"{qty:.3f}"))
            premium = rng.gauss(0, 0.002) + (0.01 if rng.random() < 0.001 else 0)
            index = prices[i] / (1 + premium)
            rate = rng.gauss(0.0001, 0.0003)
            out.append(Tick("usdm", name, t + 999, f"{prices[i]:.4f}", "", "", f"{index:.4f}",
                            f"{rate:.8f}"))  # fmt: skip
            if rng.random() < 0.05:
                side = rng.choice(("BUY", "SELL"))
                qty = rng.uniform(0.1, 50) * 5_000 / prices[i]
                out.append(Tick("usdm", name, t + 500, f"{prices[i]:.4f}", "", f"{qty:.3f}",
                                "", "", side))  # fmt: skip
    return out


def run_mixed(
    rules: tuple[RuleSettings, ...], data: list[Tick]
) -> tuple[float, int, dict[str, int]]:
    det = Detector(rules, clock=lambda: 0)
    kinds: collections.Counter[str] = collections.Counter()
    start = time.perf_counter()
    for i in range(0, len(data), 1000):
        for alert in det.observe_many(data[i : i + 1000]):
            kinds[alert.kind.value] += 1
        det.take_outcomes()
    return time.perf_counter() - start, sum(kinds.values()), dict(kinds)


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
    mixed = mixed_ticks(args.symbols, max(1, args.seconds // 10), seed=7)
    for rules in ((EVERY_KIND[0],), EVERY_KIND):
        best, alerts, by_kind = min(run_mixed(rules, mixed) for _ in range(args.repeat))
        case = "every kind mix, price rule" if len(rules) == 1 else "every kind mix, 5 kinds"
        rate = len(mixed) / best
        print(f"{case:<36} {len(mixed):>9} {best / len(mixed) * 1e6:>8.2f} {rate:>11,.0f} "
              f"{alerts:>7}")  # fmt: skip
        results.append({"case": case, "symbols": args.symbols, "ticks": len(mixed),
                        "rules": len(rules), "us_per_tick": round(best / len(mixed) * 1e6, 3),
                        "ticks_per_s": round(rate), "alerts": alerts,
                        "alerts_by_kind": by_kind})  # fmt: skip
    print(f"alerts by kind (5 kinds): {by_kind}")
    print(json.dumps({"bench": "detector", "python": sys.version.split()[0], "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
