"""The handover's overlap bookkeeping (pure)."""

from __future__ import annotations

import pytest

from marketd.feed.handover import Overlap


def test_proof_needs_a_frame_on_both_sides_in_either_order() -> None:
    overlap = Overlap(10)
    overlap.on_old("a")
    overlap.on_new("b")
    assert not overlap.proven
    overlap.on_old("b")  # the old connection caught up with the successor
    assert overlap.proven
    ahead = Overlap(10)
    ahead.on_old("c")
    ahead.on_new("c")  # the successor delivered what the old one already had
    assert ahead.proven


def test_duplicate_prefix_is_the_aligned_repeat_of_the_old_tail() -> None:
    overlap = Overlap(10)
    for frame in ("a", "b", "c", "d"):
        overlap.on_old(frame)
    assert overlap.duplicate_prefix(["c", "d", "e", "f"]) == 2
    assert overlap.duplicate_prefix(["d", "e"]) == 1
    # Not aligned with the old tail (a frame missing or different): keep everything.
    assert overlap.duplicate_prefix(["b", "d", "e"]) == 0
    assert overlap.duplicate_prefix(["x", "y"]) == 0
    assert overlap.duplicate_prefix([]) == 0


def test_a_repeated_frame_keeps_a_possible_duplicate_rather_than_drop_an_event() -> None:
    overlap = Overlap(10)
    for frame in ("x", "x"):
        overlap.on_old(frame)
    # "x" then "x": the shortest aligned prefix wins (1), never 2 on a guess.
    assert overlap.duplicate_prefix(["x", "x", "y"]) == 1


def test_memory_is_bounded_and_overflow_disables_trimming() -> None:
    overlap = Overlap(3)
    for frame in ("a", "b", "c", "d"):
        overlap.on_old(frame)
    assert overlap.duplicate_prefix(["d", "e"]) == 0
    empty = Overlap(2)
    assert empty.duplicate_prefix(["a"]) == 0
    with pytest.raises(ValueError, match="capacity"):
        Overlap(0)
