"""Claims: the claim ceremony (compare-and-set, reserve-and-compare codes, completion) and a provider
link's pending claim.

The store contract, one file per port. Written only against the port (app/store/port.py); the
``store`` fixture (tests/store/conftest.py) runs each test on every backend. Time is always an explicit
``now``: nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from app import events as ev
from app.store.port import Delegation, Store
from tests.store.conftest import StoreInstances
from tests.store.records import (
    BUDGET,
    ISS,
    T0,
    TTL,
    all_events,
    attempt,
    claimed_event,
    created_event,
    make_claim,
    make_registration,
    make_user_records,
    note,
    seed,
    shown,
    user_event,
)

pytestmark = pytest.mark.anyio


async def test_claim_compare_and_set(store: Store) -> None:
    _account, registration = await seed(store)
    claim = make_claim(registration.account_id, registration.id)
    assert await store.save_claim(claim, None, []) is True
    assert await store.save_claim(claim, None, []) is False  # only one first claim
    assert await store.get_claim(registration.account_id, registration.id, T0) == claim
    started = msgspec.structs.replace(claim, version=1, attempts=(attempt("att_1", login_hint="ada@example.com"),))
    assert await store.save_claim(started, 0, []) is True
    stale = msgspec.structs.replace(claim, version=1, attempts=(attempt("att_2"),))
    assert await store.save_claim(stale, 0, []) is False  # the version moved on
    assert await store.get_claim(registration.account_id, registration.id, T0) == started
    # Gone with the window, and with the account.
    assert await store.get_claim(registration.account_id, registration.id, T0 + TTL) is None
    assert await store.get_claim(registration.account_id, "reg_missing", T0) is None


async def test_save_claim_needs_the_account(store: Store) -> None:
    assert await store.save_claim(make_claim("acct_missing", "reg_x"), None, []) is False
    assert await store.get_claim("acct_missing", "reg_x", T0) is None


async def test_racing_claim_transitions_exactly_one_lands(stores: StoreInstances) -> None:
    stores = [await stores.open() for _ in range(3)]
    _account, registration = await seed(stores[0])
    claim = make_claim(registration.account_id, registration.id)
    assert await stores[0].save_claim(claim, None, [])
    results = await asyncio.gather(
        *(
            stores[i % 3].save_claim(msgspec.structs.replace(claim, version=1, attempts=(attempt(f"att_{i}"),)), 0, [])
            for i in range(9)
        )
    )
    assert sorted(results) == [False] * 8 + [True]


async def test_pending_link_is_saved_replaced_and_never_overrides_an_active_delegation(store: Store) -> None:
    user, account, registration, delegation = make_user_records()
    await store.create_user(user, account, registration, delegation, user_event(user))
    pending_reg = make_registration(
        "reg_link",
        account.id,
        expires_at=None,
        type="identity_assertion",
        pending=True,
    )
    claim = make_claim(account.id, "reg_link", attempts=(attempt("att_1"),), provider=ISS, subject="sub-9")
    pending = Delegation(
        issuer=ISS,
        subject="sub-9",
        user_id=user.id,
        account_id=account.id,
        registration_id="reg_link",
        status="pending",
        created_at=T0,
    )

    def event() -> list[ev.Event]:
        return created_event(account, make_registration("reg_link", account.id))

    assert await store.save_pending_link(pending, pending_reg, claim, event()) is True
    assert await store.get_delegation(ISS, "sub-9") == pending
    assert await store.get_registration(account.id, "reg_link", T0) == pending_reg
    state = await store.access_state(account.id, "reg_link", None, T0)
    assert state is not None and state.registration.pending is True
    assert await store.get_claim(account.id, "reg_link", T0) == claim
    # A new attempt replaces the claim (tokens and attempt) of the previous one.
    renewed = msgspec.structs.replace(pending_reg, scopes=("notes:read",))
    renewed_claim = msgspec.structs.replace(claim, attempts=(attempt("att_2"),), version=7)
    assert await store.save_pending_link(pending, renewed, renewed_claim, event()) is True
    assert await store.get_registration(account.id, "reg_link", T0) == renewed
    assert await store.get_claim(account.id, "reg_link", T0) == renewed_claim
    # The active delegation of sub-1 is never turned into a pending one.
    hijack = msgspec.structs.replace(delegation, status="pending", registration_id="reg_link")
    assert await store.save_pending_link(hijack, renewed, renewed_claim, event()) is False
    assert await store.get_delegation(ISS, "sub-1") == delegation


async def test_check_code_charges_a_wrong_code_before_answering(store: Store) -> None:
    _account, registration = await seed(store)
    ids = (registration.account_id, registration.id)
    claim = make_claim(*ids, attempts=(shown("att_1", "right1"), shown("att_2", "right2"), attempt("att_3")))
    assert await store.save_claim(claim, None, [])
    digests = {"att_1": "wrong", "att_2": "wrong", "att_3": "wrong"}
    wrong = await store.check_code(*ids, digests, T0, BUDGET)
    assert (wrong.compared, wrong.matched) == (True, None)
    assert wrong.claim is not None
    assert (wrong.claim.version, wrong.claim.window_failures, wrong.claim.failures) == (1, 1, 1)
    assert await store.get_claim(*ids, T0) == wrong.claim  # the charge is stored, every field intact
    # Any live code matches, and a match costs nothing.
    right = await store.check_code(*ids, {"att_1": "wrong", "att_2": "right2", "att_3": ""}, T0, BUDGET)
    assert (right.compared, right.matched, right.claim) == (True, "att_2", wrong.claim)


async def test_check_code_needs_a_digest_for_every_attempt(store: Store) -> None:
    """A caller that read the claim before another attempt was started or confirmed must look again:
    nothing is compared or charged."""
    _account, registration = await seed(store)
    ids = (registration.account_id, registration.id)
    claim = make_claim(*ids, attempts=(shown("att_1", "right1"), shown("att_2", "right2")))
    assert await store.save_claim(claim, None, [])
    stale = await store.check_code(*ids, {"att_1": "right1"}, T0, BUDGET)
    assert (stale.compared, stale.matched, stale.claim) == (False, None, claim)
    # An attempt with no code yet counts too: a charge that ends the attempts would end it unseen.
    started = msgspec.structs.replace(claim, version=1, attempts=(*claim.attempts, attempt("att_3")))
    assert await store.save_claim(started, 0, [])
    unseen = await store.check_code(*ids, {"att_1": "wrong", "att_2": "wrong"}, T0, BUDGET)
    assert (unseen.compared, unseen.claim) == (False, started)
    assert await store.get_claim(*ids, T0) == started  # nothing charged


async def test_check_code_ends_every_attempt_with_the_window_budget(store: Store) -> None:
    _account, registration = await seed(store)
    ids = (registration.account_id, registration.id)
    claim = make_claim(*ids, scopes_after=(), attempts=(shown("att_1"), shown("att_2", "right2")))  # () survives
    assert await store.save_claim(claim, None, [])
    for n in range(1, 6):
        check = await store.check_code(*ids, {"att_1": f"wrong{n}", "att_2": f"wrong{n}"}, T0, BUDGET)
        assert check.compared and check.matched is None
    assert check.claim is not None
    assert (check.claim.attempts, check.claim.window_failures, check.claim.failures) == ((), 5, 5)
    assert await store.get_claim(*ids, T0) == check.claim
    # Nothing more is compared, the right code included, and nothing more is charged.
    after = await store.check_code(*ids, {"att_1": "right"}, T0, BUDGET)
    assert (after.compared, after.matched, after.claim) == (False, None, check.claim)


async def test_check_code_locks_the_claim_at_its_life_budget(store: Store) -> None:
    _account, registration = await seed(store)
    ids = (registration.account_id, registration.id)
    assert await store.save_claim(make_claim(*ids, failures=14, attempts=(shown(),)), None, [])
    check = await store.check_code(*ids, {"att_1": "wrong"}, T0, BUDGET)
    assert check.compared and check.claim is not None and check.claim.failures == 15
    assert check.claim.attempts == ()
    fresh = msgspec.structs.replace(
        check.claim, version=check.claim.version + 1, window_failures=0, attempts=(shown("att_2"),)
    )
    assert await store.save_claim(fresh, check.claim.version, [])
    locked = await store.check_code(*ids, {"att_2": "right"}, T0, BUDGET)
    assert (locked.compared, locked.matched) == (False, None)


async def test_check_code_compares_nothing_without_a_live_code(store: Store) -> None:
    _account, registration = await seed(store)
    ids = (registration.account_id, registration.id)
    unconfirmed = make_claim(*ids, attempts=(attempt(),))
    assert await store.save_claim(unconfirmed, None, [])
    check = await store.check_code(*ids, {"att_1": "right"}, T0, BUDGET)
    assert (check.compared, check.claim) == (False, unconfirmed)
    assert await store.save_claim(msgspec.structs.replace(unconfirmed, version=1, attempts=(shown(),)), 0, [])
    late = await store.check_code(*ids, {"att_1": "wrong"}, T0 + 600, BUDGET)  # the code has expired
    assert late.compared is False and late.claim is not None and late.claim.failures == 0
    assert (await store.check_code(*ids, {"att_1": "right"}, T0 + TTL, BUDGET)).claim is None  # window closed
    assert (await store.check_code("acct_missing", "reg_x", {"att_1": "right"}, T0, BUDGET)).claim is None
    denied = msgspec.structs.replace(unconfirmed, version=2, status="denied", attempts=(shown(),))
    assert await store.save_claim(denied, 1, [])
    assert (await store.check_code(*ids, {"att_1": "right"}, T0, BUDGET)).compared is False


async def test_racing_wrong_codes_are_each_charged_and_bounded(stores: StoreInstances) -> None:
    """Many adapters guessing at once: exactly 5 comparisons, each charged; never a lost update."""
    instances = [await stores.open() for _ in range(3)]
    _account, registration = await seed(instances[0])
    ids = (registration.account_id, registration.id)
    assert await instances[0].save_claim(make_claim(*ids, attempts=(shown(),)), None, [])
    checks = await asyncio.gather(
        *(instances[i % 3].check_code(*ids, {"att_1": f"wrong{i}"}, T0, BUDGET) for i in range(40))
    )
    assert sum(c.compared for c in checks) == 5
    stored = await instances[1].get_claim(*ids, T0)
    assert stored is not None and (stored.failures, stored.window_failures, stored.version) == (5, 5, 5)


async def test_complete_claim_makes_the_account_persistent_and_keeps_its_notes(store: Store) -> None:
    account, registration = await seed(store)
    assert await store.add_note(note("n1", account.id), T0) == "created"
    claim = make_claim(account.id, registration.id)
    await store.save_claim(claim, None, [])
    persistent = msgspec.structs.replace(
        account, kind="persistent", expires_at=None, quota_notes=1000, quota_note_bytes=65536, owner="usr_1"
    )
    upgraded = msgspec.structs.replace(
        registration,
        scopes=claim.scopes_after,
        expires_at=None,
        generation=registration.generation + 1,
        refresh_family="fam",
        refresh_expires_at=T0 + 86_400,
    )
    done = msgspec.structs.replace(claim, version=1, status="claimed", expires_at=None, claimed_by="usr_1")
    assert await store.complete_claim(done, 5, persistent, upgraded, None, claimed_event(account)) is False
    assert await store.get_registration(account.id, registration.id, T0) == registration
    assert await store.complete_claim(done, 0, persistent, upgraded, None, claimed_event(account)) is True
    assert await store.complete_claim(done, 0, persistent, upgraded, None, claimed_event(account)) is False
    later = T0 + TTL * 10
    got = await store.get_account(account.id, later)
    assert got == msgspec.structs.replace(persistent, note_count=1)
    assert await store.get_registration(account.id, registration.id, later) == upgraded
    assert await store.get_claim(account.id, registration.id, later) == done
    assert [n.id for n in await store.list_notes(account.id, later)] == ["n1"]
    assert await store.owned_accounts("usr_1", later) == [got]
    # The sweeper no longer sees it.
    assert await store.sweep(later, 100) == []
    assert isinstance((await all_events(store))[-1], ev.ClaimCompleted)


async def test_complete_claim_activates_a_pending_delegation(store: Store) -> None:
    user, account, registration, delegation = make_user_records()
    await store.create_user(user, account, registration, delegation, user_event(user))
    pending_reg = make_registration("reg_link", account.id, expires_at=None, type="identity_assertion", pending=True)
    pending = Delegation(
        issuer=ISS,
        subject="sub-9",
        user_id=user.id,
        account_id=account.id,
        registration_id="reg_link",
        status="pending",
        created_at=T0,
    )
    claim = make_claim(account.id, "reg_link", provider=ISS, subject="sub-9")

    def event() -> list[ev.Event]:
        return created_event(account, make_registration("reg_link", account.id))

    await store.save_pending_link(pending, pending_reg, claim, event())
    active = msgspec.structs.replace(pending, status="active")
    live = msgspec.structs.replace(pending_reg, pending=False)
    done = msgspec.structs.replace(claim, version=1, status="claimed", expires_at=None)
    assert await store.complete_claim(done, 0, account, live, active, claimed_event(account)) is True
    assert await store.get_delegation(ISS, "sub-9") == active
    assert await store.get_registration(account.id, "reg_link", T0) == live
    assert await store.get_account(account.id, T0) == account


async def test_racing_completions_exactly_one_wins(stores: StoreInstances) -> None:
    stores = [await stores.open() for _ in range(3)]
    account, registration = await seed(stores[0])
    claim = make_claim(account.id, registration.id)
    await stores[0].save_claim(claim, None, [])
    persistent = msgspec.structs.replace(account, kind="persistent", expires_at=None)

    async def complete(i: int) -> bool:
        done = msgspec.structs.replace(claim, version=1, status="claimed", claimed_by=f"usr_{i}")
        owned = msgspec.structs.replace(persistent, owner=f"usr_{i}")
        return await stores[i % 3].complete_claim(done, 0, owned, registration, None, claimed_event(account))

    results = await asyncio.gather(*(complete(i) for i in range(6)))
    assert sorted(results) == [False] * 5 + [True]
    winner = results.index(True)
    got = await stores[1].get_account(account.id, T0)
    assert got is not None and got.owner == f"usr_{winner}"
