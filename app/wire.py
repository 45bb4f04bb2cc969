"""Request and response shapes on the wire (spec/protocol.md). Requests ignore unknown fields (RFC 6749
§3.2's forward-compatibility habit); responses are encoded once with msgspec."""

from __future__ import annotations

from itertools import accumulate
from typing import Literal

import msgspec

# ---- nesting ----------------------------------------------------------------------------------------

# Our deepest shape is 3 levels; unknown fields may nest a little (forward compatibility). A decoder
# recurses once per level, so a body nested thousands deep must be refused before it is decoded
# (RFC 8259 §9 lets a parser limit nesting).
MAX_JSON_DEPTH = 32
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def nesting_within(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True unless arrays/objects in ``raw`` nest deeper than ``limit``; brackets in strings do not count.

    Linear: a typical body is settled by two counts (0.4 µs measured); only a body with more than
    ``limit`` brackets is scanned, outside its strings, for its running depth (64 KB of them: ~3 ms)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return True  # nothing can nest deeper than the number of openers
    # Drop escapes (`\\` first, so `\\"` keeps its quote); then every other piece between quotes is
    # outside a string. Up to the first byte that is not JSON this reads what the decoder reads, and
    # the decoder stops there.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = b"".join(unescaped.split(b'"')[::2]).translate(None, _NOT_BRACKET)
    return not any(map(limit.__lt__, accumulate(map(_STEP.__getitem__, skeleton))))


# ---- requests -------------------------------------------------------------------------------------


class Typed(msgspec.Struct):
    """The discriminator alone: read only when the union refused a body, so a missing or unknown
    ``type`` is named as such (app/routes/identity.py)."""

    type: str | None = None


class ProofOfWork(msgspec.Struct):
    challenge: str
    nonce: str


class AgentInfo(msgspec.Struct):
    name: str | None = None
    platform: str | None = None


class AnonymousRegistration(msgspec.Struct, tag_field="type", tag="anonymous"):
    proof_of_work: ProofOfWork | None = None
    agent: AgentInfo | None = None


class IdentityAssertionRegistration(msgspec.Struct, tag_field="type", tag="identity_assertion"):
    assertion_type: str
    assertion: str


class ServiceAuthRegistration(msgspec.Struct, tag_field="type", tag="service_auth"):
    login_hint: str | None = None
    proof_of_work: ProofOfWork | None = None
    agent: AgentInfo | None = None


class RefreshRequest(msgspec.Struct, tag_field="type", tag="refresh"):
    refresh_token: str


class ClaimStart(msgspec.Struct):
    """``POST {claim_endpoint}``: ``type`` names the claim method (``service_auth`` or *ext*
    ``identity_assertion``)."""

    type: str | None = None
    claim_token: str | None = None
    login_hint: str | None = None
    assertion_type: str | None = None
    assertion: str | None = None


class ClaimComplete(msgspec.Struct):
    claim_token: str | None = None
    user_code: str | None = None


class NoteCreate(msgspec.Struct):
    text: str


# ---- responses ------------------------------------------------------------------------------------


class Identity(msgspec.Struct):
    assertion: str
    expires_at: str


class ClaimScopes(msgspec.Struct):
    pre_claim: list[str]
    post_claim: list[str]


class ClaimBlock(msgspec.Struct):
    token: str
    expires_at: str
    url: str


class Quotas(msgspec.Struct):
    notes: int
    note_bytes: int


class AccountView(msgspec.Struct):
    id: str
    type: str
    expires_at: str | None
    quotas: Quotas


class AnonymousRegistered(msgspec.Struct):
    id: str
    type: str
    identity: Identity
    scopes: ClaimScopes
    claim: ClaimBlock
    account: AccountView


class Challenge(msgspec.Struct):
    challenge: str
    algorithm: str
    difficulty: int
    expires_at: str


class IdentityRegistered(msgspec.Struct):
    id: str
    type: str
    identity: Identity
    scopes: list[str]


class TokenIssued(msgspec.Struct, omit_defaults=True):
    """RFC 6749 §5.1; ``refresh_token`` only from the authorization-code and refresh grants."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str
    refresh_token: str | None = None


class NoteView(msgspec.Struct):
    id: str
    text: str
    created_at: str


class NoteList(msgspec.Struct):
    notes: list[NoteView]
    count: int
    limit: int


# ---- response shapes: the flows return them and the OpenAPI document names them (the fuzz run checks
# every real response against them) -----------------------------------------------------------------

# POST /agent/identity: one decode into this union, tagged by `type`; its members are exactly the
# handlers' keys (tests/flows/test_identity_dispatch.py).
Registration = AnonymousRegistration | IdentityAssertionRegistration | ServiceAuthRegistration | RefreshRequest


class ClaimStatusRequest(msgspec.Struct):
    claim_token: str | None = None


class TokenRequest(msgspec.Struct):
    """The token endpoint's form fields: RFC 7523 §2.1 (jwt-bearer), RFC 6749 §4.1.3 with RFC 7636 §4.5
    (authorization_code), RFC 6749 §6 (refresh_token). Which apply depends on ``grant_type``."""

    grant_type: str
    assertion: str | msgspec.UnsetType = msgspec.UNSET
    code: str | msgspec.UnsetType = msgspec.UNSET
    code_verifier: str | msgspec.UnsetType = msgspec.UNSET
    redirect_uri: str | msgspec.UnsetType = msgspec.UNSET
    refresh_token: str | msgspec.UnsetType = msgspec.UNSET
    client_id: str | msgspec.UnsetType = msgspec.UNSET  # a public client names itself (RFC 6749 §3.2.1)
    resource: str | msgspec.UnsetType = msgspec.UNSET  # RFC 8707
    scope: str | msgspec.UnsetType = msgspec.UNSET


class ClientMetadata(msgspec.Struct):
    """What RFC 7591 dynamic registration reads of a client's metadata (§2); other members are ignored."""

    redirect_uris: list[str]
    client_name: str | msgspec.UnsetType = msgspec.UNSET
    application_type: str | msgspec.UnsetType = msgspec.UNSET  # web | native
    grant_types: list[str] | msgspec.UnsetType = msgspec.UNSET
    response_types: list[str] | msgspec.UnsetType = msgspec.UNSET
    token_endpoint_auth_method: str | msgspec.UnsetType = msgspec.UNSET  # answered as none


class ClientRegistered(msgspec.Struct, omit_defaults=True, kw_only=True):
    """RFC 7591 §3.2.1: the client's id and the metadata as the server took it (public: no secret)."""

    client_id: str
    client_id_issued_at: int
    redirect_uris: list[str]
    token_endpoint_auth_method: str
    grant_types: list[str]
    response_types: list[str]
    application_type: str
    client_name: str | None = None


class TokenHint(msgspec.Struct):
    """RFC 7009 §2.1 and RFC 7662 §2.1 (form fields)."""

    token: str
    token_type_hint: str | msgspec.UnsetType = msgspec.UNSET


class ExchangeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What the token endpoint reads of a TokenRequest form (RFC 7523 §2.1), parsed once by
    ``app.flows.exchange.token_request``. ``scope`` keeps every value sent, unjudged: a repeated scope
    is refused only after the assertion verifies (``app.flows.exchange.requested_scope``)."""

    grant_type: str
    assertion: str
    resource: str | None = None
    scope: tuple[str, ...] = ()


class RevokeRequest(msgspec.Struct):
    """What the revocation and introspection flows read of a TokenHint form: the token alone."""

    token: str


class Attempt(msgspec.Struct):
    verification_uri: str
    expires_at: str


class ClaimBlockWithAttempt(ClaimBlock):
    attempt: Attempt


class PostClaimScopes(msgspec.Struct):
    post_claim: list[str]


class ServiceAuthRegistered(msgspec.Struct):
    id: str
    type: str
    scopes: PostClaimScopes
    claim: ClaimBlockWithAttempt


class RefreshTokenView(msgspec.Struct):
    value: str
    expires_at: str


class IdentityWithRefresh(Identity):
    refresh_token: RefreshTokenView


class Refreshed(msgspec.Struct):
    id: str
    type: str
    identity: IdentityWithRefresh


Registered = AnonymousRegistered | ServiceAuthRegistered | IdentityRegistered | Refreshed


class ClaimAttemptStarted(msgspec.Struct):
    id: str
    type: str
    attempt: Attempt


class ClaimCompleted(msgspec.Struct):
    id: str
    status: str
    identity: IdentityWithRefresh


class ClaimStatus(msgspec.Struct):
    id: str
    status: Literal["pending", "confirmed", "claimed", "expired", "revoked", "denied"]


class Introspection(msgspec.Struct):
    """RFC 7662 §2.2: only ``active`` for an inactive token."""

    active: bool
    scope: str | msgspec.UnsetType = msgspec.UNSET
    client_id: str | msgspec.UnsetType = msgspec.UNSET
    sub: str | msgspec.UnsetType = msgspec.UNSET
    aud: str | list[str] | msgspec.UnsetType = msgspec.UNSET
    iss: str | msgspec.UnsetType = msgspec.UNSET
    exp: int | msgspec.UnsetType = msgspec.UNSET
    iat: int | msgspec.UnsetType = msgspec.UNSET
    jti: str | msgspec.UnsetType = msgspec.UNSET
    token_type: str | msgspec.UnsetType = msgspec.UNSET
    account_type: str | msgspec.UnsetType = msgspec.UNSET


class Health(msgspec.Struct):
    status: str
