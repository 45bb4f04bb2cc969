"""Each state change of the flows emits exactly its domain event (spec/events.md), with its payload, on
every backend: the real app in-process over SQLite, a real Redis and a real 3-node Redis Cluster.

The events of one account are read from its outbox (commit order) by a store of the test's own (a
reader apart from the server's), so each step is checked against exactly what it appended. No secret
the service issued appears in any event.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app import events as ev
from app.store import open_store
from app.store.port import OUTBOX_MAXLEN, Store
from tests.conftest import Harness, HarnessFactory
from tests.helpers import DevHuman

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "redis", "cluster"])
async def h(request: pytest.FixtureRequest, harness_factory: HarnessFactory) -> AsyncIterator[Harness]:
    overrides: dict[str, Any] = {}
    if request.param != "sqlite":
        server = request.getfixturevalue("shared_redis" if request.param == "redis" else "redis_cluster")
        overrides["store_url"] = f"{server.url}?prefix=e{uuid.uuid4().hex[:12]}:"
    async with harness_factory(**overrides) as harness:
        yield harness


@pytest.fixture
async def reader(h: Harness) -> AsyncIterator[Store]:
    store = open_store(h.settings.store_url_str)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class Outbox:
    """An account's outbox as the test has seen it so far: ``new()`` is what the last step appended."""

    def __init__(self, reader: Store, account_id: str) -> None:
        self.reader, self.account_id, self.seen = reader, account_id, 0
        self.all: list[ev.Event] = []

    async def new(self) -> list[ev.Event]:
        events = await self.reader.read_outbox(self.account_id, OUTBOX_MAXLEN)
        fresh = events[self.seen :]
        self.seen = len(events)
        self.all += fresh
        return fresh


def types(events: list[ev.Event]) -> list[str]:
    return [ev.type_of(e) for e in events]


async def test_registration_claim_refresh_and_revocation_each_emit_their_events(h: Harness, reader: Store) -> None:
    agent, human = h.agent(), DevHuman(h.client, h.settings.issuer_str)
    secrets: list[str] = []

    reg = await agent.register({"type": "anonymous", "agent": {"name": "bot", "platform": "cli"}})
    acct, rid = reg["account"]["id"], reg["id"]
    secrets += [reg["identity"]["assertion"], reg["claim"]["token"]]
    box = Outbox(reader, acct)
    created, issued = await box.new()
    assert isinstance(created, ev.RegistrationCreated) and isinstance(issued, ev.CredentialIssued)
    assert (created.account_id, created.registration_id, created.method, created.pending) == (
        acct,
        rid,
        "anonymous",
        False,
    )
    assert (created.agent_name, created.agent_platform, created.scopes) == ("bot", "cli", ("notes:read", "notes:write"))
    assert (issued.kind, issued.generation, issued.registration_id) == ("registration", 0, rid)

    # The token endpoint only reads: an access token is not an event.
    secrets.append((await agent.token(reg["identity"]["assertion"]))["access_token"])
    assert await box.new() == []

    attempt = await agent.start_claim(reg["claim"]["token"], "ada@example.com")
    secrets.append(attempt["attempt"]["verification_uri"].rsplit("/", 1)[-1])
    [started] = await box.new()
    assert isinstance(started, ev.ClaimAttemptCreated)
    assert (started.method, started.for_login_hint, started.registration_id) == ("service_auth", True, rid)

    page = await human.open_link(attempt["attempt"]["verification_uri"], "ada@example.com")
    assert await box.new() == []  # looking is not a change
    shown = await human.authorize(page)
    secrets.append(shown.code)
    user = await reader.find_user_by_email("ada@example.com")
    assert user is not None
    [confirmed] = await box.new()
    assert isinstance(confirmed, ev.ClaimConfirmed)
    assert (confirmed.attempt_id, confirmed.user_id) == (started.attempt_id, user.id)

    done = await agent.complete_claim(reg["claim"]["token"], shown.code)
    refresh_token = done["identity"]["refresh_token"]["value"]
    secrets += [done["identity"]["assertion"], refresh_token]
    completed, claim_issued = await box.new()
    assert isinstance(completed, ev.ClaimCompleted) and isinstance(claim_issued, ev.CredentialIssued)
    assert (completed.user_id, set(completed.scopes), completed.provider) == (
        user.id,
        {"notes:read", "notes:write", "notes:delete"},
        None,
    )
    assert (claim_issued.kind, claim_issued.generation) == ("claim", 1)

    refreshed = await agent.refresh(refresh_token)
    secrets += [refreshed["identity"]["assertion"], refreshed["identity"]["refresh_token"]["value"]]
    rotated, refresh_issued = await box.new()
    assert isinstance(rotated, ev.RefreshRotated) and isinstance(refresh_issued, ev.CredentialIssued)
    assert rotated.seq == 1 and (refresh_issued.kind, refresh_issued.expires_at) == ("refresh", rotated.expires_at)

    # The superseded refresh token comes back after its grace: the grant dies as a precaution.
    h.clock.advance(h.settings.refresh_grace_seconds + 1)
    await agent.refresh(refresh_token, expect=400)
    [revoked] = await box.new()
    assert isinstance(revoked, ev.RegistrationRevoked)
    assert (revoked.by, revoked.reason, revoked.registration_id) == ("agent", "refresh_token_reused", rid)

    # Per account, the outbox is the commit order; the operator's read holds the same events.
    assert types(box.all) == [
        "agent_registration.created",
        "agent_registration.credential_issued",
        "agent_registration.claim_attempt.created",
        "agent_registration.claim.confirmed",
        "agent_registration.claim.completed",
        "agent_registration.credential_issued",
        "agent_registration.refresh.rotated",
        "agent_registration.credential_issued",
        "agent_registration.revoked",
    ]
    everything = await reader.events("", 1000)
    assert [e for e in everything if e.account_id == acct] == box.all
    # No event carries a secret the service handed out (nor its secret part).
    dump = b"\n".join(ev.encode(e) for e in everything)
    for secret in secrets:
        assert secret and secret.encode() not in dump, secret[:12]


async def test_denial_expiry_of_attempts_and_deletion_emit_their_events(h: Harness, reader: Store) -> None:
    agent, human = h.agent(), DevHuman(h.client, h.settings.issuer_str)
    reg = await agent.register()
    box = Outbox(reader, reg["account"]["id"])
    await box.new()
    token = reg["claim"]["token"]
    for _ in range(2):
        await agent.start_claim(token, "ada@example.com")
    firsts = await box.new()
    assert types(firsts) == ["agent_registration.claim_attempt.created"] * 2
    # Time alone changes nothing stored; the next step drops the dead attempts, and says so.
    h.clock.advance(601)
    assert await box.new() == []
    latest = await agent.start_claim(token, "ada@example.com")
    *expired, created = await box.new()
    assert all(isinstance(e, ev.ClaimAttemptExpired) and e.reason == "ended" for e in expired)
    assert {e.attempt_id for e in expired} == {e.attempt_id for e in firsts}  # type: ignore[attr-defined]
    assert isinstance(created, ev.ClaimAttemptCreated)
    page = await human.open_link(latest["attempt"]["verification_uri"], "ada@example.com")
    await human.deny(page)
    user = await reader.find_user_by_email("ada@example.com")
    assert user is not None
    denied, revoked = await box.new()
    assert isinstance(denied, ev.ClaimDenied) and isinstance(revoked, ev.RegistrationRevoked)
    assert (denied.user_id, denied.attempt_id) == (user.id, created.attempt_id) and (
        revoked.by,
        revoked.reason,
        revoked.user_id,
    ) == (
        "human",
        "claim_denied",
        user.id,
    )

    # Wrong codes until the window's budget is spent: every attempt ends, in that same step.
    spent = await agent.register()
    box = Outbox(reader, spent["account"]["id"])
    attempt = await agent.start_claim(spent["claim"]["token"], "ada@example.com")
    code = (
        await human.authorize(await human.open_link(attempt["attempt"]["verification_uri"], "ada@example.com"))
    ).code
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    started = [e for e in await box.new() if isinstance(e, ev.ClaimAttemptCreated)]
    for _ in range(4):
        await agent.complete_claim(spent["claim"]["token"], wrong, expect=401)
    assert await box.new() == []  # a wrong code is counted on the claim, not an event
    await agent.complete_claim(spent["claim"]["token"], wrong, expect=401)
    [ended] = await box.new()
    assert isinstance(ended, ev.ClaimAttemptExpired)
    assert (ended.attempt_id, ended.reason) == (started[0].attempt_id, "code_budget")

    # The agent revokes its temporary account's credential: the account is deleted, with its counts.
    other = await agent.register()
    gone = Outbox(reader, other["account"]["id"])
    await gone.new()
    r = await h.client.post(f"{h.settings.issuer}/oauth2/revoke", data={"token": other["identity"]["assertion"]})
    assert r.status_code == 200
    [deleted] = await gone.new()
    assert isinstance(deleted, ev.AccountDeleted)
    assert (deleted.by, deleted.registrations, deleted.notes) == ("agent", 1, 0)
    # The account is gone; its outbox is not, and it is still pending delivery.
    assert await reader.get_account(other["account"]["id"], h.clock.now()) is None
    assert other["account"]["id"] in await reader.outboxes_with_pending(1000)
