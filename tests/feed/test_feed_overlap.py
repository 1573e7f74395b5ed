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
    with pytest.raises(ValueError, match=r"^capacity must be at least 1$"):
        Overlap(0)


def test_capacity_one_is_allowed_and_keeps_one_frame() -> None:
    overlap = Overlap(1)
    overlap.on_old("a")
    assert overlap.duplicate_prefix(["a", "b"]) == 1
    overlap.on_new("a")
    assert overlap.proven


def test_the_old_tail_holds_exactly_capacity_frames() -> None:
    overlap = Overlap(3)
    for frame in ("a", "b", "c"):
        overlap.on_old(frame)
    assert overlap.duplicate_prefix(["a", "b", "c", "d"]) == 3


def test_after_overflow_the_old_side_stays_disabled() -> None:
    overlap = Overlap(2)
    for frame in ("a", "b", "c", "d", "e"):
        overlap.on_old(frame)
    # Frames after the overflow are not recorded either: no prefix, no proof from them.
    assert overlap.duplicate_prefix(["e", "f"]) == 0
    assert overlap.duplicate_prefix(["d", "e"]) == 0
    overlap.on_new("e")
    assert not overlap.proven
    overlap.on_new("a")  # recorded before the overflow: still a proof
    assert overlap.proven


def test_new_side_records_at_most_capacity_proof_candidates() -> None:
    overlap = Overlap(2)
    for frame in ("a", "b", "c"):
        overlap.on_new(frame)
    overlap.on_old("c")  # the third new frame was not recorded
    assert not overlap.proven
    overlap.on_old("b")
    assert overlap.proven


def test_proof_stays_once_given() -> None:
    overlap = Overlap(10)
    overlap.on_new("a")
    overlap.on_old("a")
    assert overlap.proven
    overlap.on_old("z")
    overlap.on_new("y")
    assert overlap.proven


def test_a_new_frame_proves_nothing_until_the_old_side_has_it() -> None:
    overlap = Overlap(10)
    assert overlap.proven is False
    overlap.on_new("a")
    assert overlap.proven is False
    overlap.on_new("a")
    assert not overlap.proven


def test_duplicate_prefix_needs_the_whole_prefix_to_match_the_tail_end() -> None:
    overlap = Overlap(10)
    for frame in ("a", "b", "c", "d"):
        overlap.on_old(frame)
    assert overlap.duplicate_prefix(["a", "b", "c", "d", "e"]) == 4
    assert overlap.duplicate_prefix(["b", "c", "d"]) == 3
    # "d" at index 2, but "x c" is not the old "b c": keep everything.
    assert overlap.duplicate_prefix(["x", "c", "d", "e"]) == 0
    # "d" first matches at index 0 (n=1) before the longer aligned match at index 3.
    assert overlap.duplicate_prefix(["d", "c", "d"]) == 1


def test_duplicate_prefix_is_capped_by_the_shorter_side() -> None:
    overlap = Overlap(10)
    for frame in ("c", "d"):
        overlap.on_old(frame)
    # "d" is past the old tail's length here: it cannot end an aligned prefix.
    assert overlap.duplicate_prefix(["x", "y", "d"]) == 0
    assert overlap.duplicate_prefix(["c"]) == 0
    assert overlap.duplicate_prefix(["d"]) == 1


def test_no_old_frames_means_no_prefix() -> None:
    overlap = Overlap(10)
    overlap.on_new("a")
    assert overlap.duplicate_prefix(["a"]) == 0
