"""Discovery: pure functions of the settings and keys (RFC 8414, RFC 9728, JWKS, /auth.md).

The examples in /auth.md are built from the same wire types the endpoints return, so a reader (or a
test) can rely on them having the real keys and value types.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

import msgspec
from markdown_it import MarkdownIt

from app import endpoints as ep
from app.context import Context
from app.errors import STATUS, AuthError
from app.flows import authorize
from app.flows.claim import CODE_TTL_SECONDS, MAX_ATTEMPT_FAILURES, MAX_CLAIM_FAILURES, methods_offered
from app.flows.events import REVOKED_URIS
from app.flows.limits import rate_limited
from app.metadata import (
    AgentAuth,
    AnonymousMetadata,
    AuthorizationServerMetadata,
    ClaimMetadata,
    IdentityAssertionMetadata,
    ProofOfWorkMetadata,
    ProtectedResourceMetadata,
    QuotaMetadata,
    ScopesMetadata,
    TrustedIssuer,
    UserCode,
)
from app.protocol import ID_JAG_PROFILE, JWT_BEARER, URN_ID_JAG
from app.text import MAX_LABEL
from app.tokens import CODE_DIGITS
from app.wire import (
    AccountView,
    AnonymousRegistered,
    Challenge,
    ClaimBlock,
    ClaimScopes,
    Identity,
    IdentityRegistered,
    NoteList,
    NoteView,
    Quotas,
    TokenIssued,
)


def scopes_supported(ctx: Context) -> list[str]:
    return list(dict.fromkeys([*ctx.settings.pre_claim_scopes, *ctx.settings.post_claim_scopes]))


def identity_types(ctx: Context) -> list[str]:
    """Exactly the registration types this configuration enables (the metadata says no more)."""
    s = ctx.settings
    types = (
        ("anonymous", s.anonymous_enabled),
        ("service_auth", s.claims_offered and "service_auth" in s.claim_methods),
        ("identity_assertion", bool(s.providers)),
    )
    return [t for t, on in types if on]


def claim_metadata(ctx: Context) -> ClaimMetadata:
    """*ext* ``agent_auth.claim``: how a human claims here (absent sign-in → not offered)."""
    s, e = ctx.settings, ctx.endpoints
    sign_in = "oidc" if s.oidc_issuer else "development" if s.dev_mode else None
    return ClaimMetadata(
        offered=s.claims_offered,
        sign_in=sign_in,
        methods=methods_offered(ctx),
        max_live_attempts=s.claim_max_live_attempts,
        login_hint_required=s.claim_require_login_hint,
        complete_endpoint=e.url(ep.CLAIM_COMPLETE),
        status_endpoint=e.url(ep.CLAIM_STATUS),
        user_code=UserCode(
            digits=CODE_DIGITS,
            lifetime_seconds=CODE_TTL_SECONDS,
            max_attempts=MAX_ATTEMPT_FAILURES,
            max_attempts_per_claim=MAX_CLAIM_FAILURES,
        ),
        refresh_token_lifetime_seconds=s.refresh_token_ttl_seconds,
    )


def authorization_server_metadata(ctx: Context) -> AuthorizationServerMetadata:
    """RFC 8414 §2 metadata with the `agent_auth` block of spec/protocol.md (authmd extensions marked)."""
    s, e = ctx.settings, ctx.endpoints
    providers = bool(s.providers)
    browser = authorize.offered(ctx)  # OAuth clients whose human signs in here (MCP clients)
    confidential = any(c.client_secret is not None for c in s.clients)
    return AuthorizationServerMetadata(
        issuer=s.issuer,
        authorization_endpoint=e.url(ep.AUTHORIZE) if browser else None,
        jwks_uri=e.url(ep.JWKS),
        token_endpoint=e.url(ep.TOKEN),
        revocation_endpoint=e.url(ep.REVOKE),
        introspection_endpoint=e.url(ep.INTROSPECT),
        registration_endpoint=e.url(ep.REGISTER) if browser and s.dcr_enabled else None,
        response_types_supported=["code"] if browser else [],
        response_modes_supported=["query"] if browser else None,
        code_challenge_methods_supported=["S256"] if browser else None,
        grant_types_supported=["authorization_code", "refresh_token", JWT_BEARER] if browser else [JWT_BEARER],
        scopes_supported=[*scopes_supported(ctx), authorize.OFFLINE_ACCESS] if browser else scopes_supported(ctx),
        token_endpoint_auth_methods_supported=["none", "client_secret_basic"] if confidential else ["none"],
        revocation_endpoint_auth_methods_supported=["none"],
        introspection_endpoint_auth_methods_supported=["client_secret_basic"],
        authorization_response_iss_parameter_supported=browser,
        client_id_metadata_document_supported=browser,
        authorization_grant_profiles_supported=[ID_JAG_PROFILE] if providers else None,
        service_documentation=e.url(ep.AUTH_MD),
        agent_auth=AgentAuth(
            skill=e.url(ep.AUTH_MD),
            identity_endpoint=e.url(ep.IDENTITY),
            claim_endpoint=e.url(ep.CLAIM),
            identity_types_supported=identity_types(ctx),
            identity_assertion=IdentityAssertionMetadata(
                assertion_types_supported=[URN_ID_JAG],
                issuers_supported=[TrustedIssuer(issuer=p.issuer, name=p.display_name) for p in s.providers],
            )
            if providers
            else None,
            events_endpoint=e.url(ep.EVENTS) if providers else None,
            events_supported=list(REVOKED_URIS) if providers else None,
            challenge_endpoint=e.url(ep.CHALLENGE),
            proof_of_work=ProofOfWorkMetadata(
                mode=s.pow_mode,
                algorithm="sha256",
                difficulty=s.pow_difficulty,
                max_difficulty=s.pow_max_difficulty,
                free_per_source=s.pow_free_per_source,
                window_seconds=s.rate_window_seconds,
            ),
            anonymous=AnonymousMetadata(
                enabled=s.anonymous_enabled,
                lifetime_seconds=s.anonymous_ttl_seconds,
                quotas=QuotaMetadata(notes=s.quota_notes, note_bytes=s.quota_note_bytes),
                claimed_quotas=QuotaMetadata(notes=s.claimed_quota_notes, note_bytes=s.claimed_quota_note_bytes),
            ),
            scopes=ScopesMetadata(pre_claim=list(s.pre_claim_scopes), post_claim=list(s.post_claim_scopes)),
            access_token_lifetime_seconds=s.access_token_ttl_seconds,
            claim=claim_metadata(ctx),
        ),
    )


def protected_resource_metadata(ctx: Context, resource: str) -> ProtectedResourceMetadata:
    """RFC 9728 §2; `resource` must equal the identifier the metadata URL was derived from (§3.3)."""
    s, e = ctx.settings, ctx.endpoints
    return ProtectedResourceMetadata(
        resource=resource,
        authorization_servers=[s.issuer],
        jwks_uri=e.url(ep.JWKS),
        scopes_supported=scopes_supported(ctx),
        bearer_methods_supported=["header"],
        resource_signing_alg_values_supported=[ctx.keys.current.alg],
        resource_name=s.service_name,
        resource_documentation=e.url(ep.AUTH_MD),
    )


# ---------------------------------------------------------------------------------------------------
# /auth.md: the prose contract for agents that read
# ---------------------------------------------------------------------------------------------------

_T = "2030-01-01T00:00:00Z"  # example times; the structure, not the value, is the contract
_JWT = "eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiIsInR5cCI6Ii4uLiJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl"


def _json(value: Any) -> str:
    if isinstance(value, msgspec.Struct):
        value = msgspec.to_builtins(value)
    return json.dumps(value, indent=2)


def _block(name: str, value: Any) -> str:
    return f"```json example={name}\n{_json(value)}\n```"


def examples(ctx: Context) -> dict[str, Any]:
    """One example per response the contract describes, named for the fence info string."""
    s, e = ctx.settings, ctx.endpoints
    challenge = Challenge(challenge="v1.…", algorithm="sha256", difficulty=s.pow_difficulty, expires_at=_T)
    note = NoteView(id="note_…", text="hello", created_at=_T)
    out: dict[str, Any] = {
        "authorization-server-metadata": authorization_server_metadata(ctx),
        "protected-resource-metadata": protected_resource_metadata(ctx, s.resource_str),
        "challenge": challenge,
        "registration": AnonymousRegistered(
            id="reg_…",
            type="anonymous",
            identity=Identity(assertion=_JWT, expires_at=_T),
            scopes=ClaimScopes(pre_claim=list(s.pre_claim_scopes), post_claim=list(s.post_claim_scopes)),
            claim=ClaimBlock(token="clm_…", expires_at=_T, url=e.url(ep.CLAIM)),
            account=AccountView(
                id="acct_…",
                type="temporary",
                expires_at=_T,
                quotas=Quotas(notes=s.quota_notes, note_bytes=s.quota_note_bytes),
            ),
        ),
        "proof-of-work-required": AuthError(
            "proof_of_work_required",
            "this service asks for a proof of work before it creates an account",
            extra={"challenge": msgspec.to_builtins(challenge)},
        ).body(),
        "token": TokenIssued(
            access_token=_JWT,
            token_type="Bearer",
            expires_in=s.access_token_ttl_seconds,
            scope=" ".join(s.pre_claim_scopes),
        ),
        "note": note,
        "notes": NoteList(notes=[note], count=1, limit=s.quota_notes),
        "quota-exceeded": AuthError(
            "quota_exceeded", f"this account may hold at most {s.quota_notes} notes", "Ask a human to claim …"
        ).body(),
        "invalid-token": AuthError("invalid_token", "the access token has expired").body(),
        "rate-limited": rate_limited(30, "too many requests", limit="example").body(),
    }
    if s.claims_offered:
        attempt = {"verification_uri": f"{s.issuer}/login?return_to=…", "expires_at": _T}
        refresh = {"value": "art_…", "expires_at": _T}
        out["service-auth-registration"] = {
            "id": "reg_…",
            "type": "service_auth",
            "scopes": {"post_claim": list(s.post_claim_scopes)},
            "claim": {"token": "clm_…", "expires_at": _T, "url": e.url(ep.CLAIM), "attempt": attempt},
        }
        out["claim-attempt"] = {"id": "reg_…", "type": "service_auth", "attempt": attempt}
        out["claim-status"] = {"id": "reg_…", "status": "confirmed"}
        out["claim-not-confirmed"] = AuthError(
            "claim_not_confirmed", "the human has not authorized this claim yet", "Wait for the human, then send …"
        ).body()
        out["claim-completed"] = {
            "id": "reg_…",
            "status": "claimed",
            "identity": {"assertion": _JWT, "expires_at": _T, "refresh_token": refresh},
        }
        out["refreshed"] = {
            "id": "reg_…",
            "type": "refresh",
            "identity": {"assertion": _JWT, "expires_at": _T, "refresh_token": refresh},
        }
    if s.providers:
        scopes = list(s.providers[0].scopes)
        out["identity-registration"] = IdentityRegistered(
            id="reg_…", type="identity_assertion", identity=Identity(assertion=_JWT, expires_at=_T), scopes=scopes
        )
        out["interaction-required"] = AuthError(
            "interaction_required",
            "an account with this verified email exists: a human must confirm the link",
            "Show the human claim.attempt.verification_uri (a secret), then complete the claim with the code.",
            extra={
                "id": "reg_…",
                "type": "identity_assertion",
                "scopes": {"post_claim": scopes},
                "claim": {
                    "token": "clm_…",
                    "expires_at": _T,
                    "url": e.url(ep.CLAIM),
                    "attempt": {"verification_uri": f"{s.issuer}/login?return_to=…", "expires_at": _T},
                },
            },
        ).body()
    return out


def _providers_section(ctx: Context, ex: dict[str, Any]) -> str:
    s, e = ctx.settings, ctx.endpoints
    if not s.providers:
        return ""
    trusted = "\n".join(f"- {p.display_name}: issuer `{p.issuer}`, scopes `{' '.join(p.scopes)}`" for p in s.providers)
    max_ages = sorted({p.max_age or s.idjag_max_age_seconds for p in s.providers})
    fresh = " or ".join(f"{m // 60} minutes" if m % 60 == 0 else f"{m} seconds" for m in max_ages)
    return f"""## 5b. Register with your platform's word for your user (ID-JAG)

If your agent platform is trusted here, it can vouch for the user you act for with an ID-JAG
(`typ: oauth-id-jag+jwt`, `aud` = `{s.issuer}`, a verified `email`, and `auth_time`: the user's
sign-in at the platform may be at most {fresh} old). Trusted platforms:

{trusted}

Before you try, check whether your platform is on this list: the metadata's
`agent_auth.identity_assertion.issuers_supported` lists each trusted issuer (`issuer`, `name`); compare
your ID-JAG's `iss` with `issuer` exactly. An untrusted issuer gets 400 `issuer_not_enabled`; a stale or
missing `auth_time` gets 401 `login_required` with `max_age` (have the user sign in again at the
platform).

`POST {e.url(ep.IDENTITY)}` with
`{{"type": "identity_assertion", "assertion_type": "{URN_ID_JAG}", "assertion": "<ID-JAG>"}}`:

{_block("identity-registration", ex["identity-registration"])}

The same ID-JAG may instead go straight to the token endpoint as the `assertion` of the JWT-bearer
grant. Each ID-JAG works once (its `jti`). If an account with that verified email already exists and
has never been linked to your platform's user, you get 401 `interaction_required`: show the human the
`claim.attempt.verification_uri` (it is a secret) so they can confirm the link.

{_block("interaction-required", ex["interaction-required"])}

Your platform revokes what it vouched for by pushing a security event token (RFC 8417, RFC 8935) to
`{e.url(ep.EVENTS)}`; everything issued for that user up to that moment stops working.

"""


def _claim_section(ctx: Context, ex: dict[str, Any]) -> str:
    s, e = ctx.settings, ctx.endpoints
    unclaimed = (
        "The `claim` block is what a human needs to make this account theirs and lift its limits. Until then "
        "the account is temporary: when `account.expires_at` passes it is deleted with everything it owns."
    )
    if not s.claims_offered:
        return unclaimed + "\n\nThis service has no human sign-in configured, so accounts cannot be claimed here.\n\n"
    hint = (
        "required" if s.claim_require_login_hint else "optional: without it, whoever signs in with the link may claim"
    )
    sign_in = (
        "on this service's own site"
        if s.claim_page_url
        else f"at {s.oidc_name}"
        if s.oidc_issuer
        else "with the development sign-in form (dev mode: any email)"
    )
    return f"""{unclaimed}

1. Start an attempt: `POST {e.url(ep.CLAIM)}` with
   `{{"type": "service_auth", "claim_token": "<claim.token>", "login_hint": "<the human's email>"}}`
   (`login_hint` is {hint}; `"type": "login_hint"` is accepted as the same thing). Each call starts one
   more attempt, with its own link; the earlier ones stay live, up to {s.claim_max_live_attempts} at once
   (one more is 429 `too_many_attempts`, with `Retry-After` until the oldest ends):

{_block("claim-attempt", ex["claim-attempt"])}

2. Show the human `attempt.verification_uri` and say it is a secret link for them alone. They sign in
   {sign_in}, see what you asked for, and authorize. The page shows them a {CODE_DIGITS}-digit code.
3. Ask the human for the code. `POST {e.url(ep.CLAIM_STATUS)}` with `{{"claim_token": "…"}}` tells you
   when they have authorized (`pending`, `confirmed`, `claimed`, `expired`, `revoked`, `denied`):

{_block("claim-status", ex["claim-status"])}

4. Complete: `POST {e.url(ep.CLAIM_COMPLETE)}` with `{{"claim_token": "…", "user_code": "123456"}}`
   (send the code as the human read it: spaces and hyphens are ignored, so `123 456` works; you name no
   attempt, any live attempt's code completes the claim). Before the human authorized you get 409
   `claim_not_confirmed` (ask again later):

{_block("claim-not-confirmed", ex["claim-not-confirmed"])}

   On success the account is theirs and permanent, its limits lift, and you get a new assertion with
   the post-claim scopes and a refresh token. Your old assertion and access tokens stop working:

{_block("claim-completed", ex["claim-completed"])}

The code lives {CODE_TTL_SECONDS // 60} minutes. Wrong codes count against the claim:
{MAX_ATTEMPT_FAILURES} end every live attempt (start a new one), and {MAX_CLAIM_FAILURES} over the claim's life lock
it for good (410 `claim_expired`). Completing ends every other attempt. If the human says "this wasn't
me", the registration is revoked: completing then answers 403 `claim_denied`, and a new attempt 410
`claim_revoked` (as does anything after a revocation by you, the human's account page, the operator or
your provider). Don't ask again. Claim methods the operator turned off answer 403 `auth_method_disabled`;
`agent_auth.claim.methods` lists the ones on.

To register for a known human without an anonymous phase, `POST {e.url(ep.IDENTITY)}` with
`{{"type": "service_auth", "login_hint": "<email>"}}`: nothing is issued until the human authorizes,
then complete the claim as in step 4.

{_block("service-auth-registration", ex["service-auth-registration"])}

When the assertion expires, `POST {e.url(ep.IDENTITY)}` with
`{{"type": "refresh", "refresh_token": "<identity.refresh_token.value>"}}`. Each refresh token works
once; keep the new one. Presenting a spent one revokes the grant.

{_block("refreshed", ex["refreshed"])}

"""


def auth_md(ctx: Context) -> str:
    s, e = ctx.settings, ctx.endpoints
    ex = examples(ctx)
    minutes = s.anonymous_ttl_seconds // 60
    pow_line = {
        "off": "This service does not ask for proof of work.",
        "always": f"This service always asks for a proof of work (difficulty {s.pow_difficulty} bits or more).",
        "adaptive": (
            f"This service asks for a proof of work only when your source registers more than "
            f"{s.pow_free_per_source} times in {s.rate_window_seconds // 60} minutes, or the service as a "
            f"whole is busy; the difficulty starts at {s.pow_difficulty} bits and grows with your volume."
        ),
    }[s.pow_mode]
    error_rows = "\n".join(
        f"| {status} | {', '.join(f'`{c}`' for c, st in STATUS.items() if st == status)} |"
        for status in sorted(set(STATUS.values()))
    )
    anon = (
        f"Anonymous registration is **on**: you get a temporary account that lives {minutes} minutes."
        if s.anonymous_enabled
        else "Anonymous registration is **off** on this service."
    )
    return f"""# auth.md — {s.service_name}

This service lets an AI agent sign itself up, with no human in the loop, and hand the account to a
human later. It speaks the **auth.md agent-registration protocol**. Everything below is generated
from the live configuration; every JSON example has the keys and value types of the real response.

- Issuer: `{s.issuer}`
- Protected resource: `{s.resource}`
- {anon}
- Scopes before a human claims the account: `{" ".join(s.pre_claim_scopes)}`; after: `{" ".join(s.post_claim_scopes)}`.
- Quotas of a temporary account: {s.quota_notes} notes of at most {s.quota_note_bytes} bytes.

All timestamps are UTC RFC 3339 with a `Z`. Request bodies are JSON (`Content-Type: application/json`)
except at the OAuth endpoints, which take forms (`application/x-www-form-urlencoded`). Unknown request
fields are ignored. Responses that carry a credential send `Cache-Control: no-store`.

## 1. Discover

Start from any 401 of the API: its `WWW-Authenticate: Bearer resource_metadata="…"` names the
protected-resource metadata (RFC 9728), which names this issuer. The authorization-server metadata
(RFC 8414) lives at `{e.url(ep.AS_METADATA)}`:

{_block("authorization-server-metadata", ex["authorization-server-metadata"])}

`agent_auth` is the auth.md block. `challenge_endpoint`, `proof_of_work`, `anonymous`, `scopes` and
`access_token_lifetime_seconds` are authmd extensions; a plain auth.md client may ignore them.
The protected-resource metadata (`{e.resource_metadata}`):

{_block("protected-resource-metadata", ex["protected-resource-metadata"])}

## 2. Proof of work (when asked)

{pow_line} Get a challenge with `POST {e.url(ep.CHALLENGE)}` (no body):

{_block("challenge", ex["challenge"])}

Find a decimal `nonce` such that SHA-256 of the UTF-8 bytes `challenge + ":" + nonce` starts with at
least `difficulty` zero bits, and send it with the registration as
`"proof_of_work": {{"challenge": "…", "nonce": "12345"}}`. A challenge works once and until its
`expires_at`. If you register without a proof when one is needed, the 400 error carries a fresh
challenge, so one round trip teaches you:

{_block("proof-of-work-required", ex["proof-of-work-required"])}

## 3. Register

`POST {e.url(ep.IDENTITY)}` with `{{"type": "anonymous"}}` (optional: `"proof_of_work"` as above, and
`"agent": {{"name": "…", "platform": "…"}}` to tell the human who is asking: at most {MAX_LABEL} characters
each, no control or invisible formatting characters; the human sees anything beyond plain ASCII flagged,
with its code points). The answer:

{_block("registration", ex["registration"])}

- `identity.assertion` is a JWT signed by this service; treat it as opaque and keep it secret. It is
  good until `identity.expires_at` (the end of the temporary account).
- `claim.token` is a secret that lets a human take over this account; keep it until you hand over.
- `account` tells you what the temporary account may hold and when it (with everything in it) is deleted.

## 4. Get an access token

`POST {e.url(ep.TOKEN)}` with the form
`grant_type={JWT_BEARER}&assertion=<identity.assertion>` (RFC 7523; no client authentication;
optional `scope` to narrow, `resource` = `{s.resource}`):

{_block("token", ex["token"])}

The access token is an RFC 9068 JWT (`typ: at+jwt`) for `{s.resource}`. It never outlives the
account. When it expires, exchange the assertion again.

## 5. Use the API

Send `Authorization: Bearer <access_token>`. The demo API:

- `GET {e.url(ep.NOTES)}` lists your notes (`notes:read`):

{_block("notes", ex["notes"])}

- `POST {e.url(ep.NOTES)}` with `{{"text": "…"}}` creates one (`notes:write`; 201):

{_block("note", ex["note"])}

- `GET {e.url(ep.NOTES)}/{{id}}` reads one; `DELETE {e.url(ep.NOTES)}/{{id}}` deletes one (`notes:delete`,
  which only a claimed account has; 204).

Over the quota you get 403 `quota_exceeded`:

{_block("quota-exceeded", ex["quota-exceeded"])}

A missing, expired or revoked token gets 401 with `WWW-Authenticate: Bearer resource_metadata="…"`:

{_block("invalid-token", ex["invalid-token"])}

{_providers_section(ctx, ex)}## 6. Hand the account to a human

{_claim_section(ctx, ex)}
## 7. Revoke

`POST {e.url(ep.REVOKE)}` with the form `token=<token>` (RFC 7009) always answers 200. Revoking an
access token kills it; revoking your identity assertion ends the registration, and for a temporary
account deletes the account and everything in it.

## Errors

Every error body is JSON with `error`, `error_description`, `message` (the same text) and `hint` (the
next step, in one sentence). Too many requests get 429 `rate_limit_exceeded` with `Retry-After` and the
same number of seconds in `retry_after`:

{_block("rate-limited", ex["rate-limited"])}

| status | error codes |
| --- | --- |
{error_rows}
"""


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>auth.md — {title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}}
pre{{background:#f4f4f4;padding:.8rem;overflow:auto}}code{{font-size:.9em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}}</style></head>
<body>
{body}
</body></html>
"""


def auth_md_html(ctx: Context, markdown: str) -> str:
    # html=False: nothing in the Markdown is passed through as raw HTML.
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    return _HTML.format(title=escape(ctx.settings.service_name), body=md.render(markdown))
