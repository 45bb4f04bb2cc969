"""The store port: the only way flows touch state, and the contract every adapter passes.

``Store`` is the composition of narrow ports, one per concern: ``Upkeep`` (open, close, ping, sweep),
``Limits`` (rate windows), ``Marks`` (one-time marks, revoked token ids), ``Grants`` (accounts and their
registrations), ``People`` (users, delegations, sign-in, sessions), ``Clients`` (OAuth clients that
registered themselves), ``Claims`` (the claim ceremony),
``Notes`` (the demo resource), ``Events`` (reading the outbox), ``Webhooks`` (deliveries) and
``Counters`` (the console's per-minute totals). Each
adapter (app/store/sqlite/, app/store/redis/) has one module per concern, and tests/store has one
contract file per port.

One model for agents and standard MCP clients (spec/mcp.md):
- a *grant* binds account x client x scopes x resource x refresh family: ``Registration``, whose
  ``client_id``, ``resource`` and ``jkt`` (a key thumbprint, for sender-constrained tokens later) an MCP
  client's grant fills; ``put_registration`` writes one on its human's account;
- a *pending approval* is a claim (``Claims``) or an authorization request (held in the browser's
  session), and an authorization code is a short-lived keyed blob beside the sessions (``put_session``,
  keyed by the code's hash) spent through ``consume_once``.

Rules every adapter keeps (the contract suite in tests/store checks each one):
- Every record carries an absolute expiry (seconds since the epoch, or None for "never"); a record whose
  expiry is at or before ``now`` is absent, whatever the backend still holds. Backend TTLs and the
  sweeper only reclaim space. ``now`` is always passed in, so the caller's injected clock decides.
- Each method is one atomic step: two racing callers of ``consume_once`` or ``add_note`` never both win.
- Secrets never reach the store in the clear: callers hand in hashes.
- Failures to reach the backend raise ``StoreUnavailable`` (a 503 upstream), never a partial success.
- Every state change takes its domain events (app/events.py) and writes them in the same atomic step
  as the change, into the account's outbox: the change and its events land both or neither.

Reading events (spec/events.md). Two reads, for two kinds of reader:
- ``events(after, limit)``: every event whose id sorts after ``after``, oldest id first (the operator's
  trail, ``authmd admin events``). Ids sort by time; across accounts and instances that is the only
  order there is (on Redis Cluster there is no global sequence), so a reader polling with the last id
  it saw may miss an event committed later with a smaller id (an instance's clock behind another's).
- The outbox, for delivery (webhooks): ``outboxes_with_pending(limit)`` names accounts with
  undelivered events, ``read_outbox(account_id, limit)`` returns them in the order they were
  committed, ``mark_delivered(account_id, through)`` advances that account's delivered cursor.
  Order: per account, exactly the commit order; across accounts, none. A committed event is found
  by the next reader, whatever crashed after the commit: the index of pending outboxes is written in
  the same atomic step (on Redis Cluster, in the account's own hash slot: one index per slot).
Retention: an outbox outlives its account (a deletion's or expiry's event is the one consumers most
need): on SQLite events are kept for good; on Redis an outbox keeps its newest ``OUTBOX_MAXLEN`` events
and is reclaimed ``OUTBOX_RETENTION_SECONDS`` after its account is deleted or its space-only TTL runs out.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

import msgspec

from app.events import AccountDeleted, AccountExpired, Event, new_event_id

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
    agent_name: str | None = None
    agent_platform: str | None = None
    # Tokens issued (iat) at or before this instant are dead: a provider's revocation event (RFC 8417).
    not_before: int | None = None
    # Waiting for a human to confirm (the account-linking gate): issues nothing until then.
    pending: bool = False
    # The refresh-token family of a claimed grant: tokens are MACs over (family, seq); only ``refresh_seq``
    # is live, the one before it is honoured for a short grace after ``refresh_rotated_at``.
    refresh_family: str | None = None
    refresh_seq: int = 0
    refresh_rotated_at: int | None = None
    refresh_expires_at: int | None = None
    # Where the registration came from (the source's network key), shown to the human who claims it.
    source: str | None = None
    # An MCP client's grant (type ``mcp``): the OAuth client it was granted to (a Client ID Metadata
    # Document URL or a registered client's id) and the protected resource its tokens are for. ``jkt``
    # is the room left for a key thumbprint (sender-constrained tokens, RFC 9449 §6): always None today.
    client_id: str | None = None
    resource: str | None = None
    jkt: str | None = None


class ClientRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An OAuth client that registered itself (RFC 7591 dynamic registration): public (no secret), and
    gone once ``expires_at`` passes without use (each use moves it forward: ``touch_client``)."""

    client_id: str
    client_name: str | None
    redirect_uris: tuple[str, ...]
    application_type: Literal["web", "native"]
    grant_types: tuple[str, ...]
    created_at: int
    expires_at: int
    source: str | None = None


class User(msgspec.Struct, frozen=True, kw_only=True):
    """A person, keyed by a lower-cased verified email. ``account_id`` is their own persistent account;
    accounts they claim keep their ids and name the user as ``owner``."""

    id: str
    email: str
    account_id: str
    created_at: int


ClaimStatus = Literal["pending", "claimed", "revoked", "denied"]


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt at a claim: a link for a human (only the SHA-256 of its token is kept), who it is for,
    and once a human authorized it, who did and the code (as an HMAC)."""

    id: str
    link_hash: str
    expires_at: int  # the link works until then
    login_hint: str | None = None  # only the person with this email may authorize it
    method: str | None = None  # the claim method that started it; None: a provider link's step-up
    confirmed_by: str | None = None  # the user id of the human who authorized it
    code_hash: str | None = None
    code_expires_at: int | None = None

    def code_live(self, now: float) -> bool:
        return self.code_hash is not None and self.code_expires_at is not None and self.code_expires_at > now

    @property
    def ends_at(self) -> int:
        """When neither its link nor its code works any more."""
        return max(self.expires_at, self.code_expires_at or 0)

    def live(self, now: float) -> bool:
        return self.ends_at > now


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """The claim ceremony of one registration: the claim token, the live attempts (each with its link
    and, once a human authorized it, its code), and the wrong codes charged to it.

    Written by compare-and-set on ``version``: every transition reads, decides in the flow, and saves
    with the version it read, so of two racing transitions exactly one lands. Only hashes are stored.
    A claim stored by an older version (one attempt in flat fields) reads as one with no live attempt.
    """

    account_id: str
    registration_id: str
    expires_at: int | None  # the outer window (the temporary account's life); None once claimed
    status: ClaimStatus = "pending"
    version: int = 0
    scopes_after: tuple[str, ...] = ()
    attempts: tuple[Attempt, ...] = ()
    window_failures: int = 0  # wrong codes while the current attempts are live (a window)
    failures: int = 0  # wrong codes over the claim's life
    provider: str | None = None  # an ID-JAG step-up: the provider issuer and subject asking to link
    subject: str | None = None
    claimed_by: str | None = None
    claimed_at: int | None = None

    def attempt(self, attempt_id: str) -> Attempt | None:
        return next((a for a in self.attempts if a.id == attempt_id), None)


class CodeBudget(msgspec.Struct, frozen=True):
    """How many wrong codes may be compared: per window of live attempts (then all of them end) and over
    the claim's life (then the claim is locked for good)."""

    per_window: int
    per_claim: int


class CodeCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of ``check_code``: the claim as it is after the step (None: gone), whether a code was
    compared (its budget reserved first), and the attempt whose code it matched (then nothing was charged)."""

    claim: Claim | None
    compared: bool = False
    matched: str | None = None


def code_step(claim: Claim, digests: Mapping[str, str], now: float, budget: CodeBudget) -> CodeCheck:
    """The reserve-and-compare rule every adapter applies atomically (the Redis Lua script mirrors it).

    A code is compared only while the claim is pending with budget left, some attempt shows a live
    code, and ``digests`` names every attempt of the claim (else the caller read an older claim and must
    look again: an attempt confirmed since would be compared with no digest, and one started since would
    end, if this charge spends a budget, without the event the caller brings for each attempt it saw).
    It is compared with every live code; a wrong one is charged to the window and the claim before the
    answer goes out, and the charge that spends a budget ends every attempt in the same step. So however
    many guesses race, at most ``per_window`` are compared per window of live attempts and ``per_claim``
    over the claim's life, and none is compared for free.
    """
    coded = [a for a in claim.attempts if a.code_live(now)]
    comparable = (
        claim.status == "pending"
        and bool(coded)
        and claim.window_failures < budget.per_window
        and claim.failures < budget.per_claim
        and all(a.id in digests for a in claim.attempts)
    )
    if not comparable:
        return CodeCheck(claim=claim)
    for attempt in coded:
        assert attempt.code_hash is not None
        if hmac.compare_digest(digests[attempt.id], attempt.code_hash):
            return CodeCheck(claim=claim, compared=True, matched=attempt.id)
    charged = msgspec.structs.replace(
        claim, version=claim.version + 1, window_failures=claim.window_failures + 1, failures=claim.failures + 1
    )
    if charged.window_failures >= budget.per_window or charged.failures >= budget.per_claim:
        charged = msgspec.structs.replace(charged, attempts=())
    return CodeCheck(claim=charged, compared=True)


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
    # The account's notes (as ``list_notes``) when asked for with ``notes=True``: the protected API's
    # list answers with its token check in one round trip instead of two.
    notes: list[Note] | None = None


class WindowHit(msgspec.Struct, frozen=True):
    """One sliding-window counter touched by ``hit_windows``. ``limit=None`` counts without refusing;
    ``increment=False`` only looks: whether one more hit would fit under ``limit``, counting nothing."""

    key: str
    limit: int | None
    increment: bool = True


class WindowResult(msgspec.Struct, frozen=True):
    count: float  # the sliding estimate, including this hit when it was counted
    allowed: bool
    retry_after: float  # seconds until a refused hit would be allowed (0 when allowed)


class Admission(msgspec.Struct, frozen=True):
    """The sliding windows a creation is counted in (``hit_windows``' semantics), checked in the same
    atomic step as the creation: a registration is counted if and only if it is created."""

    hits: tuple[WindowHit, ...]
    now: float
    window: float


OUTBOX_RETENTION_SECONDS = 30 * 86_400
OUTBOX_MAXLEN = 10_000


DeliveryStatus = Literal["pending", "delivered", "failed"]


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One domain event for one webhook endpoint (spec/webhooks.md). Its id is derived from the pair,
    so storing it twice stores it once. Deliveries of one account to one endpoint form a queue sent in
    order: only the oldest pending one (the head) is sent, by one holder of a lease at a time."""

    id: str
    endpoint: str
    event_id: str
    event_type: str
    account_id: str
    body: str  # the payload exactly as signed and sent, fixed when the delivery is made
    created_at: float
    status: DeliveryStatus = "pending"
    seq: int = 0  # the store's order of creation (0 until stored)
    attempts: int = 0
    next_at: float = 0.0  # when it is due (pending)
    leased_by: str | None = None
    leased_until: float | None = None
    last_attempt_at: float | None = None
    last_status: int | None = None  # the endpoint's HTTP status, None if no answer came
    last_error: str | None = None
    last_latency_ms: int | None = None
    delivered_at: float | None = None


class EndpointState(msgspec.Struct, frozen=True, kw_only=True):
    """What the store keeps about a configured webhook endpoint (the rest is configuration)."""

    name: str
    since: float | None = None  # first seen: the endpoint receives the events from then on
    disabled_at: float | None = None
    last_success_at: float | None = None
    last_failure_at: float | None = None


class Deleted(msgspec.Struct, frozen=True, kw_only=True):
    """An account that was deleted, with what it owned (for the audit trail)."""

    account_id: str
    registrations: int
    notes: int


AddNoteOutcome = Literal["created", "quota_exceeded", "account_gone"]


class Upkeep(Protocol):
    """Connecting, readiness and reclaiming what expired."""

    async def open(self) -> None:
        """Connect and bring the schema to the current version (forward migrations only)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable if the backend cannot answer (readiness)."""

    async def sweep(self, now: float, limit: int) -> list[Deleted]:
        """Delete up to ``limit`` expired temporary accounts (and what they own), each with an
        ``account.expired`` event, and reclaim expired marks, counters, sessions and clients. Cost is
        proportional to what expired. Several sweepers may run at once: each account is deleted (and
        reported) once."""


class Limits(Protocol):
    """Rate limits: sliding-window counters."""

    async def hit_windows(self, hits: Sequence[WindowHit], now: float, window: float) -> list[WindowResult]:
        """Sliding-window counters, all-or-nothing: if any limited hit would exceed its limit, no
        counter moves and that hit reports ``allowed=False`` with its ``retry_after``."""


class Marks(Protocol):
    """One-time marks: challenge redemption, replay caches, revoked token ids."""

    async def consume_once(self, namespace: str, key: str, expires_at: float, now: float) -> bool:
        """First writer wins: True for exactly one caller until ``expires_at``."""

    async def revoke_token(self, account_id: str, token_id: str, expires_at: float, now: float) -> bool:
        """Mark one access token id revoked until it would have expired anyway. True if newly marked."""


class Grants(Protocol):
    """Accounts and the registrations granted on them: creation, the token check, revocation, refresh
    rotation, deletion."""

    async def create_registration(
        self,
        account: Account,
        registration: Registration,
        events: Sequence[Event],
        admission: Admission | None = None,
    ) -> list[WindowResult]:
        """Create a new account with its first registration, atomically, with its events. With
        ``admission``, count it in those windows first, in the same atomic step: if any refuses, nothing
        is created or counted. Returns the windows' results (empty without ``admission``)."""

    async def get_registration(self, account_id: str, registration_id: str, now: float) -> Registration | None:
        """A grant is always addressed through its account (its `sub`): on Redis Cluster everything an
        account owns shares one hash slot, so each of these calls is one single-slot script."""

    async def get_account(self, account_id: str, now: float) -> Account | None: ...

    async def list_accounts(
        self, after: str | None, limit: int, now: float, kind: AccountKind | None = None
    ) -> list[Account]:
        """Up to ``limit`` live accounts (of ``kind`` when given) whose id sorts after ``after`` (None: from
        the start), ordered by id (bytewise): the operator's listing, paged by passing the last id seen.
        Expired accounts are absent even before the sweeper reclaims them. Paging is by key, not offset:
        an account live throughout the walk shows exactly once; one created or deleted meanwhile may or
        may not show."""

    async def registrations_of(self, account_id: str, now: float) -> list[Registration]:
        """Every live registration of an account, revoked ones included."""

    async def access_state(
        self, account_id: str, registration_id: str, token_id: str | None, now: float, *, notes: bool = False
    ) -> AccessState | None:
        """The registration, its account and whether ``token_id`` was revoked; None if either is gone.
        With ``notes``, the account's notes too, read in the same snapshot."""

    async def put_registration(self, registration: Registration, now: float, events: Sequence[Event]) -> bool:
        """Create or replace one registration of an existing live account (an MCP client's grant on its
        human's account), with its events. False, and nothing written, if the account is gone."""

    async def revoke_registration(
        self, account_id: str, registration_id: str, now: float, events: Sequence[Event]
    ) -> bool:
        """Kill a grant and everything derived from it. True if it was live."""

    async def rotate_refresh(
        self,
        account_id: str,
        registration_id: str,
        family: str,
        seq: int,
        expires_at: int,
        now: float,
        events: Sequence[Event],
    ) -> bool:
        """Advance the refresh family from ``seq`` to ``seq + 1`` (rotated at ``now``, new expiry) if
        the live registration still holds exactly ``(family, seq)``. False otherwise."""

    async def set_not_before(
        self, account_id: str, registration_id: str, not_before: int, events: Sequence[Event]
    ) -> bool:
        """Kill every token of the grant issued at or before ``not_before`` (never moves it back)."""

    async def delete_account(self, account_id: str, now: float, event: AccountDeleted) -> Deleted | None:
        """Delete an account with everything it owns (registrations, notes); None if already gone. ``event``
        is written with the counts of what was deleted filled in (only the deleting step knows them)."""


class People(Protocol):
    """Humans: users, provider delegations (ID-JAG), OpenID Connect sign-in, browser sessions, what they own."""

    async def find_user_by_email(self, email: str) -> User | None:
        """The user with this lower-cased email, if any."""

    async def get_user(self, user_id: str) -> User | None: ...

    async def get_delegation(self, issuer: str, subject: str) -> Delegation | None: ...

    async def create_user(
        self, user: User, account: Account, registration: Registration, delegation: Delegation, events: Sequence[Event]
    ) -> bool:
        """Just-in-time user: claim the email, create the user's persistent account with its first
        registration and the active delegation. False (and nothing created) if the email or the
        delegation is already taken: a racing request won."""

    async def sign_in_user(self, issuer: str, subject: str, email: str, new_user: User, new_account: Account) -> User:
        """The user for an OpenID Connect sign-in: the one already linked to ``(issuer, subject)``, else
        the one with this lower-cased verified email (now linked), else ``new_user`` with its new
        persistent ``new_account`` (created, linked). Racing sign-ins end on one user."""

    async def owned_accounts(self, user_id: str, now: float) -> list[Account]:
        """Live accounts whose ``owner`` is this user (their own and those they claimed)."""

    async def put_session(self, session_hash: str, data: bytes, expires_at: float) -> None:
        """Create or replace a browser session (keyed by the hash of its cookie value)."""

    async def get_session(self, session_hash: str, now: float) -> bytes | None: ...

    async def delete_session(self, session_hash: str) -> None: ...


class Clients(Protocol):
    """OAuth clients that registered themselves (RFC 7591). Metadata-document clients are fetched, and
    configured ones are settings: neither is stored."""

    async def put_client(self, client: ClientRecord) -> None:
        """Store a new client (its id is new: random)."""

    async def get_client(self, client_id: str, now: float) -> ClientRecord | None:
        """The client, unless it expired (unused for too long)."""

    async def touch_client(self, client_id: str, expires_at: int, now: float) -> bool:
        """A use: move the client's expiry to ``expires_at`` if that is later. False if it is gone."""


class Claims(Protocol):
    """The claim ceremony: a registration waiting for a human (a claim, or a provider link's step-up)."""

    async def get_claim(self, account_id: str, registration_id: str, now: float) -> Claim | None:
        """The claim of a registration; gone with its account (or past ``expires_at``)."""

    async def save_claim(self, claim: Claim, expected_version: int | None, events: Sequence[Event]) -> bool:
        """Compare-and-set: store ``claim`` with its ``events`` if the stored version equals
        ``expected_version`` (None: only if there is no claim yet). False, and nothing written,
        otherwise or if the account is gone."""

    async def save_pending_link(
        self,
        delegation: Delegation,
        registration: Registration,
        claim: Claim,
        events: Sequence[Event],
        *,
        replace_active: bool = False,
    ) -> bool:
        """Create or replace a *pending* delegation, its pending registration and its claim (written
        unconditionally, version as given). False if the subject holds an active delegation, unless
        ``replace_active`` (the caller saw that delegation's grant revoked)."""

    async def check_code(
        self,
        account_id: str,
        registration_id: str,
        digests: Mapping[str, str],
        now: float,
        budget: CodeBudget,
        ended: Sequence[Event] = (),
    ) -> CodeCheck:
        """Reserve-and-compare, one atomic step (``code_step``): ``digests`` maps each attempt id of the
        claim as the caller read it to the caller's HMAC of the presented code for that attempt ("" for
        one whose code must match nothing). A wrong code is charged before anyone
        learns it was wrong; a right one changes nothing (the caller lands the claim by
        ``complete_claim``). ``claim`` is None when the claim or its account is gone or expired.
        ``ended``: events about attempts (``attempt_id``), written in the same step if the charge
        spends a budget and ends the attempts: those of the attempts it ended, and only those."""

    async def complete_claim(
        self,
        claim: Claim,
        expected_version: int,
        account: Account,
        registration: Registration,
        delegation: Delegation | None,
        events: Sequence[Event],
    ) -> bool:
        """The claim lands, all or nothing, if the stored claim still has ``expected_version``: store
        ``claim``; take ``account``'s kind, expiry, quotas and owner (keeping its notes and count);
        replace ``registration``; activate ``delegation`` when given; drop the account from the
        expiry index; write ``event``."""


class Notes(Protocol):
    """The demo resource."""

    async def add_note(self, note: Note, now: float) -> AddNoteOutcome:
        """Create a note unless the account is gone or at its ``quota_notes``; atomic with the count."""

    async def list_notes(self, account_id: str, now: float) -> list[Note]:
        """The account's notes in creation order; empty when the account is gone."""

    async def get_note(self, account_id: str, note_id: str, now: float) -> Note | None: ...

    async def delete_note(self, account_id: str, note_id: str, now: float) -> bool: ...


class Events(Protocol):
    """Reading the domain events every change writes (see the module docstring)."""

    async def events(self, after: str = "", limit: int = 100) -> list[Event]:
        """Up to ``limit`` events whose id sorts after ``after``, by id (see the module docstring)."""

    async def outboxes_with_pending(self, limit: int = 100) -> list[str]:
        """Ids of up to ``limit`` accounts whose outbox holds undelivered events, oldest first (best
        effort across accounts); a deleted account's outbox is among them until consumed."""

    async def read_outbox(self, account_id: str, limit: int = 100) -> list[Event]:
        """The account's undelivered events, in commit order."""

    async def account_events(self, account_id: str, limit: int = 100) -> list[Event]:
        """The account's newest ``limit`` events, delivered or not, in commit order: what the console's
        timeline shows. Its cost is ``limit``, whatever the number of events of other accounts (Redis
        keeps an outbox's newest OUTBOX_MAXLEN events, for OUTBOX_RETENTION_SECONDS)."""

    async def mark_delivered(self, account_id: str, through: str) -> bool:
        """Everything in the account's outbox up to the event ``through`` is delivered. False if
        ``through`` is not an undelivered event of that outbox (nothing changes)."""


class Webhooks(Protocol):
    """Webhook deliveries and endpoint states (spec/webhooks.md). Every change here is about the service:
    its events go to the ``SERVICE`` outbox in the same step."""

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> int:
        """Store each delivery not stored yet (by id) at the tail of its (endpoint, account) queue, due at
        its ``next_at``; how many were new. Idempotent: a consumer that dies before marking its outbox
        delivered adds the same deliveries again, and nothing is sent twice because of it."""

    async def lease_deliveries(
        self, endpoints: Sequence[str], now: float, holder: str, lease_seconds: float, limit: int
    ) -> list[Delivery]:
        """Up to ``limit`` due deliveries of ``endpoints``, each the head of its queue and not leased (or
        its lease ran out), now leased to ``holder`` until ``now + lease_seconds``: while the lease
        holds, nobody else is given them. Earliest due first."""

    async def finish_delivery(self, delivery: Delivery, holder: str, events: Sequence[Event] = ()) -> bool:
        """Store the outcome of an attempt (``delivery`` as it is now: delivered, pending again at a later
        ``next_at``, or failed), release the lease, and move the queue on if it is no longer pending;
        the endpoint's last success or failure time follows. A ``WebhookEndpointDisabled`` among
        ``events`` disables the endpoint in the same step, and is written only if it was enabled (one
        event per disabling). False, and nothing written, if ``holder`` no longer holds the lease (it
        ran out and another took it)."""

    async def get_delivery(self, delivery_id: str) -> Delivery | None: ...

    async def list_deliveries(
        self, *, endpoint: str | None = None, status: DeliveryStatus | None = None, before: int = 0, limit: int = 100
    ) -> list[Delivery]:
        """The delivery log, newest first: those with ``seq`` below ``before`` (0: from the newest)."""

    async def retry_delivery(self, delivery_id: str, now: float, events: Sequence[Event]) -> bool:
        """A failed delivery is pending again, due now with no attempts counted, at the head of its queue
        (sent next). False if it is not failed."""

    async def open_endpoints(self, names: Sequence[str], now: float) -> list[EndpointState]:
        """Each named endpoint without a state gets one, ``since`` = ``now`` (an endpoint receives what
        happens from when it was first configured, not the service's history); the states of the named
        endpoints, in the order named."""

    async def endpoint_states(self) -> list[EndpointState]:
        """Every endpoint the store has a state for (one it never touched has none: enabled)."""

    async def enable_endpoint(self, name: str, now: float, events: Sequence[Event]) -> bool:
        """A disabled endpoint is enabled again; its queues are due now. False if it was not disabled."""

    async def trim_deliveries(self, before: float, limit: int) -> int:
        """Forget up to ``limit`` delivered or failed deliveries made before ``before``; how many."""


# How long per-minute and per-hour totals are kept (the console charts an hour by minutes, a day and a
# week by hours).
COUNT_MINUTES_KEPT = 2 * 1440
COUNT_HOURS_KEPT = 90 * 24


class Counters(Protocol):
    """Per-minute counts of what the console charts (app/observe.py names the series): the domain events
    by kind and what is not a state change (refusals, proof-of-work challenges, wrong codes). Totals are
    kept per minute (COUNT_MINUTES_KEPT) and per hour (COUNT_HOURS_KEPT); reading costs the number of
    buckets asked for, never the number of events counted."""

    async def add_counts(self, counts: Mapping[tuple[str, int], int]) -> None:
        """Add each n to its (series, minute) total and to that minute's hour total (minutes since the
        epoch; the hour of minute m is m // 60). One atomic step for all of them."""

    async def read_counts(self, names: Sequence[str], start: int, end: int, step: int) -> dict[str, list[int]]:
        """The totals of each series over minutes [start, end) in buckets of ``step`` minutes:
        ``(end - start) // step`` numbers per name, 0 where nothing was counted. A ``step`` below 60 reads
        the minute totals; a multiple of 60 reads the hour totals (``start`` and ``end`` whole hours)."""

    async def trim_counts(self, now: float) -> int:
        """Drop the totals older than they are kept; how many were dropped."""

    async def count_temporary(self, now: float) -> int:
        """How many temporary accounts are live (unclaimed and not expired)."""


class Store(Upkeep, Limits, Marks, Grants, People, Clients, Claims, Notes, Events, Webhooks, Counters, Protocol):
    """The whole store, as flows see it (``ctx.store``): every narrow port, one adapter."""


def expired(expires_at: float | None, now: float) -> bool:
    """The single expiry rule: at or after ``expires_at`` the record is gone."""
    return expires_at is not None and expires_at <= now


def expired_event(account_id: str, now: float) -> AccountExpired:
    """The event the sweeper writes for an account it deletes; the store fills in the counts."""
    return AccountExpired(id=new_event_id(now), at=now, account_id=account_id, registrations=0, notes=0)
