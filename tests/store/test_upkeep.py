"""Upkeep: the sweep, and durability (a fresh adapter instance sees everything a closed one committed).

The store contract, one file per port. Written only against the port (app/store/port.py); the
``store`` fixture (tests/store/conftest.py) runs each test on every backend. Time is always an explicit
``now``: nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import msgspec
import pytest

from app import events as ev
from app.store.port import Deleted, Store, WindowHit
from tests.store.conftest import Reopen, StoreInstances
from tests.store.records import T0, WINDOW, all_events, note, seed

pytestmark = pytest.mark.anyio


async def test_sweep_deletes_only_expired_temporary_accounts(store: Store) -> None:
    await seed(store, "expired_a", account_expires_at=T0 + 10)
    await seed(store, "expired_b", account_expires_at=T0 + 20)
    await seed(store, "at_boundary", account_expires_at=T0 + 30)
    await seed(store, "live", account_expires_at=T0 + 31)
    await seed(store, "persistent", kind="persistent", account_expires_at=None)
    for account_id, count in (("expired_a", 2), ("expired_b", 0), ("at_boundary", 1), ("live", 1), ("persistent", 1)):
        for i in range(count):
            assert await store.add_note(note(f"{account_id}-{i}", account_id), T0) == "created"
    before = await all_events(store)

    swept = await store.sweep(T0 + 30, 100)

    assert sorted(swept, key=lambda d: d.account_id) == [
        Deleted(account_id="at_boundary", registrations=1, notes=1),
        Deleted(account_id="expired_a", registrations=1, notes=2),
        Deleted(account_id="expired_b", registrations=1, notes=0),
    ]
    new = (await all_events(store))[len(before) :]
    assert all(isinstance(e, ev.AccountExpired) for e in new)
    assert sorted((ev.type_of(e), e.account_id, e.registrations, e.notes) for e in new) == [  # type: ignore[union-attr]
        ("account.expired", "at_boundary", 1, 1),
        ("account.expired", "expired_a", 1, 2),
        ("account.expired", "expired_b", 1, 0),
    ]
    assert all(e.at == pytest.approx(T0 + 30) for e in new)
    # The live and the persistent account keep everything; a later sweep at the same time is a no-op.
    for account_id in ("live", "persistent"):
        assert await store.get_account(account_id, T0 + 30) is not None
        assert len(await store.list_notes(account_id, T0 + 30)) == 1
    assert await store.sweep(T0 + 30, 100) == []
    assert len(await all_events(store)) == len(before) + 3
    far = T0 + 10 * 365 * 86_400
    assert [d.account_id for d in await store.sweep(far, 100)] == ["live"]
    assert await store.get_account("persistent", far) is not None


async def test_sweep_respects_limit(store: Store) -> None:
    for i in range(5):
        await seed(store, f"acct_{i}", account_expires_at=T0 + i)
    batches = []
    while True:
        batch = await store.sweep(T0 + 100, 2)
        assert len(batch) <= 2
        if not batch:
            break
        batches.append(batch)
    assert [len(b) for b in batches] == [2, 2, 1]
    assert sorted(d.account_id for b in batches for d in b) == [f"acct_{i}" for i in range(5)]
    expired_events = [e for e in await all_events(store) if isinstance(e, ev.AccountExpired)]
    assert sorted(e.account_id or "" for e in expired_events) == [f"acct_{i}" for i in range(5)]


async def test_concurrent_sweeps_report_each_account_once(stores: StoreInstances) -> None:
    first, second = await stores.open(), await stores.open()
    ids = [f"acct_{i:02d}" for i in range(30)]
    for account_id in ids:
        await seed(first, account_id, account_expires_at=T0 + 10)
        assert await first.add_note(note("n", account_id), T0) == "created"

    async def drain(store: Store) -> list[Deleted]:
        out: list[Deleted] = []
        while batch := await store.sweep(T0 + 10, 4):
            out.extend(batch)
        return out

    a, b = await asyncio.gather(drain(first), drain(second))
    assert Counter(d.account_id for d in a + b) == Counter(ids)
    assert all(d.registrations == 1 and d.notes == 1 for d in a + b)
    expired_events = [e for e in await all_events(second) if isinstance(e, ev.AccountExpired)]
    assert Counter(e.account_id for e in expired_events) == Counter(ids)


async def test_state_survives_reopen(store: Store, reopen: Reopen) -> None:
    account, registration = await seed(store)
    assert await store.add_note(note("n0"), T0) == "created"
    assert await store.consume_once("pow", "c1", T0 + 300, T0) is True
    assert await store.revoke_token("acct_1", "tok_1", T0 + 600, T0) is True
    await store.hit_windows([WindowHit("w", 5)], T0, WINDOW)
    events = await all_events(store)

    fresh = await reopen(store)

    assert await fresh.get_account(account.id, T0 + 1) == msgspec.structs.replace(account, note_count=1)
    assert await fresh.get_registration(registration.account_id, registration.id, T0 + 1) == registration
    assert await fresh.list_notes(account.id, T0 + 1) == [note("n0")]
    assert await fresh.consume_once("pow", "c1", T0 + 300, T0 + 1) is False
    state = await fresh.access_state(registration.account_id, registration.id, "tok_1", T0 + 1)
    assert state is not None
    assert state.token_revoked is True
    [peek] = await fresh.hit_windows([WindowHit("w", None, increment=False)], T0 + 1, WINDOW)
    assert peek.count == pytest.approx(1.0)
    assert await all_events(fresh) == events
    await fresh.ping()
