"""Benchmark: fake exchange → ``marketd run`` → a real Kafka broker.

For each scenario (a fixed rate, and flat out) it reports the sustained rate of records
acknowledged by Kafka, the latency from frame receipt to Kafka ack (p50/p99, from the
daemon's own histogram), the daemon's CPU use and its peak RSS — as a table and as one
JSON line per scenario. Figures only: nothing here asserts on timings.

    python bench/bench_pipeline.py [--rates 5000,0] [--duration 20] [--symbols 20]

A rate of 0 means flat out: the fake exchange sends as fast as marketd reads. The
recorder's cost: the same run with ``--env MARKETD_RECORDER__ENABLED=true`` (its figures,
frames recorded per second, dropped, compressed bytes per frame, join the JSON lines).

``--feed lean`` replaces the fake exchange (a market model in Python, ~5,000-10,000 msgs/s
at most here) by the lean feed (:mod:`marketd.testing.leanfeed`: pre-rendered spot
``trade`` frames, consecutive ids, >600,000 msgs/s to a client that only counts): marketd
subscribes ``<symbol>@trade`` (``--channels`` to add ``aggTrade``/``bookTicker``), and
``--rates`` are then the msgs/s the feed offers in total (0: as fast as marketd reads).
The feed's own figures (msgs/s sent, its CPU) join the JSON lines.

    python bench/bench_pipeline.py --feed lean --rates 25000,0 [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from marketd.testing.devkafka import running_broker
from marketd.testing.leanfeed import LeanFeedProcess
from marketd.testing.processes import (
    DaemonProcess,
    FakeExchangeProcess,
    cpu_seconds,
    histogram_quantile,
    metric_value,
    peak_rss_bytes,
)

ACKED = "marketd_kafka_records_acked_total"
BUS_DELIVERED = "marketd_bus_records_total"
LATENCY = "marketd_publish_latency_seconds"
FRAMES = "marketd_feed_frames_total"
PENDING = "marketd_spool_records_pending"
RECORDED = "marketd_recorder_frames_total"
RECORDED_BYTES = "marketd_recorder_bytes_total"
GAPS = "marketd_trade_gaps_total"
DUPLICATES = "marketd_duplicates_dropped_total"
RECONNECTS = "marketd_feed_reconnects_total"


@contextlib.contextmanager
def exchange(
    tmp: Path, feed: str, rate: float, symbols: int, channels: list[str]
) -> Iterator[tuple[dict[str, Any], list[str], list[str], Callable[[], dict[str, Any]]]]:
    """The feed's process: its URLs, its symbols, the channels to subscribe and a function
    returning its counters (the lean feed's frames sent and CPU seconds; empty for the fake)."""
    if feed == "lean":
        args = ["--symbols", str(symbols), "--rate", str(rate), "--channels", ",".join(channels)]
        with LeanFeedProcess(tmp, *args) as lean:
            yield lean.urls, list(lean.urls["symbols"]), channels, lean.state
    else:
        with FakeExchangeProcess(
            tmp, "--symbols", str(symbols), "--seed", "7", "--rate", str(rate)
        ) as fx:
            names = list(fx.state()["markets"]["spot"]["symbols"])
            yield fx.urls, names, ["trade", "depth@100ms"], dict


def run_scenario(
    tmp: Path,
    bootstrap: str,
    rate: float,
    duration: float,
    warmup: float,
    symbols: int,
    env: dict[str, str],
    profile: Path | None = None,
    feed: str = "fake",
    channels: tuple[str, ...] = ("trade",),
    kafka: bool = True,
) -> dict[str, Any]:
    """One scenario's figures. ``kafka=False``: the embedded bus instead (no broker, no
    spool); its "acked" figures are then the records the bus delivered."""
    with exchange(tmp, feed, rate, symbols, list(channels)) as (urls, names, subscribed, state):
        config = {
            "binance": {
                "spot_ws_url": urls["spot_ws_url"],
                "spot_rest_url": urls["spot_rest_url"],
                "futures_ws_url": urls["futures_ws_url"],
                "futures_rest_url": urls["futures_rest_url"],
            },
            "subscriptions": [{"market": "spot", "symbols": names, "channels": subscribed}],
            "kafka": {"bootstrap_servers": bootstrap if kafka else ""},
            "log": {"format": "json", "stats_interval_s": 5.0},
            # With MARKETD_RECORDER__ENABLED=true: in the run's directory, not the
            # working directory's var/recording (deleted with the run).
            "recorder": {"directory": str(tmp / "recording")},
        }
        with DaemonProcess(tmp, config, env) as daemon:
            daemon.wait_ready(timeout=60)
            time.sleep(warmup)
            pid = daemon.proc.pid
            before, feed0 = daemon.metrics(), state()
            cpu0, main0, t0 = cpu_seconds(pid), _main_thread_cpu(pid), time.monotonic()
            if profile is None:
                time.sleep(duration)
            else:
                _profile(pid, duration, profile.with_suffix(f".{rate:g}.txt"))
            after, feed1 = daemon.metrics(), state()
            cpu1, main1, t1 = cpu_seconds(pid), _main_thread_cpu(pid), time.monotonic()
            rss = peak_rss_bytes(pid)
            delivered = ACKED if kafka else BUS_DELIVERED
            acked = metric_value(after, delivered) - metric_value(before, delivered)
            received = metric_value(after, FRAMES) - metric_value(before, FRAMES)
            wall = t1 - t0
            if feed == "lean":
                scenario = "lean flat-out" if rate == 0 else f"lean {rate:g} msg/s"
            else:
                scenario = "flat-out" if rate == 0 else f"fake --rate {rate:g}"
            result = {
                "scenario": scenario,
                "feed": feed,
                "fake_rate": rate,
                "received_msgs_per_s": round(received / wall),
                "symbols": symbols,
                "duration_s": round(wall, 2),
                "acked_msgs_per_s": round(acked / wall),
                "latency_p50_ms": round(histogram_quantile(after, LATENCY, 0.5, before) * 1e3, 2),
                "latency_p99_ms": round(histogram_quantile(after, LATENCY, 0.99, before) * 1e3, 2),
                "cpu_cores": round((cpu1 - cpu0) / wall, 2),
                # The event loop's thread alone (near 1.0: the daemon is the bottleneck; the
                # rest is worker threads: the recorder's compression, the spool, Kafka I/O).
                "cpu_main_thread_cores": round((main1 - main0) / wall, 2),
                # CPU per message received: comparable across runs that took different rates.
                "cpu_us_per_msg": round((cpu1 - cpu0) / received * 1e6, 2) if received else None,
                # Records acknowledged (delivered, on the bus) per CPU second of the whole
                # process (all its threads): comparable with a client that only reads.
                "acked_per_cpu_s": round(acked / (cpu1 - cpu0)) if cpu1 > cpu0 else None,
                "sink": "kafka" if kafka else "bus",
                # The machine's load (2 cores here: the broker, the feed, others share them).
                "load_1m": round(os.getloadavg()[0], 2),
                "peak_rss_mib": round(rss / 2**20, 1),
                "parse_errors": metric_value(after, "marketd_parse_errors_total"),
                "retried": metric_value(after, "marketd_kafka_records_retried_total"),
                # Records spooled but not yet in Kafka: growing means intake outruns delivery.
                "spool_backlog_start": metric_value(before, PENDING),
                "spool_backlog_end": metric_value(after, PENDING),
                "trade_gaps": metric_value(after, GAPS),
                "duplicates_dropped": metric_value(after, DUPLICATES),
                "reconnects": metric_value(after, RECONNECTS),
            }
            if feed1:  # the lean feed: what it sent (some still in the socket buffers)
                result["feed_sent_msgs_per_s"] = round(
                    (feed1["frames_sent"] - feed0["frames_sent"]) / wall
                )
                result["feed_cpu_cores"] = round((feed1["cpu_s"] - feed0["cpu_s"]) / wall, 2)
            recorded = metric_value(after, RECORDED, result="recorded") - metric_value(
                before, RECORDED, result="recorded"
            )
            if recorded:  # with MARKETD_RECORDER__ENABLED=true
                written = metric_value(after, RECORDED_BYTES) - metric_value(before, RECORDED_BYTES)
                result["recorded_msgs_per_s"] = round(recorded / wall)
                result["recorder_dropped"] = metric_value(after, RECORDED, result="dropped")
                result["recorded_bytes_per_msg"] = round(written / recorded, 1)
            try:
                exit_code: int | None = daemon.stop(timeout=60)
            except subprocess.TimeoutExpired:  # the figures stand; the daemon is killed
                exit_code = None
            result["clean_exit"] = exit_code == 0
            return result


def _main_thread_cpu(pid: int) -> float:
    """CPU seconds of process ``pid``'s main thread (Linux /proc)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _profile(pid: int, duration: float, out: Path) -> None:
    """Sample the daemon with py-spy for ``duration`` seconds: only the thread holding the GIL
    (the work that bounds throughput), collapsed stacks in ``out``."""
    cmd = ["py-spy", "record", "--pid", str(pid), "--duration", str(round(duration))]
    cmd += ["--rate", "200", "--gil", "--format", "raw", "--output", str(out), "--nonblocking"]
    subprocess.run(cmd, check=True, capture_output=True)
    print(f"profile: {out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates",
        default="3100,0",
        help="fake exchange --rate values, comma-separated (3100 offers ~5000 msgs/s of "
        "trades + depth diffs here); with --feed lean: msgs/s offered; 0 = flat out",
    )
    parser.add_argument(
        "--feed",
        choices=("fake", "lean"),
        default="fake",
        help="fake: the fake exchange (trades + depth diffs); lean: the lean feed "
        "(marketd.testing.leanfeed, trades only by default), for rates the fake cannot reach",
    )
    parser.add_argument(
        "--channels",
        default="trade",
        help="with --feed lean: the channels subscribed, of trade, aggTrade, bookTicker",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each rate this many times (fresh processes)"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra MARKETD_* setting for the daemon, e.g. MARKETD_KAFKA__LINGER_MS=1",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="PATH",
        help="sample the daemon with py-spy (pip install py-spy) during each measured window; "
        "collapsed stacks go to PATH.<rate>.txt",
    )
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="marketd-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with running_broker(tmp / "kafka") as broker:
            rates = [float(r) for r in args.rates.split(",") for _ in range(args.repeat)]
            for i, rate in enumerate(rates):
                run_dir = tmp / f"run{i}"
                run_dir.mkdir()
                results.append(
                    run_scenario(
                        run_dir,
                        broker.bootstrap,
                        rate,
                        args.duration,
                        args.warmup,
                        args.symbols,
                        dict(item.split("=", 1) for item in args.env),
                        args.profile,
                        args.feed,
                        tuple(c.strip() for c in args.channels.split(",") if c.strip()),
                    )
                )
    cols = [
        ("scenario", "scenario"),
        ("received_msgs_per_s", "received msg/s"),
        ("acked_msgs_per_s", "acked msg/s"),
        ("latency_p50_ms", "p50 ms"),
        ("latency_p99_ms", "p99 ms"),
        ("cpu_cores", "CPU cores"),
        ("peak_rss_mib", "peak RSS MiB"),
        ("spool_backlog_end", "spool backlog"),
        ("clean_exit", "clean exit"),
    ]
    print("| " + " | ".join(title for _, title in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in results:
        print("| " + " | ".join(str(r[key]) for key, _ in cols) + " |")
    for r in results:
        print(json.dumps({"bench": "pipeline", **r}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
