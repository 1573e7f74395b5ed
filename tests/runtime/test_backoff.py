import random

from hypothesis import given
from hypothesis import strategies as st

from marketd.config.settings import BackoffSettings
from marketd.runtime.backoff import Backoff, BackoffPolicy, policy_from_settings


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    initial=st.floats(min_value=0.001, max_value=5),
    cap=st.floats(min_value=5, max_value=120),
    jitter=st.floats(min_value=0, max_value=1),
)
def test_delay_is_capped_jittered_and_positive(
    attempt: int, initial: float, cap: float, jitter: float
) -> None:
    policy = BackoffPolicy(initial=initial, cap=cap, jitter=jitter)
    delay = policy.delay(attempt, random.Random(attempt))
    base = min(cap, initial * 2.0 ** min(attempt, 64))
    assert base * (1 - jitter) - 1e-9 <= delay <= base + 1e-9
    assert delay <= cap + 1e-9


def test_backoff_grows_then_resets_after_a_healthy_run() -> None:
    backoff = Backoff(BackoffPolicy(initial=1, cap=8, jitter=0, reset_after=60))
    assert [backoff.next_delay() for _ in range(5)] == [1, 2, 4, 8, 8]
    backoff.ran_for(10)
    assert backoff.next_delay() == 8
    backoff.ran_for(61)
    assert backoff.next_delay() == 1


def test_delay_is_drawn_from_the_given_rng_between_the_jittered_floor_and_the_base() -> None:
    policy = BackoffPolicy(initial=2, cap=100, multiplier=3, jitter=0.25)
    # base(2) = 2 * 3**2 = 18; floor = 18 * (1 - 0.25) = 13.5
    expected = random.Random(42).uniform(13.5, 18.0)
    assert policy.delay(2, random.Random(42)) == expected


def test_base_grows_by_the_multiplier_and_stops_at_the_cap() -> None:
    policy = BackoffPolicy(initial=0.5, cap=10, multiplier=3)
    assert [policy.base(n) for n in range(5)] == [0.5, 1.5, 4.5, 10, 10]


def test_base_exponent_is_bounded_so_a_long_outage_cannot_overflow() -> None:
    # Without a cap to hide it, the growth stops at multiplier**64.
    policy = BackoffPolicy(initial=1, cap=float("inf"), multiplier=2)
    assert policy.base(63) == 2.0**63
    assert policy.base(64) == 2.0**64
    assert policy.base(100_000) == 2.0**64


def test_defaults_are_half_a_second_doubling_to_thirty_with_half_jitter() -> None:
    policy = BackoffPolicy()
    assert (policy.initial, policy.cap, policy.multiplier) == (0.5, 30.0, 2.0)
    assert (policy.jitter, policy.reset_after) == (0.5, 60.0)
    assert [policy.base(n) for n in (0, 1, 5, 6, 7)] == [0.5, 1.0, 16.0, 30.0, 30.0]


def test_backoff_uses_its_own_rng_and_counts_attempts() -> None:
    policy = BackoffPolicy(initial=1, cap=100, jitter=0.5)
    backoff = Backoff(policy, rng=random.Random(7))
    reference = random.Random(7)
    got = [backoff.next_delay() for _ in range(4)]
    assert got == [reference.uniform(b / 2, b) for b in (1.0, 2.0, 4.0, 8.0)]
    assert backoff.attempt == 4


def test_a_run_of_exactly_reset_after_seconds_counts_as_healthy() -> None:
    backoff = Backoff(BackoffPolicy(initial=1, cap=8, jitter=0, reset_after=60))
    for _ in range(3):
        backoff.next_delay()
    backoff.ran_for(59.999)
    assert backoff.attempt == 3
    backoff.ran_for(60)
    assert backoff.attempt == 0
    assert backoff.next_delay() == 1


def test_policy_from_settings_maps_every_field() -> None:
    settings = BackoffSettings(
        initial_s=0.25, max_s=9.0, multiplier=1.5, jitter=0.1, reset_after_s=42.0
    )
    assert policy_from_settings(settings) == BackoffPolicy(
        initial=0.25, cap=9.0, multiplier=1.5, jitter=0.1, reset_after=42.0
    )
