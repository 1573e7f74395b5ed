"""``marketd replay DIR``: serve a recording as a Binance-compatible exchange.

The recording's frames are played over WebSocket as they were received (combined streams,
raw /ws streams, SUBSCRIBE), at --speed (1: as recorded, 10: ten times faster, max: as
fast as the clients read), and the REST market-data endpoints (depth, trades,
historicalTrades, aggTrades, klines, 24 h / price / book tickers, avgPrice, premiumIndex,
exchangeInfo, time) answer from the recording at the replay's clock. The URLs are the
fake exchange's layout: point `marketd run` (or any Binance client) at them, e.g.

  MARKETD_BINANCE__SPOT_WS_URL=ws://127.0.0.1:PORT/spot
  MARKETD_BINANCE__SPOT_REST_URL=http://127.0.0.1:PORT/spot
  MARKETD_BINANCE__FUTURES_WS_URL=ws://127.0.0.1:PORT/usdm
  MARKETD_BINANCE__FUTURES_REST_URL=http://127.0.0.1:PORT/usdm

When listening it prints one JSON line with these base URLs (and control_url, whose
/_replay/state tells the clock and progress) to stdout. The clock starts once every
recorded stream has a subscriber, or --wait seconds after the first connection.

exit codes: 0 stopped by SIGINT/SIGTERM (or the end, with --exit-at-end), 1 the
directory holds no recording, 2 invalid option.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import orjson
import trio

from marketd.arguments import number
from marketd.fakex.cli import PORT, listen_host
from marketd.obs.logs import configure_logging
from marketd.replay.server import ReplayConfig, open_replay
from marketd.replay.timeline import parse_instant, parse_speed


def _instant(text: str) -> int:
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _speed(text: str) -> float | None:
    try:
        return parse_speed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _streams(text: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("--streams takes stream names separated by commas")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", type=Path, help="a recording directory")
    parser.add_argument("--from", dest="start", type=_instant, default=None, metavar="T",
                        help="start at this receive time (ISO 8601 UTC or epoch ms)")  # fmt: skip
    parser.add_argument("--to", dest="end", type=_instant, default=None, metavar="T",
                        help="stop before this receive time")  # fmt: skip
    parser.add_argument("--speed", type=_speed, default=1.0, metavar="1|10|max",
                        help="playback speed: a factor, or max (default 1)")  # fmt: skip
    parser.add_argument("--streams", type=_streams, default=None, metavar="A,B",
                        help="play only these WebSocket streams (REST answers stay)")  # fmt: skip
    parser.add_argument("--host", type=listen_host, default="127.0.0.1",
                        help="address to listen on")  # fmt: skip
    parser.add_argument("--ws-port", type=PORT, default=0, help="WebSocket port (0: a free one)")
    parser.add_argument("--rest-port", type=PORT, default=0, help="REST port (0: a free one)")
    parser.add_argument(
        "--wait", type=number("a number of seconds, 0 or more", zero=True), default=10.0,
        metavar="S", help="after the first connection, start even if some recorded streams "
        "have no subscriber yet (0: start at once; default 10)",
    )  # fmt: skip
    parser.add_argument("--log-format", choices=("console", "json"), default="console",
                        help="log lines on stderr (default console)")  # fmt: skip
    parser.add_argument(
        "--exit-at-end", action="store_true",
        help="exit once the recording is played and sent (else keep serving)",
    )  # fmt: skip


def config_from_args(args: argparse.Namespace) -> ReplayConfig:
    if args.ws_port and args.ws_port == args.rest_port:
        raise ValueError(f"--ws-port and --rest-port must differ, both are {args.ws_port}")
    if args.start is not None and args.end is not None and args.end <= args.start:
        raise ValueError("--to must be later than --from")
    if not args.directory.is_dir():
        raise FileNotFoundError(f"{args.directory} is not a directory")
    return ReplayConfig(
        directory=args.directory, start_ns=args.start, end_ns=args.end, speed=args.speed,
        streams=args.streams, host=args.host, ws_port=args.ws_port, rest_port=args.rest_port,
        wait_s=args.wait,
    )  # fmt: skip


async def serve(config: ReplayConfig, *, exit_at_end: bool) -> int:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_replay(config) as replay:
            if not replay.summary["entries"]:
                print(f"error: {config.directory} holds no recorded entries", file=sys.stderr)
                return 1
            sys.stdout.write(orjson.dumps(replay.urls()).decode() + "\n")
            sys.stdout.flush()
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()

                async def stop_at_end() -> None:
                    await replay.finished.wait()
                    await replay.drained()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(stop_on_signal)
                if exit_at_end:
                    nursery.start_soon(stop_at_end)
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point for ``marketd replay``; returns the exit code."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # Logs go to stderr: stdout carries the URL line a parent process reads.
    configure_logging("info", args.log_format)
    return trio.run(lambda: serve(config, exit_at_end=args.exit_at_end))
