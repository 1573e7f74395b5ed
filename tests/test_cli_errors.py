"""Operator mistakes are one ``error:`` line and an exit code, never a traceback (issue 12).

Exit code 2 is bad input (a flag, the configuration), 1 a failed start (a port in use, a
listen host that does not resolve or is not this machine's). The cases a new user meets
run ``marketd`` as a subprocess, as they would; the full table of flag values is checked
on the parser in-process (the same code path: argparse's ``error:`` and exit 2).

Everything listens on loopback. The host that does not resolve is ``no such host``: glibc
refuses a name with spaces without asking DNS, so no test sends anything off the machine.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketd.cli import build_parser
from marketd.data.records import Market, Record
from marketd.demo import add_arguments as add_demo_arguments
from marketd.spool import Spool, SpoolSettings

# Every subprocess here must end by itself within a few seconds (start-up is about 1 s).
TIMEOUT_S = 20
NO_HOST = "no such host"


def _offline_env(extra: dict[str, str] | None) -> dict[str, str]:
    """The environment without the caller's MARKETD_* settings, every exchange URL on a
    loopback port where nothing listens (should a process ever get past its bind)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETD_")}
    dead = "127.0.0.1:9"  # discard: nothing listens here
    env.update(
        {
            "MARKETD_BINANCE__SPOT_WS_URL": f"ws://{dead}",
            "MARKETD_BINANCE__FUTURES_WS_URL": f"ws://{dead}",
            "MARKETD_BINANCE__SPOT_REST_URL": f"http://{dead}",
            "MARKETD_BINANCE__FUTURES_REST_URL": f"http://{dead}",
        }
    )
    env.update(extra or {})
    return env


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``argv`` (``[python, -m, marketd, ...]`` unless given whole), bounded in time."""
    if argv[0] != sys.executable:
        argv = (sys.executable, "-m", "marketd", *argv)
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT_S,
        env=_offline_env(env),
        check=False,
    )


def assert_one_error(result: subprocess.CompletedProcess[str], code: int, start: str) -> str:
    """Exit ``code``; no traceback anywhere; exactly one ``error:`` line on stderr, the
    last, starting with ``start``. Returns that line."""
    both = result.stdout + result.stderr
    assert "Traceback" not in both, both[-3000:]
    assert result.returncode == code, both[-3000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr[-3000:]
    assert result.stderr.rstrip().splitlines()[-1] == errors[0]
    assert errors[0].startswith(start), errors[0]
    return errors[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another process (this test) is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# --- bad flags: argparse's usage + error line, exit 2 ----------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["demo", "--listen", "nope"],
            "argument --listen: must be host:port with a port in 0..65535 (IPv6: "
            "[address]:port), e.g. 127.0.0.1:8080, got 'nope'",
        ),
        (
            ["demo", "--listen", "127.0.0.1:70000"],
            "argument --listen: must be host:port with a port in 0..65535",
        ),
        (
            ["demo", "--symbols", "0"],
            "argument --symbols: must be a whole number of symbols, at least 1, got '0'",
        ),
        (
            ["demo", "--rate", "-5"],
            "argument --rate: must be a positive number of events per second, got '-5'",
        ),
        (
            ["fake-exchange", "--ws-port", "70000"],
            "argument --ws-port: must be a port number in 0..65535 (0: a free one), got '70000'",
        ),
    ],
    ids=["demo-listen-nope", "demo-listen-port", "demo-symbols", "demo-rate", "fake-port"],
)
def test_a_bad_flag_is_refused_with_usage_and_exit_2(argv: list[str], message: str) -> None:
    result = run(*argv)
    prog = f"marketd {argv[0]}"
    assert result.stderr.startswith(f"usage: {prog} ")
    assert_one_error(result, 2, f"{prog}: error: {message}")


# The whole table, on the parser: every flag of demo and fake-exchange whose bad value
# used to crash later (or, like --ws-port 70000, silently meant another port).
_BAD_FLAGS = [
    ("demo", "--listen", "", "must be host:port"),
    ("demo", "--listen", "127.0.0.1:", "must be host:port"),
    ("demo", "--listen", "a..b:8080", "must be host:port"),  # IDNA cannot encode it
    ("demo", "--symbols", "-1", "must be a whole number of symbols, at least 1"),
    ("demo", "--symbols", "two", "must be a whole number of symbols, at least 1"),
    ("demo", "--rate", "0", "must be a positive number of events per second"),
    ("demo", "--rate", "nan", "must be a positive number of events per second"),
    ("demo", "--rate", "inf", "must be a positive number of events per second"),
    ("demo", "--seed", "x", "must be a whole number"),
    ("demo", "--duration", "-1", "must be a number of seconds, 0 or more (0: run until Ctrl-C)"),
    ("demo", "--jump-every", "-1", "must be a number of seconds, 0 or more (0: never)"),
    ("fake-exchange", "--host", "127.0.0.1:80", "must be a host name or IPv4 address"),
    ("fake-exchange", "--host", "", "must be a host name or IPv4 address"),
    ("fake-exchange", "--rest-port", "-1", "must be a port number in 0..65535"),
    ("fake-exchange", "--symbols", "0", "must be a whole number of symbols, at least 1"),
    ("fake-exchange", "--seed", "1.5", "must be a whole number"),
    ("fake-exchange", "--rate", "-1", "must be a number of events per second, 0 or more"),
    ("fake-exchange", "--book-levels", "9", "must be a whole number of levels, at least 10"),
    ("fake-exchange", "--history", "0", "must be a whole number of trades, at least 1"),
    ("fake-exchange", "--max-queue", "0", "must be a whole number of frames, at least 1"),
    ("fake-exchange", "--kline-ms", "-1", "must be a whole number of milliseconds, 0 or more"),
    ("fake-exchange", "--spot-ping-interval", "0", "must be a positive number of seconds"),
    ("fake-exchange", "--usdm-pong-timeout", "-1", "must be a positive number of seconds"),
    ("fake-exchange", "--spot-max-messages", "0", "must be a whole number of messages"),
    ("fake-exchange", "--usdm-max-streams", "0", "must be a whole number of streams"),
    ("fake-exchange", "--spot-rest-weight", "0", "must be a whole number of weight units"),
    ("fake-exchange", "--drop-every", "0", "must be a positive number of seconds"),
    ("fake-exchange", "--fuzz-every", "-3", "must be a positive number of seconds"),
    ("fake-exchange", "--stall-seconds", "-1", "must be a number of seconds, 0 or more"),
]


@pytest.mark.parametrize(
    ("command", "flag", "value", "message"),
    _BAD_FLAGS,
    ids=[f"{c}{f}={v}" for c, f, v, _ in _BAD_FLAGS],
)
def test_every_bad_flag_value_is_refused_by_the_parser(
    command: str, flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, f"{flag}={value}"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.rstrip().splitlines()[-1]
    assert error.startswith(f"marketd {command}: error: argument {flag}: {message}"), error
    assert error.endswith(f", got {value!r}"), error


def test_good_flag_values_still_parse() -> None:
    args = build_parser().parse_args(
        ["demo", "--listen", "[::1]:0", "--rate", "0.5", "--duration", "0", "--jump-every", "0"]
    )
    assert (args.listen, args.rate, args.duration, args.jump_every) == ("[::1]:0", 0.5, 0, 0)
    args = build_parser().parse_args(
        ["fake-exchange", "--host", "0.0.0.0", "--ws-port", "65535", "--rate", "0"]
    )
    assert (args.host, args.ws_port, args.rate) == ("0.0.0.0", 65535, 0.0)


def test_the_same_fake_exchange_port_twice_is_bad_input() -> None:
    result = run("fake-exchange", "--ws-port", "9000", "--rest-port", "9000")
    assert_one_error(result, 2, "error: --ws-port and --rest-port must differ, both are 9000")


def test_a_bad_listen_address_in_the_environment_is_bad_configuration() -> None:
    result = run("run", env={"MARKETD_HTTP__LISTEN": "nope"})
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid configuration:\n")
    assert "http.listen: must be host:port, got 'nope' (from MARKETD_HTTP__LISTEN)" in (
        result.stderr
    )


# --- a failed start: one error line, exit 1 ---------------------------------------------

_HTTP_FIX = "--listen (marketd demo) or http.listen (MARKETD_HTTP__LISTEN)"


def test_demo_on_a_port_in_use_fails_fast_with_one_line(busy_port: int) -> None:
    started = time.monotonic()
    result = run("demo", "--listen", f"127.0.0.1:{busy_port}")
    # Fast: it fails at the bind, before waiting for anything (about 1 s of start-up).
    assert time.monotonic() - started < TIMEOUT_S / 2
    assert_one_error(
        result,
        1,
        f"error: cannot listen on 127.0.0.1:{busy_port}: address already in use; stop the "
        f"other process or choose another port with {_HTTP_FIX}",
    )


def test_run_refuses_the_spool_another_shard_count_left_undelivered(tmp_path: Path) -> None:
    """One process stopped with records not yet in Kafka; started again as two shards, it
    would never deliver them (marketd.spool.layout): refused, naming them, before anything
    starts."""
    root = tmp_path / "spool"
    spool_settings = SpoolSettings(directory=str(root))
    with Spool.open(spool_settings) as spool:
        spool.append(
            [
                Record(
                    "marketdata.raw", b"BTCUSDT", b"v", (), 1, Market.SPOT, "trade", "BTCUSDT", i
                )
                for i in (1, 2)
            ]
        )
        spool.sync()
    env = {"MARKETD_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9", "MARKETD_SPOOL__DIRECTORY": str(root)}
    result = run("run", env={**env, "MARKETD_COLLECTOR__SHARDS": "2"})
    line = assert_one_error(
        result,
        1,
        f"error: spools of another collector layout: {root} holds 2 records not yet in Kafka, "
        "written by one unsharded process (collector.shards: 1). This layout would never "
        "deliver them: start with the collector.shards that wrote them",
    )
    assert line.endswith("or move a directory away to discard what it holds")
    assert not (root / "shard-0").exists()  # no worker started


def test_run_on_a_port_in_use_fails_with_one_line(busy_port: int) -> None:
    result = run("run", env={"MARKETD_HTTP__LISTEN": f"127.0.0.1:{busy_port}"})
    assert_one_error(
        result, 1, f"error: cannot listen on 127.0.0.1:{busy_port}: address already in use"
    )


@pytest.mark.parametrize("how", ["demo", "run"])
def test_a_listen_host_that_does_not_resolve_fails_with_one_line(how: str) -> None:
    listen = f"{NO_HOST}:8080"
    if how == "demo":
        result = run("demo", "--listen", listen)
    else:
        result = run("run", env={"MARKETD_HTTP__LISTEN": listen})
    assert_one_error(
        result,
        1,
        f"error: cannot listen on {listen}: host '{NO_HOST}' does not resolve (",
    )
    assert result.stderr.rstrip().endswith(
        f"use an address of this machine (127.0.0.1, or 0.0.0.0 for every interface) in {_HTTP_FIX}"
    )


def test_a_listen_address_not_of_this_machine_fails_with_one_line() -> None:
    # 192.0.2.1 is TEST-NET-1: never a local address; binding fails without any traffic.
    result = run("run", env={"MARKETD_HTTP__LISTEN": "192.0.2.1:8080"})
    assert_one_error(
        result,
        1,
        "error: cannot listen on 192.0.2.1:8080: 192.0.2.1 is not an address of this machine",
    )


def test_a_listen_name_idna_cannot_encode_is_bad_configuration() -> None:
    result = run("run", env={"MARKETD_HTTP__LISTEN": "a..b:8080"})
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid configuration:\n")
    assert (
        "http.listen: 'a..b' is not a valid host name, got 'a..b:8080' (from MARKETD_HTTP__LISTEN)"
        in result.stderr
    )


@pytest.mark.parametrize("flag", ["--ws-port", "--rest-port"])
def test_fake_exchange_on_a_port_in_use_fails_with_one_line(flag: str, busy_port: int) -> None:
    result = run("fake-exchange", flag, str(busy_port))
    assert_one_error(
        result,
        1,
        f"error: cannot listen on 127.0.0.1:{busy_port}: address already in use; stop the "
        "other process or choose another port with --ws-port / --rest-port (0: a free one)",
    )
    assert result.stdout == ""  # no URL line: it never listened


def test_fake_exchange_module_reports_the_same_way(busy_port: int) -> None:
    """``python -m marketd.fakex`` (how the test harness starts it) is the same command."""
    result = run(sys.executable, "-m", "marketd.fakex", "--ws-port", str(busy_port))
    assert_one_error(result, 1, f"error: cannot listen on 127.0.0.1:{busy_port}: address")


def test_fake_exchange_on_a_host_that_does_not_resolve_fails_with_one_line() -> None:
    result = run("fake-exchange", "--host", NO_HOST)
    assert_one_error(
        result, 1, f"error: cannot listen on {NO_HOST}: host '{NO_HOST}' does not resolve ("
    )
    assert result.stderr.rstrip().endswith(" in --host")


# The demo's own fake exchange listens on free loopback ports, so it fails only where
# loopback is unusable. To get there, this one subprocess replaces trio's listener opener
# (which only the fake exchange uses) by one that refuses, then runs ``marketd`` as usual.
_REFUSING_LOOPBACK = f"""
import errno, sys, trio
from marketd.cli import main

async def refuse(*args, **kwargs):
    raise OSError(errno.EADDRNOTAVAIL, {os.strerror(errno.EADDRNOTAVAIL)!r})

trio.open_tcp_listeners = refuse
sys.exit(main(sys.argv[1:]))
"""


def test_demo_whose_fake_exchange_cannot_listen_fails_with_one_line() -> None:
    result = run(sys.executable, "-c", _REFUSING_LOOPBACK, "demo", "--listen", "127.0.0.1:0")
    assert_one_error(
        result,
        1,
        "error: cannot listen on 127.0.0.1 (the demo's fake exchange, on free ports): "
        f"{os.strerror(errno.EADDRNOTAVAIL)}; the demo needs the loopback interface",
    )


# --- help ----------------------------------------------------------------------------


def test_run_help_describes_the_command_configuration_and_exit_codes() -> None:
    result = run("run", "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("usage: marketd run [-h] [--config FILE]")
    assert "Run the daemon:" in text
    assert "$MARKETD_CONFIG" in text
    assert "MARKETD_<SECTION>__<KEY>" in text
    assert "MARKETD_HTTP__LISTEN=0.0.0.0:8080" in text
    assert "marketd check-config" in text
    exit_codes = text[text.index("exit codes:") :]
    for code in ("0  stopped", "1  could not start", "2  invalid configuration"):
        assert code in exit_codes


def test_demo_help_shows_every_default() -> None:
    result = run("demo", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps help lines
    for shown in (
        "--config FILE YAML configuration file (default: $MARKETD_CONFIG",
        "--symbols N symbols per market (default: 5)",
        "--rate PER_SECOND events per second per market (default: 50.0)",
        "--seed SEED seed of the synthetic markets (default: 1)",
        "(default: http.listen of the configuration, 127.0.0.1:8080 unless set)",
        "--duration SECONDS stop after SECONDS; 0: run until Ctrl-C (default: 0.0)",
        "0: never (default: 20.0)",
    ):
        assert shown in text, shown
    # And no option was forgotten: each one's help names its default.
    demo = argparse.ArgumentParser()
    add_demo_arguments(demo)
    for action in demo._actions:
        if action.dest != "help":
            assert action.help, action.option_strings
            assert "(default: " in action.help, action.option_strings
