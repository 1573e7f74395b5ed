"""AlertHub and outcomes: kept beside their alert while it is held, pushed to every client."""

from __future__ import annotations

import json

from marketd.alerts.model import Outcome
from marketd.gateway import AlertHub
from marketd.gateway.livelog import Notice

from .support import make_alert


def outcome(alert_id: str, after_s: int, price: str, change: float) -> Outcome:
    return Outcome(alert_id, "usdm", "BTCUSDT", after_s, price, 1_000 + after_s, change)


def test_outcomes_are_pushed_and_kept_with_their_alert() -> None:
    hub = AlertHub(history=2, replay=2, client_queue=8)
    first, second = make_alert("BTCUSDT"), make_alert("ETHUSDT")
    hub.publish([first])
    with hub.subscribe() as client:
        hub.publish_outcomes([outcome(first.id, 60, "66000", 0.8666)])
        message = client.messages.receive_nowait()
        assert isinstance(message, Notice)
        assert json.loads(message.text) == {
            "type": "outcome",
            "outcome": {"id": first.id, "after_s": 60, "price": "66000",
                        "price_time_ms": 1_060, "change_pct": 0.8666},
        }  # fmt: skip
        # Known already, or of an alert the hub does not hold: ignored, nothing pushed.
        hub.publish_outcomes([outcome(first.id, 60, "1", 0.0), outcome("gone", 60, "1", 0.0)])
        assert len(client.messages) == 0
    hub.publish_outcomes([outcome(first.id, 300, "64000", -2.19)])
    body = hub.alert_json(hub.recent(1)[0])
    assert body["outcomes"] == {
        "60": {"id": first.id, "after_s": 60, "price": "66000", "price_time_ms": 1_060,
               "change_pct": 0.8666},
        "300": {"id": first.id, "after_s": 300, "price": "64000", "price_time_ms": 1_300,
                "change_pct": -2.19},
    }  # fmt: skip
    # A new client's replay carries them (the hub's JSON of each alert).
    with hub.subscribe() as client:
        assert [hub.alert_json(a).get("outcomes", {}).keys() for a in client.replay] == [
            {"60", "300"}
        ]
    # An alert that leaves the history takes its outcomes with it.
    hub.publish([second, make_alert("SOLUSDT")])
    hub.publish_outcomes([outcome(first.id, 900, "63000", -3.7)])
    assert "outcomes" not in hub.alert_json(hub.recent(1)[0])
    assert first.id not in hub._outcomes
