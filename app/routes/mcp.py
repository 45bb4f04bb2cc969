"""The MCP server at ``{issuer}/api/mcp``: the demo notes as MCP tools (app/flows/mcp.py), over the official
``mcp`` SDK's streamable HTTP in stateless mode with JSON responses: no session is held, so any worker or
instance answers any request (MCP transports, 2025-11-25; and the 2026-07-28 single-exchange requests).

It is part of the protected resource ``{issuer}/api``: the same access tokens, checked the same way (``bearer``,
revocation included), before the SDK sees anything. Every request but OPTIONS needs a live token:

- none, or a bad one: 401 with the API's Bearer challenge, whose ``resource_metadata`` names this server's
  RFC 9728 document (path-inserted, §3.1) and whose ``scope`` is what the request needs (MCP authorization,
  scope selection);
- a ``tools/call`` of a tool whose scopes the token lacks: 403 ``insufficient_scope`` with ``scope`` and
  ``resource_metadata`` (RFC 6750 §3.1; MCP scope challenge handling), read from the JSON-RPC body here,
  because an MCP client steps up on the HTTP status, never on a tool result.

GET (a server-sent event stream) and DELETE (ending a session) answer 405: a stateless server has neither
(MCP transports: "or else return HTTP 405").
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

import msgspec
from litestar import Litestar, asgi
from litestar.connection import ASGIConnection
from litestar.exceptions import MethodNotAllowedException
from litestar.types import HTTPRequestEvent, HTTPResponseStartEvent, Receive, ReceiveMessage, Scope, Send

from app import endpoints as ep
from app.context import Context
from app.errors import AuthError
from app.flows import mcp as tools
from app.flows.use import Principal
from app.routes.errors import bearer_challenge
from app.routes.guard import bearer
from app.routes.http import body_of, ctx_of
from app.wire import nesting_within

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

ALLOW = "POST, OPTIONS"
_PRINCIPAL = "authmd.principal"  # the scope key the endpoint leaves the authenticated principal under
_OPTIONS: HTTPResponseStartEvent = {
    "type": "http.response.start",
    "status": 204,
    "headers": [(b"allow", ALLOW.encode())],
}


class _Sessions:
    """The SDK's session manager, started at the first MCP request and run until the app stops (its task
    group serves the requests). Importing the SDK costs ~0.5 s of CPU: a worker that never serves MCP
    never pays it, and the one that does pays it in a thread, off the event loop."""

    def __init__(self) -> None:
        self.manager: StreamableHTTPSessionManager | None = None
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def get(self, ctx: Context) -> StreamableHTTPSessionManager:
        if self.manager is not None:
            return self.manager
        async with self._lock:
            if self.manager is None:
                self.manager = await self._start(ctx)
        return self.manager

    async def _start(self, ctx: Context) -> StreamableHTTPSessionManager:
        module = await asyncio.to_thread(importlib.import_module, "mcp.server.streamable_http_manager")
        sdk_log = logging.getLogger("mcp")
        if sdk_log.level == logging.NOTSET:  # the SDK says "Terminating session: None" at INFO on every request
            sdk_log.setLevel(logging.WARNING)
        manager: StreamableHTTPSessionManager = module.StreamableHTTPSessionManager(
            tools.server(ctx, _principal),
            json_response=True,
            stateless=True,
            max_request_body_size=ctx.settings.max_body_bytes,
            # No DNS-rebinding check: nothing here rides on ambient credentials (cookies, the network
            # position); every request carries its bearer token, which a rebound page does not have.
            security_settings=None,
        )
        running = asyncio.Event()

        async def hold() -> None:
            async with manager.run():
                running.set()
                await self._stop.wait()

        self._task = asyncio.create_task(hold())
        running_or_failed = asyncio.ensure_future(running.wait())
        await asyncio.wait({running_or_failed, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not running.is_set():
            running_or_failed.cancel()
            self._task.result()  # the manager failed to start: its error
        return manager

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    sessions = _Sessions()
    app.state.mcp_sessions = sessions
    try:
        yield
    finally:
        await sessions.close()


def _principal(request: Any) -> Principal:
    principal: Principal = request.scope[_PRINCIPAL]
    return principal


async def _authenticate(connection: ASGIConnection[Any, Any, Any, Any], spec: tools.ToolSpec | None) -> Principal:
    """``bearer``'s check, its refusals pointing at this server's metadata and naming the scopes needed."""
    ctx = ctx_of(connection)
    try:
        return await bearer(connection, spec.scopes if spec else (), notes=spec.reads_notes if spec else False)
    except AuthError as err:
        # `bearer` answers a request without a token with its own challenge, without `error` (RFC 6750 §3.1).
        error = None if "WWW-Authenticate" in err.headers else err
        err.headers["WWW-Authenticate"] = bearer_challenge(
            ctx,
            error,
            resource_metadata=ctx.endpoints.mcp_resource_metadata,
            scope=" ".join(spec.scopes if spec else tools.BASIC_SCOPES),
        )
        raise


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read handed out first (the SDK reads it again)."""
    pending = True

    async def replay() -> ReceiveMessage:
        nonlocal pending
        if pending:
            pending = False
            whole: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": False}
            return whole
        return await receive()

    return replay


@asgi(ep.MCP, name="mcp", copy_scope=False)
async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope, receive)
    method = connection.scope["method"]  # type: ignore[typeddict-item]  # asgi routes see http requests only
    if method == "OPTIONS":
        await send({**_OPTIONS, "headers": list(_OPTIONS["headers"])})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if method != "POST":
        await _authenticate(connection, None)
        raise MethodNotAllowedException(headers={"Allow": ALLOW})
    body = await body_of(connection)
    message = None  # not JSON (or too deep to read): the SDK answers it, once the token is good
    if nesting_within(body):
        with contextlib.suppress(msgspec.DecodeError):
            message = msgspec.json.decode(body)
    spec = tools.tool_called(message)
    cast("dict[str, Any]", scope)[_PRINCIPAL] = await _authenticate(connection, spec)
    manager = await connection.app.state.mcp_sessions.get(ctx_of(connection))
    await manager.handle_request(cast("Any", scope), cast("Any", _replay(body, receive)), cast("Any", send))


HANDLERS = [endpoint]
