"""The bearer-token guard, reusable on any Litestar route of an operator's own app:

@get("/reports", guards=[requires("reports:read")])
async def reports(request: Request) -> ...:
    principal = principal_of(request)
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from app.context import Context
from app.errors import AuthError
from app.flows.use import Principal, authenticate, require_scopes
from app.routes.errors import bearer_challenge
from app.routes.http import scope_header


def _bearer_token(authorization: bytes | None) -> str | None:
    # RFC 6750 §2.1: `Bearer` (case-insensitive) and one b64token; tokens in query strings are refused.
    if not authorization:
        return None
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def requires(*scopes: str, notes: bool = False) -> Guard:
    """A guard admitting a live access token that holds ``scopes``; ``notes`` also reads the account's
    notes in the same store round trip (the demo API's list)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        connection.state.authmd_principal = await bearer(connection, scopes, notes=notes)

    return guard


async def bearer(
    connection: ASGIConnection[Any, Any, Any, Any], scopes: tuple[str, ...], *, notes: bool = False
) -> Principal:
    """The principal of the request's live access token holding ``scopes`` (``requires``' check, for
    routes that are not Litestar handlers)."""
    ctx: Context = connection.app.state.ctx
    token = _bearer_token(scope_header(connection.scope, b"authorization"))  # type: ignore[arg-type]
    if token is None:
        raise AuthError(
            "invalid_token",
            "this request needs an access token (Authorization: Bearer …)",
            "Follow resource_metadata in WWW-Authenticate to learn how to register and get one.",
            headers={"WWW-Authenticate": bearer_challenge(ctx)},
        )
    principal = await authenticate(ctx, token, notes=notes)
    require_scopes(principal, scopes)
    return principal


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal: Principal = connection.state.authmd_principal
    return principal
