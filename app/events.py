"""The domain events: a closed catalogue, one event per state change, written by the store in the same
atomic step as the change it records (spec/events.md).

Invariants:
- The set is closed: ``Event`` is a tagged union on ``type``; decoding anything else fails.
- Every event has an ``id`` that is unique and sorts by time (12 hex digits of milliseconds, then 16
  random hex digits, monotonic within a process), its ``at``, and the account and registration it is
  about. Payload fields are plain facts (ids, kinds, counts, times): never a secret, a token, a code or
  a hash of one (tests/unit/test_events.py checks every field's name and type).
- Names follow WorkOS AuthKit's webhook names where one exists; ours otherwise.
"""

from __future__ import annotations

import threading
from typing import Any, Literal, TypeVar

import msgspec

from app.entropy import id_bytes

RegistrationMethod = Literal["anonymous", "service_auth", "identity_assertion", "mcp"]
RevokedBy = Literal["agent", "human", "provider", "operator"]
# The pseudo-account of events about the service itself (a webhook endpoint disabled, an operator's
# action on webhooks): its outbox is read and delivered like any account's. Real ids start with acct_.
SERVICE = "service"


class _Base(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    id: str
    at: float
    account_id: str
    registration_id: str | None = None


class RegistrationCreated(_Base, frozen=True, tag="agent_registration.created"):
    """An agent registered: a new account with its first registration, a registration (pending a
    human's confirmation) added to a person's account by a provider's ID-JAG, or an MCP client's grant
    on its human's account (written again each time the human authorizes that client)."""

    method: RegistrationMethod
    scopes: tuple[str, ...]
    pending: bool = False
    agent_name: str | None = None
    agent_platform: str | None = None
    provider: str | None = None  # the ID-JAG issuer, for identity_assertion
    client_id: str | None = None  # the OAuth client, for an MCP client's grant (method ``mcp``)


class ClaimAttemptCreated(_Base, frozen=True, tag="agent_registration.claim_attempt.created"):
    attempt_id: str
    method: str | None  # the claim method that started it; None: a provider link's step-up
    expires_at: int
    for_login_hint: bool  # only the person with a given email may authorize it


class ClaimAttemptExpired(_Base, frozen=True, tag="agent_registration.claim_attempt.expired"):
    """An attempt ended before it was completed: a newer one replaced it, its link and code died, or
    wrong codes spent the claim's budget (which ends every attempt)."""

    attempt_id: str
    reason: Literal["replaced", "ended", "code_budget"]


class ClaimConfirmed(_Base, frozen=True, tag="agent_registration.claim.confirmed"):
    """A signed-in human authorized an attempt (a one-time code was shown to them)."""

    attempt_id: str
    user_id: str


class ClaimDenied(_Base, frozen=True, tag="agent_registration.claim.denied"):
    """The human said the request was not theirs; every attempt ends (the revocation follows)."""

    attempt_id: str | None
    user_id: str


class ClaimCompleted(_Base, frozen=True, tag="agent_registration.claim.completed"):
    """The claim landed: the account (or, for a provider link, the delegation) belongs to ``user_id``."""

    user_id: str
    scopes: tuple[str, ...]
    provider: str | None = None  # set when a provider subject's delegation was confirmed


class CredentialIssued(_Base, frozen=True, tag="agent_registration.credential_issued"):
    """An identity assertion (and for ``claim``/``refresh`` a refresh token) was issued to the agent.
    Access tokens minted at the token endpoint are not events: that path only reads."""

    kind: Literal["registration", "claim", "refresh"]
    generation: int
    expires_at: int | None = None


class RefreshRotated(_Base, frozen=True, tag="agent_registration.refresh.rotated"):
    seq: int  # the refresh token now live
    expires_at: int


class RegistrationRevoked(_Base, frozen=True, tag="agent_registration.revoked"):
    """The grant and everything derived from it died. ``not_before``: a provider's revocation, which
    kills what was issued up to then."""

    by: RevokedBy
    reason: str | None = None
    user_id: str | None = None
    provider: str | None = None
    not_before: int | None = None


class AccountDeleted(_Base, frozen=True, tag="agent_registration.deleted"):
    """The account was deleted with every registration and note of it (the agent revoked its temporary
    account's last credential)."""

    by: RevokedBy
    registrations: int = 0
    notes: int = 0


class AccountExpired(_Base, frozen=True, tag="account.expired"):
    """A temporary account reached its expiry unclaimed and was deleted with what it owned."""

    registrations: int
    notes: int


class OperatorAction(_Base, frozen=True, tag="operator.action"):
    """An operator changed state with ``authmd admin``: who (the local user name) and what. An action on
    a webhook endpoint or delivery is about the service (``account_id`` is ``SERVICE``)."""

    operator: str
    action: Literal["revoke", "webhook.enable", "webhook.retry"]
    endpoint: str | None = None  # the webhook endpoint's name
    delivery_id: str | None = None


class WebhookEndpointDisabled(_Base, frozen=True, tag="webhook_endpoint.disabled"):
    """A webhook endpoint kept failing: a delivery to it ran out of retries, and nothing more is sent
    to it until an operator enables it again (its deliveries wait, in order). About the service."""

    endpoint: str
    delivery_id: str
    attempts: int
    last_status: int | None
    last_error: str | None


Event = (
    RegistrationCreated
    | ClaimAttemptCreated
    | ClaimAttemptExpired
    | ClaimConfirmed
    | ClaimDenied
    | ClaimCompleted
    | CredentialIssued
    | RefreshRotated
    | RegistrationRevoked
    | AccountDeleted
    | AccountExpired
    | OperatorAction
    | WebhookEndpointDisabled
)
EVENT_TYPES: tuple[type[_Base], ...] = (
    RegistrationCreated,
    ClaimAttemptCreated,
    ClaimAttemptExpired,
    ClaimConfirmed,
    ClaimDenied,
    ClaimCompleted,
    CredentialIssued,
    RefreshRotated,
    RegistrationRevoked,
    AccountDeleted,
    AccountExpired,
    OperatorAction,
    WebhookEndpointDisabled,
)

_ENCODER = msgspec.json.Encoder()
_DECODER: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)


def encode(event: Event) -> bytes:
    return _ENCODER.encode(event)


def decode(data: bytes | str) -> Event:
    return _DECODER.decode(data)


def type_of(event: Event) -> str:
    return type_name(type(event))


def type_name(cls: type[_Base]) -> str:
    """The wire name of an event class (``agent_registration.created``)."""
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


_lock = threading.Lock()
_last = (0, 0)


def new_event_id(at: float) -> str:
    """``evt_`` + 12 hex digits of ``at`` in milliseconds + 16 random hex digits. Within a process ids
    only grow (a clock that steps back, or two ids in one millisecond, continue from the last one), so
    events one change emits sort in the order it emits them."""
    global _last
    with _lock:
        ms, rand = int(at * 1000), int.from_bytes(id_bytes(8), "big") >> 1
        if ms <= _last[0]:
            ms, rand = _last[0], _last[1] + 1
        _last = (ms, rand)
    return f"evt_{ms:012x}{rand:016x}"


def ms_of(event_id: str) -> int:
    """The milliseconds an event id starts with (what indexes of outboxes are scored by)."""
    return int(event_id[4:16], 16)


E = TypeVar("E", bound=_Base)


def new(cls: type[E], at: float, account_id: str, registration_id: str | None, **payload: Any) -> E:
    """An event of type ``cls`` with a fresh id."""
    return cls(id=new_event_id(at), at=at, account_id=account_id, registration_id=registration_id, **payload)
