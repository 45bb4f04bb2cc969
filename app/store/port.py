"""The store port: the only way flows touch state, and the contract every adapter passes.

Rules every adapter keeps (the contract suite in tests/store checks each one):
- Every record carries an absolute expiry (seconds since the epoch, or None for "never"); a record whose
  expiry is at or before ``now`` is absent, whatever the backend still holds. Backend TTLs and the
  sweeper only reclaim space. ``now`` is always passed in, so the caller's injected clock decides.
- Each method is one atomic step: two racing callers of ``consume_once`` or ``add_note`` never both win.
- Secrets never reach the store in the clear: callers hand in hashes.
- Failures to reach the backend raise ``StoreUnavailable`` (a 503 upstream), never a partial success.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

import msgspec

AccountKind = Literal["temporary", "persistent"]


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """What owns resources. Temporary accounts have an expiry and quotas; claimed ones persist."""

    id: str
    kind: AccountKind
    created_at: int
    expires_at: int | None
    quota_notes: int
    quota_note_bytes: int
    note_count: int = 0
    owner: str | None = None


class Registration(msgspec.Struct, frozen=True, kw_only=True):
    """A grant from an account to an agent: what identity assertions and access tokens derive from.

    ``generation`` is bumped when the grant changes shape (a claim): tokens minted for an older
    generation die at once. ``revoked_at`` kills the grant and everything derived from it.
    """

    id: str
    type: str
    account_id: str
    scopes: tuple[str, ...]
    created_at: int
    expires_at: int | None
    generation: int = 0
    revoked_at: int | None = None
    claim_token_hash: str | None = None
    claim_expires_at: int | None = None
    agent_name: str | None = None
    agent_platform: str | None = None
    # Tokens issued (iat) at or before this instant are dead: a provider's revocation event (RFC 8417).
    not_before: int | None = None
    # Waiting for a human to confirm (the account-linking gate): issues nothing until then.
    pending: bool = False
    claim_attempt_hash: str | None = None
    claim_attempt_expires_at: int | None = None


class User(msgspec.Struct, frozen=True, kw_only=True):
    """A person, keyed by a lower-cased verified email; owns one persistent account."""

    id: str
    email: str
    account_id: str
    created_at: int


class Delegation(msgspec.Struct, frozen=True, kw_only=True):
    """A provider subject ``(issuer, subject)`` acting for a user's account through one registration."""

    issuer: str
    subject: str
    user_id: str
    account_id: str
    registration_id: str
    status: Literal["active", "pending"]
    created_at: int


class Note(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    account_id: str
    text: str
    created_at: int


class AccessState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a token check needs, read in one round trip."""

    registration: Registration
    account: Account
    token_revoked: bool


class WindowHit(msgspec.Struct, frozen=True):
    """One sliding-window counter touched by ``hit_windows``. ``limit=None`` counts without refusing."""

    key: str
    limit: int | None
    increment: bool = True


class WindowResult(msgspec.Struct, frozen=True):
    count: float  # the sliding estimate, including this hit when it was counted
    allowed: bool
    retry_after: float  # seconds until a refused hit would be allowed (0 when allowed)


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An append-only record of a lifecycle change, written in the same step as the change."""

    at: float
    type: str
    account_id: str | None = None
    registration_id: str | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    id: int | None = None


class Deleted(msgspec.Struct, frozen=True, kw_only=True):
    """An account that was deleted, with what it owned (for the audit trail)."""

    account_id: str
    registrations: int
    notes: int


AddNoteOutcome = Literal["created", "quota_exceeded", "account_gone"]


class Store(Protocol):
    async def open(self) -> None:
        """Connect and bring the schema to the current version (forward migrations only)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable if the backend cannot answer (readiness)."""

    # ---- limits ------------------------------------------------------------------------------
    async def hit_windows(self, hits: Sequence[WindowHit], now: float, window: float) -> list[WindowResult]:
        """Sliding-window counters, all-or-nothing: if any limited hit would exceed its limit, no
        counter moves and that hit reports ``allowed=False`` with its ``retry_after``."""

    # ---- one-time marks: challenge redemption, replay caches, revoked token ids --------------
    async def consume_once(self, namespace: str, key: str, expires_at: float, now: float) -> bool:
        """First writer wins: True for exactly one caller until ``expires_at``."""

    # ---- accounts and registrations ---------------------------------------------------------
    async def create_registration(self, account: Account, registration: Registration, event: AuditEvent) -> None:
        """Create a new account with its first registration, atomically, with its audit event."""

    async def get_registration(self, account_id: str, registration_id: str, now: float) -> Registration | None:
        """A grant is always addressed through its account (its `sub`): on Redis Cluster everything an
        account owns shares one hash slot, so each of these calls is one single-slot script."""

    async def get_account(self, account_id: str, now: float) -> Account | None: ...

    async def access_state(
        self, account_id: str, registration_id: str, token_id: str | None, now: float
    ) -> AccessState | None:
        """The registration, its account and whether ``token_id`` was revoked; None if either is gone."""

    async def revoke_token(self, account_id: str, token_id: str, expires_at: float, now: float) -> bool:
        """Mark one access token id revoked until it would have expired anyway. True if newly marked."""

    async def revoke_registration(self, account_id: str, registration_id: str, now: float, event: AuditEvent) -> bool:
        """Kill a grant and everything derived from it. True if it was live."""

    async def delete_account(self, account_id: str, now: float, event: AuditEvent) -> Deleted | None:
        """Delete an account with everything it owns (registrations, notes); None if already gone."""

    # ---- people and provider delegations (ID-JAG) --------------------------------------------
    async def find_user_by_email(self, email: str) -> User | None:
        """The user with this lower-cased email, if any."""

    async def get_delegation(self, issuer: str, subject: str) -> Delegation | None: ...

    async def create_user(
        self, user: User, account: Account, registration: Registration, delegation: Delegation, event: AuditEvent
    ) -> bool:
        """Just-in-time user: claim the email, create the user's persistent account with its first
        registration and the active delegation. False (and nothing created) if the email or the
        delegation is already taken: a racing request won."""

    async def save_pending_link(
        self, delegation: Delegation, registration: Registration, event: AuditEvent, *, replace_active: bool = False
    ) -> bool:
        """Create or replace a *pending* delegation and its pending registration (new claim token and
        attempt hashes). False if the subject holds an active delegation, unless ``replace_active``
        (the caller saw that delegation's grant revoked)."""

    async def set_not_before(self, account_id: str, registration_id: str, not_before: int, event: AuditEvent) -> bool:
        """Kill every token of the grant issued at or before ``not_before`` (never moves it back)."""

    # ---- the demo resource -------------------------------------------------------------------
    async def add_note(self, note: Note, now: float) -> AddNoteOutcome:
        """Create a note unless the account is gone or at its ``quota_notes``; atomic with the count."""

    async def list_notes(self, account_id: str, now: float) -> list[Note]:
        """The account's notes in creation order; empty when the account is gone."""

    async def get_note(self, account_id: str, note_id: str, now: float) -> Note | None: ...

    async def delete_note(self, account_id: str, note_id: str, now: float) -> bool: ...

    # ---- expiry and audit --------------------------------------------------------------------
    async def sweep(self, now: float, limit: int) -> list[Deleted]:
        """Delete up to ``limit`` expired temporary accounts (and what they own), each with an
        ``account.expired`` audit event, and reclaim expired marks and counters. Cost is proportional
        to what expired. Several sweepers may run at once: each account is deleted (and reported) once."""

    async def audit_events(self, after_id: int = 0, limit: int = 100) -> list[AuditEvent]: ...


def expired(expires_at: float | None, now: float) -> bool:
    """The single expiry rule: at or after ``expires_at`` the record is gone."""
    return expires_at is not None and expires_at <= now


def expired_event(deleted: Deleted, now: float) -> AuditEvent:
    """The audit event the sweeper writes for an account it deleted (same shape on every adapter)."""
    return AuditEvent(
        at=now,
        type="account.expired",
        account_id=deleted.account_id,
        data={"registrations": deleted.registrations, "notes": deleted.notes},
    )
