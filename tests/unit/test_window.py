"""The two-bucket sliding-window math (app/store/window.py), without a store."""

from __future__ import annotations

import itertools
import math

import pytest

from app.store import window as win

W = 100.0
B = 18_000_000  # the bucket that starts at 1_800_000_000 for a 100 s window
START = B * W


def test_roll_same_bucket_keeps_counts() -> None:
    assert win.roll(B, 7, 3, START + 99.9, W) == (B, 7, 3)


def test_roll_to_next_bucket_moves_count_to_prev() -> None:
    assert win.roll(B, 7, 3, START + W, W) == (B + 1, 0, 7)
    assert win.roll(B, 7, 3, START + W + 99.9, W) == (B + 1, 0, 7)


def test_roll_past_two_buckets_forgets_everything() -> None:
    assert win.roll(B, 7, 3, START + 2 * W, W) == (B + 2, 0, 0)
    assert win.roll(0, 0, 0, START, W) == (B, 0, 0)  # a fresh counter


def test_estimate_weights_previous_bucket_by_overlap() -> None:
    assert win.estimate(B, 4, 10, START, W) == pytest.approx(14.0)
    assert win.estimate(B, 4, 10, START + 25, W) == pytest.approx(11.5)
    assert win.estimate(B, 4, 10, START + 50, W) == pytest.approx(9.0)
    assert win.estimate(B, 4, 0, START + 50, W) == pytest.approx(4.0)
    assert win.estimate(B, 0, 10, START + 99.99, W) == pytest.approx(0.001, abs=1e-6)


def at(state: tuple[int, int, int], t: float) -> float:
    """The estimate of a stored counter seen at time ``t`` (rolled first, as an adapter does)."""
    rolled = win.roll(*state, t, W)
    return win.estimate(*rolled, t, W)


def refused_cases() -> list[tuple[int, int, int, float]]:
    cases = []
    for limit, count, prev, frac in itertools.product(
        (1, 2, 3, 5, 10, 50), range(0, 12), (0, 1, 2, 5, 10, 40), (0.0, 0.01, 0.3, 0.5, 0.77, 0.999)
    ):
        now = START + frac * W
        if at((B, count, prev), now) + 1 > limit:  # only refused hits have a retry_after
            cases.append((limit, count, prev, frac))
    return cases


CASES = refused_cases()


def test_the_grid_is_not_trivial() -> None:
    assert len(CASES) > 500
    assert any(c[2] > 0 and c[1] < c[0] - 1 for c in CASES)  # cases that free up inside the bucket
    assert any(c[1] >= c[0] for c in CASES)  # cases that must wait for the next bucket


def retry_after_problems(limit: int, count: int, prev: int, frac: float) -> list[str]:
    now = START + frac * W
    state = (B, count, prev)
    wait = win.retry_after(*state, now, W, limit)
    problems = []
    if not 0 < wait <= 2 * W:
        problems.append(f"wait {wait} out of (0, 2W]")
    # Waited out, one more hit fits under the limit (up to float rounding of an epoch-sized ``now``:
    # one ulp of 1.8e9 is 2.4e-7 s) ...
    if at(state, now + wait) + 1 > limit + 1e-6 or at(state, now + wait + 1e-4) + 1 > limit:
        problems.append(f"wait {wait}: still over the limit after waiting")
    # ... and slightly before, it does not.
    if at(state, now + wait - 1e-3) + 1 <= limit:
        problems.append(f"wait {wait}: the hit already fit 1 ms earlier")
    return problems


def test_retry_after_is_the_earliest_time_the_hit_fits() -> None:
    failures = {case: p for case in CASES if (p := retry_after_problems(*case))}
    assert failures == {}


def test_retry_after_with_zero_limit_is_a_whole_window() -> None:
    assert win.retry_after(B, 0, 0, START + 10, W, 0) == W


def test_retry_after_examples() -> None:
    # Full in the current bucket with nothing before: the count must decay to limit - 1 in the next one.
    assert win.retry_after(B, 10, 0, START, W, 10) == pytest.approx(W + 0.1 * W)
    # Only the previous bucket weighs: wait until 10 * (1 - f) <= 4, i.e. f = 0.6.
    assert win.retry_after(B, 0, 10, START + 20, W, 5) == pytest.approx(40.0)
    assert math.isclose(win.retry_after(B, 4, 10, START, W, 5), W)  # room 0: the next bucket starts
