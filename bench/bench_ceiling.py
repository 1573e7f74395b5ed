"""Benchmark: the ceiling — marketd's records per CPU second against a client that only reads.

On the lean feed (:mod:`marketd.testing.leanfeed`: pre-rendered spot ``trade`` frames)
flat out, the same symbols and frames each time, it measures:

(a) **clients** — a receive-only trio-websocket client, connected exactly as marketd's
    feed connects (:mod:`marketd.feed.connection`: the URL marketd plans for the
    subscription, a combined stream, ``wrap_client_stream`` over a TCP stream with
    marketd's message queue size, maximum message size and receive buffer, no extension
    negotiated, and marketd's patch of trio-websocket's reader,
    :mod:`marketd.feed.ws_compat`), reading and discarding messages: messages per CPU
    second of its process. Two ways of taking the messages (``--clients``):

    * ``client`` — ``await ws.get_message()`` per message, the plain way: a trio
      checkpoint (a scheduler round, an epoll call) per message, about 60 % of its CPU;
    * ``client (drain)`` — as marketd's reader takes them (one await when idle; under load
      a 1 ms sleep, then every queued message without a checkpoint each): the fastest
      this stack reads, nearly all of its cost wsproto's frame parsing.
(b) **marketd** — ``marketd run`` (spool on, as by default; Kafka ``at_least_once``) into
    a real broker the benchmark starts (:mod:`marketd.testing.devkafka`): records
    acknowledged by Kafka per CPU second of the daemon's process (all its threads);
(c) **bus** (``--bus``) — ``marketd run`` with the embedded bus (no Kafka, no spool):
    records delivered per CPU second, which splits the Kafka side's cost out.

and prints each run's figures with the machine's load (``load_1m``: the machine is shared,
the broker and the feed run on it too), then the medians and the ratios marketd / client
(of the medians, and per round). Runs are interleaved (clients, marketd[, bus])
``--repeat`` times, each with fresh processes. Figures only: nothing here asserts on
timings. Per CPU second is what compares across loads; messages per second do not (a
loaded machine gives each process less CPU).

    python bench/bench_ceiling.py [--repeat 3] [--duration 20] [--symbols 20] [--bus]
    python bench/bench_ceiling.py --only client --clients get,drain,unpatched
    python bench/bench_ceiling.py --only marketd --repeat 1 --profile /tmp/marketd
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_pipeline import run_scenario

from marketd.testing.devkafka import running_broker
from marketd.testing.leanfeed import LeanFeedProcess


def client_url(urls: dict[str, Any], symbols: list[str], channels: list[str]) -> str:
    """The URL marketd's feed connects to for this subscription (its own planner's)."""
    from marketd.config.settings import ExchangeSettings, Subscription
    from marketd.data.records import Market
    from marketd.feed.streams import plan_connections

    exchange = ExchangeSettings(spot_ws_url=urls["spot_ws_url"])
    subscription = Subscription(
        market=Market.SPOT, symbols=tuple(symbols), channels=tuple(channels)
    )
    plans = plan_connections([subscription], exchange)
    if len(plans) != 1 or not plans[0].subscribe_in_url:
        raise SystemExit("the ceiling client reads one combined-stream connection: fewer symbols")
    return plans[0].url


async def _read(
    url: str, warmup: float, duration: float, patched: bool, mode: str
) -> dict[str, Any]:
    """Connect as :meth:`marketd.feed.connection.Feed._connect` does (plain TCP here), read
    and discard messages; count them and the process's CPU over the measured window."""
    import trio
    from trio_websocket import wrap_client_stream

    from marketd.feed import connection

    if not patched:  # trio-websocket's own reader, as released (marketd patches it)
        from trio_websocket import WebSocketConnection

        from marketd.feed import ws_compat

        WebSocketConnection._handle_message_event = ws_compat._original_message  # type: ignore[method-assign]
    target = connection._Target.parse(url)
    counted = [0]
    window: dict[str, Any] = {}

    async def receive(get_message: Any) -> None:
        n = 0
        try:
            while True:
                await get_message()
                n += 1
                counted[0] = n
        finally:
            counted[0] = n

    async def drain(get_message: Any, receive_nowait: Any) -> None:
        # As marketd's reader takes messages (Feed._read_loop): one await when idle; under
        # load a millisecond's sleep, then every queued message without a checkpoint each.
        n = 0
        try:
            while True:
                await get_message()
                n += 1
                while True:
                    await trio.sleep(connection._BATCH_WAIT_S)
                    k = 0
                    try:
                        while k < connection._DRAIN_MAX:
                            receive_nowait()
                            k += 1
                    except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                        pass
                    n += k
                    counted[0] = n
                    if k <= 1:
                        break
        finally:
            counted[0] = n

    async with trio.open_nursery() as nursery:
        stream = await trio.open_tcp_stream(target.host, target.port)
        ws = await wrap_client_stream(
            nursery,
            stream,
            target.host_header,
            target.resource,
            message_queue_size=connection.WS_MESSAGE_QUEUE_SIZE,
            max_message_size=connection.WS_MAX_MESSAGE_SIZE,
            receive_buffer_size=connection.WS_RECEIVE_BUFFER_SIZE,
        )
        async with trio.open_nursery() as reader:
            if mode == "drain":
                reader.start_soon(drain, ws.get_message, ws._recv_channel.receive_nowait)
            else:
                reader.start_soon(receive, ws.get_message)
            await trio.sleep(warmup)
            n0, cpu0, t0 = counted[0], time.process_time(), time.monotonic()
            await trio.sleep(duration)
            n1, cpu1, t1 = counted[0], time.process_time(), time.monotonic()
            reader.cancel_scope.cancel()
        window = {"messages": n1 - n0, "cpu_s": cpu1 - cpu0, "wall_s": t1 - t0}
        with trio.move_on_after(1):
            await ws.aclose()
        await trio.aclose_forcefully(stream)
        nursery.cancel_scope.cancel()
    return window


def client_main(argv: list[str]) -> int:
    """``bench_ceiling.py _client URL WARMUP DURATION PATCHED MODE``: one JSON line."""
    import trio

    url, warmup, duration, patched = argv[0], float(argv[1]), float(argv[2]), argv[3] == "1"
    print(json.dumps(trio.run(_read, url, warmup, duration, patched, argv[4])), flush=True)
    return 0


# The clients: name → (marketd's patch of trio-websocket installed, how messages are taken).
CLIENTS = {
    "client": (True, "get"),  # await ws.get_message() per message
    "client (drain)": (True, "drain"),  # as marketd's reader takes them
    "client (unpatched)": (False, "get"),  # trio-websocket as released
}
CLIENT_OPTIONS = {"get": "client", "drain": "client (drain)", "unpatched": "client (unpatched)"}


def run_client(
    tmp: Path, symbols: int, channels: list[str], warmup: float, duration: float, name: str
) -> dict[str, Any]:
    patched, mode = CLIENTS[name]
    args = ["--symbols", str(symbols), "--rate", "0", "--channels", ",".join(channels)]
    with LeanFeedProcess(tmp, *args) as lean:
        url = client_url(lean.urls, list(lean.urls["symbols"]), channels)
        cmd = [sys.executable, __file__, "_client", url, str(warmup), str(duration)]
        proc = subprocess.Popen([*cmd, "1" if patched else "0", mode], stdout=subprocess.PIPE)
        time.sleep(warmup)
        feed0, load0 = lean.state(), os.getloadavg()[0]
        out, _ = proc.communicate(timeout=warmup + duration + 60)
        feed1, load1 = lean.state(), os.getloadavg()[0]
        if proc.returncode != 0:
            raise SystemExit(f"the ceiling client failed ({proc.returncode})")
        window = json.loads(out)
    wall = window["wall_s"]
    return {
        "scenario": name,
        "msgs_per_s": round(window["messages"] / wall),
        "cpu_cores": round(window["cpu_s"] / wall, 2),
        "per_cpu_s": round(window["messages"] / window["cpu_s"]),
        "cpu_us_per_msg": round(window["cpu_s"] / window["messages"] * 1e6, 2),
        "feed_cpu_cores": round((feed1["cpu_s"] - feed0["cpu_s"]) / max(wall, 1e-9), 2),
        "load_1m": round(load1, 2),
        "load_1m_before": round(load0, 2),
        "duration_s": round(wall, 2),
    }


def run_marketd(
    tmp: Path,
    bootstrap: str,
    symbols: int,
    channels: list[str],
    warmup: float,
    duration: float,
    kafka: bool,
    env: dict[str, str],
    profile: Path | None,
) -> dict[str, Any]:
    load0 = os.getloadavg()[0]
    r = run_scenario(
        tmp, bootstrap, 0.0, duration, warmup, symbols, env, profile, "lean", tuple(channels),
        kafka=kafka,
    )  # fmt: skip
    return {
        "scenario": "marketd" if kafka else "marketd (bus)",
        "msgs_per_s": r["acked_msgs_per_s"],
        "received_msgs_per_s": r["received_msgs_per_s"],
        "cpu_cores": r["cpu_cores"],
        "cpu_main_thread_cores": r["cpu_main_thread_cores"],
        "per_cpu_s": r["acked_per_cpu_s"],
        "cpu_us_per_msg": r["cpu_us_per_msg"],
        "feed_cpu_cores": r.get("feed_cpu_cores"),
        "load_1m": r["load_1m"],
        "load_1m_before": round(load0, 2),
        "duration_s": r["duration_s"],
        "latency_p50_ms": r["latency_p50_ms"],
        "latency_p99_ms": r["latency_p99_ms"],
        "spool_backlog_end": r["spool_backlog_end"],
        "trade_gaps": r["trade_gaps"],
        "clean_exit": r["clean_exit"],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_client"]:
        return client_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--channels", default="trade", help="of trade, aggTrade, bookTicker")
    parser.add_argument("--bus", action="store_true", help="also marketd on the embedded bus")
    parser.add_argument(
        "--clients",
        default="get,drain",
        help="receive-only clients, of: get (await get_message() per message), drain (take "
        "queued messages as marketd's reader does), unpatched (get, on trio-websocket's own "
        "reader, without marketd's patch)",
    )
    parser.add_argument(
        "--only",
        choices=("client", "marketd"),
        help="run only the client (no broker) or only marketd",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra MARKETD_* setting for the daemon",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="PATH",
        help="sample marketd with py-spy during each measured window (PATH-r<round>.0.txt)",
    )
    args = parser.parse_args(argv)
    channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    env = dict(item.split("=", 1) for item in args.env)
    results: list[dict[str, Any]] = []

    def emit(result: dict[str, Any], rnd: int) -> None:
        result = {"bench": "ceiling", "round": rnd, **result}
        results.append(result)
        print(json.dumps(result), flush=True)

    with tempfile.TemporaryDirectory(prefix="marketd-ceiling-") as tmpdir:
        tmp = Path(tmpdir)
        broker_cm = running_broker(tmp / "kafka") if args.only != "client" else None
        broker = broker_cm.__enter__() if broker_cm is not None else None
        try:
            for rnd in range(args.repeat):
                run_dir = tmp / f"round{rnd}"
                run_dir.mkdir()
                common = (args.symbols, channels, args.warmup, args.duration)
                if args.only != "marketd":
                    for option in args.clients.split(","):
                        name = CLIENT_OPTIONS[option.strip()]
                        client_dir = run_dir / option.strip()
                        client_dir.mkdir()
                        emit(run_client(client_dir, *common, name), rnd)
                if broker is not None:
                    (run_dir / "kafka").mkdir()
                    # py-spy's collapsed stacks: PATH-r<round>.0.txt
                    profile = Path(f"{args.profile}-r{rnd}") if args.profile else None
                    emit(
                        run_marketd(run_dir / "kafka", broker.bootstrap, *common, True, env,
                                    profile),
                        rnd,
                    )  # fmt: skip
                    if args.bus:
                        (run_dir / "bus").mkdir()
                        emit(run_marketd(run_dir / "bus", "", *common, False, env, None), rnd)
        finally:
            if broker_cm is not None:
                broker_cm.__exit__(None, None, None)
    _summary(results)
    return 0


def _summary(results: list[dict[str, Any]]) -> None:
    cols = [
        ("round", "round"),
        ("scenario", "scenario"),
        ("msgs_per_s", "msg/s (acked)"),
        ("cpu_cores", "CPU cores"),
        ("per_cpu_s", "per CPU s"),
        ("cpu_us_per_msg", "CPU µs/msg"),
        ("feed_cpu_cores", "feed CPU"),
        ("load_1m", "load 1m"),
    ]
    print("| " + " | ".join(title for _, title in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in results:
        print("| " + " | ".join(str(r.get(key)) for key, _ in cols) + " |")
    medians: dict[str, float] = {}
    for name in dict.fromkeys(r["scenario"] for r in results):
        values = [r["per_cpu_s"] for r in results if r["scenario"] == name and r["per_cpu_s"]]
        if values:
            medians[name] = statistics.median(values)
    summary: dict[str, Any] = {"bench": "ceiling", "summary": True}
    summary.update({f"median_per_cpu_s[{k}]": round(v) for k, v in medians.items()})
    for client in (c for c in CLIENTS if c in medians):
        for name in ("marketd", "marketd (bus)"):
            if name not in medians:
                continue
            summary[f"ratio[{name} / {client}]"] = round(medians[name] / medians[client], 3)
            # Each round's own ratio (the machine's load drifts between rounds).
            summary[f"ratio_per_round[{name} / {client}]"] = [
                round(m["per_cpu_s"] / c["per_cpu_s"], 3)
                for c in results
                if c["scenario"] == client
                for m in results
                if m["scenario"] == name and m["round"] == c["round"]
            ]
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
