"""The ``marketd`` command: run, demo, fake-exchange, check-config, --version."""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from marketd import __version__
from marketd.arguments import bind_error
from marketd.errors import ConfigError, ListenError, MarketdError, leaves

if TYPE_CHECKING:
    from marketd.config.settings import Settings

EXIT_CONFIG = 2
EXIT_FAILURE = 1


def _config_path(args: argparse.Namespace) -> Path | None:
    raw = args.config or os.environ.get("MARKETD_CONFIG") or None
    return Path(raw) if raw else None


def _load(args: argparse.Namespace) -> Settings:
    """Load and validate the configuration, then set up logging from it."""
    from marketd.config.load import load_settings
    from marketd.obs.logs import configure_logging

    settings = load_settings(_config_path(args), os.environ)
    configure_logging(settings.log.level, settings.log.format)
    return settings


def _cmd_run(args: argparse.Namespace) -> int:
    import trio

    from marketd.app import run_daemon
    from marketd.obs.telemetry import tracing

    settings = _load(args)
    from marketd.spool.layout import refuse_stray_spools

    refuse_stray_spools(settings)  # what another shard count left undelivered
    if settings.collector.parent:  # N worker processes, one per shard
        from marketd.shards.parent import run_parent

        return trio.run(run_parent, settings, _config_path(args))
    if settings.collector.worker:
        import structlog

        from marketd.shards.worker import settings_of_shard

        structlog.contextvars.bind_contextvars(shard=settings.collector.shard)
        settings = settings_of_shard(settings, settings.collector.shard)
    with tracing(settings.telemetry):
        return trio.run(run_daemon, settings)


def _cmd_demo(args: argparse.Namespace) -> int:
    from marketd.demo import run_demo
    from marketd.obs.telemetry import tracing

    settings = _load(args)
    with tracing(settings.telemetry):
        return run_demo(settings, args)


def _cmd_check_config(args: argparse.Namespace) -> int:
    from marketd.config.load import check_config

    return check_config(_config_path(args), os.environ, sys.stdout, notes=_notes)


def _notes(settings: Settings) -> list[str]:
    """check-config's notes: the shards (which streams each collects), then the rules."""
    from marketd.shards.worker import describe_shards

    return describe_shards(settings) + _rules_notes(settings)


def _rules_notes(settings: Settings) -> list[str]:
    """The rules the detector of this configuration would run, and where from (a saved
    ``rules.json`` wins over ``alerts.rules``)."""
    from marketd.alerts.rules import describe_rules
    from marketd.roles import Roles

    if not Roles.of(settings.roles, alerts_enabled=settings.alerts.enabled).detector:
        return ["no detector in this process: alerts.rules are not used here"]
    return describe_rules(settings.alerts, [n.name for n in settings.notifications])


def _cmd_fake_exchange(args: argparse.Namespace) -> int:
    from marketd.fakex.cli import run

    try:
        return run(args)
    except (OSError, BaseExceptionGroup) as exc:
        cause = bind_error(exc)
        if cause is None:
            raise
        ports = [p for p in (args.ws_port, args.rest_port) if p]
        if len(ports) == 1:
            address = f"{args.host}:{ports[0]}"
        elif ports:
            address = f"{args.host} (--ws-port {args.ws_port}, --rest-port {args.rest_port})"
        else:
            address = args.host
        if isinstance(cause, socket.gaierror) or cause.errno == errno.EADDRNOTAVAIL:
            change = "--host"
        else:
            change = "--ws-port / --rest-port (0: a free one)"
        raise ListenError.bind_failed(address, cause, host=args.host, change=change) from exc


def _cmd_replay(args: argparse.Namespace) -> int:
    from marketd.replay.cli import run

    try:
        return run(args)
    except (OSError, BaseExceptionGroup) as exc:
        cause = bind_error(exc)
        if cause is None:
            raise
        raise ListenError.bind_failed(
            args.host, cause, host=args.host, change="--host or --ws-port / --rest-port"
        ) from exc


_CONFIG_HELP = "YAML configuration file (default: $MARKETD_CONFIG, else the built-in defaults)"

_RUN_DESCRIPTION = """\
Run the daemon: subscribe to Binance's spot and USD-M market streams, normalise every
event to Protobuf and publish it to Kafka (or to the embedded in-memory bus when
kafka.bootstrap_servers is empty), detect price jumps, and serve HTTP (the UI, /metrics,
/healthz, /readyz) on http.listen. It runs until SIGINT or SIGTERM, then drains.

configuration:
  The built-in defaults, overlaid by the YAML file named by --config (else by
  $MARKETD_CONFIG; conf/marketd.yaml lists every key), overlaid by environment variables
  MARKETD_<SECTION>__<KEY> (deeper keys with more __, key case-insensitive), e.g.
    MARKETD_HTTP__LISTEN=0.0.0.0:8080
    MARKETD_KAFKA__BOOTSTRAP_SERVERS=kafka-1:9092,kafka-2:9092
  `marketd check-config` prints the effective configuration, or every problem in it.

exit codes:
  0  stopped by SIGINT/SIGTERM with everything delivered (or safely spooled)
  1  could not start (HTTP port in use, a listen host that does not resolve, an unusable
     spool directory), or stopped before everything accepted was delivered
  2  invalid configuration or command line
"""

_DEMO_DESCRIPTION = """\
Run the whole daemon, offline, against an in-process fake exchange that generates
synthetic markets; every --jump-every seconds a USD-M price jumps enough to raise an alert.
The configuration is loaded as for `marketd run` (--config, $MARKETD_CONFIG,
MARKETD_<SECTION>__<KEY>), except the exchange URLs and subscriptions, which are the
fake's. The UI and /metrics are on --listen (default: http.listen, 127.0.0.1:8080).

exit codes: 0 stopped cleanly, 1 could not start (e.g. the HTTP port is in use),
2 invalid configuration or option.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marketd",
        description="Binance market data → Protobuf → Kafka, and price-jump alerts.",
    )
    parser.add_argument("--version", action="version", version=f"marketd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the daemon (embedded bus unless Kafka is configured)",
        description=_RUN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--config", metavar="FILE", help=_CONFIG_HELP)
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check-config", help="print the effective configuration or errors")
    check.add_argument("--config", metavar="FILE", help=_CONFIG_HELP)
    check.set_defaults(func=_cmd_check_config)

    demo = sub.add_parser(
        "demo",
        help="run the daemon against an in-process fake exchange",
        description=_DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from marketd.demo import add_arguments as add_demo_arguments

    add_demo_arguments(demo)
    demo.set_defaults(func=_cmd_demo)

    from marketd.fakex import cli as fakex_cli

    fake = sub.add_parser(
        "fake-exchange",
        help="serve a Binance-compatible fake exchange",
        description=fakex_cli.__doc__,
    )
    fakex_cli.add_arguments(fake)
    fake.set_defaults(func=_cmd_fake_exchange)

    from marketd.replay import cli as replay_cli

    replay = sub.add_parser(
        "replay",
        help="serve a recording as a Binance-compatible exchange",
        description=replay_cli.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay_cli.add_arguments(replay)
    replay.set_defaults(func=_cmd_replay)

    from marketd.backtest import cli as backtest_cli

    backtest = sub.add_parser(
        "backtest",
        help="run alert rules over a recording and report what they would have raised",
        description=backtest_cli.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backtest_cli.add_arguments(backtest)
    backtest.set_defaults(func=backtest_cli.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except MarketdError as exc:  # an operator's problem (e.g. an unusable spool directory)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except BaseExceptionGroup as group:
        # From inside the daemon's nurseries: report our own errors plainly, not as a trace.
        errors = leaves(group)
        if not errors or not all(isinstance(e, MarketdError) for e in errors):
            raise
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG if all(isinstance(e, ConfigError) for e in errors) else EXIT_FAILURE
    return code
