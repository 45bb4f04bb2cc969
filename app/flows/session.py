"""Browser sessions for the human pages: a random cookie value, stored as its SHA-256 with the session.

The cookie is HttpOnly, SameSite=Lax, Secure (and ``__Host-`` prefixed) outside dev mode. What a
session holds: the signed-in user, a CSRF token for every form, the sign-in in progress (OIDC
``state``, ``nonce``, PKCE verifier, where to go back), the claim attempts this browser opened
(the last few, newest last) — each by its locator and hash only, so no secret reaches the store —
and the OAuth clients' authorization requests waiting for consent.
The claim page shows the newest; its forms name the attempt they show (``ref``), so a click acts on
what the human reviewed even after another link was opened in another tab. Sign-in rotates the
session id (session fixation).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import msgspec

from app.context import Context
from app.tokens import stored_hash

LOGIN_TTL_SECONDS = 600
MAX_HELD_ATTEMPTS = 4  # tabs a person plausibly has open on claim pages at once
MAX_HELD_AUTHORIZATIONS = 4  # the same, for consent pages
AUTHORIZATION_TTL_SECONDS = 600  # an authorization request waits this long for sign-in and consent


class LoginState(msgspec.Struct, frozen=True, kw_only=True):
    state: str
    nonce: str
    verifier: str
    return_to: str
    started_at: int


class HeldAttempt(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str
    registration_id: str
    attempt_hash: str

    @property
    def ref(self) -> str:
        """What a page's forms carry to name this attempt: a hash of the link's hash (no secret, and only
        meaningful inside the session that holds the attempt)."""
        return hashlib.sha256(b"claim-form\n" + self.attempt_hash.encode()).hexdigest()[:32]


class PendingAuthorization(msgspec.Struct, frozen=True, kw_only=True):
    """A checked authorization request of an OAuth client (app/flows/authorize.py), waiting for the
    human's consent: everything the code will be bound to. ``redirect_uri_sent``: whether the request
    named it (then the token request must name it too, RFC 6749 §4.1.3)."""

    id: str
    client_id: str
    client_name: str
    client_kind: str
    local_only: bool
    redirect_uri: str
    redirect_uri_sent: bool
    state: str | None
    code_challenge: str
    resource: str
    scopes: tuple[str, ...]
    refresh: bool
    created_at: int


class SessionData(msgspec.Struct, frozen=True, kw_only=True):
    csrf: str
    user_id: str | None = None
    signed_in_at: int | None = None
    login: LoginState | None = None
    attempts: tuple[HeldAttempt, ...] = ()
    authorizations: tuple[PendingAuthorization, ...] = ()

    @property
    def attempt(self) -> HeldAttempt | None:
        """The attempt the claim page shows: the one opened last."""
        return self.attempts[-1] if self.attempts else None

    def holding(self, held: HeldAttempt) -> SessionData:
        """This session with ``held`` opened last (kept once; the oldest drop out past the cap)."""
        kept = [h for h in self.attempts if h.attempt_hash != held.attempt_hash]
        return msgspec.structs.replace(self, attempts=(*kept, held)[-MAX_HELD_ATTEMPTS:])

    def pending(self, request_id: str | None, now: float) -> PendingAuthorization | None:
        """The live authorization request ``request_id`` names, if this session holds it."""
        found = next((a for a in self.authorizations if request_id is not None and a.id == request_id), None)
        return found if found is not None and now - found.created_at < AUTHORIZATION_TTL_SECONDS else None

    def with_authorization(self, request: PendingAuthorization | None, *, drop: str | None = None) -> SessionData:
        """This session holding ``request`` (newest last; the oldest drop out past the cap), without ``drop``."""
        kept = [a for a in self.authorizations if a.id != drop]
        if request is not None:
            kept.append(request)
        return msgspec.structs.replace(self, authorizations=tuple(kept[-MAX_HELD_AUTHORIZATIONS:]))

    def held(self, ref: str | None) -> HeldAttempt | None:
        """The attempt a submitted form names, if this session holds it."""
        return next((h for h in self.attempts if ref is not None and hmac.compare_digest(h.ref, ref)), None)


class Session(msgspec.Struct, frozen=True):
    cookie: str
    data: SessionData


def cookie_name(ctx: Context) -> str:
    return "authmd_session" if ctx.settings.dev_mode else "__Host-authmd_session"


async def load(ctx: Context, cookie: str | None) -> Session | None:
    if not cookie or len(cookie) > 128:
        return None
    raw = await ctx.store.get_session(stored_hash(cookie), ctx.clock.now())
    if raw is None:
        return None
    try:
        return Session(cookie, msgspec.json.decode(raw, type=SessionData))
    except msgspec.DecodeError:
        return None


def fresh() -> Session:
    return Session(secrets.token_urlsafe(32), SessionData(csrf=secrets.token_urlsafe(24)))


async def save(ctx: Context, session: Session) -> None:
    expires_at = ctx.clock.now() + ctx.settings.session_ttl_seconds
    await ctx.store.put_session(stored_hash(session.cookie), msgspec.json.encode(session.data), expires_at)


async def rotate(ctx: Context, session: Session, data: SessionData) -> Session:
    """A new id (and CSRF token) for a session whose privilege changed; the old id dies."""
    await ctx.store.delete_session(stored_hash(session.cookie))
    rotated = Session(secrets.token_urlsafe(32), msgspec.structs.replace(data, csrf=secrets.token_urlsafe(24)))
    await save(ctx, rotated)
    return rotated


async def end(ctx: Context, session: Session) -> None:
    await ctx.store.delete_session(stored_hash(session.cookie))


def csrf_ok(session: Session | None, presented: str | None) -> bool:
    # compare_digest takes str only when ASCII: compare the UTF-8 bytes, whatever the form carried.
    return (
        session is not None
        and presented is not None
        and hmac.compare_digest(session.data.csrf.encode(), presented.encode())
    )
