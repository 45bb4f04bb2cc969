"""What the operator sees of a record: typed views, times in RFC 3339 (UTC), never a hash or a secret.

The admin API encodes these structs; the CLI prints the same structs as JSON (``msgspec.to_builtins``),
so the two never disagree on a field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from app import events as ev
from app.clock import rfc3339
from app.store.port import Account, Claim, Registration, User

RegistrationStatus = Literal["active", "revoked", "pending"]
_COMMON = ("type", "id", "at", "account_id", "registration_id")


def iso(ts: int | float | None) -> str | None:
    return None if ts is None else rfc3339(ts)


def status(reg: Registration) -> RegistrationStatus:
    return "revoked" if reg.revoked_at is not None else "pending" if reg.pending else "active"


class AttemptView(msgspec.Struct, kw_only=True):
    id: str
    expires_at: str | None
    login_hint: str | None
    method: str | None
    confirmed_by: str | None
    code_expires_at: str | None


class ClaimView(msgspec.Struct, kw_only=True):
    """The state of the ceremony, never its secrets' fingerprints (no link or code hashes)."""

    status: str
    expires_at: str | None
    attempts: list[AttemptView]
    window_failures: int
    failures: int
    provider: str | None
    subject: str | None
    claimed_by: str | None
    claimed_at: str | None


class RegistrationView(msgspec.Struct, kw_only=True):
    id: str
    type: str
    status: RegistrationStatus
    scopes: list[str]
    agent_name: str | None
    agent_platform: str | None
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    pending: bool
    generation: int
    not_before: str | None
    source: str | None
    claim: ClaimView | None
    account_id: str
    # An MCP client's grant (type ``mcp``): the OAuth client and the resource its tokens are for.
    client_id: str | None = None
    resource: str | None = None


class AccountFacts(msgspec.Struct, kw_only=True):
    """What an account view shows of the account itself."""

    id: str
    kind: str
    created_at: str | None
    expires_at: str | None
    owner: str | None
    owner_email: str | None
    notes: int
    quota_notes: int
    quota_note_bytes: int


class AccountSummary(AccountFacts, kw_only=True):
    registrations: int
    active_registrations: int


class AccountDetail(AccountFacts, kw_only=True):
    """An account with its registrations themselves (``AccountSummary`` counts them)."""

    registrations: list[RegistrationView]


class UserView(msgspec.Struct, kw_only=True):
    id: str
    email: str
    account_id: str
    created_at: str | None


class EventView(msgspec.Struct, kw_only=True):
    id: str
    at: str
    type: str
    account_id: str | None
    registration_id: str | None
    data: dict[str, Any]


def claim_view(claim: Claim, now: float) -> ClaimView:
    return ClaimView(
        status=claim.status,
        expires_at=iso(claim.expires_at),
        attempts=[
            AttemptView(
                id=a.id,
                expires_at=iso(a.expires_at),
                login_hint=a.login_hint,
                method=a.method,
                confirmed_by=a.confirmed_by,
                code_expires_at=iso(a.code_expires_at) if a.code_live(now) else None,
            )
            for a in claim.attempts
            if a.live(now)
        ],
        window_failures=claim.window_failures,
        failures=claim.failures,
        provider=claim.provider,
        subject=claim.subject,
        claimed_by=claim.claimed_by,
        claimed_at=iso(claim.claimed_at),
    )


def registration_view(reg: Registration, claim: Claim | None, now: float) -> RegistrationView:
    return RegistrationView(
        id=reg.id,
        type=reg.type,
        status=status(reg),
        scopes=list(reg.scopes),
        agent_name=reg.agent_name,
        agent_platform=reg.agent_platform,
        created_at=iso(reg.created_at),
        expires_at=iso(reg.expires_at),
        revoked_at=iso(reg.revoked_at),
        pending=reg.pending,
        generation=reg.generation,
        not_before=iso(reg.not_before),
        source=reg.source,
        claim=None if claim is None else claim_view(claim, now),
        account_id=reg.account_id,
        client_id=reg.client_id,
        resource=reg.resource,
    )


def _account_fields(account: Account, owner: User | None) -> dict[str, Any]:
    return {
        "id": account.id,
        "kind": account.kind,
        "created_at": iso(account.created_at),
        "expires_at": iso(account.expires_at),
        "owner": account.owner,
        "owner_email": owner.email if owner else None,
        "notes": account.note_count,
        "quota_notes": account.quota_notes,
        "quota_note_bytes": account.quota_note_bytes,
    }


def account_summary(account: Account, owner: User | None, regs: Sequence[Registration]) -> AccountSummary:
    active = sum(status(r) == "active" for r in regs)
    return AccountSummary(**_account_fields(account, owner), registrations=len(regs), active_registrations=active)


def account_detail(account: Account, owner: User | None, regs: list[RegistrationView]) -> AccountDetail:
    return AccountDetail(**_account_fields(account, owner), registrations=regs)


def user_view(user: User) -> UserView:
    return UserView(id=user.id, email=user.email, account_id=user.account_id, created_at=iso(user.created_at))


def payload(event: ev.Event) -> dict[str, Any]:
    """The event's own fields (unset ones not shown), its times in RFC 3339 like every time we print."""
    fields: dict[str, Any] = msgspec.to_builtins(event)
    out = {}
    for k, v in fields.items():
        if k not in _COMMON and v is not None:
            out[k] = rfc3339(v) if k.endswith("_at") or k == "not_before" else v
    return out


def event_view(event: ev.Event) -> EventView:
    return EventView(
        id=event.id,
        at=rfc3339(event.at),
        type=ev.type_of(event),
        account_id=event.account_id,
        registration_id=event.registration_id,
        data=payload(event),
    )


class RevokedRef(msgspec.Struct, kw_only=True):
    account_id: str
    registration_id: str
    type: str


class Revocation(msgspec.Struct, kw_only=True):
    """What a revocation did: the registrations that were live and now are not, and when."""

    revoked: list[RevokedRef]
    at: str


def revocation(done: Sequence[Registration], now: float) -> Revocation:
    return Revocation(
        revoked=[RevokedRef(account_id=r.account_id, registration_id=r.id, type=r.type) for r in done], at=rfc3339(now)
    )


class RegistrationList(msgspec.Struct, kw_only=True):
    data: list[RegistrationView]
    next_cursor: str | None


class EventList(msgspec.Struct, kw_only=True):
    data: list[EventView]
    next_cursor: str | None
