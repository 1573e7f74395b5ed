"""``marketd demo``: the whole daemon against an in-process fake exchange, offline.

The same :class:`~marketd.app.Daemon` as ``marketd run``; only the exchange URLs and the
subscriptions are replaced by the fake's. The environment still applies, so
``MARKETD_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 marketd demo`` publishes to Kafka.

So that the alerts page has something to show, the demo moves one USD-M price by more
than the first rule's threshold every ``--jump-every`` seconds (symbols in turn, up and
down in turn; ``0`` turns it off). With the alerts left at their defaults it also watches
mark prices with a premium and a funding rule (:func:`demo_alerts`): a jump opens a
premium over the lagging index, so each shows three kinds of alert.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import attrs
import structlog
import trio

from marketd.config.alerts import AlertSettings, RuleSettings
from marketd.config.settings import Settings, Subscription, parse_host_port
from marketd.data.records import Market

if TYPE_CHECKING:
    from marketd.fakex import FakeExchange, FakeExchangeConfig

log = structlog.get_logger(__name__)


def _listen(text: str) -> str:
    """An argparse type: ``host:port`` (``[v6-address]:port``) for the HTTP server."""
    try:
        host, _ = parse_host_port(text)
        host.encode("idna")  # what binding does first (UnicodeError is a ValueError)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "must be host:port with a port in 0..65535 (IPv6: [address]:port), "
            f"e.g. 127.0.0.1:8080, got {text!r}"
        ) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options; every help names its default."""
    from marketd.arguments import number, whole

    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML configuration file (default: $MARKETD_CONFIG, else the built-in defaults)",
    )
    parser.add_argument(
        "--symbols",
        type=whole("a whole number of symbols, at least 1", 1),
        default=5,
        metavar="N",
        help="symbols per market (default: %(default)s)",
    )
    parser.add_argument(
        "--rate",
        type=number("a positive number of events per second", zero=False),
        default=50.0,
        metavar="PER_SECOND",
        help="events per second per market (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=whole("a whole number"),
        default=1,
        help="seed of the synthetic markets (default: %(default)s)",
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        metavar="HOST:PORT",
        help="where HTTP (UI, /metrics, /healthz, /readyz) listens "
        "(default: http.listen of the configuration, 127.0.0.1:8080 unless set)",
    )
    parser.add_argument(
        "--duration",
        type=number("a number of seconds, 0 or more (0: run until Ctrl-C)", zero=True),
        default=0.0,
        metavar="SECONDS",
        help="stop after SECONDS; 0: run until Ctrl-C (default: %(default)s)",
    )
    parser.add_argument(
        "--jump-every",
        type=number("a number of seconds, 0 or more (0: never)", zero=True),
        default=20.0,
        metavar="SECONDS",
        help="move a USD-M price past the alert threshold every SECONDS; 0: never "
        "(default: %(default)s)",
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
    return attrs.evolve(
        settings, binance=binance, subscriptions=subscriptions, alerts=demo_alerts(settings.alerts)
    )


def demo_alerts(alerts: AlertSettings) -> AlertSettings:
    """With the alerts left at their defaults, the demo also watches mark prices, with a
    premium and a funding rule beside the price rule: the fake's index lags its mark price,
    so each demo jump shows three kinds of alert. Configured alerts are left as they are."""
    if alerts.kinds != AlertSettings().kinds or alerts.rules != AlertSettings().rules:
        return alerts
    rules = (
        *alerts.rules,
        RuleSettings(name="premium", kind="premium", threshold_pct=1.0, cooldown_s=30.0),
        RuleSettings(name="funding", kind="funding", threshold_pct=0.5, cooldown_s=30.0),
    )
    return attrs.evolve(alerts, kinds=(*alerts.kinds, "markPriceUpdate"), rules=rules)


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from marketd.app import Daemon
    from marketd.fakex import FakeExchangeConfig
    from marketd.runtime.supervisor import wait_for_signal

    config = FakeExchangeConfig(symbols=args.symbols, seed=args.seed, rate=args.rate)
    async with _fake_exchange(config) as fx:
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


@contextlib.asynccontextmanager
async def _fake_exchange(config: FakeExchangeConfig) -> AsyncIterator[FakeExchange]:
    """The demo's fake exchange; if it cannot listen, a :class:`ListenError` (one line)."""
    from marketd.arguments import bind_error
    from marketd.errors import ListenError
    from marketd.fakex import open_fake_exchange

    started = False
    try:
        async with open_fake_exchange(config) as fx:
            started = True
            yield fx
    except (OSError, BaseExceptionGroup) as exc:
        cause = None if started else bind_error(exc, any_errno=True)
        if cause is None:
            raise
        raise ListenError(
            f"cannot listen on {config.host} (the demo's fake exchange, on free ports): "
            f"{cause.strerror or cause}; the demo needs the loopback interface "
            f"({config.host}) up, with free ports"
        ) from exc


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
