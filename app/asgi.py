"""create_app: the only place things are wired (settings → keys, store, clock → context → routes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Sequence

import httpx
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.types import BeforeMessageSendHookHandler, ControllerRouterHandler, Message, Scope

from app import __version__, metrics, observe
from app.clock import Clock, SystemClock
from app.config import Settings, load_settings
from app.context import Context, max_token_lifetime
from app.flows.expire import run_key_watch, run_sweeper
from app.keys import KeyRing, ensure_keys
from app.logs import configure_logging, request_ids
from app.outbound.cimd import ClientMetadataCache, HostPolicy
from app.outbound.http import tls_trust
from app.outbound.jwks import JwksCache
from app.outbound.oidc import Discovery
from app.outbound.verified import VerifiedCache
from app.routes import admin, authorize, console, health, identity, mcp, notes, oauth, web
from app.routes import metrics as metrics_route
from app.routes.discovery import Documents, discovery_handlers
from app.routes.errors import EXCEPTION_HANDLERS
from app.routes.openapi import openapi_config
from app.server import settle_heap
from app.store import open_store
from app.store.port import Store
from app.store.window import LocalWindows
from app.webhooks import worker as webhooks

log = logging.getLogger("authmd")
access_log = logging.getLogger("authmd.access")


async def log_access(message: Message, scope: Scope) -> None:
    # The path only, never the query string: a URL may carry a secret (a claim link).
    if message["type"] == "http.response.start":
        client = scope.get("client") or ("-", 0)
        access_log.info("%s %s %s %s", client[0], scope.get("method"), scope.get("path"), message["status"])


def hsts(settings: Settings) -> BeforeMessageSendHookHandler | None:
    """RFC 6797: browsers that reached us over https never use plain http for this host again (so a
    claim link cannot be downgraded). Sent only over the TLS authmd serves itself (§7.2: never over http);
    behind a TLS-terminating proxy, the proxy sends it."""
    if not (settings.tls_cert_file and settings.hsts_max_age_seconds > 0):
        return None
    value = f"max-age={settings.hsts_max_age_seconds}" + (
        "; includeSubDomains" if settings.hsts_include_subdomains else ""
    )
    header = (b"strict-transport-security", value.encode())

    async def add(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), header]

    return add


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    background: bool = True,
    route_handlers: Sequence[ControllerRouterHandler] = (),
    serving: bool = False,
) -> Litestar:
    """Build the app from resolved settings. Tests inject a store and a ManualClock; ``background``
    starts the sweeper and the key watcher (tests that move the clock drive the sweeper by hand).
    ``route_handlers`` adds an operator's own routes, which can use ``app.routes.guard.requires``.
    ``serving``: the app is the process's only work (a server worker), so its heap is settled for the
    cyclic collector once it has started (``app.server.settle_heap``)."""
    if settings.issuer is None:
        settings = settings.resolve()
    clock = clock or SystemClock()
    ensure_keys(settings.data_dir, settings.signing_alg)
    # Outbound calls to providers: no redirects, bounded time; never proxied from the environment.
    http = httpx.AsyncClient(
        verify=tls_trust(),
        follow_redirects=False,
        timeout=5.0,
        trust_env=False,
        headers={"User-Agent": f"authmd/{__version__}"},
    )
    keys = KeyRing.load(settings.data_dir, max_token_lifetime=max_token_lifetime(settings), now=clock.now())
    ctx = Context(
        settings=settings,
        store=store or open_store(settings.store_url_str),
        clock=clock,
        keys=keys,
        access_cache=VerifiedCache(),
        assertion_cache=VerifiedCache(),
        http=http,
        jwks=JwksCache(
            http,
            clock,
            min_ttl=settings.jwks_cache_min_seconds,
            max_ttl=settings.jwks_cache_max_seconds,
            refetch_interval=settings.jwks_refetch_interval_seconds,
        ),
        cimd=ClientMetadataCache(
            http, clock, hosts=HostPolicy(tuple(settings.cimd_allow_domains), tuple(settings.cimd_deny_domains))
        ),
        oidc=Discovery(http, clock),
        refusals=LocalWindows(settings.rate_window_seconds),
    )
    docs = Documents(ctx)
    under_issuer, at_root = discovery_handlers(docs)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await ctx.store.open()
        tasks: list[asyncio.Task[None]] = []
        if background:
            tasks = [
                asyncio.create_task(run_sweeper(ctx)),
                asyncio.create_task(run_key_watch(ctx)),
                # Cancelled before the store closes: its last flush still has a store to write to.
                asyncio.create_task(observe.run_flush(ctx.tally, ctx.store)),
            ]
            if delivering := await webhooks.start(ctx):
                tasks.append(delivering)
        if settings.metrics_enabled:
            tasks.append(asyncio.create_task(metrics.run_flush()))  # last: it flushes what the others did
        if serving:
            settle_heap()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await ctx.store.close()
            await http.aclose()

    service = Router(
        path=ctx.endpoints.base_path or "/",
        route_handlers=[*under_issuer, *identity.HANDLERS, *oauth.HANDLERS, *notes.HANDLERS, *mcp.HANDLERS],
    )
    # The human pages are HTML for browsers, not part of the API's OpenAPI document.
    pages = Router(
        path=ctx.endpoints.base_path or "/",
        route_handlers=[*web.HANDLERS, *authorize.HANDLERS],
        include_in_schema=False,
    )
    # The operator console: HTML on the human pages' session and sign-in, not part of the API either.
    operator_console = Router(
        path=ctx.endpoints.base_path or "/",
        route_handlers=console.HANDLERS,
        include_in_schema=False,
        exception_handlers=console.EXCEPTION_HANDLERS,
    )
    operator_api = admin.router(ctx.endpoints.base_path)
    # With metrics_bind, /metrics is served by `authmd serve` on that address only (app/cli/serve.py).
    scraped = metrics_route.HANDLERS if settings.metrics_enabled and not settings.metrics_bind else []
    app = Litestar(
        route_handlers=[
            service,
            pages,
            operator_console,
            operator_api,
            *at_root,
            *health.HANDLERS,
            *scraped,
            *route_handlers,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan, mcp.lifespan],  # the MCP server's after the store: it stops first
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(ctx),
        logging_config=None,
        debug=False,
        before_send=[hook for hook in (log_access if settings.access_log else None, hsts(settings)) if hook],
        state=State({"ctx": ctx, "docs": docs}),
    )
    # Inside Litestar's send hooks (the access log line has the id), outside its routing (a 404 has one).
    app.asgi_handler = request_ids(app.asgi_handler)
    if settings.metrics_enabled:
        # Outside the request ids, so that their cost is in the measured time too; not paid when off.
        app.asgi_handler = metrics.http_metrics(app.asgi_handler)
    return app


def app_from_env() -> Litestar:
    """Factory for ASGI servers and worker processes: settings from AUTHMD_CONFIG and AUTHMD_*.

    `authmd serve` resolves the issuer (host/port) and exports it before workers start, so every
    worker sees the same exact issuer string.
    """
    host = os.environ.get("AUTHMD_SERVE_HOST", "127.0.0.1")
    port = int(os.environ.get("AUTHMD_SERVE_PORT", "8000"))
    settings = load_settings().resolve(host, port)
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings, serving=True)
