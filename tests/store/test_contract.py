"""The store contract (app/store/port.py), written only against the port: every adapter passes it.

Time is always an explicit ``now``: nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import msgspec
import pytest

from app import events as ev
from app.store.port import (
    AccessState,
    Account,
    Attempt,
    Claim,
    CodeBudget,
    Delegation,
    Deleted,
    Note,
    Registration,
    Store,
    User,
    WindowHit,
)
from tests.store.conftest import Reopen, StoreInstances

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000  # a multiple of every window used below, so bucket boundaries fall on round numbers
TTL = 3600


def make_account(
    account_id: str = "acct_1",
    *,
    kind: str = "temporary",
    created_at: int = T0,
    expires_at: int | None = T0 + TTL,
    quota_notes: int = 25,
    quota_note_bytes: int = 4096,
    owner: str | None = None,
) -> Account:
    return Account(
        id=account_id,
        kind=kind,  # type: ignore[arg-type]
        created_at=created_at,
        expires_at=expires_at,
        quota_notes=quota_notes,
        quota_note_bytes=quota_note_bytes,
        owner=owner,
    )


def make_registration(
    registration_id: str = "reg_1",
    account_id: str = "acct_1",
    *,
    expires_at: int | None = T0 + TTL,
    **extra: object,
) -> Registration:
    values: dict[str, object] = {
        "id": registration_id,
        "type": "anonymous",
        "account_id": account_id,
        "scopes": ("notes:read", "notes:write"),
        "created_at": T0,
        "expires_at": expires_at,
    }
    values.update(extra)
    return Registration(**values)  # type: ignore[arg-type]


def created_event(account: Account, registration: Registration) -> list[ev.Event]:
    return [
        ev.new(
            ev.RegistrationCreated,
            float(account.created_at),
            account.id,
            registration.id,
            method="anonymous",
            scopes=registration.scopes,
        )
    ]


def revoked(account_id: str, registration_id: str, at: float, by: str = "agent") -> list[ev.Event]:
    return [ev.new(ev.RegistrationRevoked, at, account_id, registration_id, by=by)]


def deleted_event(account_id: str, registration_id: str | None, at: float) -> ev.AccountDeleted:
    return ev.new(ev.AccountDeleted, at, account_id, registration_id, by="agent", registrations=0, notes=0)


async def seed(
    store: Store,
    account_id: str = "acct_1",
    registration_id: str | None = None,
    *,
    account_expires_at: int | None = T0 + TTL,
    registration_expires_at: int | None = None,
    kind: str = "temporary",
    quota_notes: int = 25,
) -> tuple[Account, Registration]:
    account = make_account(account_id, kind=kind, expires_at=account_expires_at, quota_notes=quota_notes)
    registration = make_registration(
        registration_id or f"reg_of_{account_id}",
        account_id,
        expires_at=account_expires_at if registration_expires_at is None else registration_expires_at,
    )
    await store.create_registration(account, registration, created_event(account, registration))
    return account, registration


def note(note_id: str, account_id: str = "acct_1", *, created_at: int = T0, text: str | None = None) -> Note:
    return Note(id=note_id, account_id=account_id, text=text or f"text of {note_id}", created_at=created_at)


async def all_events(store: Store) -> list[ev.Event]:
    return await store.events("", 10_000)


# ---------------------------------------------------------------------------------------------------
# consume_once
# ---------------------------------------------------------------------------------------------------


async def test_consume_once_first_writer_wins(store: Store) -> None:
    assert await store.consume_once("pow", "c1", T0 + 300, T0) is True
    assert await store.consume_once("pow", "c1", T0 + 300, T0) is False
    assert await store.consume_once("pow", "c1", T0 + 900, T0 + 1) is False  # a later expiry changes nothing


async def test_consume_once_keys_and_namespaces_are_independent(store: Store) -> None:
    assert await store.consume_once("pow", "c1", T0 + 300, T0) is True
    assert await store.consume_once("pow", "c2", T0 + 300, T0) is True
    assert await store.consume_once("jti", "c1", T0 + 300, T0) is True
    assert await store.consume_once("jti", "c1", T0 + 300, T0) is False


async def test_consume_once_mark_holds_until_expiry_then_is_reconsumable(store: Store) -> None:
    assert await store.consume_once("pow", "c1", T0 + 300, T0) is True
    assert await store.consume_once("pow", "c1", T0 + 600, T0 + 299.999) is False
    # At exactly expires_at the mark is gone: the first writer of the new period wins, once.
    assert await store.consume_once("pow", "c1", T0 + 600, T0 + 300) is True
    assert await store.consume_once("pow", "c1", T0 + 600, T0 + 300) is False
    assert await store.consume_once("pow", "c1", T0 + 600, T0 + 599.5) is False
    assert await store.consume_once("pow", "c1", T0 + 900, T0 + 600) is True


async def test_consume_once_races_between_two_instances_have_one_winner(stores: StoreInstances) -> None:
    first, second = await stores.open(), await stores.open()
    keys = [f"k{i}" for i in range(40)]
    calls = [(k, s) for k in keys for s in (first, second)]
    results = await asyncio.gather(*(s.consume_once("race", k, T0 + 60, T0) for k, s in calls))
    wins = Counter(k for (k, _s), won in zip(calls, results, strict=True) if won)
    assert wins == Counter(keys)  # every key won exactly once


# ---------------------------------------------------------------------------------------------------
# hit_windows
# ---------------------------------------------------------------------------------------------------

WINDOW = 100.0


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


# ---------------------------------------------------------------------------------------------------
# accounts and registrations
# ---------------------------------------------------------------------------------------------------


async def test_create_registration_round_trips_every_field(store: Store) -> None:
    account = Account(
        id="acct_rt",
        kind="persistent",
        created_at=T0 - 5,
        expires_at=None,
        quota_notes=10_000,
        quota_note_bytes=32_768,
        note_count=0,
        owner="user:alice@example.com",
    )
    registration = Registration(
        id="reg_rt",
        type="identity_assertion",
        account_id="acct_rt",
        scopes=("notes:read", "notes:write", "notes:delete"),
        created_at=T0 - 5,
        expires_at=T0 + 86_400,
        generation=3,
        revoked_at=None,
        agent_name="Test Agent ✓",
        refresh_family="fam_1",
        refresh_seq=4,
        refresh_rotated_at=T0 - 1,
        refresh_expires_at=T0 + 86_400,
        source="ip:127.0.0.1",
        agent_platform="pytest/9",
    )
    await store.create_registration(account, registration, created_event(account, registration))
    assert await store.get_account("acct_rt", T0) == account
    assert await store.get_registration("acct_rt", "reg_rt", T0) == registration
    state = await store.access_state("acct_rt", "reg_rt", None, T0)
    assert state == AccessState(registration=registration, account=account, token_revoked=False)


async def test_create_registration_minimal_fields(store: Store) -> None:
    account, registration = await seed(store)
    assert await store.get_account(account.id, T0) == account
    got = await store.get_registration(registration.account_id, registration.id, T0)
    assert got == registration
    assert got is not None
    assert got.agent_name is None
    assert got.refresh_family is None and got.refresh_seq == 0
    assert got.revoked_at is None


async def test_create_registration_writes_its_event(store: Store) -> None:
    account, registration = await seed(store)
    [event] = await all_events(store)
    assert isinstance(event, ev.RegistrationCreated)
    assert (event.account_id, event.registration_id, event.method) == (account.id, registration.id, "anonymous")
    assert event.at == pytest.approx(float(T0))


async def test_missing_records_are_none(store: Store) -> None:
    assert await store.get_account("nope", T0) is None
    assert await store.get_registration("acct_1", "nope", T0) is None
    assert await store.access_state("acct_1", "nope", None, T0) is None
    assert await store.access_state("acct_1", "nope", "tok", T0) is None


async def test_expiry_hides_accounts_and_registrations_at_exactly_expires_at(store: Store) -> None:
    account, registration = await seed(store, account_expires_at=T0 + 100)
    for now in (T0, T0 + 99, T0 + 99.999):
        assert await store.get_account(account.id, now) == account
        assert await store.get_registration(registration.account_id, registration.id, now) == registration
        assert await store.access_state(registration.account_id, registration.id, None, now) is not None
    for now in (T0 + 100, T0 + 100.001, T0 + 10_000):
        assert await store.get_account(account.id, now) is None
        assert await store.get_registration(registration.account_id, registration.id, now) is None
        assert await store.access_state(registration.account_id, registration.id, None, now) is None


async def test_persistent_account_never_expires(store: Store) -> None:
    account, registration = await seed(store, kind="persistent", account_expires_at=None)
    far = T0 + 10 * 365 * 86_400
    assert await store.get_account(account.id, far) == account
    assert await store.get_registration(registration.account_id, registration.id, far) == registration


async def test_access_state_is_none_when_the_account_expired(store: Store) -> None:
    # The registration outlives its account: the account is gone, so is the access state.
    _account, registration = await seed(store, account_expires_at=T0 + 100, registration_expires_at=T0 + 1000)
    assert await store.access_state(registration.account_id, registration.id, None, T0 + 99) is not None
    assert await store.get_registration(registration.account_id, registration.id, T0 + 100) == registration
    assert await store.access_state(registration.account_id, registration.id, None, T0 + 100) is None
    assert await store.access_state(registration.account_id, registration.id, "tok", T0 + 100) is None


async def test_access_state_is_none_when_the_registration_expired(store: Store) -> None:
    account, registration = await seed(
        store, account_expires_at=None, kind="persistent", registration_expires_at=T0 + 50
    )
    assert await store.access_state(registration.account_id, registration.id, None, T0 + 49) is not None
    assert await store.access_state(registration.account_id, registration.id, None, T0 + 50) is None
    assert await store.get_account(account.id, T0 + 50) == account


async def test_access_state_reports_revoked_token_ids(store: Store) -> None:
    _account, registration = await seed(store)
    state = await store.access_state(registration.account_id, registration.id, "tok_1", T0)
    assert state is not None
    assert state.token_revoked is False
    assert await store.revoke_token("acct_1", "tok_1", T0 + 600, T0) is True
    assert await store.revoke_token("acct_1", "tok_1", T0 + 600, T0 + 1) is False  # already marked
    revoked = await store.access_state(registration.account_id, registration.id, "tok_1", T0 + 1)
    assert revoked is not None
    assert revoked.token_revoked is True
    other = await store.access_state(registration.account_id, registration.id, "tok_2", T0 + 1)
    assert other is not None
    assert other.token_revoked is False
    no_token = await store.access_state(registration.account_id, registration.id, None, T0 + 1)
    assert no_token is not None
    assert no_token.token_revoked is False
    # The mark lasts until the token would have expired anyway, not a moment beyond.
    at_boundary = await store.access_state(registration.account_id, registration.id, "tok_1", T0 + 600)
    assert at_boundary is not None
    assert at_boundary.token_revoked is False
    just_before = await store.access_state(registration.account_id, registration.id, "tok_1", T0 + 599.9)
    assert just_before is not None
    assert just_before.token_revoked is True


async def test_revoke_token_is_independent_of_consume_once_namespaces(store: Store) -> None:
    assert await store.consume_once("jti", "tok_1", T0 + 600, T0) is True
    assert await store.revoke_token("acct_1", "tok_1", T0 + 600, T0) is True


async def test_revoke_registration_true_once_with_one_event(store: Store) -> None:
    account, registration = await seed(store)
    before = await all_events(store)
    event = revoked(account.id, registration.id, T0 + 10)
    assert await store.revoke_registration(registration.account_id, registration.id, T0 + 10, event) is True
    assert await store.revoke_registration(registration.account_id, registration.id, T0 + 11, event) is False
    new = (await all_events(store))[len(before) :]
    assert new == event
    got = await store.get_registration(registration.account_id, registration.id, T0 + 12)
    assert got is not None
    assert got.revoked_at == T0 + 10
    state = await store.access_state(registration.account_id, registration.id, None, T0 + 12)
    assert state is not None
    assert state.registration.revoked_at == T0 + 10
    assert await store.get_account(account.id, T0 + 12) == account  # the account stays


async def test_revoke_registration_of_missing_or_expired_is_false_without_event(store: Store) -> None:
    _account, registration = await seed(store, account_expires_at=T0 + 100)
    before = await all_events(store)
    event = revoked("acct_1", registration.id, T0 + 100)
    assert await store.revoke_registration("acct_1", "reg_missing", T0, event) is False
    assert await store.revoke_registration(registration.account_id, registration.id, T0 + 100, event) is False
    assert await all_events(store) == before


async def test_delete_account_cascades_and_reports_counts(store: Store) -> None:
    account, registration = await seed(store)
    for i in range(3):
        assert await store.add_note(note(f"n{i}"), T0) == "created"
    await seed(store, "acct_other")
    assert await store.add_note(note("keep", "acct_other"), T0) == "created"
    before = await all_events(store)
    event = deleted_event(account.id, registration.id, T0 + 5)
    deleted = await store.delete_account(account.id, T0 + 5, event)
    assert deleted == Deleted(account_id=account.id, registrations=1, notes=3)
    assert await store.get_account(account.id, T0 + 5) is None
    assert await store.get_registration(registration.account_id, registration.id, T0 + 5) is None
    assert await store.access_state(registration.account_id, registration.id, None, T0 + 5) is None
    assert await store.list_notes(account.id, T0 + 5) == []
    assert await store.get_note(account.id, "n0", T0 + 5) is None
    [written] = (await all_events(store))[len(before) :]
    assert written == msgspec.structs.replace(event, registrations=1, notes=3)
    # Someone else's things are untouched.
    assert [n.id for n in await store.list_notes("acct_other", T0 + 5)] == ["keep"]
    assert await store.get_account("acct_other", T0 + 5) is not None
    # Gone means gone: a second delete reports nothing and writes nothing.
    assert await store.delete_account(account.id, T0 + 6, event) is None
    assert len(await all_events(store)) == len(before) + 1


async def test_delete_account_of_missing_account_is_none(store: Store) -> None:
    assert await store.delete_account("nope", T0, deleted_event("nope", None, T0)) is None
    assert await all_events(store) == []


async def test_delete_account_of_expired_account_is_none_and_the_sweeper_reports_it(store: Store) -> None:
    # An expired account is absent (port rule 1): deleting it reports nothing; its expiry is the sweeper's.
    account, _registration = await seed(store, account_expires_at=T0 + 100)
    before = await all_events(store)
    assert await store.delete_account(account.id, T0 + 100, deleted_event(account.id, None, T0 + 100)) is None
    assert await all_events(store) == before
    swept = await store.sweep(T0 + 100, 10)
    assert [d.account_id for d in swept] == [account.id]


# ---------------------------------------------------------------------------------------------------
# notes
# ---------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------
# events: the operator's read (tests/store/test_events.py checks each state change's event)
# ---------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------
# durability: a fresh adapter instance sees everything a closed one committed
# ---------------------------------------------------------------------------------------------------


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


async def test_a_registration_is_only_found_through_its_own_account(store: Store) -> None:
    _account, registration = await seed(store)
    other = make_account("acct_other")
    await store.create_registration(
        other,
        make_registration("reg_other", "acct_other"),
        created_event(other, make_registration("reg_other", "acct_other")),
    )
    assert await store.get_registration("acct_other", registration.id, T0) is None
    assert await store.access_state("acct_other", registration.id, None, T0) is None
    event = revoked("acct_other", registration.id, T0)
    assert await store.revoke_registration("acct_other", registration.id, T0, event) is False
    assert await store.access_state(registration.account_id, registration.id, None, T0) is not None


# ---------------------------------------------------------------------------------------------------
# People and provider delegations (ID-JAG)
# ---------------------------------------------------------------------------------------------------

ISS = "https://agents.example"


def make_user_records(
    user_id: str = "usr_1", email: str = "ada@example.com", subject: str = "sub-1", *, status: str = "active"
) -> tuple[User, Account, Registration, Delegation]:
    account = make_account(f"acct_{user_id}", kind="persistent", expires_at=None)
    registration = make_registration(f"reg_{user_id}", account.id, expires_at=None, type="identity_assertion")
    user = User(id=user_id, email=email, account_id=account.id, created_at=T0)
    delegation = Delegation(
        issuer=ISS,
        subject=subject,
        user_id=user_id,
        account_id=account.id,
        registration_id=registration.id,
        status=status,
        created_at=T0,
    )  # type: ignore[arg-type]
    return user, account, registration, delegation


def user_event(user: User) -> list[ev.Event]:
    return [
        ev.new(
            ev.RegistrationCreated,
            float(T0),
            user.account_id,
            f"reg_{user.id}",
            method="identity_assertion",
            scopes=("notes:read",),
            provider=ISS,
        )
    ]


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
    claim = make_claim(
        account.id, "reg_link", token_hash="h1", attempts=(attempt("att_1"),), provider=ISS, subject="sub-9"
    )
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
    renewed_claim = msgspec.structs.replace(claim, token_hash="h2", attempts=(attempt("att_2"),), version=7)
    assert await store.save_pending_link(pending, renewed, renewed_claim, event()) is True
    assert await store.get_registration(account.id, "reg_link", T0) == renewed
    assert await store.get_claim(account.id, "reg_link", T0) == renewed_claim
    # The active delegation of sub-1 is never turned into a pending one.
    hijack = msgspec.structs.replace(delegation, status="pending", registration_id="reg_link")
    assert await store.save_pending_link(hijack, renewed, renewed_claim, event()) is False
    assert await store.get_delegation(ISS, "sub-1") == delegation


async def test_not_before_only_moves_forward(store: Store) -> None:
    _account, registration = await seed(store)
    event = revoked(registration.account_id, registration.id, T0, by="provider")
    assert await store.set_not_before(registration.account_id, registration.id, T0 + 50, event) is True
    assert await store.set_not_before(registration.account_id, registration.id, T0 + 10, event) is True  # no move
    got = await store.get_registration(registration.account_id, registration.id, T0)
    assert got is not None and got.not_before == T0 + 50
    assert await store.set_not_before(registration.account_id, "reg_missing", T0, event) is False
    assert await store.set_not_before("acct_other", registration.id, T0, event) is False


# ---------------------------------------------------------------------------------------------------
# humans: sign-in, sessions, ownership
# ---------------------------------------------------------------------------------------------------
OIDC = "https://login.example"


def signin_records(user_id: str, email: str) -> tuple[User, Account]:
    account = make_account(f"acct_{user_id}", kind="persistent", expires_at=None, owner=user_id)
    return User(id=user_id, email=email, account_id=account.id, created_at=T0), account


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


async def test_registrations_of_lists_every_live_grant(store: Store) -> None:
    account, first = await seed(store, account_expires_at=None, kind="persistent")
    second = make_registration("reg_second", account.id, expires_at=None, created_at=T0 + 5)

    def event() -> list[ev.Event]:
        return created_event(account, make_registration("reg_link", account.id))

    delegation = Delegation(
        issuer=ISS,
        subject="s",
        user_id="u",
        account_id=account.id,
        registration_id=second.id,
        status="pending",
        created_at=T0,
    )
    await store.save_pending_link(delegation, second, make_claim(account.id, second.id), event())
    await store.revoke_registration(account.id, first.id, T0 + 1, event())
    got = await store.registrations_of(account.id, T0 + 2)
    assert [r.id for r in got] == [first.id, second.id]
    assert got[0].revoked_at == T0 + 1
    assert await store.registrations_of("acct_missing", T0) == []


# ---------------------------------------------------------------------------------------------------
# the claim ceremony
# ---------------------------------------------------------------------------------------------------


def make_claim(account_id: str = "acct_1", registration_id: str = "reg_of_acct_1", **extra: object) -> Claim:
    values: dict[str, object] = {
        "account_id": account_id,
        "registration_id": registration_id,
        "token_hash": "tok",
        "expires_at": T0 + TTL,
        "scopes_after": ("notes:read", "notes:write", "notes:delete"),
    }
    values.update(extra)
    return Claim(**values)  # type: ignore[arg-type]


def attempt(attempt_id: str = "att_1", **extra: object) -> Attempt:
    values: dict[str, object] = {"id": attempt_id, "link_hash": "h-" + attempt_id, "expires_at": T0 + 600}
    values.update(extra)
    return Attempt(**values)  # type: ignore[arg-type]


def claimed_event(account: Account) -> list[ev.Event]:
    return [ev.new(ev.ClaimCompleted, float(T0), account.id, None, user_id="usr_1", scopes=("notes:read",))]


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


BUDGET = CodeBudget(per_window=5, per_claim=15)


def shown(attempt_id: str = "att_1", code: str = "right", **extra: object) -> Attempt:
    """A confirmed attempt whose code (digest ``code``) lives until T0 + 600."""
    return attempt(attempt_id, confirmed_by="usr_1", code_hash=code, code_expires_at=T0 + 600, **extra)


async def test_check_code_charges_a_wrong_code_before_answering(store: Store) -> None:
    _account, registration = await seed(store)
    ids = (registration.account_id, registration.id)
    claim = make_claim(*ids, attempts=(shown("att_1", "right1"), shown("att_2", "right2"), attempt("att_3")))
    assert await store.save_claim(claim, None, [])
    digests = {"att_1": "wrong", "att_2": "wrong"}
    wrong = await store.check_code(*ids, digests, T0, BUDGET)
    assert (wrong.compared, wrong.matched) == (True, None)
    assert wrong.claim is not None
    assert (wrong.claim.version, wrong.claim.window_failures, wrong.claim.failures) == (1, 1, 1)
    assert await store.get_claim(*ids, T0) == wrong.claim  # the charge is stored, every field intact
    # Any live code matches, and a match costs nothing.
    right = await store.check_code(*ids, {"att_1": "wrong", "att_2": "right2"}, T0, BUDGET)
    assert (right.compared, right.matched, right.claim) == (True, "att_2", wrong.claim)


async def test_check_code_needs_a_digest_for_every_live_code(store: Store) -> None:
    """A caller that read the claim before another attempt was confirmed must look again: nothing is
    compared or charged."""
    _account, registration = await seed(store)
    ids = (registration.account_id, registration.id)
    claim = make_claim(*ids, attempts=(shown("att_1", "right1"), shown("att_2", "right2")))
    assert await store.save_claim(claim, None, [])
    stale = await store.check_code(*ids, {"att_1": "right1"}, T0, BUDGET)
    assert (stale.compared, stale.matched, stale.claim) == (False, None, claim)


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


async def test_rotate_refresh_advances_exactly_once(store: Store) -> None:
    account, registration = await seed(store, account_expires_at=None, kind="persistent")
    claim = make_claim(account.id, registration.id)
    await store.save_claim(claim, None, [])
    with_family = msgspec.structs.replace(registration, refresh_family="fam", refresh_expires_at=T0 + 100)
    done = msgspec.structs.replace(claim, version=1, status="claimed")
    await store.complete_claim(done, 0, account, with_family, None, claimed_event(account))
    assert await store.rotate_refresh(account.id, registration.id, "fam", 0, T0 + 200, T0 + 1, []) is True
    assert await store.rotate_refresh(account.id, registration.id, "fam", 0, T0 + 200, T0 + 1, []) is False
    assert await store.rotate_refresh(account.id, registration.id, "other", 1, T0 + 200, T0 + 1, []) is False
    got = await store.get_registration(account.id, registration.id, T0 + 2)
    assert got is not None and (got.refresh_seq, got.refresh_rotated_at, got.refresh_expires_at) == (
        1,
        T0 + 1,
        T0 + 200,
    )
    await store.revoke_registration(account.id, registration.id, T0 + 3, revoked(account.id, registration.id, T0))
    assert await store.rotate_refresh(account.id, registration.id, "fam", 1, T0 + 200, T0 + 4, []) is False


# ---------------------------------------------------------------------------------------------------
# the operator's listing
# ---------------------------------------------------------------------------------------------------


async def list_all(store: Store, now: float, *, page: int, kind: str | None = None) -> list[list[str]]:
    """Every page of ``list_accounts``, walking with the last id of each page."""
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        got = await store.list_accounts(after, page, now, kind)  # type: ignore[arg-type]
        assert len(got) <= page
        if not got:
            return pages
        pages.append([a.id for a in got])
        after = got[-1].id


async def test_list_accounts_orders_by_id_and_pages_by_the_last_id(store: Store) -> None:
    ids = ["acct_b", "acct_A", "acct_c", "acct_a", "acct_0", "acct_bb"]
    for account_id in ids:
        await seed(store, account_id)
    # Bytewise order: digits < upper case < lower case; a prefix sorts before its extensions.
    expected = ["acct_0", "acct_A", "acct_a", "acct_b", "acct_bb", "acct_c"]
    assert [a.id for a in await store.list_accounts(None, 100, T0)] == expected
    assert await list_all(store, T0, page=4) == [expected[:4], expected[4:]]
    assert await list_all(store, T0, page=1) == [[i] for i in expected]
    assert [a.id for a in await store.list_accounts("acct_a", 2, T0)] == ["acct_b", "acct_bb"]
    # The cursor need not be a listed id: it is only a position.
    assert [a.id for a in await store.list_accounts("acct_b0", 10, T0)] == ["acct_bb", "acct_c"]
    assert await store.list_accounts("acct_c", 10, T0) == []
    assert await store.list_accounts(None, 0, T0) == []
    # Whole records, as get_account returns them.
    first = await store.list_accounts(None, 1, T0)
    assert first == [await store.get_account("acct_0", T0)]


async def test_list_accounts_shows_live_accounts_only(store: Store) -> None:
    await seed(store, "acct_short", account_expires_at=T0 + 10)
    await seed(store, "acct_long", account_expires_at=T0 + 1000)
    await seed(store, "acct_kept", account_expires_at=None, kind="persistent")
    assert [a.id for a in await store.list_accounts(None, 10, T0 + 9)] == ["acct_kept", "acct_long", "acct_short"]
    # Absent at exactly its expiry, before any sweeper ran.
    assert [a.id for a in await store.list_accounts(None, 10, T0 + 10)] == ["acct_kept", "acct_long"]
    assert [a.id for a in await store.list_accounts(None, 10, T0 + 10**6)] == ["acct_kept"]
    # Deleted and swept accounts are gone for good.
    await store.sweep(T0 + 10, 100)
    assert await store.delete_account("acct_long", T0, deleted_event("acct_long", None, T0)) is not None
    assert [a.id for a in await store.list_accounts(None, 10, T0)] == ["acct_kept"]


async def test_list_accounts_filters_by_kind_across_many_others(store: Store) -> None:
    # Enough non-matching accounts between the matching ones that a backend reading in batches must
    # read more than one batch to fill a page.
    persistent = ["acct_p040", "acct_p130", "acct_p210"]
    for i in range(220):
        account_id = f"acct_p{i:03d}"
        kind = "persistent" if account_id in persistent else "temporary"
        await seed(store, account_id, kind=kind, account_expires_at=None if kind == "persistent" else T0 + TTL)
    assert await list_all(store, T0, page=2, kind="persistent") == [persistent[:2], persistent[2:]]
    temporary = await list_all(store, T0, page=100, kind="temporary")
    assert [len(p) for p in temporary] == [100, 100, 17]
    assert not set(persistent) & {i for p in temporary for i in p}
    # Once the temporary ones expired, the walk still ends (nothing but expired entries to skip).
    assert await list_all(store, T0 + TTL, page=1, kind="temporary") == []
    assert await list_all(store, T0 + TTL, page=5) == [persistent]


async def test_list_accounts_includes_people_and_follows_claims(store: Store) -> None:
    user, account, registration, delegation = make_user_records()
    assert await store.create_user(user, account, registration, delegation, user_event(user))
    # A losing create_user leaves nothing listed.
    u2, a2, r2, d2 = make_user_records("usr_2", "ada@example.com", "sub-2")
    assert await store.create_user(u2, a2, r2, d2, user_event(u2)) is False
    signed_in, own = signin_records("usr_s", "sam@example.com")
    assert await store.sign_in_user(OIDC, "s-1", "sam@example.com", signed_in, own) == signed_in
    loser, loser_account = signin_records("usr_l", "lee@example.com")
    assert await store.sign_in_user(OIDC, "s-1", "lee@example.com", loser, loser_account) == signed_in
    temporary, reg = await seed(store, "acct_t")
    listed = await store.list_accounts(None, 10, T0)
    assert [a.id for a in listed] == sorted([account.id, own.id, temporary.id])
    assert [a.id for a in await store.list_accounts(None, 10, T0, "persistent")] == sorted([account.id, own.id])
    # A claim turns a temporary account persistent: the listing shows its new kind.
    claim = make_claim(temporary.id, reg.id)
    await store.save_claim(claim, None, [])
    persistent = msgspec.structs.replace(temporary, kind="persistent", expires_at=None, owner=user.id)
    done = msgspec.structs.replace(claim, version=1, status="claimed", expires_at=None)
    assert await store.complete_claim(done, 0, persistent, reg, None, claimed_event(temporary))
    assert [a.id for a in await store.list_accounts(None, 10, T0 + TTL * 2, "persistent")] == sorted(
        [account.id, own.id, temporary.id]
    )
    assert await store.list_accounts(None, 10, T0, "temporary") == []


async def test_list_accounts_survives_reopen(store: Store, reopen: Reopen) -> None:
    await seed(store, "acct_1")
    await seed(store, "acct_2", account_expires_at=None, kind="persistent")
    store = await reopen(store)
    assert [a.id for a in await store.list_accounts(None, 10, T0)] == ["acct_1", "acct_2"]
