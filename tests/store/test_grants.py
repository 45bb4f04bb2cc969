"""Grants: accounts and their registrations, the token check, revocation, refresh rotation, deletion,
and the operator's listing.

The store contract, one file per port. Written only against the port (app/store/port.py); the
``store`` fixture (tests/store/conftest.py) runs each test on every backend. Time is always an explicit
``now``: nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from app import events as ev
from app.store.port import AccessState, Account, Admission, Delegation, Deleted, Registration, Store, WindowHit
from tests.store.conftest import Reopen
from tests.store.records import (
    ISS,
    OIDC,
    T0,
    TTL,
    WINDOW,
    all_events,
    claimed_event,
    created_event,
    deleted_event,
    make_account,
    make_claim,
    make_registration,
    make_user_records,
    note,
    revoked,
    seed,
    signin_records,
    user_event,
)

pytestmark = pytest.mark.anyio


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


async def test_not_before_only_moves_forward(store: Store) -> None:
    _account, registration = await seed(store)
    event = revoked(registration.account_id, registration.id, T0, by="provider")
    assert await store.set_not_before(registration.account_id, registration.id, T0 + 50, event) is True
    assert await store.set_not_before(registration.account_id, registration.id, T0 + 10, event) is True  # no move
    got = await store.get_registration(registration.account_id, registration.id, T0)
    assert got is not None and got.not_before == T0 + 50
    assert await store.set_not_before(registration.account_id, "reg_missing", T0, event) is False
    assert await store.set_not_before("acct_other", registration.id, T0, event) is False


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


async def test_an_admitted_creation_is_counted_in_its_windows_in_the_same_step(store: Store) -> None:
    hits = (WindowHit("reg:src:a", 2), WindowHit("reg:all", 10))
    for n in (1, 2):
        account, registration = make_account(f"acct_{n}"), make_registration(f"reg_{n}", f"acct_{n}")
        counted = await store.create_registration(
            account, registration, created_event(account, registration), Admission(hits, T0, WINDOW)
        )
        assert [(c.allowed, c.count) for c in counted] == [(True, n), (True, n)]
        assert await store.get_account(account.id, T0) is not None
    looked = await store.hit_windows([WindowHit(h.key, None, increment=False) for h in hits], T0, WINDOW)
    assert [c.count for c in looked] == [2, 2]


async def test_a_refused_admission_creates_nothing_and_counts_nothing(store: Store) -> None:
    await store.hit_windows([WindowHit("reg:src:a", None)], T0, WINDOW)
    hits = (WindowHit("reg:src:a", 1), WindowHit("reg:all", 10))
    account, registration = make_account(), make_registration()
    counted = await store.create_registration(
        account, registration, created_event(account, registration), Admission(hits, T0, WINDOW)
    )
    assert [c.allowed for c in counted] == [False, True]
    assert counted[0].retry_after > 0
    assert await store.get_account(account.id, T0) is None
    assert await store.get_registration(account.id, registration.id, T0) is None
    assert await store.list_accounts(None, 10, T0) == []
    assert await all_events(store) == []
    looked = await store.hit_windows([WindowHit(h.key, None, increment=False) for h in hits], T0, WINDOW)
    assert [c.count for c in looked] == [1, 0]


async def test_concurrent_admissions_create_exactly_what_the_limit_allows(store: Store) -> None:
    hits = (WindowHit("reg:src:a", 5), WindowHit("reg:all", 100))

    async def create(n: int) -> bool:
        account, registration = make_account(f"acct_{n}"), make_registration(f"reg_{n}", f"acct_{n}")
        counted = await store.create_registration(
            account, registration, created_event(account, registration), Admission(hits, T0, WINDOW)
        )
        return all(c.allowed for c in counted)

    admitted = await asyncio.gather(*(create(n) for n in range(20)))
    assert sum(admitted) == 5
    assert len(await store.list_accounts(None, 100, T0)) == 5
    assert len(await all_events(store)) == 5


def _mcp_grant(account_id: str, **extra: object) -> Registration:
    return make_registration(
        "reg_mcp",
        account_id,
        expires_at=None,
        **{
            "type": "mcp",
            "client_id": "https://client.example/metadata.json",
            "resource": "https://authmd.example/api",
            "agent_name": "Example MCP client",
            "refresh_family": "fam_m",
            "refresh_expires_at": T0 + 86_400,
            **extra,
        },
    )


def _mcp_created(registration: Registration, at: float) -> list[ev.Event]:
    return [
        ev.new(
            ev.RegistrationCreated,
            at,
            registration.account_id,
            registration.id,
            method="mcp",
            scopes=registration.scopes,
            client_id=registration.client_id,
        )
    ]


async def test_put_registration_adds_a_grant_to_a_live_account_with_its_event(store: Store) -> None:
    account, first = await seed(store, kind="persistent", account_expires_at=None)
    before = await all_events(store)
    grant = _mcp_grant(account.id)
    created = _mcp_created(grant, T0 + 1)
    assert await store.put_registration(grant, T0 + 1, created) is True
    assert await store.get_registration(account.id, grant.id, T0 + 2) == grant
    assert {r.id for r in await store.registrations_of(account.id, T0 + 2)} == {first.id, grant.id}
    state = await store.access_state(account.id, grant.id, None, T0 + 2)
    assert state is not None and state.registration.client_id == grant.client_id
    assert (await all_events(store))[len(before) :] == created


async def test_put_registration_replaces_the_grant_whole(store: Store) -> None:
    account, _ = await seed(store, kind="persistent", account_expires_at=None)
    grant = _mcp_grant(account.id, revoked_at=T0, refresh_seq=7, refresh_rotated_at=T0)
    assert await store.put_registration(grant, T0 + 1, _mcp_created(grant, T0 + 1)) is True
    again = _mcp_grant(account.id, generation=1, scopes=("notes:read",), refresh_family="fam_n")
    assert await store.put_registration(again, T0 + 2, _mcp_created(again, T0 + 2)) is True
    got = await store.get_registration(account.id, again.id, T0 + 3)
    assert got == again  # no field of the revoked grant survives (revoked_at, the old family's seq)


async def test_put_registration_on_a_missing_or_expired_account_is_false_without_event(store: Store) -> None:
    account, _ = await seed(store, account_expires_at=T0 + 100)
    before = await all_events(store)
    missing = _mcp_grant("acct_missing")
    assert await store.put_registration(missing, T0, _mcp_created(missing, T0)) is False
    late = _mcp_grant(account.id)
    assert await store.put_registration(late, T0 + 100, _mcp_created(late, T0 + 100)) is False
    assert await store.get_registration(account.id, late.id, T0 + 50) is None
    assert await all_events(store) == before


async def test_put_registration_on_a_temporary_account_dies_with_it(store: Store) -> None:
    account, _ = await seed(store, account_expires_at=T0 + 100)
    grant = _mcp_grant(account.id)
    assert await store.put_registration(grant, T0, _mcp_created(grant, T0)) is True
    assert await store.access_state(account.id, grant.id, None, T0 + 99) is not None
    assert await store.access_state(account.id, grant.id, None, T0 + 100) is None
