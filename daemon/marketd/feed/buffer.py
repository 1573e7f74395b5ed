"""The bounded buffer between a connection's reader and its flusher.

The reader appends each frame as it is read; the flusher takes everything pending (up to
a batch limit) whenever it is free to send, so batches grow under load and stay small
when traffic is light, with no timer delay. When the buffer is full the reader waits:
downstream backpressure reaches the socket and nothing is dropped.

While the recorder records, the connection's control frames and markers are kept too,
each in its place among the data frames (:class:`~marketd.data.records.ControlFrame`).
They are few and never wait for room: the capacity counts data frames only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from trio.lowlevel import ParkingLot

from marketd.data.records import ControlFrame


class FrameBuffer:
    """Frames and their receive times, bounded to ``capacity`` frames (and control
    frames beside them, unbounded)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._frames: list[str] = []
        self._received_ns: list[int] = []
        # (data frames ever appended before it, received_ns, text)
        self._control: list[tuple[int, int, str]] = []
        self._appended = 0  # data frames ever appended
        self._taken = 0  # ... and taken
        self._has_data = ParkingLot()
        # Set by a task before it parks in ``_has_data``, cleared when they are woken: the
        # per-frame check (``ParkingLot.__bool__`` is a Python call, this an attribute).
        self._data_wanted = False
        self._has_space = ParkingLot()

    def __len__(self) -> int:
        """What is pending: data frames and control frames."""
        return len(self._frames) + len(self._control)

    @property
    def full(self) -> bool:
        return len(self._frames) >= self.capacity

    def append_nowait(self, frame: str, received_ns: int) -> None:
        """Append one frame; the caller has made sure the buffer is not :attr:`full`."""
        self._frames.append(frame)
        self._received_ns.append(received_ns)
        self._appended += 1
        if self._data_wanted:
            self._data_wanted = False
            self._has_data.unpark_all()

    def append_control_nowait(self, text: str, received_ns: int) -> None:
        """Append a control frame (or marker) after the frames appended so far."""
        self._control.append((self._appended, received_ns, text))
        if self._data_wanted:
            self._data_wanted = False
            self._has_data.unpark_all()

    async def wait_space(self) -> None:
        """Wait until at least one frame fits."""
        while len(self._frames) >= self.capacity:
            await self._has_space.park()

    async def take(self, limit: int) -> tuple[list[str], list[int], tuple[ControlFrame, ...]]:
        """Wait for frames (or control frames), then remove and return up to ``limit`` of
        the oldest frames, with the control frames that came before the next one."""
        while not self._frames and not self._control:
            self._data_wanted = True
            await self._has_data.park()
        if len(self._frames) <= limit:
            frames, self._frames = self._frames, []
            received_ns, self._received_ns = self._received_ns, []
        else:
            frames = self._frames[:limit]
            received_ns = self._received_ns[:limit]
            del self._frames[:limit]
            del self._received_ns[:limit]
        control: tuple[ControlFrame, ...] = ()
        if self._control:
            start, self._taken = self._taken, self._taken + len(frames)
            end = self._taken
            control = tuple(ControlFrame(at - start, ns, text)
                            for at, ns, text in self._control if at <= end)  # fmt: skip
            self._control = [c for c in self._control if c[0] > end]
        else:
            self._taken += len(frames)
        if self._has_space:
            self._has_space.unpark_all()
        return frames, received_ns, control


def drop_prefix(control: Sequence[ControlFrame], dropped: int) -> tuple[ControlFrame, ...]:
    """``control`` placed among frames whose first ``dropped`` were removed."""
    if not dropped:
        return tuple(control)
    return tuple(ControlFrame(max(0, c.at - dropped), c.received_ns, c.text) for c in control)


def chunks(
    frames: list[str], received_ns: list[int], control: Sequence[ControlFrame], limit: int
) -> Iterator[tuple[list[str], list[int], tuple[ControlFrame, ...]]]:
    """Frames (with their control frames) cut into batches of at most ``limit``; one batch
    of control frames alone when there are no frames."""
    n = len(frames)
    for start in range(0, max(n, 1), limit):
        end = start + limit
        last = end >= n
        mine = tuple(ControlFrame(c.at - start, c.received_ns, c.text)
                     for c in control if start <= c.at and (c.at < end or last))  # fmt: skip
        if start < n or mine:
            yield frames[start:end], received_ns[start:end], mine
