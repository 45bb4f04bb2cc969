"""The verbs that end a grant: every entry point (the agent's revocation and refresh, the human's pages,
a provider's security event, the operator's CLI) revokes and deletes through these, and each writes its
event in the same store step as the change. Nothing else makes ``agent_registration.revoked``,
``agent_registration.deleted`` or ``operator.action`` (tests/unit/test_verbs_only.py).

A verb needs only the store and the clock (``Acting``): the server's ``Context`` is one, and the operator
CLI, which holds no keys and makes no outbound calls, builds a smaller one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec

from app import events as ev
from app import observe
from app.clock import Clock
from app.observe import Tally
from app.store.port import Deleted, Store

# What a revocation records as its reason (None: a person's or an operator's plain decision).
RevokeReason = Literal["token_revoked", "refresh_token_reused", "claim_denied", "authorization_code_reused"]


class Acting(Protocol):
    """What a verb acts with: the store and the clock."""

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def tally(self) -> Tally | None: ...


@dataclass(frozen=True)
class Actor:
    """An ``Acting`` of just the two: what the operator CLI builds (it holds no keys, calls out nowhere)."""

    store: Store
    clock: Clock
    tally: Tally | None = None  # the CLI counts nothing for the console's charts


async def revoke_grant(
    ctx: Acting,
    account_id: str,
    registration_id: str,
    *,
    by: ev.RevokedBy,
    reason: RevokeReason | None = None,
    user_id: str | None = None,
    operator: str | None = None,
) -> bool:
    """Kill a grant and everything derived from it. True if it was live (False: already revoked, or gone).
    ``user_id``: the human who acted; ``operator``: the operator who did (``by="operator"``), recorded
    with an ``operator.action`` event of its own."""
    now = ctx.clock.now()
    events: list[ev.Event] = [
        ev.new(ev.RegistrationRevoked, now, account_id, registration_id, by=by, reason=reason, user_id=user_id)
    ]
    if by == "operator":
        assert operator is not None, "an operator's revocation names the operator"
        events.append(ev.new(ev.OperatorAction, now, account_id, registration_id, operator=operator, action="revoke"))
    done = await ctx.store.revoke_registration(account_id, registration_id, now, events)
    if done:
        observe.emitted(ctx.tally, events)
    return done


async def revoke_issued_until(
    ctx: Acting, account_id: str, registration_id: str, not_before: int, *, provider: str
) -> bool:
    """A provider's revocation (RFC 8935): every token of the grant issued at or before ``not_before``
    dies; the grant itself stays, for the provider to vouch for its subject again. True if it moved."""
    revoked = ev.new(
        ev.RegistrationRevoked,
        ctx.clock.now(),
        account_id,
        registration_id,
        by="provider",
        reason="provider_event",
        provider=provider,
        not_before=not_before,
    )
    done = await ctx.store.set_not_before(account_id, registration_id, not_before, [revoked])
    if done:
        observe.emitted(ctx.tally, [revoked])
    return done


async def delete_account(ctx: Acting, account_id: str, registration_id: str, *, by: ev.RevokedBy) -> Deleted | None:
    """Delete an account with everything it owns (the agent revoked its unclaimed temporary account's
    credential); None if it was already gone. The store fills in the counts of what it deleted."""
    now = ctx.clock.now()
    deleted = ev.new(ev.AccountDeleted, now, account_id, registration_id, by=by, registrations=0, notes=0)
    done = await ctx.store.delete_account(account_id, now, deleted)
    if done is not None:
        counted = msgspec.structs.replace(deleted, registrations=done.registrations, notes=done.notes)
        observe.emitted(ctx.tally, [counted])
    return done
