"""Limits: sliding-window counters, all-or-nothing (``hit_windows``).

The store contract, one file per port. Written only against the port (app/store/port.py); the
``store`` fixture (tests/store/conftest.py) runs each test on every backend. Time is always an explicit
``now``: nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import asyncio

import pytest

from app.store.port import Store, WindowHit
from tests.store.records import T0, WINDOW

pytestmark = pytest.mark.anyio


async def test_hit_windows_counts_each_hit(store: Store) -> None:
    for expected in (1.0, 2.0, 3.0):
        [result] = await store.hit_windows([WindowHit("a", 10)], T0, WINDOW)
        assert result.allowed is True
        assert result.count == pytest.approx(expected)
        assert result.retry_after == 0
    [other] = await store.hit_windows([WindowHit("b", 10)], T0, WINDOW)
    assert other.count == pytest.approx(1.0)


async def test_hit_windows_refuses_past_the_limit(store: Store) -> None:
    for _ in range(3):
        [ok] = await store.hit_windows([WindowHit("a", 3)], T0 + 10, WINDOW)
        assert ok.allowed
    [refused] = await store.hit_windows([WindowHit("a", 3)], T0 + 10, WINDOW)
    assert refused.allowed is False
    assert refused.count == pytest.approx(3.0)  # the refused hit is not counted
    assert refused.retry_after > 0
    [peek] = await store.hit_windows([WindowHit("a", None, increment=False)], T0 + 10, WINDOW)
    assert peek.count == pytest.approx(3.0)


async def test_hits_sent_together_never_pass_the_limit(store: Store) -> None:
    """Hits in flight at once (on SQLite: one group commit, whose counters are read once and written
    back once) admit exactly the limit, and the counter holds exactly what was admitted."""
    results = await asyncio.gather(*(store.hit_windows([WindowHit("burst", 5)], T0, WINDOW) for _ in range(12)))
    assert sum(r.allowed for [r] in results) == 5
    assert sorted(r.count for [r] in results if r.allowed) == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])
    [peek] = await store.hit_windows([WindowHit("burst", None, increment=False)], T0, WINDOW)
    assert peek.count == pytest.approx(5.0)


async def test_hit_windows_is_all_or_nothing(store: Store) -> None:
    [full] = await store.hit_windows([WindowHit("tight", 1)], T0, WINDOW)
    assert full.allowed
    results = await store.hit_windows(
        [WindowHit("loose", 100), WindowHit("tight", 1), WindowHit("counted", None)], T0 + 1, WINDOW
    )
    assert [r.allowed for r in results] == [True, False, True]
    assert results[1].retry_after > 0
    peeks = await store.hit_windows(
        [WindowHit(k, None, increment=False) for k in ("loose", "tight", "counted")], T0 + 1, WINDOW
    )
    assert [p.count for p in peeks] == pytest.approx([0.0, 1.0, 0.0])  # no counter moved


async def test_a_look_with_a_limit_counts_nothing_and_says_whether_one_more_fits(store: Store) -> None:
    for _ in range(2):
        await store.hit_windows([WindowHit("a", None)], T0, WINDOW)
    [fits] = await store.hit_windows([WindowHit("a", 3, increment=False)], T0, WINDOW)
    assert (fits.allowed, fits.count, fits.retry_after) == (True, pytest.approx(2.0), 0.0)
    [full] = await store.hit_windows([WindowHit("a", 2, increment=False)], T0, WINDOW)
    assert full.allowed is False and full.retry_after > 0
    # A refused look refuses the whole call, which counts nothing either way.
    results = await store.hit_windows([WindowHit("b", None), WindowHit("a", 2, increment=False)], T0, WINDOW)
    assert [r.allowed for r in results] == [True, False]
    peeks = await store.hit_windows([WindowHit(k, None, increment=False) for k in "ab"], T0, WINDOW)
    assert [p.count for p in peeks] == pytest.approx([2.0, 0.0])  # "b" was not counted


async def test_hit_windows_without_limit_never_refuses(store: Store) -> None:
    for i in range(1, 61):
        [result] = await store.hit_windows([WindowHit("global", None)], T0, WINDOW)
        assert result.allowed is True
        assert result.retry_after == 0
        assert result.count == pytest.approx(float(i))


async def test_hit_windows_peek_does_not_count(store: Store) -> None:
    await store.hit_windows([WindowHit("a", 10), WindowHit("a2", 10)], T0, WINDOW)
    for _ in range(3):
        results = await store.hit_windows(
            [WindowHit("a", None, increment=False), WindowHit("z", None, False)], T0, WINDOW
        )
        assert [r.count for r in results] == pytest.approx([1.0, 0.0])
        assert all(r.allowed for r in results)
    [counted] = await store.hit_windows([WindowHit("a", 10)], T0, WINDOW)
    assert counted.count == pytest.approx(2.0)


async def test_hit_windows_estimate_slides_across_buckets(store: Store) -> None:
    for _ in range(10):
        await store.hit_windows([WindowHit("a", None)], T0, WINDOW)  # T0 starts a bucket

    async def peek(now: float) -> float:
        [r] = await store.hit_windows([WindowHit("a", None, increment=False)], now, WINDOW)
        return r.count

    assert await peek(T0 + 50) == pytest.approx(10.0)  # same bucket: no decay yet
    assert await peek(T0 + 100) == pytest.approx(10.0)  # the next bucket starts with the whole previous one
    assert await peek(T0 + 125) == pytest.approx(7.5)
    assert await peek(T0 + 150) == pytest.approx(5.0)
    assert await peek(T0 + 190) == pytest.approx(1.0)
    assert await peek(T0 + 200) == pytest.approx(0.0)  # two buckets on: nothing left
    assert await peek(T0 + 10_000) == pytest.approx(0.0)
    [hit] = await store.hit_windows([WindowHit("a", None)], T0 + 150, WINDOW)
    assert hit.count == pytest.approx(6.0)


@pytest.mark.parametrize(
    ("limit", "prior", "offset"),
    [(1, 1, 0.0), (3, 3, 10.0), (5, 5, 99.0), (4, 6, 30.0), (10, 10, 0.5)],
)
async def test_hit_windows_retry_after_when_waited_out_allows_the_hit(
    store: Store, limit: int, prior: int, offset: float
) -> None:
    # ``prior`` hits land in the bucket before, then the window is filled to the limit at ``now``.
    for _ in range(prior):
        await store.hit_windows([WindowHit("k", None)], T0 + offset, WINDOW)
    now = T0 + WINDOW + offset
    while True:
        [r] = await store.hit_windows([WindowHit("k", limit)], now, WINDOW)
        if not r.allowed:
            break
    assert r.retry_after > 0
    assert r.retry_after <= 2 * WINDOW
    [still] = await store.hit_windows([WindowHit("k", limit)], now + r.retry_after * 0.5, WINDOW)
    assert still.allowed is False
    [after] = await store.hit_windows([WindowHit("k", limit)], now + r.retry_after + 1e-3, WINDOW)
    assert after.allowed is True
