"""Control frames are recognised cheaply; everything else is data."""

from __future__ import annotations

import pytest

from marketd.exchanges.binance.control import MAX_CONTROL_FRAME_LENGTH, parse_control
from marketd.exchanges.seam import SHUTDOWN, Ack, ErrorReply


@pytest.mark.parametrize(
    "frame",
    [
        '{"stream":"btcusdt@trade","data":{"e":"trade","t":1}}',
        '{ "stream": "btcusdt@trade", "data": {"e": "trade"} }',
        '{"data":{"e":"trade"},"stream":"btcusdt@trade"}',
        '{"e":"trade","s":"BTCUSDT"}',
        "[1,2,3]",
        "not json at all",
        "",
        '{"result":null}',
        "{" + " " * MAX_CONTROL_FRAME_LENGTH + '"e":"serverShutdown"}',
    ],
)
def test_data_and_garbage_are_not_control(frame: str) -> None:
    assert parse_control(frame) is None


def test_ack() -> None:
    assert parse_control('{"result":null,"id":3}') == Ack(id=3, result=None)
    assert parse_control('{"id":4,"result":["a@trade"]}') == Ack(id=4, result=["a@trade"])


def test_error_replies_both_shapes() -> None:
    assert parse_control('{"error":{"code":2,"msg":"Invalid request"},"id":5}') == ErrorReply(
        id=5, message="code 2: Invalid request"
    )
    assert parse_control('{"code":0,"msg":"Unknown property","id":6}') == ErrorReply(
        id=6, message="code 0: Unknown property"
    )
    assert parse_control('{"error":"boom"}') == ErrorReply(id=None, message="boom")
    assert parse_control('{"error":{"msg":"x"},"id":true}') == ErrorReply(id=None, message="x")


@pytest.mark.parametrize(
    "frame",
    [
        '{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}',
        '{"e":"serverShutdown","E":1700000000000}',
        '{ "stream": "!serverShutdown", "data": {} }',
        '{"data":{"e":"serverShutdown"},"stream":"x"}',
    ],
)
def test_server_shutdown(frame: str) -> None:
    assert parse_control(frame) is SHUTDOWN
