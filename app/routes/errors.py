"""Every failure becomes one JSON body and one status from the table; 401s always carry a challenge.

``Bearer`` (RFC 6750 §3) on the resource and the token endpoint, pointing at the protected-resource
metadata (RFC 9728 §5.1); ``AgentAuth`` on the profile endpoints (spec/protocol.md § Errors). Anything we
did not raise on purpose is ``server_error`` with a fixed text; the details go to the log only.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from app import observe
from app.context import Context
from app.errors import AuthError, StoreUnavailable, server_error, unavailable
from app.flows.limits import source_key
from app.routes.http import JSON, NO_STORE, Encoded, source_of

log = logging.getLogger("authmd.http")


def _quote(value: str) -> str:
    # RFC 9110 §11.2 quoted-string
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge_header(scheme: str, params: dict[str, str]) -> str:
    return scheme + " " + ", ".join(f"{k}={_quote(v)}" for k, v in params.items())


def bearer_challenge(
    ctx: Context, error: AuthError | None = None, *, resource_metadata: str | None = None, scope: str | None = None
) -> str:
    """RFC 6750 §3: no `error` attribute when the request carried no token at all. ``resource_metadata``
    names another document than the API's (the MCP server's); ``scope``, what the request needs when the
    error does not say it (the MCP authorization spec's scope selection)."""
    params = {"resource_metadata": resource_metadata or ctx.endpoints.resource_metadata}
    if error is not None:
        params["error"] = error.code
        params["error_description"] = error.description
        if "scope" in error.extra:
            params["scope"] = str(error.extra["scope"])
    if scope and "scope" not in params:
        params["scope"] = scope
    return challenge_header("Bearer", params)


def _with_challenge(request: Request[Any, Any, Any], err: AuthError) -> dict[str, str]:
    headers = dict(err.headers)
    if "WWW-Authenticate" in headers or err.status not in (401, 403):
        return headers
    ctx: Context = request.app.state.ctx
    path = request.url.path
    if path.startswith(ctx.endpoints.base_path + "/agent/"):
        if err.status == 401:
            params = {"error": err.code, "error_description": err.description}
            if "max_age" in err.extra:  # login_required tells how fresh a sign-in must be
                params["max_age"] = str(err.extra["max_age"])
            headers["WWW-Authenticate"] = challenge_header("AgentAuth", params)
    elif err.status == 401 or err.code == "insufficient_scope":
        headers["WWW-Authenticate"] = bearer_challenge(ctx, err)
    return headers


def error_response(request: Request[Any, Any, Any], err: AuthError) -> Response[bytes]:
    headers = {**NO_STORE, **_with_challenge(request, err)}
    return Encoded(content=msgspec.json.encode(err.body()), status_code=err.status, media_type=JSON, headers=headers)


# Refusals by what refused them: a rate limit or quota names itself (AuthError.limit); these codes are
# limits by nature.
_REFUSING_CODES = {
    "quota_exceeded": "notes_quota",
    "proof_of_work_required": "proof_of_work",
    "invalid_proof_of_work": "proof_of_work",
}


def on_auth_error(request: Request[Any, Any, Any], exc: AuthError) -> Response[bytes]:
    if exc.status >= 500:
        log.error("%s %s -> %s", request.method, request.url.path, exc.code)
    limit = exc.limit or _REFUSING_CODES.get(exc.code)
    if limit is not None or exc.status == 429:
        ctx: Context = request.app.state.ctx
        source = source_key(source_of(request, ctx))
        observe.refused(ctx.tally, limit or exc.code, ctx.clock.now(), code=exc.code, source=source)
    return error_response(request, exc)


def on_store_unavailable(request: Request[Any, Any, Any], exc: StoreUnavailable) -> Response[bytes]:
    log.warning("%s %s -> store unavailable: %s", request.method, request.url.path, exc)
    return error_response(request, unavailable())


_HTTP_CODES = {
    400: ("invalid_request", "the request is malformed"),
    404: ("not_found", "no such resource"),
    405: ("method_not_allowed", "this method is not allowed here"),
    413: ("request_too_large", "the request body is too large"),
    415: ("unsupported_media_type", "unsupported content type"),
}


def on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    # Litestar's own errors (routing, body size): our shape, our fixed words, never its `detail`.
    code, description = _HTTP_CODES.get(exc.status_code, ("server_error", ""))
    if code == "server_error":
        log.error("%s %s -> HTTP %s", request.method, request.url.path, exc.status_code, exc_info=exc)
        return error_response(request, server_error())
    err = AuthError(code, description)
    if exc.status_code == 405 and exc.headers and "allow" in {k.lower() for k in exc.headers}:
        err.headers.update({k: v for k, v in exc.headers.items() if k.lower() == "allow"})
    return error_response(request, err)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("%s %s -> unhandled %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    return error_response(request, server_error())


EXCEPTION_HANDLERS: dict[Any, Any] = {
    AuthError: on_auth_error,
    StoreUnavailable: on_store_unavailable,
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}
