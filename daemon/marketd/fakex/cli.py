"""``marketd fake-exchange``: run the fake exchange until SIGINT/SIGTERM.

When listening it prints one JSON line with the five base URLs to stdout (and flushes), so
a parent process can start it with port 0 and read where it listens.
"""

from __future__ import annotations

import argparse
import signal
import sys

import orjson
import trio

from marketd.arguments import number, whole
from marketd.fakex.config import (
    SPOT_LIMITS,
    USDM_LIMITS,
    FakeExchangeConfig,
    Fault,
    FaultKind,
    MarketLimits,
    PeriodicFault,
)
from marketd.fakex.server import open_fake_exchange

_PERIODIC = (
    ("drop_every", FaultKind.DROP, "reset every WebSocket connection every SECONDS"),
    ("shutdown_every", FaultKind.SERVER_SHUTDOWN, "send serverShutdown every SECONDS"),
    ("malformed_every", FaultKind.MALFORMED, "send a malformed frame every SECONDS"),
    ("unknown_event_every", FaultKind.UNKNOWN_EVENT, "send an unknown event every SECONDS"),
    ("gap_every", FaultKind.GAP, "skip a sequenced frame every SECONDS"),
    ("stall_every", FaultKind.STALL, "stall connections (--stall-seconds) every SECONDS"),
    ("fuzz_every", FaultKind.FUZZ, "send a fuzzed (unusable) frame every SECONDS"),
    (
        "corrupt_level_every",
        FaultKind.CORRUPT_LEVEL,
        "send one wrong depth level (in each symbol's next diff) every SECONDS",
    ),
)


PORT = whole("a port number in 0..65535 (0: a free one)", 0, 65535)
SECONDS = number("a positive number of seconds", zero=False)


def listen_host(text: str) -> str:
    """An argparse type: a host name or IPv4 address to listen on, without a port."""
    try:
        text.encode("idna")  # what binding does first: ``a..b`` fails here
        valid = bool(text.strip()) and ":" not in text and text == text.strip()
    except UnicodeError:
        valid = False
    if not valid:
        raise argparse.ArgumentTypeError(
            "must be a host name or IPv4 address such as 127.0.0.1 or 0.0.0.0, without a "
            f"port (the ports are --ws-port and --rest-port), got {text!r}"
        )
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fake exchange's options to ``parser``."""
    parser.add_argument(
        "--host", type=listen_host, default="127.0.0.1", help="address to listen on"
    )
    parser.add_argument("--ws-port", type=PORT, default=0, help="WebSocket port (0: a free one)")
    parser.add_argument("--rest-port", type=PORT, default=0, help="REST port (0: a free one)")
    parser.add_argument(
        "--symbols",
        type=whole("a whole number of symbols, at least 1", 1),
        default=5,
        help="symbols per market",
    )
    parser.add_argument("--seed", type=whole("a whole number"), default=1, help="market seed")
    parser.add_argument(
        "--rate",
        type=number(
            "a number of events per second, 0 or more (0: as fast as clients read)", zero=True
        ),
        default=100.0,
        help="events per second per market (trades + depth diffs); 0 = as fast as clients read",
    )
    parser.add_argument(
        "--book-levels",
        type=whole("a whole number of levels, at least 10", 10),
        default=100,
        help="order book levels per side",
    )
    parser.add_argument(
        "--history",
        type=whole("a whole number of trades, at least 1", 1),
        default=100_000,
        help="trades kept per symbol",
    )
    parser.add_argument(
        "--max-queue",
        type=whole("a whole number of frames, at least 1", 1),
        default=200_000,
        help="frames queued per client",
    )
    parser.add_argument("--paused", action="store_true", help="start with generation paused")
    parser.add_argument(
        "--kline-ms",
        type=whole("a whole number of milliseconds, 0 or more (0: Binance's lengths)", 0),
        default=0,
        help="give every kline interval this length in ms, so candles close quickly "
        "(0: Binance's lengths)",
    )
    for market, limits in (("spot", SPOT_LIMITS), ("usdm", USDM_LIMITS)):
        parser.add_argument(
            f"--{market}-ping-interval", type=SECONDS, default=limits.ping_interval, metavar="S"
        )
        parser.add_argument(
            f"--{market}-pong-timeout", type=SECONDS, default=limits.pong_timeout, metavar="S"
        )
        parser.add_argument(
            f"--{market}-max-messages",
            type=whole("a whole number of messages per second, at least 1", 1),
            default=limits.max_messages_per_second,
            metavar="N",
            help="incoming messages per second per connection",
        )
        parser.add_argument(
            f"--{market}-max-streams",
            type=whole("a whole number of streams, at least 1", 1),
            default=limits.max_streams,
            metavar="N",
        )
        parser.add_argument(
            f"--{market}-rest-weight",
            type=whole("a whole number of weight units per minute, at least 1", 1),
            default=limits.rest_weight_per_minute,
            metavar="N",
            help="REST weight budget per minute",
        )
    for dest, _, text in _PERIODIC:
        parser.add_argument(
            "--" + dest.replace("_", "-"), type=SECONDS, default=None, metavar="SECONDS", help=text
        )
    parser.add_argument(
        "--stall-seconds",
        type=number("a number of seconds, 0 or more", zero=True),
        default=5.0,
        help="length of a stall",
    )


def config_from_args(args: argparse.Namespace) -> FakeExchangeConfig:
    if args.ws_port and args.ws_port == args.rest_port:
        raise ValueError(
            f"--ws-port and --rest-port must differ, both are {args.ws_port} (0: a free one)"
        )
    limits: dict[str, MarketLimits] = {}
    for market in ("spot", "usdm"):
        limits[market] = MarketLimits(
            max_messages_per_second=getattr(args, f"{market}_max_messages"),
            max_streams=getattr(args, f"{market}_max_streams"),
            ping_interval=getattr(args, f"{market}_ping_interval"),
            pong_timeout=getattr(args, f"{market}_pong_timeout"),
            rest_weight_per_minute=getattr(args, f"{market}_rest_weight"),
        )
    periodic = tuple(
        PeriodicFault(
            Fault(kind, seconds=args.stall_seconds if kind is FaultKind.STALL else 0.0),
            getattr(args, dest),
        )
        for dest, kind, _ in _PERIODIC
        if getattr(args, dest) is not None
    )
    return FakeExchangeConfig(
        host=args.host,
        ws_port=args.ws_port,
        rest_port=args.rest_port,
        symbols=args.symbols,
        seed=args.seed,
        rate=args.rate,
        book_levels=args.book_levels,
        history=args.history,
        spot=limits["spot"],
        usdm=limits["usdm"],
        max_queue=args.max_queue,
        periodic_faults=periodic,
        paused=args.paused,
        kline_ms=args.kline_ms,
    )


async def serve(config: FakeExchangeConfig) -> None:
    """Run until SIGINT or SIGTERM, printing the URL line once ready."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_fake_exchange(config) as fx:
            sys.stdout.write(orjson.dumps(fx.urls()).decode() + "\n")
            sys.stdout.flush()
            async for _ in signals:
                break


def run(args: argparse.Namespace) -> int:
    """Entry point for ``marketd fake-exchange``; returns the exit code."""
    try:
        config = config_from_args(args)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    trio.run(serve, config)
    return 0
