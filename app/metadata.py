"""The discovery documents as types: RFC 8414 authorization-server metadata with the auth.md
``agent_auth`` block (spec/protocol.md), and RFC 9728 protected-resource metadata.

Field order is member order on the wire. A member that a configuration leaves out has a default and
its Struct ``omit_defaults``; a member that is always sent (even as null) has none.
"""

from __future__ import annotations

import msgspec


class UserCode(msgspec.Struct):
    digits: int
    lifetime_seconds: int
    max_attempts: int
    max_attempts_per_claim: int


class ClaimMetadata(msgspec.Struct):
    """*ext* ``agent_auth.claim``: how a human claims here (``sign_in`` null: claims not offered)."""

    offered: bool
    sign_in: str | None
    methods: list[str]
    max_live_attempts: int
    login_hint_required: bool
    complete_endpoint: str
    status_endpoint: str
    user_code: UserCode
    refresh_token_lifetime_seconds: int


class TrustedIssuer(msgspec.Struct):
    issuer: str
    name: str


class IdentityAssertionMetadata(msgspec.Struct):
    assertion_types_supported: list[str]
    # The trust list, so an agent can tell before trying whether its provider is trusted
    # (workos/auth.md#24): issuer and display name only, nothing secret.
    issuers_supported: list[TrustedIssuer]


class ProofOfWorkMetadata(msgspec.Struct):
    mode: str
    algorithm: str
    difficulty: int
    max_difficulty: int
    free_per_source: int
    window_seconds: int


class QuotaMetadata(msgspec.Struct):
    notes: int
    note_bytes: int


class AnonymousMetadata(msgspec.Struct):
    enabled: bool
    lifetime_seconds: int
    quotas: QuotaMetadata
    claimed_quotas: QuotaMetadata


class ScopesMetadata(msgspec.Struct):
    pre_claim: list[str]
    post_claim: list[str]


class AgentAuth(msgspec.Struct, omit_defaults=True, kw_only=True):
    """The ``agent_auth`` block: auth.md members first; the three ID-JAG members only with providers."""

    skill: str
    identity_endpoint: str
    claim_endpoint: str
    identity_types_supported: list[str]
    identity_assertion: IdentityAssertionMetadata | None = None
    events_endpoint: str | None = None
    events_supported: list[str] | None = None
    # authmd extensions (additive; a plain auth.md client ignores them):
    challenge_endpoint: str
    proof_of_work: ProofOfWorkMetadata
    anonymous: AnonymousMetadata
    scopes: ScopesMetadata
    access_token_lifetime_seconds: int
    claim: ClaimMetadata


class AuthorizationServerMetadata(msgspec.Struct, omit_defaults=True, kw_only=True):
    """RFC 8414 §2 metadata."""

    issuer: str | None
    # The authorization endpoint serves OAuth clients (MCP clients) whose human signs in here; agents
    # never see a browser. Without one, response_types_supported is empty (RFC 8414 §2 requires the member).
    authorization_endpoint: str | None = None
    jwks_uri: str
    token_endpoint: str
    revocation_endpoint: str
    introspection_endpoint: str
    # RFC 7591 via RFC 8414 §2: only with dcr_enabled.
    registration_endpoint: str | None = None
    response_types_supported: list[str]
    # RFC 8414 §2: only query; RFC 7636 via RFC 8414 §2: S256 only.
    response_modes_supported: list[str] | None = None
    code_challenge_methods_supported: list[str] | None = None
    grant_types_supported: list[str]
    scopes_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    introspection_endpoint_auth_methods_supported: list[str]
    # RFC 9207 §3: every authorization response carries `iss`.
    authorization_response_iss_parameter_supported: bool = False
    # draft-ietf-oauth-client-id-metadata-document §6: a URL client_id names its metadata document.
    client_id_metadata_document_supported: bool = False
    # ID-JAG draft -04 §7: the profile of the JWT-bearer grant that accepts ID-JAGs (MCP clients look);
    # only with providers.
    authorization_grant_profiles_supported: list[str] | None = None
    service_documentation: str
    agent_auth: AgentAuth


class ProtectedResourceMetadata(msgspec.Struct):
    """RFC 9728 §2."""

    resource: str
    authorization_servers: list[str | None]
    jwks_uri: str
    scopes_supported: list[str]
    bearer_methods_supported: list[str]
    resource_signing_alg_values_supported: list[str]
    resource_name: str
    resource_documentation: str
