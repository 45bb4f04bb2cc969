"""The verbs that end a grant (app/flows/grants.py), called directly on the real app's store (SQLite), and
the one compare-and-set retry loop (``claims.settle``). Each entry point's own path to them (the agent's
revocation, the claim denial, the account page, provider SETs, ``authmd admin``) is tested with it."""

from __future__ import annotations

import pytest

from app import events as ev
from app.clock import ManualClock
from app.errors import AuthError
from app.flows import claim as claims
from app.flows import grants

pytestmark = pytest.mark.anyio


async def _new_events(harness, seen: int) -> list[ev.Event]:
    return (await harness.ctx.store.events(limit=1000))[seen:]


async def test_revoke_grant_kills_it_once_with_its_events(harness):
    agent = harness.agent()
    reg, access = await agent.start()
    account_id, seen = reg["account"]["id"], len(await harness.ctx.store.events(limit=1000))
    assert await grants.revoke_grant(harness.ctx, account_id, reg["id"], by="operator", operator="ops")
    assert (await agent.api("GET", "/notes", access)).status_code == 401
    revoked, action = await _new_events(harness, seen)
    assert isinstance(revoked, ev.RegistrationRevoked) and revoked.by == "operator"
    assert isinstance(action, ev.OperatorAction) and (action.operator, action.action) == ("ops", "revoke")
    assert (revoked.registration_id, action.registration_id) == (reg["id"], reg["id"])
    # Already revoked: nothing changes and nothing is written.
    seen += 2
    assert not await grants.revoke_grant(harness.ctx, account_id, reg["id"], by="human", user_id="usr_x")
    assert await _new_events(harness, seen) == []


async def test_an_actor_of_store_and_clock_acts_at_its_clock(harness):
    """What the operator CLI builds: no keys, no outbound client; its events carry its clock's time."""
    reg, _ = await harness.agent().start()
    at = harness.clock.now() + 5
    actor = grants.Actor(harness.ctx.store, ManualClock(at))
    seen = len(await harness.ctx.store.events(limit=1000))
    assert await grants.revoke_grant(actor, reg["account"]["id"], reg["id"], by="agent", reason="token_revoked")
    [revoked] = await _new_events(harness, seen)
    assert isinstance(revoked, ev.RegistrationRevoked) and revoked.at == at and revoked.reason == "token_revoked"


async def test_delete_account_reports_what_it_deleted_once(harness):
    agent = harness.agent()
    reg, access = await agent.start()
    assert (await agent.api("POST", "/notes", access, json={"text": "x"})).status_code == 201
    seen = len(await harness.ctx.store.events(limit=1000))
    deleted = await grants.delete_account(harness.ctx, reg["account"]["id"], reg["id"], by="agent")
    assert deleted is not None and (deleted.registrations, deleted.notes) == (1, 1)
    [event] = await _new_events(harness, seen)
    assert isinstance(event, ev.AccountDeleted) and (event.by, event.registrations, event.notes) == ("agent", 1, 1)
    assert await grants.delete_account(harness.ctx, reg["account"]["id"], reg["id"], by="agent") is None
    assert await _new_events(harness, seen + 1) == []


async def test_revoke_issued_until_kills_what_was_issued_up_to_then(harness):
    agent = harness.agent()
    reg, access = await agent.start()
    now = int(harness.clock.now())
    seen = len(await harness.ctx.store.events(limit=1000))
    assert await grants.revoke_issued_until(harness.ctx, reg["account"]["id"], reg["id"], now, provider="https://p")
    assert (await agent.api("GET", "/notes", access)).status_code == 401
    [event] = await _new_events(harness, seen)
    assert isinstance(event, ev.RegistrationRevoked)
    assert (event.by, event.reason, event.provider, event.not_before) == (
        "provider",
        "provider_event",
        "https://p",
        now,
    )


async def test_settle_decides_again_after_a_lost_round_and_gives_up_after_its_rounds():
    rounds: list[int] = []

    async def lands_third() -> str | claims.Lost:
        rounds.append(1)
        return "done" if len(rounds) == 3 else claims.LOST

    assert await claims.settle(lands_third) == "done" and len(rounds) == 3

    lost: list[int] = []

    async def always_lost() -> claims.Lost | None:
        lost.append(1)
        return claims.LOST

    with pytest.raises(AuthError) as refused:
        await claims.settle(always_lost, rounds=4)
    assert len(lost) == 4 and refused.value.code == "temporarily_unavailable"

    # A step whose result is None lands (None is a result, not a lost round).
    async def nothing() -> claims.Lost | None:
        return None

    assert await claims.settle(nothing) is None
