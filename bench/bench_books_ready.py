"""Time to ready: how long a full market takes until every order book is synced.

Runs the fake exchange (``python -m marketd.fakex``, Binance's REST weights and per-minute
limits: 6000 spot, 2400 USD-M) with ``--usdm`` symbols per market and books of
``--book-levels`` levels a side, and ``marketd run`` (embedded bus: no Kafka) subscribed
to ``depth@100ms`` of the first ``--spot`` spot and ``--usdm`` USD-M symbols. Polls the
daemon's ``/metrics`` and reports, per market:

* the seconds from the daemon's start until every book is synced
  (``marketd_book_state{state="synced"}``), and until ``/readyz`` first answers 200;
* the REST weight the daemon requested by then, by user
  (``marketd_rest_weight_requested_total``), and its budget (``marketd_rest_weight_budget``);
* with ``--after S``: S seconds more, then the books still shallow
  (``marketd_book_shallow``), deepenings by result, resyncs by reason, the weight by user
  and the fake exchange's own count (its peak per wall-clock minute, 429s): the budget is
  never exceeded.

``--pythonpath DIR`` runs the daemon from another source tree (a copy of ``daemon/`` from
before a change: the "before" figures); ``--books KEY=VALUE`` sets ``books:`` settings
(``--books sync_snapshot_limit=1000``: every book synced 1000 levels deep, as before
deepening existed). Prints a table and one JSON line.

    .venv/bin/python bench/bench_books_ready.py [--spot 300] [--usdm 500] [--after 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from marketd.fakex.market import symbol_specs
from marketd.testing.processes import (
    DaemonProcess,
    FakeExchangeProcess,
    metric_value,
)

MARKETS = ("spot", "usdm")
USERS = ("snapshots", "backfill", "deepen", "audit")
RESYNC_REASONS = ("gap", "crossed", "invalid", "shallow", "stale_snapshot", "audit")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spot", type=int, default=300, help="spot symbols with depth books")
    p.add_argument("--usdm", type=int, default=500, help="USD-M symbols with depth books")
    p.add_argument("--book-levels", type=int, default=1000, help="fake book levels a side")
    p.add_argument("--rate", type=float, default=2000, help="fake events/s per market")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=1200, help="give up after S seconds")
    p.add_argument("--after", type=float, default=0, help="keep watching S s after ready")
    p.add_argument("--pythonpath", default="", help="run marketd from this source tree")
    p.add_argument("--books", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--label", default="", help="a name for this run in the output")
    p.add_argument("--log-level", default="warning", help="the daemon's log level")
    p.add_argument("--workdir", default="", help="keep logs here (default: a temp dir)")
    return p.parse_args()


def books_overrides(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def config(
    fx: FakeExchangeProcess,
    spot: list[str],
    usdm: list[str],
    books: dict[str, Any],
    log_level: str,
) -> dict[str, Any]:
    urls = fx.urls
    return {
        "binance": {
            k: urls[k]
            for k in ("spot_ws_url", "spot_rest_url", "futures_ws_url", "futures_rest_url")
        },
        "subscriptions": [
            {"market": "spot", "symbols": spot, "channels": ["depth@100ms"]},
            {"market": "usdm", "symbols": usdm, "channels": ["depth@100ms"]},
        ],
        "kafka": {"bootstrap_servers": ""},
        # /readyz: every book synced too (the feeds and the sink besides).
        "readiness": {"require_books_synced": True},
        "books": books,
        "log": {"format": "json", "level": log_level},
    }


def snapshot(text: str) -> dict[str, Any]:
    """The figures of one /metrics exposition."""
    out: dict[str, Any] = {}
    for m in MARKETS:
        out[m] = {
            "synced": metric_value(text, "marketd_book_state", market=m, state="synced"),
            "books": sum(
                metric_value(text, "marketd_book_state", market=m, state=s)
                for s in ("syncing", "synced", "resyncing")
            ),
            "shallow": metric_value(text, "marketd_book_shallow", market=m),
            "budget": metric_value(text, "marketd_rest_weight_budget", market=m),
            "weight": {
                u: metric_value(text, "marketd_rest_weight_requested_total", market=m, user=u)
                for u in USERS
            },
            "deepens": {
                r: metric_value(text, "marketd_book_deepens_total", market=m, result=r)
                for r in ("ok", "mismatch", "skipped")
            },
        }
    out["resyncs"] = {
        r: metric_value(text, "marketd_book_resyncs_total", reason=r) for r in RESYNC_REASONS
    }
    # A feed cut (e.g. the fake dropping a consumer too slow on a loaded machine) resyncs
    # every book of its connection: a run with reconnects does not measure a clean start.
    out["feed_reconnects"] = metric_value(text, "marketd_feed_reconnects_total")
    out["snapshot_requests"] = {
        s: metric_value(text, "marketd_book_snapshot_requests_total", status=s)
        for s in ("ok", "429", "418", "http_error", "network", "bad_body")
    }
    return out


def main() -> None:
    args = parse_args()
    count = max(args.spot, args.usdm)
    names = [s.symbol for s in symbol_specs(count, args.seed)]
    spot, usdm = names[: args.spot], names[: args.usdm]
    want = {"spot": len(spot), "usdm": len(usdm)}
    books = books_overrides(args.books)
    env = {"PYTHONPATH": args.pythonpath} if args.pythonpath else None
    result: dict[str, Any] = {
        "label": args.label,
        "spot_symbols": len(spot),
        "usdm_symbols": len(usdm),
        "book_levels": args.book_levels,
        "books": books,
        "pythonpath": args.pythonpath,
    }
    with tempfile.TemporaryDirectory(prefix="bench-ready-") as tmp:
        tmp_path = Path(args.workdir or tmp)
        tmp_path.mkdir(parents=True, exist_ok=True)
        fx_args = ["--symbols", str(count), "--seed", str(args.seed), "--rate", str(args.rate)]
        fx_args += ["--book-levels", str(args.book_levels)]
        with FakeExchangeProcess(tmp_path, *fx_args) as fx:
            cfg = config(fx, spot, usdm, books, args.log_level)
            started = time.monotonic()
            with DaemonProcess(tmp_path, cfg, env=env) as daemon:
                synced_at: dict[str, float] = {}
                at_ready: dict[str, Any] = {}
                ready_s = None
                last: dict[str, Any] = {}
                progress = 0.0
                while time.monotonic() - started < args.timeout:
                    if daemon.proc.poll() is not None:
                        sys.exit("marketd exited:\n" + daemon.log_tail())
                    elapsed = time.monotonic() - started
                    try:
                        last = snapshot(daemon.metrics())
                    except OSError:
                        time.sleep(0.2)
                        continue
                    if ready_s is None and daemon.ready()[0] == 200:
                        ready_s = elapsed
                    for m in MARKETS:
                        if m not in synced_at and last[m]["synced"] >= want[m]:
                            synced_at[m] = elapsed
                            at_ready[m] = last[m]
                    if elapsed - progress >= 15:
                        progress = elapsed
                        shown = ", ".join(f"{m} {last[m]['synced']:.0f}/{want[m]}" for m in MARKETS)
                        print(f"  {elapsed:6.1f} s: synced {shown}", file=sys.stderr, flush=True)
                    if len(synced_at) == len(MARKETS):
                        break
                    time.sleep(0.25)
                result["ready_s"] = ready_s
                result["all_synced_s"] = max(synced_at.values()) if len(synced_at) == 2 else None
                result["markets"] = {
                    m: {
                        "synced_s": synced_at.get(m),
                        "weight_at_synced": at_ready.get(m, last.get(m, {})).get("weight"),
                        "budget": last[m]["budget"] if last else None,
                        "synced_at_end": last[m]["synced"] if last else None,
                    }
                    for m in MARKETS
                }
                if args.after > 0 and len(synced_at) == 2:
                    end = time.monotonic() + args.after
                    shallow_zero: dict[str, float] = {}
                    seen: dict[str, list[float]] = {m: [] for m in MARKETS}
                    while time.monotonic() < end:
                        time.sleep(1.0)
                        last = snapshot(daemon.metrics())
                        elapsed = time.monotonic() - started
                        for m in MARKETS:
                            seen[m].append(last[m]["synced"])
                            if m not in shallow_zero and last[m]["shallow"] == 0:
                                shallow_zero[m] = elapsed
                        if elapsed - progress >= 30:
                            progress = elapsed
                            shown = ", ".join(
                                f"{m} synced {last[m]['synced']:.0f} shallow "
                                f"{last[m]['shallow']:.0f}"
                                for m in MARKETS
                            )
                            print(f"  {elapsed:6.1f} s: {shown}", file=sys.stderr, flush=True)
                    result["after_s"] = time.monotonic() - started
                    for m in MARKETS:
                        result["markets"][m] |= {
                            "deep_s": shallow_zero.get(m),
                            # Books synced at each 1 s sample after ready: how many were
                            # resyncing (out of the published books) at worst, on average.
                            "synced_min_after": min(seen[m]),
                            "synced_mean_after": sum(seen[m]) / len(seen[m]),
                            "synced_after": last[m]["synced"],
                            "shallow_after": last[m]["shallow"],
                            "deepens_after": last[m]["deepens"],
                            "weight_after": last[m]["weight"],
                        }
                result["resyncs"] = last.get("resyncs")
                result["feed_reconnects"] = last.get("feed_reconnects")
                result["snapshot_requests"] = last.get("snapshot_requests")
            state = fx.state()
            result["exchange"] = {
                m: {
                    "rest_weight_peak_per_minute": state["markets"][m]["rest_weight_peak"],
                    "rest_rejected_429": state["markets"][m]["rest_rejected"],
                    "rest_banned_418": state["markets"][m]["rest_banned"],
                }
                for m in MARKETS
            }
    report(result)
    print(json.dumps(result, sort_keys=True))


def report(r: dict[str, Any]) -> None:
    def s(v: float | None) -> str:
        return "not in time" if v is None else f"{v:.1f} s"

    print(f"{r['label'] or 'run'}: {r['spot_symbols']} spot + {r['usdm_symbols']} USD-M books")
    print(f"  every book synced: {s(r['all_synced_s'])}   /readyz 200: {s(r['ready_s'])}")
    for m in MARKETS:
        mk = r["markets"][m]
        w = mk["weight_at_synced"] or {}
        used = ", ".join(f"{u} {v:.0f}" for u, v in w.items() if v)
        print(f"  {m:5s} synced in {s(mk['synced_s'])}; weight by then: {used or '0'}"
              f" (budget {mk['budget']:.0f}/min)")  # fmt: skip
        if "deep_s" in mk:
            print(
                f"        after ready: synced at least {mk['synced_min_after']:.0f}, "
                f"{mk['synced_mean_after']:.1f} on average (1 s samples)\n"
                f"        after {r['after_s']:.0f} s: synced {mk['synced_after']:.0f}, "
                f"shallow {mk['shallow_after']:.0f} (none left at {s(mk['deep_s'])}), "
                f"deepens {mk['deepens_after']}, weight {mk['weight_after']}"
            )
        ex = r["exchange"][m]
        print(
            f"        exchange: peak {ex['rest_weight_peak_per_minute']} weight in a minute, "
            f"{ex['rest_rejected_429']} x 429, {ex['rest_banned_418']} x 418"
        )
    print(f"  resyncs: {r['resyncs']}; feed reconnects: {r['feed_reconnects']}")


if __name__ == "__main__":
    main()
