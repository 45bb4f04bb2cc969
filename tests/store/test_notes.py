"""Notes: the demo resource, its quota counted atomically with each note.

The store contract, one file per port. Written only against the port (app/store/port.py); the
``store`` fixture (tests/store/conftest.py) runs each test on every backend. Time is always an explicit
``now``: nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from app.store.port import Store
from tests.store.conftest import StoreInstances
from tests.store.records import T0, note, seed

pytestmark = pytest.mark.anyio


async def test_add_note_respects_quota_exactly(store: Store) -> None:
    account, _ = await seed(store, quota_notes=3)
    for i in range(3):
        assert await store.add_note(note(f"n{i}", created_at=T0 + i), T0 + i) == "created"
    assert await store.add_note(note("n3", created_at=T0 + 3), T0 + 3) == "quota_exceeded"
    got = await store.get_account(account.id, T0 + 3)
    assert got is not None
    assert got.note_count == 3
    assert [n.id for n in await store.list_notes(account.id, T0 + 3)] == ["n0", "n1", "n2"]
    assert await store.get_note(account.id, "n3", T0 + 3) is None


async def test_add_note_with_zero_quota_is_refused(store: Store) -> None:
    account, _ = await seed(store, quota_notes=0)
    assert await store.add_note(note("n0"), T0) == "quota_exceeded"
    assert await store.list_notes(account.id, T0) == []


async def test_delete_note_frees_a_slot(store: Store) -> None:
    account, _ = await seed(store, quota_notes=2)
    assert await store.add_note(note("a"), T0) == "created"
    assert await store.add_note(note("b"), T0) == "created"
    assert await store.add_note(note("c"), T0) == "quota_exceeded"
    assert await store.delete_note(account.id, "a", T0) is True
    got = await store.get_account(account.id, T0)
    assert got is not None
    assert got.note_count == 1
    assert await store.add_note(note("c"), T0) == "created"
    assert await store.add_note(note("d"), T0) == "quota_exceeded"


async def test_delete_note_of_missing_note_is_false_and_keeps_count(store: Store) -> None:
    account, _ = await seed(store, quota_notes=2)
    assert await store.add_note(note("a"), T0) == "created"
    assert await store.delete_note(account.id, "zzz", T0) is False
    assert await store.delete_note(account.id, "a", T0) is True
    assert await store.delete_note(account.id, "a", T0) is False
    got = await store.get_account(account.id, T0)
    assert got is not None
    assert got.note_count == 0
    assert await store.delete_note("acct_missing", "a", T0) is False


async def test_notes_are_scoped_to_their_account(store: Store) -> None:
    await seed(store, "acct_1")
    await seed(store, "acct_2")
    assert await store.add_note(note("same", "acct_1", text="one"), T0) == "created"
    assert await store.add_note(note("same", "acct_2", text="two"), T0) == "created"
    one = await store.get_note("acct_1", "same", T0)
    assert one is not None
    assert one.text == "one"
    assert await store.delete_note("acct_1", "same", T0) is True
    two = await store.get_note("acct_2", "same", T0)
    assert two == note("same", "acct_2", text="two")
    assert await store.get_note("acct_1", "same", T0) is None


async def test_add_note_for_missing_or_expired_account_is_account_gone(store: Store) -> None:
    assert await store.add_note(note("n", "acct_missing"), T0) == "account_gone"
    await seed(store, account_expires_at=T0 + 100)
    assert await store.add_note(note("n0"), T0 + 99.9) == "created"
    assert await store.add_note(note("n1"), T0 + 100) == "account_gone"
    assert await store.add_note(note("n2"), T0 + 500) == "account_gone"


async def test_note_round_trip_and_listing_in_creation_order(store: Store) -> None:
    account, _ = await seed(store)
    # Ids and texts in no sorted order, equal timestamps: the listing follows the order of creation.
    notes = [
        note("n_c", created_at=T0, text="first ✓ unicode"),
        note("n_a", created_at=T0, text="second"),
        note("n_d", created_at=T0, text="third"),
        note("n_b", created_at=T0 + 1, text="fourth"),
    ]
    for n in notes:
        assert await store.add_note(n, T0 + 1) == "created"
    assert await store.list_notes(account.id, T0 + 1) == notes
    assert await store.get_note(account.id, "n_a", T0 + 1) == notes[1]
    # A deleted note leaves the order; a new one goes last.
    assert await store.delete_note(account.id, "n_c", T0 + 2) is True
    newest = note("n_0", created_at=T0 + 2, text="fifth")
    assert await store.add_note(newest, T0 + 2) == "created"
    assert await store.list_notes(account.id, T0 + 2) == [*notes[1:], newest]


async def test_expiry_hides_notes_at_exactly_the_account_expiry(store: Store) -> None:
    account, _ = await seed(store, account_expires_at=T0 + 100)
    assert await store.add_note(note("n0"), T0) == "created"
    assert [n.id for n in await store.list_notes(account.id, T0 + 99.999)] == ["n0"]
    assert await store.get_note(account.id, "n0", T0 + 99.999) == note("n0")
    assert await store.list_notes(account.id, T0 + 100) == []
    assert await store.get_note(account.id, "n0", T0 + 100) is None
    assert await store.delete_note(account.id, "n0", T0 + 100) is False


async def test_add_note_races_between_two_instances_respect_quota(stores: StoreInstances) -> None:
    first, second = await stores.open(), await stores.open()
    account, _ = await seed(first, quota_notes=5)
    outcomes = await asyncio.gather(
        *(s.add_note(note(f"n{i}-{j}"), T0) for i in range(6) for j, s in enumerate((first, second)))
    )
    assert Counter(outcomes) == Counter({"created": 5, "quota_exceeded": 7})
    got = await second.get_account(account.id, T0)
    assert got is not None
    assert got.note_count == 5
    assert len(await first.list_notes(account.id, T0)) == 5


async def test_access_state_reads_the_notes_with_the_token_check_when_asked(store: Store) -> None:
    account, registration = await seed(store, account_expires_at=T0 + 100)
    other, _ = await seed(store, "acct_2")
    empty = await store.access_state(account.id, registration.id, "tok_1", T0, notes=True)
    assert empty is not None and empty.notes == []  # asked for, none yet: an empty list, not None
    notes = [note("n_b", text="one"), note("n_a", text="two ✓")]
    for n in notes:
        assert await store.add_note(n, T0) == "created"
    assert await store.add_note(note("n_x", other.id), T0) == "created"
    state = await store.access_state(account.id, registration.id, "tok_1", T0, notes=True)
    assert state is not None and state.notes == notes  # the account's own, in the order added
    assert state.account.id == account.id and state.registration.id == registration.id
    plain = await store.access_state(account.id, registration.id, "tok_1", T0)
    assert plain is not None and plain.notes is None  # not asked: not read
    # The same answer as without notes otherwise: nothing once the account has expired.
    assert await store.access_state(account.id, registration.id, "tok_1", T0 + 100, notes=True) is None
    assert await store.access_state(account.id, "reg_missing", None, T0, notes=True) is None
