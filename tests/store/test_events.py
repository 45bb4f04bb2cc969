"""The store's event contract (app/store/port.py, spec/events.md) on SQLite, Redis and Redis Cluster:
each change writes exactly the events handed to it (none when it does not happen), into the account's
outbox in commit order; delivery moves a per-account cursor; outboxes outlive their accounts."""

from __future__ import annotations

import msgspec
import pytest

from app import events as ev
from app.store.port import Store
from tests.store.conftest import Reopen
from tests.store.records import BUDGET, T0, attempt, make_claim, note, revoked, seed, shown

pytestmark = pytest.mark.anyio


def attempt_created(account_id: str, registration_id: str, attempt_id: str) -> ev.ClaimAttemptCreated:
    return ev.new(
        ev.ClaimAttemptCreated,
        T0,
        account_id,
        registration_id,
        attempt_id=attempt_id,
        method="service_auth",
        expires_at=T0 + 600,
        for_login_hint=True,
    )


async def test_each_change_writes_exactly_its_events_and_a_change_that_fails_writes_none(store: Store) -> None:
    account, reg = await seed(store)
    box = await store.read_outbox(account.id)  # the seed's own event
    assert [type(e) for e in box] == [ev.RegistrationCreated]

    claim = make_claim(account.id, reg.id, attempts=(attempt("att_1"),), version=1)
    started = [attempt_created(account.id, reg.id, "att_1")]
    assert await store.save_claim(claim, None, started)
    assert not await store.save_claim(claim, None, [attempt_created(account.id, reg.id, "att_x")])  # lost CAS
    confirmed = [ev.new(ev.ClaimConfirmed, T0, account.id, reg.id, attempt_id="att_1", user_id="usr_1")]
    shown = msgspec.structs.replace(claim, version=2, attempts=(attempt("att_1", confirmed_by="usr_1"),))
    assert await store.save_claim(shown, 1, confirmed)

    done = msgspec.structs.replace(shown, version=3, status="claimed", attempts=(), expires_at=None)
    persistent = msgspec.structs.replace(account, kind="persistent", expires_at=None, owner="usr_1")
    upgraded = msgspec.structs.replace(reg, expires_at=None, generation=1, refresh_family="fam")
    landed: list[ev.Event] = [
        ev.new(ev.ClaimCompleted, T0, account.id, reg.id, user_id="usr_1", scopes=upgraded.scopes),
        ev.new(ev.CredentialIssued, T0, account.id, reg.id, kind="claim", generation=1),
    ]
    assert not await store.complete_claim(done, 9, persistent, upgraded, None, landed)  # wrong version
    assert await store.complete_claim(done, 2, persistent, upgraded, None, landed)

    rotated: list[ev.Event] = [
        ev.new(ev.RefreshRotated, T0 + 1, account.id, reg.id, seq=1, expires_at=T0 + 99),
        ev.new(ev.CredentialIssued, T0 + 1, account.id, reg.id, kind="refresh", generation=1, expires_at=T0 + 99),
    ]
    assert not await store.rotate_refresh(account.id, reg.id, "fam", 5, T0 + 99, T0 + 1, rotated)  # wrong seq
    assert await store.rotate_refresh(account.id, reg.id, "fam", 0, T0 + 99, T0 + 1, rotated)

    by_provider = revoked(account.id, reg.id, T0 + 2, by="provider")
    assert await store.set_not_before(account.id, reg.id, T0 + 2, by_provider)
    assert await store.set_not_before(account.id, reg.id, T0 + 1, revoked(account.id, reg.id, T0 + 2, "provider"))
    operator: list[ev.Event] = [
        *revoked(account.id, reg.id, T0 + 3, by="operator"),
        ev.new(ev.OperatorAction, T0 + 3, account.id, reg.id, operator="ops", action="revoke"),
    ]
    assert await store.revoke_registration(account.id, reg.id, T0 + 3, operator)
    assert not await store.revoke_registration(account.id, reg.id, T0 + 4, revoked(account.id, reg.id, T0 + 4))

    assert await store.read_outbox(account.id) == [
        *box,
        *started,
        *confirmed,
        *landed,
        *rotated,
        *by_provider,
        *operator,
    ]
    assert await store.events() == await store.read_outbox(account.id)  # one account: the same events


async def test_delivery_moves_a_per_account_cursor_and_keeps_the_trail(store: Store) -> None:
    a, reg_a = await seed(store, "acct_a")
    b, _ = await seed(store, "acct_b")
    for i in range(3):
        claim = make_claim(a.id, reg_a.id, attempts=(attempt(f"att_{i}"),), version=i + 1)
        assert await store.save_claim(claim, None if i == 0 else i, [attempt_created(a.id, reg_a.id, f"att_{i}")])
    outbox = await store.read_outbox(a.id)
    assert len(outbox) == 4 and set(await store.outboxes_with_pending()) == {a.id, b.id}
    assert await store.read_outbox(a.id, limit=2) == outbox[:2]

    assert await store.mark_delivered(a.id, outbox[1].id)
    assert await store.read_outbox(a.id) == outbox[2:]
    assert not await store.mark_delivered(a.id, outbox[0].id)  # already delivered
    assert not await store.mark_delivered(a.id, "evt_000000000000nothing")
    assert not await store.mark_delivered(b.id, outbox[3].id)  # another account's event
    assert a.id in await store.outboxes_with_pending()
    assert await store.mark_delivered(a.id, outbox[3].id)
    assert await store.read_outbox(a.id) == []
    assert await store.outboxes_with_pending() == [b.id]
    assert [e for e in await store.events() if e.account_id == a.id] == outbox  # delivery erases nothing
    assert await store.account_events(a.id) == outbox  # the timeline: delivered or not, in commit order
    assert await store.account_events(a.id, limit=2) == outbox[2:]  # the newest two
    assert await store.account_events("acct_nobody") == []
    # A new event makes the account pending again, and only it is undelivered.
    more = revoked(a.id, reg_a.id, T0 + 5)
    assert await store.revoke_registration(a.id, reg_a.id, T0 + 5, more)
    assert await store.read_outbox(a.id) == more
    assert set(await store.outboxes_with_pending()) == {a.id, b.id}


async def test_a_deleted_or_expired_accounts_outbox_is_readable_until_consumed(store: Store, reopen: Reopen) -> None:
    gone, reg = await seed(store, "acct_gone")
    assert await store.add_note(note("n1", gone.id), T0) == "created"
    stale, _ = await seed(store, "acct_stale", account_expires_at=T0 + 10)
    deleted = ev.new(ev.AccountDeleted, T0 + 1, gone.id, reg.id, by="agent", registrations=0, notes=0)
    assert await store.delete_account(gone.id, T0 + 1, deleted)
    assert [d.account_id for d in await store.sweep(T0 + 10, 10)] == [stale.id]

    store = await reopen(store)  # and from a fresh instance
    assert set(await store.outboxes_with_pending()) == {gone.id, stale.id}
    [_, written] = await store.read_outbox(gone.id)
    assert written == msgspec.structs.replace(deleted, registrations=1, notes=1)  # the counts, filled in
    [_, expired] = await store.read_outbox(stale.id)
    assert isinstance(expired, ev.AccountExpired) and (expired.registrations, expired.notes) == (1, 0)
    assert expired.at == pytest.approx(T0 + 10)
    assert await store.mark_delivered(gone.id, written.id)
    assert await store.outboxes_with_pending() == [stale.id]
    assert written in await store.events()


async def test_pending_outboxes_are_found_whatever_slot_their_accounts_hash_to(store: Store) -> None:
    ids = [f"acct_{i:03d}" for i in range(60)]  # on a cluster: spread over every node's slots
    for account_id in ids:
        await seed(store, account_id)
    assert sorted(await store.outboxes_with_pending(1000)) == ids
    assert len(await store.outboxes_with_pending(7)) == 7
    assert [e.account_id for e in await store.events()] == ids  # one event each, in id order


async def test_a_guess_that_spends_the_budget_writes_the_end_of_exactly_the_attempts_it_ended(store: Store) -> None:
    account, reg = await seed(store)
    claim = make_claim(account.id, reg.id, attempts=(shown("att_1"), attempt("att_2")), version=1)
    assert await store.save_claim(claim, None, [])
    before = await store.read_outbox(account.id)
    digests = {"att_1": "wrong", "att_2": ""}  # every attempt read, the one with no code yet too

    def ended() -> list[ev.Event]:
        return [
            ev.new(ev.ClaimAttemptExpired, T0, account.id, reg.id, attempt_id=a, reason="code_budget")
            for a in ("att_1", "att_2", "att_never_stored")
        ]

    for _ in range(BUDGET.per_window - 1):  # charged, not spent: nothing ends, nothing is written
        check = await store.check_code(account.id, reg.id, digests, T0, BUDGET, ended())
        assert check.compared and check.claim is not None and len(check.claim.attempts) == 2
    assert await store.read_outbox(account.id) == before
    last = ended()
    check = await store.check_code(account.id, reg.id, digests, T0, BUDGET, last)
    assert check.claim is not None and check.claim.attempts == ()
    assert await store.read_outbox(account.id) == [*before, *last[:2]]


async def test_events_page_after_an_id(store: Store) -> None:
    for i in range(5):
        await seed(store, f"acct_{i}")
    everything = await store.events()
    assert [e.account_id for e in everything] == [f"acct_{i}" for i in range(5)]
    ids = [e.id for e in everything]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    pages, after = [], ""
    while page := await store.events(after, limit=2):
        assert len(page) <= 2
        pages.append(page)
        after = page[-1].id
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [e for p in pages for e in p] == everything
    assert await store.events(ids[2]) == everything[3:]
    assert await store.events(ids[-1]) == []
