"""A real HTTP/1.1 server on a loopback port that records every request and answers from
a script: the peer the notifiers' tests send to (webhook, Telegram, Discord alike).

``async with open_peer(Answer(500), Answer(200)) as peer:`` answers the first request 500,
the second 200, then ``default``; ``Answer(hang=True)`` reads the request and never
answers (a target that is down without refusing). ``peer.seen`` holds what arrived, in
order, each with the trio time it arrived at (``peer.arrived``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

import attrs
import h11
import orjson
import trio


@attrs.frozen
class Answer:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    hang: bool = False


@attrs.frozen
class Seen:
    method: str
    target: str
    headers: dict[str, str]  # names lower-case; a repeated name would show its last value
    body: bytes
    at: float  # trio.current_time() when the request was complete

    def json(self) -> Any:
        return orjson.loads(self.body)


class Peer:
    def __init__(self, answers: tuple[Answer, ...], default: Answer) -> None:
        self._answers = list(answers)
        self.default = default
        self.seen: list[Seen] = []
        self.port = 0
        self.hanging = 0  # requests being held without an answer

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, stream: trio.SocketStream) -> None:
        # A client that goes away mid-request (a timeout) ends only its connection.
        with contextlib.suppress(trio.BrokenResourceError, h11.RemoteProtocolError):
            await self._handle(stream)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            conn = h11.Connection(h11.SERVER)
            request: h11.Request | None = None
            body = bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(bytes(await stream.receive_some(65536)))
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage) and request is not None:
                    break
                else:
                    return  # the client went away before a whole request
            self.seen.append(
                Seen(
                    method=request.method.decode(),
                    target=request.target.decode(),
                    headers={k.decode().lower(): v.decode() for k, v in request.headers},
                    body=bytes(body),
                    at=trio.current_time(),
                )
            )
            answer = self._answers.pop(0) if self._answers else self.default
            if answer.hang:
                self.hanging += 1
                await trio.sleep_forever()
            headers = [*answer.headers, ("Content-Length", str(len(answer.body)))]
            out = conn.send(h11.Response(status_code=answer.status, headers=headers))
            if answer.body:
                out += conn.send(h11.Data(data=answer.body))
            out += conn.send(h11.EndOfMessage())
            await stream.send_all(out)


@contextlib.asynccontextmanager
async def open_peer(*answers: Answer, default: Answer = Answer(200)) -> AsyncIterator[Peer]:
    peer = Peer(answers, default)
    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, peer.handle, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        peer.port = listeners[0].socket.getsockname()[1]
        try:
            yield peer
        finally:
            nursery.cancel_scope.cancel()


def json_answer(status: int, document: Any, *headers: tuple[str, str]) -> Answer:
    return Answer(status, (("Content-Type", "application/json"), *headers), orjson.dumps(document))
