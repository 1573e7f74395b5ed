"""The gateway's mute store (pure, no trio): validation, persistence, expiry, atomic writes;
and the hub's filter: a muted symbol's alerts stay in the history but are not pushed live."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trio

from marketd.gateway import AlertHub
from marketd.gateway.hub import replay_message
from marketd.gateway.mutes import MAX_MUTES, MUTES_FILE, Mute, MutesError, MuteStore

from .support import make_alert

NOW_MS = 1_760_000_000_000
HOUR_MS = 3_600_000


def body(*mutes: tuple[str, int | None]) -> dict[str, object]:
    return {"mutes": [{"symbol": s, "until_ms": u} for s, u in mutes]}


def test_replace_persists_and_a_new_store_reads_it_back(tmp_path: Path) -> None:
    store = MuteStore(tmp_path)
    assert store.mutes(NOW_MS) == ()
    got = store.replace(body(("ETHUSDT", NOW_MS + HOUR_MS), ("BTCUSDT", None)), NOW_MS)
    assert got == (Mute("BTCUSDT", None), Mute("ETHUSDT", NOW_MS + HOUR_MS))  # by symbol
    assert json.loads((tmp_path / MUTES_FILE).read_text()) == {
        "mutes": [
            {"symbol": "BTCUSDT", "until_ms": None},
            {"symbol": "ETHUSDT", "until_ms": NOW_MS + HOUR_MS},
        ]
    }
    restarted = MuteStore(tmp_path)
    assert restarted.mutes(NOW_MS) == got
    assert restarted.muted("BTCUSDT", NOW_MS)
    assert restarted.muted("ETHUSDT", NOW_MS)
    assert not restarted.muted("SOLUSDT", NOW_MS)
    # until_ms may be omitted (no end); the whole set is replaced.
    assert restarted.replace({"mutes": [{"symbol": "SOLUSDT"}]}, NOW_MS) == (Mute("SOLUSDT"),)
    assert MuteStore(tmp_path).mutes(NOW_MS) == (Mute("SOLUSDT"),)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MUTES_FILE]  # no temporary left


def test_a_mute_expires_at_its_time_also_after_a_restart(tmp_path: Path) -> None:
    store = MuteStore(tmp_path)
    store.replace(body(("ETHUSDT", NOW_MS + HOUR_MS), ("BTCUSDT", None)), NOW_MS)
    end = NOW_MS + HOUR_MS
    assert store.muted("ETHUSDT", end - 1)
    assert not store.muted("ETHUSDT", end)
    assert store.mutes(end) == (Mute("BTCUSDT"),)
    # The saved file still holds the expired mute: it loads, and is not active.
    later = MuteStore(tmp_path)
    assert later.mutes(end + 1) == (Mute("BTCUSDT"),)
    assert not later.muted("ETHUSDT", end + 1)


def test_without_a_directory_the_store_is_in_memory(tmp_path: Path) -> None:
    store = MuteStore()
    assert store.path is None
    assert store.replace(body(("BTCUSDT", None)), NOW_MS) == (Mute("BTCUSDT"),)
    assert store.muted("BTCUSDT", NOW_MS)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], 'expected a JSON object {"mutes": [{"symbol": ..., "until_ms": ...}]}'),
        ({"mutes": [], "extra": 1}, 'expected a JSON object {"mutes"'),
        ({"mutes": "BTCUSDT"}, "mutes: expected a list, got str"),
        ({"mutes": ["BTCUSDT"]}, "mutes[0]: expected an object with symbol and until_ms"),
        ({"mutes": [{"until_ms": None}]}, "mutes[0].symbol: required"),
        ({"mutes": [{"symbol": "btcusdt"}]}, "mutes[0].symbol: 1 to 32 characters of A-Z"),
        ({"mutes": [{"symbol": "BTC-USDT"}]}, "got 'BTC-USDT'"),
        ({"mutes": [{"symbol": ""}]}, "mutes[0].symbol: 1 to 32 characters"),
        ({"mutes": [{"symbol": "A" * 33}]}, "mutes[0].symbol: 1 to 32 characters"),
        ({"mutes": [{"symbol": 7}]}, "got 7"),
        ({"mutes": [{"symbol": "BTCUSDT", "for": 1}]}, "mutes[0].for: unknown key"),
        ({"mutes": [{"symbol": "BTCUSDT", "until_ms": "1"}]}, "mutes[0].until_ms: an integer"),
        ({"mutes": [{"symbol": "BTCUSDT", "until_ms": True}]}, "mutes[0].until_ms: an integer"),
        ({"mutes": [{"symbol": "BTCUSDT", "until_ms": 1.5}]}, "mutes[0].until_ms: an integer"),
        ({"mutes": [{"symbol": "BTCUSDT", "until_ms": NOW_MS}]}, "must be in the future"),
        ({"mutes": [{"symbol": "BTCUSDT", "until_ms": 10**16}]}, "epoch ms between 1 and"),
        (body(("BTCUSDT", None), ("BTCUSDT", None)), "mutes[1].symbol: BTCUSDT is listed twice"),
        (
            {"mutes": [{"symbol": f"S{i}"} for i in range(MAX_MUTES + 1)]},
            f"mutes: at most {MAX_MUTES} symbols can be muted, got {MAX_MUTES + 1}",
        ),
    ],
)
def test_invalid_lists_are_refused_and_nothing_changes(
    tmp_path: Path, raw: object, message: str
) -> None:
    store = MuteStore(tmp_path)
    store.replace(body(("XRPUSDT", None)), NOW_MS)
    saved = (tmp_path / MUTES_FILE).read_text()
    with pytest.raises(MutesError) as caught:
        store.replace(raw, NOW_MS)
    assert message in str(caught.value)
    assert store.mutes(NOW_MS) == (Mute("XRPUSDT"),)
    assert (tmp_path / MUTES_FILE).read_text() == saved


def test_every_problem_is_reported() -> None:
    with pytest.raises(MutesError) as caught:
        MuteStore().replace({"mutes": [{"symbol": "eth"}, {"symbol": "BTC", "x": 1}]}, NOW_MS)
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "mutes[0].symbol",
        "mutes[1].x",
    ]


def test_the_most_mutes_are_accepted() -> None:
    raw = {"mutes": [{"symbol": f"S{i}"} for i in range(MAX_MUTES)]}
    assert len(MuteStore().replace(raw, NOW_MS)) == MAX_MUTES


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MuteStore(tmp_path)
    store.replace(body(("BTCUSDT", None)), NOW_MS)
    saved = (tmp_path / MUTES_FILE).read_text()

    def crash(src: object, dst: object) -> None:  # the process dies before the rename
        raise OSError(28, "No space left on device")

    # Fault injection at the one step that publishes the new file (the rename).
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space left"):
        store.replace(body(("ETHUSDT", None)), NOW_MS)
    monkeypatch.undo()
    assert (tmp_path / MUTES_FILE).read_text() == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == [MUTES_FILE]
    assert store.mutes(NOW_MS) == (Mute("BTCUSDT"),)  # nothing changed in memory either


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "cannot read the saved mutes"),
        ('{"mutes": [{"symbol": "btc"}]}', "mutes[0].symbol: 1 to 32 characters"),
    ],
)
def test_a_corrupt_file_is_refused_naming_it(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / MUTES_FILE).write_text(text)
    with pytest.raises(MutesError) as caught:
        MuteStore(tmp_path)
    assert message in str(caught.value)
    assert f"{tmp_path / MUTES_FILE}: fix or delete the file" in str(caught.value)


# -- the hub's filter --------------------------------------------------------------------


def muted_hub(store: MuteStore) -> AlertHub:
    hub = AlertHub(history=10, replay=10, client_queue=8, wall_ns=lambda: NOW_MS * 1_000_000)
    hub.mute_with(store)
    return hub


def test_a_muted_symbol_is_kept_in_the_history_but_not_pushed_live() -> None:
    store = MuteStore()
    store.replace(body(("ETHUSDT", None)), NOW_MS)
    hub = muted_hub(store)
    btc, eth, sol = make_alert("BTCUSDT"), make_alert("ETHUSDT"), make_alert("SOLUSDT")
    with hub.subscribe() as client:
        hub.publish([btc, eth, sol])
        live = [json.loads(client.messages.receive_nowait()) for _ in range(2)]
        assert [m["symbol"] for m in live] == ["BTCUSDT", "SOLUSDT"]
        assert all("muted" not in m for m in live)
        hub.publish([eth])  # a duplicate counts once
        with pytest.raises(trio.WouldBlock):
            client.messages.receive_nowait()
    assert [a.symbol for a in hub.recent(10)] == ["SOLUSDT", "ETHUSDT", "BTCUSDT"]
    assert [hub.alert_json(a).get("muted") for a in hub.recent(10)] == [None, True, None]
    assert hub.alert_json(eth) == {**eth.to_json(), "muted": True}
    st = hub.statistics()
    assert (st.published, st.muted, st.duplicates) == (3, 1, 1)
    # A new client's replay carries the mark.
    with hub.subscribe() as late:
        replay = json.loads(replay_message(map(hub.alert_json, late.replay)))
    assert [(a["symbol"], a.get("muted")) for a in replay["alerts"]] == [
        ("BTCUSDT", None), ("ETHUSDT", True), ("SOLUSDT", None),
    ]  # fmt: skip


def test_an_unmuted_or_expired_symbol_is_pushed_again() -> None:
    store = MuteStore()
    store.replace(body(("ETHUSDT", NOW_MS + 1)), NOW_MS - 1)
    hub = muted_hub(store)  # the hub's wall clock is at NOW_MS: the mute is active
    first = make_alert("ETHUSDT")
    hub.publish([first])
    assert hub.statistics().muted == 1
    hub = AlertHub(history=10, replay=0, client_queue=8, wall_ns=lambda: (NOW_MS + 1) * 10**6)
    hub.mute_with(store)
    with hub.subscribe() as client:
        hub.publish([make_alert("ETHUSDT")])  # expired at NOW_MS + 1
        assert json.loads(client.messages.receive_nowait())["symbol"] == "ETHUSDT"
        store.replace({"mutes": [{"symbol": "ETHUSDT"}]}, NOW_MS)
        hub.publish([make_alert("ETHUSDT")])
        store.replace({"mutes": []}, NOW_MS)
        again = make_alert("ETHUSDT")
        hub.publish([again])
        assert json.loads(client.messages.receive_nowait())["id"] == again.id
    assert hub.statistics().muted == 1


def test_preloaded_alerts_of_a_muted_symbol_are_marked_not_counted() -> None:
    store = MuteStore()
    store.replace(body(("ETHUSDT", None)), NOW_MS)
    hub = muted_hub(store)
    eth = make_alert("ETHUSDT")
    hub.preload([eth, make_alert("BTCUSDT")])
    assert [hub.alert_json(a).get("muted") for a in hub.recent(10)] == [None, True]
    assert hub.statistics().muted == 0


def test_the_muted_marks_leave_the_history_with_their_alerts() -> None:
    store = MuteStore()
    store.replace(body(("ETHUSDT", None)), NOW_MS)
    hub = AlertHub(history=2, replay=2, client_queue=8, wall_ns=lambda: NOW_MS * 1_000_000)
    hub.mute_with(store)
    eth = make_alert("ETHUSDT")
    hub.publish([eth, make_alert("BTCUSDT"), make_alert("SOLUSDT")])
    assert [a.symbol for a in hub.recent(5)] == ["SOLUSDT", "BTCUSDT"]
    # Out of the history, its mark is gone too: unmuted, the same alert is new again.
    store.replace({"mutes": []}, NOW_MS)
    with hub.subscribe() as client:
        hub.publish([eth])
        assert json.loads(client.messages.receive_nowait()) == eth.to_json()
    assert hub.alert_json(hub.recent(1)[0]) == eth.to_json()
    assert hub.statistics().muted == 1
