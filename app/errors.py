"""One error type, a closed set of codes, the HTTP status from one table.

Raise sites read like the spec: ``raise AuthError("invalid_grant", "assertion expired")``.
Anything that is not an AuthError becomes ``server_error`` with a fixed text; details go to logs only.
"""

from __future__ import annotations

from typing import Any

# spec/protocol.md § Errors, plus the HTTP-level codes every server needs (404/405, 408/431 from app/server.py).
STATUS: dict[str, int] = {
    # 400
    "invalid_request": 400,
    "invalid_login_hint": 400,
    "invalid_refresh_token": 400,
    "invalid_claim": 400,
    "invalid_grant": 400,
    "unsupported_grant_type": 400,
    "invalid_target": 400,
    "invalid_scope": 400,
    "proof_of_work_required": 400,
    "invalid_proof_of_work": 400,
    "anonymous_registration_disabled": 400,
    "service_auth_registration_disabled": 400,
    "issuer_not_enabled": 400,  # an ID-JAG issuer that is not on the trust list
    "invalid_signature": 400,
    "invalid_audience": 400,
    "expired": 400,
    "replay_detected": 400,
    "missing_verified_email": 400,
    "invalid_client_id": 400,
    # RFC 7591 §3.2.2 (dynamic client registration)
    "invalid_redirect_uri": 400,
    "invalid_client_metadata": 400,
    # RFC 8935 §2.3 (the events endpoint only, in its own {"err"} body)
    "invalid_key": 400,
    "invalid_issuer": 400,
    # 401
    "interaction_required": 401,
    "login_required": 401,
    "invalid_claim_token": 401,
    "invalid_user_code": 401,
    "invalid_token": 401,
    "invalid_client": 401,
    # 403
    "insufficient_scope": 403,
    "quota_exceeded": 403,
    "claim_denied": 403,
    "auth_method_disabled": 403,
    # 404 / 405
    "not_found": 404,
    "method_not_allowed": 405,
    # 408 (RFC 9110 §15.5.9)
    "request_timeout": 408,
    # 409 / 410
    "already_claimed": 409,
    "already_revoked": 409,  # the admin API: nothing live left to revoke
    "claim_not_confirmed": 409,
    "claim_expired": 410,
    "claim_revoked": 410,
    "user_code_expired": 410,
    # 413 / 415 / 429
    "request_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limit_exceeded": 429,
    "too_many_attempts": 429,
    # 431 (RFC 6585 §5)
    "request_header_fields_too_large": 431,
    # 5xx
    "server_error": 500,
    "temporarily_unavailable": 503,
}

# The next step, in one sentence, when a raise site has nothing more specific to say.
DEFAULT_HINTS: dict[str, str] = {
    "invalid_request": "Fix the request as the description says; the contract is at /auth.md.",
    "invalid_grant": "Register again at the identity endpoint to get a fresh identity assertion.",
    "unsupported_grant_type": "Use a grant_type the metadata lists in grant_types_supported.",
    "invalid_target": "Omit `resource` or name the resource from the protected-resource metadata.",
    "invalid_redirect_uri": "Register https redirect URIs (a native app: loopback http or a private-use scheme).",
    "invalid_client_metadata": "Fix the client metadata as the description says (RFC 7591 §2).",
    "invalid_scope": "Ask for a subset of the scopes the registration was granted, or omit `scope`.",
    "proof_of_work_required": "Solve the challenge in `challenge` and resend with `proof_of_work`.",
    "invalid_proof_of_work": "Solve the fresh challenge in `challenge` and resend with `proof_of_work`.",
    "anonymous_registration_disabled": "This service does not offer anonymous registration; see /auth.md.",
    "service_auth_registration_disabled": "This service does not offer service_auth registration; see /auth.md.",
    "issuer_not_enabled": "Use a provider this service trusts: agent_auth.identity_assertion.issuers_supported.",
    "invalid_token": "Exchange your identity assertion at the token endpoint for a new access token.",
    "invalid_client": "Authenticate as a configured client with HTTP Basic, or send a public client's client_id.",
    "insufficient_scope": "Ask a human to claim the account to get the post-claim scopes.",
    "quota_exceeded": "Ask a human to claim the account; claimed accounts have higher limits.",
    "not_found": "Check the path; the contract is at /auth.md.",
    "method_not_allowed": "Check the method; the contract is at /auth.md.",
    "request_too_large": "Send a smaller body.",
    "request_timeout": "Send the whole request at once, on a new connection.",
    "request_header_fields_too_large": "Send a smaller request line and headers.",
    "unsupported_media_type": "Send the body with the content type the endpoint documents in /auth.md.",
    "rate_limit_exceeded": "Wait for the Retry-After seconds, then retry.",
    "too_many_attempts": "Use a link you already gave the human, or wait until one expires.",
    "claim_denied": "The human said this wasn't them; the registration is revoked. Do not ask again.",
    "claim_revoked": "The registration was revoked; register again if you still need an account.",
    "auth_method_disabled": "Use a claim method this service lists in agent_auth.claim.methods (see /auth.md).",
    "already_revoked": "Nothing to do: the registration's tokens already fail at their next use.",
    "temporarily_unavailable": "Retry after the Retry-After seconds.",
    "server_error": "Retry later; if it persists, report it to the operator.",
}


class AuthError(Exception):
    """The only error type. ``code`` must be in STATUS; ``extra`` adds body fields (e.g. `challenge`);
    ``limit`` names the rate limit or quota that refused the request, for the logs and metrics only."""

    __slots__ = ("code", "description", "extra", "headers", "hint", "limit")

    def __init__(
        self,
        code: str,
        description: str,
        hint: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        limit: str | None = None,
    ) -> None:
        if code not in STATUS:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.hint = hint if hint is not None else DEFAULT_HINTS.get(code, "See /auth.md for the contract.")
        self.extra = extra or {}
        self.headers = headers or {}
        self.limit = limit

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def body(self) -> dict[str, Any]:
        # `message` repeats the description: the reference service answers {error, message}, and agents
        # read either (revision 2).
        return {
            "error": self.code,
            "error_description": self.description,
            "message": self.description,
            "hint": self.hint,
            **self.extra,
        }


class StoreUnavailable(Exception):
    """The store could not answer (locked, I/O error, connection lost): a 503, never a 500 or a success."""


def server_error() -> AuthError:
    return AuthError("server_error", "The server failed to handle the request.")


def unavailable(retry_after: int = 1) -> AuthError:
    return AuthError(
        "temporarily_unavailable",
        "The service's store is unavailable; nothing was changed.",
        headers={"Retry-After": str(retry_after)},
    )
