"""AlertHub: history and replay, bounded per-client queues, the slow-client drop."""

from __future__ import annotations

import json

import pytest
import trio

from marketd.alerts.model import Direction
from marketd.gateway import AlertHub
from marketd.gateway.hub import alerts_message, encode_alert

from .support import make_alert


def decoded(message: str) -> dict[str, object]:
    value = json.loads(message)
    assert isinstance(value, dict)
    return value


def test_replay_is_the_most_recent_alerts_oldest_first() -> None:
    hub = AlertHub(history=10, replay=3, client_queue=8)
    alerts = [make_alert(f"SYM{i}USDT") for i in range(5)]
    hub.publish(alerts)
    with hub.subscribe() as client:
        assert [a.symbol for a in client.replay] == ["SYM2USDT", "SYM3USDT", "SYM4USDT"]
    assert [a.symbol for a in hub.recent(2)] == ["SYM4USDT", "SYM3USDT"]
    assert hub.recent(0) == []


def test_history_is_bounded_and_duplicates_by_id_are_ignored() -> None:
    hub = AlertHub(history=3, replay=3, client_queue=8)
    alerts = [make_alert(f"S{i}USDT") for i in range(5)]
    hub.publish(alerts)
    hub.publish([alerts[4], alerts[3]])  # re-delivered after a detector restart
    assert [a.symbol for a in hub.recent(10)] == ["S4USDT", "S3USDT", "S2USDT"]
    st = hub.statistics()
    assert (st.published, st.duplicates, st.history) == (5, 2, 3)
    # An id that left the history is accepted again (the hub's memory is bounded).
    hub.publish([alerts[0]])
    assert hub.recent(1)[0].id == alerts[0].id


def test_live_messages_are_json_in_publish_order() -> None:
    hub = AlertHub(history=10, replay=0, client_queue=8)
    with hub.subscribe() as client:
        up = make_alert("BTCUSDT", Direction.UP, 2.5)
        down = make_alert("ETHUSDT", Direction.DOWN, -3.25)
        hub.publish([up, down])
        first = decoded(client.messages.receive_nowait())
        second = decoded(client.messages.receive_nowait())
    assert first == up.to_json()
    assert second == down.to_json()
    assert down.to_json()["direction"] == "down"


def test_full_queue_drops_only_the_slow_client_and_counts_it() -> None:
    hub = AlertHub(history=100, replay=0, client_queue=4)
    with hub.subscribe() as slow, hub.subscribe() as fast:
        handler, late = trio.CancelScope(), trio.CancelScope()
        slow.cancel_on_drop(handler)
        sent = []
        for i in range(10):
            alert = make_alert(f"X{i}USDT")
            sent.append(alert.id)
            hub.publish([alert])  # never blocks, whatever the clients do
            assert decoded(fast.messages.receive_nowait())["id"] == alert.id
        assert slow.dropped == "slow"
        assert handler.cancel_called  # its handler is told to end the connection
        slow.cancel_on_drop(late)  # (or at once, if it asks after the drop)
        assert late.cancel_called
        assert fast.dropped is None
        st = hub.statistics()
        assert st.clients == 1
        assert st.dropped == {"slow": 1}
        # The slow client keeps what was queued before the drop, then its channel ends.
        queued = [decoded(m)["id"] for m in _drain(slow)]
        assert queued == sent[:4]
    assert hub.statistics().clients == 0


def _drain(client: object) -> list[str]:
    messages = []
    recv = client.messages  # type: ignore[attr-defined]
    while True:
        try:
            messages.append(recv.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return messages


def test_a_batch_larger_than_the_queue_drops_without_partial_delivery_blocking() -> None:
    hub = AlertHub(history=100, replay=0, client_queue=2)
    with hub.subscribe() as client:
        hub.publish([make_alert() for _ in range(3)])
        assert client.dropped == "slow"


def test_burst_messages_are_one_frame() -> None:
    one, two = make_alert("AUSDT"), make_alert("BUSDT")
    encoded = [encode_alert(one), encode_alert(two)]
    assert json.loads(alerts_message(encoded[:1])) == {"type": "alert", "alert": one.to_json()}
    assert json.loads(alerts_message(encoded)) == {
        "type": "alerts",
        "alerts": [one.to_json(), two.to_json()],
    }


def test_invalid_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="client_queue"):
        AlertHub(history=1, replay=0, client_queue=0)


async def test_subscriber_receives_live_alerts_across_tasks() -> None:
    hub = AlertHub(history=10, replay=5, client_queue=16)
    hub.publish([make_alert("OLDUSDT")])
    received: list[str] = []
    with trio.fail_after(5):
        with hub.subscribe() as client:
            assert [a.symbol for a in client.replay] == ["OLDUSDT"]

            async def reader() -> None:
                async for message in client.messages:
                    received.append(str(decoded(message)["symbol"]))
                    if len(received) == 3:
                        return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                for symbol in ("AUSDT", "BUSDT", "CUSDT"):
                    hub.publish([make_alert(symbol)])
                    await trio.lowlevel.checkpoint()
    assert received == ["AUSDT", "BUSDT", "CUSDT"]
