"""Counters: per-minute and per-hour totals of the console's series, their retention, and the count of
live temporary accounts.

The store contract, one file per port (see test_upkeep.py): every test runs on every backend, with
explicit times (minutes since the epoch), no clock and no sleeps.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from app.store.port import COUNT_HOURS_KEPT, COUNT_MINUTES_KEPT, Store
from app.store.redis import RedisStore
from app.store.sqlite.counters import TRIM_BATCH
from tests.store.conftest import StoreInstances
from tests.store.records import T0, TTL, claimed_event, make_claim, seed

pytestmark = pytest.mark.anyio

M0 = T0 // 60  # a whole hour: T0 is a multiple of 3600


async def test_counts_read_back_per_minute_and_per_hour(store: Store) -> None:
    await store.add_counts({("a", M0): 2, ("a", M0 + 1): 3, ("a", M0 + 59): 1, ("b", M0 + 61): 5})
    await store.add_counts({("a", M0): 4})  # adds to the stored total

    by_minute = await store.read_counts(["a", "b"], M0, M0 + 5, 1)
    assert by_minute == {"a": [6, 3, 0, 0, 0], "b": [0, 0, 0, 0, 0]}
    by_five = await store.read_counts(["a", "b"], M0, M0 + 65, 5)
    assert by_five["a"] == [9] + [0] * 10 + [1, 0]
    assert by_five["b"] == [0] * 12 + [5]
    assert await store.read_counts(["a", "b"], M0, M0 + 180, 60) == {"a": [10, 0, 0], "b": [0, 5, 0]}
    assert await store.read_counts(["b", "a"], M0 - 120, M0 + 240, 120) == {"a": [0, 10, 0], "b": [0, 5, 0]}


async def test_long_reads_sum_every_bucket(store: Store) -> None:
    minutes = [0, 237, 238, 239, 240, 241, 700, 2519]
    await store.add_counts({("a", M0 + m): m + 1 for m in minutes})
    by_seven = await store.read_counts(["a", "b"], M0, M0 + 2520, 7)
    expected = [0] * 360
    for m in minutes:
        expected[m // 7] += m + 1
    assert by_seven == {"a": expected, "b": [0] * 360}
    by_minute = await store.read_counts(["a"], M0, M0 + 2520, 1)
    assert [i for i, n in enumerate(by_minute["a"]) if n] == minutes
    by_day = await store.read_counts(["a"], M0, M0 + 2 * 1440, 1440)
    assert by_day == {"a": [sum(m + 1 for m in minutes if m < 1440), sum(m + 1 for m in minutes if m >= 1440)]}


async def test_nothing_counted_reads_as_zeros(store: Store) -> None:
    await store.add_counts({})
    await store.add_counts({("a", M0): 1})
    assert await store.read_counts(["unknown"], M0, M0 + 3, 1) == {"unknown": [0, 0, 0]}
    assert await store.read_counts(["a"], M0 + 1, M0 + 4, 1) == {"a": [0, 0, 0]}
    assert await store.read_counts(["unknown"], M0, M0 + 168 * 60, 60) == {"unknown": [0] * 168}
    assert await store.read_counts([], M0, M0 + 60, 60) == {}


async def test_concurrent_adds_sum_exactly(stores: StoreInstances) -> None:
    first, second = await stores.open(), await stores.open()
    batch = {("c", M0): 1, ("c", M0 + 60): 2, ("d", M0 + 61): 3}
    await asyncio.gather(*(s.add_counts(batch) for _ in range(25) for s in (first, second)))
    assert await first.read_counts(["c", "d"], M0, M0 + 62, 1) == {
        "c": [50] + [0] * 59 + [100, 0],
        "d": [0] * 61 + [150],
    }
    assert await second.read_counts(["c", "d"], M0, M0 + 120, 60) == {"c": [50, 100], "d": [0, 150]}


async def test_old_minute_totals_go_and_hour_totals_stay(store: Store) -> None:
    now = T0 + 7 * 86_400
    old = M0  # a week before now: past the minutes kept, within the hours kept
    await store.add_counts({("a", old): 1, ("a", now // 60): 2})
    if isinstance(store, RedisStore):
        # Redis drops totals by their keys' TTLs; trimming has nothing to do.
        assert await store.trim_counts(now) == 0
        for unit, kept in (("min", COUNT_MINUTES_KEPT * 60), ("hour", COUNT_HOURS_KEPT * 3600)):
            ttl = await store._do("ttl", store._count_key(unit, old if unit == "min" else old // 60))
            assert kept - 60 < ttl <= kept
        return
    assert await store.trim_counts(now) == 1
    assert await store.trim_counts(now) == 0
    assert await store.read_counts(["a"], old, old + 1, 1) == {"a": [0]}
    assert await store.read_counts(["a"], now // 60, now // 60 + 1, 1) == {"a": [2]}
    assert await store.read_counts(["a"], old, old + 60, 60) == {"a": [1]}
    # Past the hours kept the hour totals go too.
    assert await store.trim_counts(T0 + (COUNT_HOURS_KEPT + 1) * 3600) == 2
    # The boundary: the minute COUNT_MINUTES_KEPT before now's minute stays, the one before it goes.
    last = M0 + 10_000_000
    assert await store.trim_counts(last * 60) == 1  # the hour total of now: long gone by then
    await store.add_counts({("e", last - COUNT_MINUTES_KEPT - 1): 1, ("e", last - COUNT_MINUTES_KEPT): 1})
    assert await store.trim_counts(last * 60 + 59.5) == 1
    assert await store.read_counts(["e"], last - COUNT_MINUTES_KEPT - 1, last - COUNT_MINUTES_KEPT + 1, 1) == {
        "e": [0, 1]
    }
    # A backlog (totals that aged out while no sweeper ran) is trimmed a bounded batch at a time.
    base = last + 1_000_000
    await store.add_counts({("f", m): 1 for m in range(base, base + TRIM_BATCH + 5)})
    after = (base + TRIM_BATCH + 5 + COUNT_MINUTES_KEPT) * 60
    assert await store.trim_counts(after) == TRIM_BATCH + 1  # with the hour total of "e", long gone
    assert await store.trim_counts(after) == 6  # the 5 past the batch and the "e" minute kept above


@pytest.mark.parametrize(
    ("names", "start", "end", "step"),
    [
        ("abc", M0, M0 + 1, 1),  # a lone string is not a list of names
        (["a"] * 257, M0, M0 + 1, 1),
        (["a"], M0, M0 + 1, 0),
        (["a"], M0, M0, 1),
        (["a"], M0 + 1, M0, 1),
        (["a"], -5, 0, 1),
        (["a"], M0, M0 + 10, 3),  # not whole buckets
        (["a"], M0, M0 + 180, 90),  # neither minutes nor whole hours
        (["a"], M0 + 1, M0 + 61, 60),  # hours from a minute that is not a whole hour
        (["a"], M0, M0 + 1, 1.0),
        (["a"], M0, M0 + COUNT_MINUTES_KEPT + 1, 1),  # longer than minutes are kept
        (["a"], M0, M0 + (COUNT_HOURS_KEPT + 1) * 60, 60),
    ],
)
async def test_bad_reads_are_value_errors(store: Store, names: object, start: int, end: int, step: int) -> None:
    with pytest.raises(ValueError):
        await store.read_counts(names, start, end, step)  # type: ignore[arg-type]


async def test_live_temporary_accounts_are_counted(store: Store) -> None:
    assert await store.count_temporary(T0) == 0
    account, registration = await seed(store, "acct_t")
    await seed(store, "acct_later", account_expires_at=T0 + 2 * TTL)
    await seed(store, "acct_p", kind="persistent", account_expires_at=None)
    assert await store.count_temporary(T0) == 2
    assert await store.count_temporary(T0 + TTL - 1) == 2
    assert await store.count_temporary(T0 + TTL) == 1  # at its expiry it is gone (the sweeper need not run)
    assert await store.count_temporary(T0 + 2 * TTL) == 0

    claim = make_claim(account.id, registration.id)
    await store.save_claim(claim, None, [])
    persistent = msgspec.structs.replace(account, kind="persistent", expires_at=None, owner="usr_1")
    done = msgspec.structs.replace(claim, version=1, status="claimed", expires_at=None, claimed_by="usr_1")
    assert await store.complete_claim(done, 0, persistent, registration, None, claimed_event(account))
    assert await store.count_temporary(T0) == 1

    await store.sweep(T0 + 2 * TTL, 100)
    assert await store.count_temporary(T0) == 0
