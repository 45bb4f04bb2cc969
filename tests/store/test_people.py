"""People: users and provider delegations (ID-JAG), OpenID Connect sign-in, browser sessions.

The store contract, one file per port. Written only against the port (app/store/port.py); the
``store`` fixture (tests/store/conftest.py) runs each test on every backend. Time is always an explicit
``now``: nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import asyncio

import pytest

from app.store.port import Store
from tests.store.conftest import StoreInstances
from tests.store.records import ISS, OIDC, T0, make_user_records, signin_records, user_event

pytestmark = pytest.mark.anyio


async def test_create_user_and_find_it(store: Store) -> None:
    user, account, registration, delegation = make_user_records()
    written = user_event(user)
    assert await store.create_user(user, account, registration, delegation, written) is True
    assert await store.find_user_by_email("ada@example.com") == user
    assert await store.get_delegation(ISS, "sub-1") == delegation
    assert await store.get_account(account.id, T0 + 10**6) == account  # persistent: never expires
    assert await store.get_registration(account.id, registration.id, T0) == registration
    assert await store.events() == written
    assert await store.find_user_by_email("other@example.com") is None
    assert await store.get_delegation(ISS, "sub-2") is None
    assert await store.get_delegation("https://elsewhere.example", "sub-1") is None


async def test_create_user_loses_a_race_on_the_email_or_the_subject_and_creates_nothing(store: Store) -> None:
    user, account, registration, delegation = make_user_records()
    written = user_event(user)
    assert await store.create_user(user, account, registration, delegation, written)
    # Same email, another subject: refused, and nothing of the loser exists.
    u2, a2, r2, d2 = make_user_records("usr_2", "ada@example.com", "sub-2")
    assert await store.create_user(u2, a2, r2, d2, user_event(u2)) is False
    assert await store.get_account(a2.id, T0) is None
    assert await store.get_delegation(ISS, "sub-2") is None
    assert await store.find_user_by_email("ada@example.com") == user
    # Same subject, another email: refused too.
    u3, a3, r3, d3 = make_user_records("usr_3", "bob@example.com", "sub-1")
    assert await store.create_user(u3, a3, r3, d3, user_event(u3)) is False
    assert await store.get_account(a3.id, T0) is None
    assert await store.find_user_by_email("bob@example.com") is None
    assert await store.get_delegation(ISS, "sub-1") == delegation
    assert await store.events() == written
    assert await store.outboxes_with_pending() == [account.id]  # the losers' events were discarded


async def test_sign_in_creates_a_user_then_finds_it_by_subject(store: Store) -> None:
    user, account = signin_records("usr_a", "ada@example.com")
    assert await store.sign_in_user(OIDC, "s-1", "ada@example.com", user, account) == user
    assert await store.get_user("usr_a") == user
    assert await store.get_account(account.id, T0 + 10**6) == account
    # The same subject later, even with another email at the provider: the same user, nothing new.
    other, other_account = signin_records("usr_b", "new@example.com")
    assert await store.sign_in_user(OIDC, "s-1", "new@example.com", other, other_account) == user
    assert await store.get_user("usr_b") is None
    assert await store.get_account(other_account.id, T0) is None
    assert await store.owned_accounts("usr_a", T0) == [account]


async def test_sign_in_with_a_known_email_becomes_that_user(store: Store) -> None:
    jit, jit_account, registration, delegation = make_user_records("usr_jit", "ada@example.com")
    await store.create_user(jit, jit_account, registration, delegation, user_event(jit))
    fresh, fresh_account = signin_records("usr_new", "ada@example.com")
    assert await store.sign_in_user(OIDC, "s-2", "ada@example.com", fresh, fresh_account) == jit
    assert await store.get_user("usr_new") is None
    assert await store.get_account(fresh_account.id, T0) is None
    # Linked: the next sign-in of that subject finds the user without the email.
    assert await store.sign_in_user(OIDC, "s-2", "x@example.com", fresh, fresh_account) == jit


async def test_racing_sign_ins_end_on_one_user(stores: StoreInstances) -> None:
    stores = [await stores.open() for _ in range(3)]
    records = [signin_records(f"usr_{i}", "race@example.com") for i in range(6)]
    users = await asyncio.gather(
        *(stores[i % 3].sign_in_user(OIDC, f"s-{i % 2}", "race@example.com", u, a) for i, (u, a) in enumerate(records))
    )
    assert len({u.id for u in users}) == 1
    assert sum([await stores[0].get_user(u.id) is not None for u, _ in records]) == 1


async def test_sessions_are_stored_replaced_expire_and_are_deleted(store: Store) -> None:
    await store.put_session("h1", b"\x00one", T0 + 60)
    assert await store.get_session("h1", T0) == b"\x00one"
    await store.put_session("h1", b"two", T0 + 120)
    assert await store.get_session("h1", T0 + 90) == b"two"
    assert await store.get_session("h1", T0 + 120) is None
    assert await store.get_session("h2", T0) is None
    await store.put_session("h3", b"three", T0 + 60)
    await store.delete_session("h3")
    assert await store.get_session("h3", T0) is None
    await store.delete_session("h3")  # idempotent
