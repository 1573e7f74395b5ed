"""The ``marketd`` command: run, demo, fake-exchange, check-config, --version."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from marketd import __version__
from marketd.errors import ConfigError, MarketdError, leaves

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

    return check_config(_config_path(args), os.environ, sys.stdout)


def _cmd_fake_exchange(args: argparse.Namespace) -> int:
    from marketd.fakex.cli import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marketd",
        description="Binance market data → Protobuf → Kafka, and price-jump alerts.",
    )
    parser.add_argument("--version", action="version", version=f"marketd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (embedded bus unless Kafka is configured)")
    run.add_argument("--config", help="YAML configuration file (default: $MARKETD_CONFIG)")
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check-config", help="print the effective configuration or errors")
    check.add_argument("--config", help="YAML configuration file (default: $MARKETD_CONFIG)")
    check.set_defaults(func=_cmd_check_config)

    demo = sub.add_parser("demo", help="run the daemon against an in-process fake exchange")
    from marketd.demo import add_arguments as add_demo_arguments

    add_demo_arguments(demo)
    demo.set_defaults(func=_cmd_demo)

    fake = sub.add_parser("fake-exchange", help="serve a Binance-compatible fake exchange")
    from marketd.fakex.cli import add_arguments as add_fake_arguments

    add_fake_arguments(fake)
    fake.set_defaults(func=_cmd_fake_exchange)
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
