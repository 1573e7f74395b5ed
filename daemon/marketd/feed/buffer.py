"""The bounded buffer between a connection's reader and its flusher.

The reader appends each frame as it is read; the flusher takes everything pending (up to
a batch limit) whenever it is free to send, so batches grow under load and stay small
when traffic is light, with no timer delay. When the buffer is full the reader waits:
downstream backpressure reaches the socket and nothing is dropped.
"""

from __future__ import annotations

from trio.lowlevel import ParkingLot


class FrameBuffer:
    """Frames and their receive times, bounded to ``capacity`` frames."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._frames: list[str] = []
        self._received_ns: list[int] = []
        self._has_data = ParkingLot()
        self._has_space = ParkingLot()

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def full(self) -> bool:
        return len(self._frames) >= self.capacity

    def append_nowait(self, frame: str, received_ns: int) -> None:
        """Append one frame; the caller has made sure the buffer is not :attr:`full`."""
        self._frames.append(frame)
        self._received_ns.append(received_ns)
        if self._has_data:
            self._has_data.unpark_all()

    async def wait_space(self) -> None:
        """Wait until at least one frame fits."""
        while len(self._frames) >= self.capacity:
            await self._has_space.park()

    async def take(self, limit: int) -> tuple[list[str], list[int]]:
        """Wait for frames, then remove and return up to ``limit`` of the oldest."""
        while not self._frames:
            await self._has_data.park()
        if len(self._frames) <= limit:
            frames, self._frames = self._frames, []
            received_ns, self._received_ns = self._received_ns, []
        else:
            frames = self._frames[:limit]
            received_ns = self._received_ns[:limit]
            del self._frames[:limit]
            del self._received_ns[:limit]
        if self._has_space:
            self._has_space.unpark_all()
        return frames, received_ns
