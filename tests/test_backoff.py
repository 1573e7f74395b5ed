import random

from hypothesis import given
from hypothesis import strategies as st

from marketd.backoff import Backoff, BackoffPolicy


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
