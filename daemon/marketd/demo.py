"""``marketd demo``: the whole daemon against an in-process fake exchange, offline.

The same :class:`~marketd.app.Daemon` as ``marketd run``; only the exchange URLs and the
subscriptions are replaced by the fake's. The environment still applies, so
``MARKETD_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 marketd demo`` publishes to Kafka.

So that the alerts page has something to show, the demo moves one USD-M price by more
than the first rule's threshold every ``--jump-every`` seconds (symbols in turn, up and
down in turn; ``0`` turns it off).
"""

from __future__ import annotations

import argparse
import functools
import itertools
from collections.abc import Callable

import attrs
import structlog
import trio

from marketd.config.settings import Settings, Subscription
from marketd.data.records import Market

log = structlog.get_logger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML configuration file (default: $MARKETD_CONFIG)")
    parser.add_argument("--symbols", type=int, default=5, help="symbols per market (default 5)")
    parser.add_argument("--rate", type=float, default=50.0, help="events/s per market")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic markets")
    parser.add_argument("--listen", help="HTTP host:port (overrides http.listen)")
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after SECONDS (0: run until Ctrl-C)"
    )
    parser.add_argument(
        "--jump-every",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="move a USD-M price past the alert threshold every SECONDS (default 20; 0: never)",
    )


def demo_settings(settings: Settings, urls: dict[str, str], symbols: list[str]) -> Settings:
    binance = attrs.evolve(
        settings.binance,
        spot_ws_url=urls["spot_ws_url"],
        spot_rest_url=urls["spot_rest_url"],
        futures_ws_url=urls["futures_ws_url"],
        futures_rest_url=urls["futures_rest_url"],
    )
    subscriptions = (
        Subscription(
            market=Market.SPOT,
            symbols=tuple(symbols),
            channels=("trade", "depth@100ms", "bookTicker"),
        ),
        Subscription(
            market=Market.USDM,
            symbols=tuple(symbols),
            channels=("aggTrade", "markPrice@1s"),
            streams=("!miniTicker@arr",),
        ),
    )
    return attrs.evolve(settings, binance=binance, subscriptions=subscriptions)


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from marketd.app import Daemon
    from marketd.fakex import FakeExchangeConfig, open_fake_exchange
    from marketd.runtime.supervisor import wait_for_signal

    config = FakeExchangeConfig(symbols=args.symbols, seed=args.seed, rate=args.rate)
    async with open_fake_exchange(config) as fx:
        names = [m.spec.symbol for m in fx.model(Market.SPOT).symbols]
        log.info("demo fake exchange", **fx.urls())
        daemon = Daemon(demo_settings(settings, fx.urls(), names))
        stop = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait_for_signal, stop)
                if args.duration > 0:
                    nursery.start_soon(_stop_after, stop, args.duration)
                if args.jump_every > 0 and settings.alerts.rules:
                    percent = settings.alerts.rules[0].threshold_pct + 1.0
                    jump = functools.partial(fx.jump, Market.USDM)
                    nursery.start_soon(_jump_prices, jump, names, percent, args.jump_every)
                drained = await daemon.run(stop)
                nursery.cancel_scope.cancel()
        finally:
            daemon.close()
    return 0 if drained else 1


async def _jump_prices(
    jump: Callable[[str, float], str], symbols: list[str], percent: float, every: float
) -> None:
    """Every ``every`` seconds jump the next symbol's price, up and down in turn."""
    for n in itertools.count():
        await trio.sleep(every)
        symbol = symbols[n % len(symbols)]
        signed = percent if (n // len(symbols)) % 2 == 0 else -percent
        price = jump(symbol, signed)
        log.info("demo price jump", market="usdm", symbol=symbol, percent=signed, price=price)


async def _stop_after(stop: trio.Event, seconds: float) -> None:
    await trio.sleep(seconds)
    stop.set()


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    if args.listen:
        settings = attrs.evolve(settings, http=attrs.evolve(settings.http, listen=args.listen))
    return trio.run(_demo, settings, args)
