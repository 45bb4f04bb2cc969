"""The HTTP server: uvicorn with its httptools parser, behind a thin guard that bounds what one client
can hold. The limits live here, where the bytes arrive: the app only runs once a request head is
complete, and httptools itself buffers a header of any size.

``GuardedProtocol`` is uvicorn's ``HttpToolsProtocol`` with

* a bounded request head: ``http_max_header_bytes`` in all (request line to the empty line) and
  ``http_max_header_line_bytes`` per line, else 431 (RFC 6585 §5). Bytes past the limit never reach
  the parser, so a head costs at most the limit plus one read of memory;
* deadlines: the head within ``http_header_timeout_seconds`` of the connection opening (or of the
  first byte of the next request on a kept-alive connection), the body within
  ``http_body_timeout_seconds`` of the head, else 408 (RFC 9110 §15.5.9); a kept-alive connection idle
  for ``http_keepalive_timeout_seconds`` is closed (RFC 9112 §9.5);
* capped connections, per process: ``http_max_connections`` (by default from the open-file limit)
  and ``http_max_connections_per_client`` per source (an IPv4 address or IPv6 /64; peers in
  ``trusted_proxies`` are exempt). Over the per-client cap: 429 (RFC 6585 §4). At the process cap a
  new connection closes the one that has waited longest for a request; if every connection is in
  the middle of a request, the new one gets 503 with Retry-After (RFC 9110 §15.6.4).

Every refusal is the app's JSON error with ``Connection: close``. The server then reads no further
request but drains what the client is still sending for a moment before closing ("lingering close"),
so that the client reads the answer rather than a reset. It never switches protocols (no WebSocket).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import ipaddress
import logging
import resource
import time
import weakref
from dataclasses import dataclass
from typing import Any

import httptools
import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from app import metrics
from app.config import ConfigError, Settings, load_settings
from app.errors import AuthError
from app.flows.limits import rate_limited, source_key

log = logging.getLogger("authmd.http")

# By name: uvicorn's worker processes import the protocol class themselves.
PROTOCOL = "app.server:GuardedProtocol"
# Descriptors kept back for the listening socket, logs, SQLite and outbound calls (httpx pools at
# most 100 connections).
RESERVED_FDS = 256
# The default connection cap never goes above this: 10,000 connections with full heads are ~200 MB.
DEFAULT_MAX_CONNECTIONS = 10_000
# uvicorn's default listen backlog; a smaller open-file limit gets a smaller one (see file_budget).
MAX_BACKLOG = 2048
MIN_BACKLOG = 64
# How long a refused connection is drained before it is closed.
LINGER_SECONDS = 2.0
# At most this many warning lines a second per process; the rest are counted.
WARNINGS_PER_SECOND = 20

# The cyclic collector's thresholds in a server process (Python's are 700, 10, 10): see settle_heap.
GC_THRESHOLDS = (5_000, 10, 10)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def settle_heap() -> None:
    """Once a server process has started: what exists by then (modules, routes, keys, settings) lives
    as long as the process, so it leaves the cyclic collector's generations (``gc.freeze``), and the
    youngest generation is collected less often. A request allocates a few hundred container objects
    and frees nearly all of them by reference counting, yet with Python's threshold of 700 the
    concurrent requests' live objects set off a collection every ten requests, and one of the whole
    heap every ~1,500: 11-14% of a registration's CPU here. Settled, it measured under 1%. Garbage in
    cycles is still collected: it never goes back below the threshold, so it sets off collections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int
    max_header_line_bytes: int
    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    max_connections: int
    max_connections_per_client: int
    trusted_proxies: tuple[Network, ...]
    backlog: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        connections, backlog = file_budget(settings.http_max_connections)
        return cls(
            max_header_bytes=settings.http_max_header_bytes,
            max_header_line_bytes=settings.http_max_header_line_bytes,
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            keepalive_timeout=settings.http_keepalive_timeout_seconds,
            max_connections=connections,
            max_connections_per_client=settings.http_max_connections_per_client,
            trusted_proxies=tuple(ipaddress.ip_network(c, strict=False) for c in settings.trusted_proxies),
            backlog=backlog,
        )

    def describe(self) -> str:
        return (
            f"request heads up to {self.max_header_bytes} bytes ({self.max_header_line_bytes} a line) "
            f"within {self.header_timeout:g} s, bodies within {self.body_timeout:g} s, "
            f"keep-alive {self.keepalive_timeout:g} s, {self.max_connections} connections a process, "
            f"{self.max_connections_per_client} a client (listen backlog {self.backlog})"
        )


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as Go's runtime does at start: descriptors are
    the budget every connection limit is cut from, and uvloop, when it runs out in the middle of a
    burst of connections, resets all those still pending. Returns the soft limit before and after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return soft, hard
    return soft, soft


def file_budget(configured: int) -> tuple[int, int]:
    """The connection cap (``configured``, or 0 to compute it) and the listen backlog of one process.

    Past RESERVED_FDS, the open-file limit (RLIMIT_NOFILE) is shared three ways: client connections;
    a store connection for each request in flight (the Redis pool grows with concurrency); and the
    connections accepted in one go before any is refused (uvloop accepts the whole backlog at once, and
    on running out of descriptors resets every pending connection), so that none runs out.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    usable = (1 << 30) if soft == resource.RLIM_INFINITY else soft - RESERVED_FDS
    connections = configured or max(8, min(DEFAULT_MAX_CONNECTIONS, usable // 3))
    backlog = min(MAX_BACKLOG, (usable - connections) // 2)
    if configured and backlog < MIN_BACKLOG:
        most = usable - 2 * MIN_BACKLOG
        raise ConfigError(
            f"http_max_connections: {configured} does not fit the open-file limit ({soft}: at most {most}); "
            "raise the hard limit (`ulimit -Hn`, systemd's LimitNOFILE=) or lower the setting"
        )
    return connections, max(8, backlog)


def uvicorn_options(settings: Settings, host: str, port: int) -> dict[str, Any]:
    """uvicorn.run's arguments for `authmd serve` (the app logs its own access lines, paths only)."""
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "http": PROTOCOL,
        "ws": "none",
        "access_log": False,
        "log_config": None,
        "lifespan": "on",
        "server_header": False,
        "proxy_headers": False,
        "backlog": Limits.from_settings(settings).backlog,
    }
    if settings.tls_cert_file and settings.tls_key_file:
        options.update({"ssl_certfile": settings.tls_cert_file, "ssl_keyfile": settings.tls_key_file})
    return options


# ---- one process's connections -----------------------------------------------------------------------


class _Warnings:
    """One warning line per refused or closed connection, but at most WARNINGS_PER_SECOND a second: a
    flood of connections must not become a flood of log lines. The others are counted."""

    def __init__(self) -> None:
        self.second, self.logged, self.dropped = 0, 0, 0

    def __call__(self, message: str, *args: object) -> None:
        now = int(time.monotonic())
        if now != self.second:
            if self.dropped:
                log.warning("%d more connections refused or closed by the limits (not logged one by one)", self.dropped)
            self.second, self.logged, self.dropped = now, 0, 0
        if self.logged < WARNINGS_PER_SECOND:
            self.logged += 1
            log.warning(message, *args)
        else:
            self.dropped += 1


class HeldHead(asyncio.Transport):
    """The connection's transport as its writers see it. uvicorn writes a response's head and its body
    in two calls, and each is a send() on the socket (a syscall, and a segment the client wakes for).
    Here a head is held until the next write, so a response whose body follows in the same turn, as
    nearly every one does, leaves in one send(). A head still held at the end of the loop turn (a
    streamed body not ready yet, a 100 Continue) leaves then. Order is kept: every write, end and close
    of the connection goes through here, and releases what is held first."""

    __slots__ = ("held", "loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.transport, self.loop, self.held = transport, loop, b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.held:
            data, self.held = self.held + data, b""
        elif data[:5] == b"HTTP/" and data[-4:] == b"\r\n\r\n":
            self.held = bytes(data)
            self.loop.call_soon(self.release)
            return
        self.transport.write(data)

    def release(self) -> None:
        if self.held:
            data, self.held = self.held, b""
            if not self.transport.is_closing():
                self.transport.write(data)

    def write_eof(self) -> None:
        self.release()
        self.transport.write_eof()

    def close(self) -> None:
        self.release()
        self.transport.close()

    def abort(self) -> None:
        self.held = b""
        self.transport.abort()

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def is_reading(self) -> bool:
        return self.transport.is_reading()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()


class _Connections:
    """What one server process holds: the counts behind the caps and the connections it may evict."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0  # every connection, refused ones still draining included
        self.per_client: dict[str, int] = {}
        # Connections in the order they last began to wait for a request. One that has since started
        # a request stays in place until an eviction passes it over (one queue update a request).
        self.waiting: collections.OrderedDict[GuardedProtocol, None] = collections.OrderedDict()
        self.closing: set[GuardedProtocol] = set()  # refused and draining: the first to go
        self.warn = _Warnings()

    def evict(self) -> bool:
        """Close one connection that serves no request, to make room; False if there is none."""
        if self.closing:
            victim = self.closing.pop()
        else:
            while self.waiting:
                victim = self.waiting.popitem(last=False)[0]
                if victim.idle:
                    self.warn(
                        "closed an idle connection from %s: %d connections open (http_max_connections)",
                        victim.peer,
                        self.open,
                    )
                    break
            else:
                return False
        victim.release()
        victim.transport.close()
        return True


_processes: weakref.WeakKeyDictionary[ServerState, _Connections] = weakref.WeakKeyDictionary()


def _connections(server_state: ServerState, config: Config) -> _Connections:
    found = _processes.get(server_state)
    if found is None:
        # The settings the app was built from (create_app keeps them in its state); another app
        # served through this protocol (the bench's bare app) reads them from AUTHMD_* and AUTHMD_CONFIG.
        ctx = getattr(getattr(config.loaded_app, "state", None), "ctx", None)
        settings = ctx.settings if ctx is not None else load_settings()
        found = _processes[server_state] = _Connections(Limits.from_settings(settings))
    return found


@functools.lru_cache(maxsize=4096)
def _client_key(peer: str, trusted: tuple[Network, ...]) -> str | None:
    """The unit of the per-client cap, or None for a trusted proxy (it speaks for many clients)."""
    try:
        addr = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if any(addr in net for net in trusted):
        return None
    return source_key(str(addr))


class _Stop(Exception):
    """Raised in a parser callback to stop parsing a request that was refused."""


# Where a connection is: waiting for a request, reading its head, reading its body, or the app answering.
IDLE, HEAD, BODY, APP = range(4)


class GuardedProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard = _connections(server_state, self.config)
        self.limits = self.guard.limits
        self.phase = HEAD
        self.heads = 0  # request heads begun on this connection
        self.head_bytes = 0  # bytes of the current head handed to the parser
        self.exact = True  # the head began at the start of a read, so head_bytes counts all of it
        self.began = False  # the parser has seen the start of a request
        self.now = 0.0  # the loop's time when the bytes being parsed arrived
        self.deadline: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.closing = False
        self.refusal = b""  # an answer waiting for the responses ahead of it
        self.counted = False
        self.client_key: str | None = None

    @property
    def peer(self) -> str:
        return self.client[0] if self.client else "a local socket"

    @property
    def idle(self) -> bool:
        """No request in progress: waiting for one, or for the rest of its head."""
        return (self.phase == IDLE or self.phase == HEAD) and (self.cycle is None or self.cycle.response_complete)

    # ---- connections ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = HeldHead(transport, self.loop)  # flow control keeps the socket's own
        guard, limits = self.guard, self.limits
        guard.open += 1
        self.counted = True
        key = _client_key(self.client[0], limits.trusted_proxies) if self.client else None
        if key is not None and guard.per_client.get(key, 0) >= limits.max_connections_per_client:
            err = rate_limited(
                1,
                "too many open connections from this address",
                "Reuse an open connection or close idle ones.",
                limit="connections_per_client",
            )
            metrics.REFUSALS.labels("connections_per_client").inc()
            self.refuse(err, f"{guard.per_client[key]} connections open from it", "http_max_connections_per_client")
            return
        if guard.open > limits.max_connections and not guard.evict():
            err = AuthError(
                "temporarily_unavailable", "the server has too many open connections", headers={"Retry-After": "1"}
            )
            metrics.REFUSALS.labels("connections").inc()
            self.refuse(err, f"{limits.max_connections} connections busy", "http_max_connections")
            return
        if key is not None:
            guard.per_client[key] = guard.per_client.get(key, 0) + 1
            self.client_key = key
        guard.waiting[self] = None
        self.now = self.loop.time()
        self.begin_head(exact=True)  # the first head's deadline runs from the connection's opening

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.release()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def release(self) -> None:
        """Give back this connection's place in the caps (once: on eviction or when it is lost)."""
        if not self.counted:
            return
        self.counted = False
        guard = self.guard
        guard.open -= 1
        guard.waiting.pop(self, None)
        guard.closing.discard(self)
        if self.client_key is not None:
            left = guard.per_client[self.client_key] - 1
            if left:
                guard.per_client[self.client_key] = left
            else:
                del guard.per_client[self.client_key]

    # ---- bytes in ---------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # refused: drained, never parsed
        if self.phase != BODY:
            self.now = self.loop.time()  # for the deadlines set while this read is parsed
            if self.phase != HEAD:
                self.begin_head(exact=True)  # the next request starts with this read
        if self.phase == HEAD:
            room = self.limits.max_header_bytes - self.head_bytes
            if len(data) > room:
                # Parse only what the limit allows: if this head ends within it, the rest is its body
                # and maybe requests behind it (their heads are measured when complete).
                self.head_bytes += room
                heads = self.heads
                self.feed(data[:room])
                if self.closing:
                    return
                if self.phase == HEAD and self.heads == heads:
                    self.too_large(f"a request head over {self.limits.max_header_bytes} bytes", "http_max_header_bytes")
                    return
                data = data[room:]
            else:
                self.head_bytes += len(data)
        self.feed(data)

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The app answered the request as plain HTTP (RFC 9110 §7.8 lets a server ignore Upgrade),
            # but the parser stops at an upgrade: the connection ends with that answer.
            if self.cycle is not None:
                self.cycle.keep_alive = False
        except httptools.HttpParserError:
            if not self.closing:  # else our own _Stop from a callback
                err = AuthError("invalid_request", "the request is not valid HTTP/1.1")
                self.refuse(err, "a malformed request", None)

    def begin_head(self, *, exact: bool) -> None:
        self.heads += 1
        self.phase = HEAD
        self.head_bytes = 0
        self.exact = exact
        self.began = False
        self.set_deadline(self.limits.header_timeout)

    def too_large(self, what: str, setting: str) -> None:
        limits = self.limits
        err = AuthError(
            "request_header_fields_too_large",
            f"the request's header fields are too large: {what}",
            f"Send at most {limits.max_header_bytes} bytes of request line and headers, "
            f"{limits.max_header_line_bytes} on any one line.",
        )
        self.refuse(err, what, setting)

    def oversized(self) -> tuple[str, str] | None:
        """Measure the parsed head: its lines (CRLF not counted) and the whole."""
        line_max = self.limits.max_header_line_bytes
        line = len(self.parser.get_method()) + len(self.url) + 10  # "GET /x HTTP/1.1"
        if line > line_max:
            return f"a request line over {line_max} bytes", "http_max_header_line_bytes"
        total = line + 2
        for name, value in self.headers:
            line = len(name) + len(value) + 2
            if line > line_max:
                return f"a header line over {line_max} bytes", "http_max_header_line_bytes"
            total += line + 2
        if total + 2 > self.limits.max_header_bytes:
            return f"a request head over {self.limits.max_header_bytes} bytes", "http_max_header_bytes"
        return None

    # ---- parser callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.phase != HEAD:  # a request right behind the previous one, within one read
            self.now = self.loop.time()
            self.begin_head(exact=False)
        self.began = True

    def on_headers_complete(self) -> None:
        # No line can be too long in a head that fits one line, read whole.
        if not self.exact or self.head_bytes > self.limits.max_header_line_bytes:
            problem = self.oversized()
            if problem is not None:
                self.too_large(*problem)
                raise _Stop
        self.phase = BODY
        self.set_deadline(self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.cycle.response_complete:  # answered before its body ended (413)
            self.wait_for_request()
        else:
            self.phase = APP
            self.deadline = None

    def on_response_complete(self) -> None:
        # uvicorn's, with our deadline in place of its keep-alive timer.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self.refusal:
            self.send_refusal(self.refusal)
        elif self.phase == APP:
            self.wait_for_request()

    def wait_for_request(self) -> None:
        self.phase = IDLE
        self.now = self.loop.time()
        self.set_deadline(self.limits.keepalive_timeout)
        try:
            self.guard.waiting.move_to_end(self)
        except KeyError:  # passed over by an eviction while it was busy, or released
            if self.counted and not self.closing:
                self.guard.waiting[self] = None

    def _should_upgrade(self) -> bool:
        return False  # no WebSocket or other protocol here

    # ---- deadlines --------------------------------------------------------------------------------

    def set_deadline(self, seconds: float) -> None:
        """``seconds`` from ``now``. One timer a connection, moved only when a deadline comes earlier
        than it: most requests change the deadline without touching the event loop's timers."""
        at = self.now + seconds
        self.deadline = at
        if self.timer is None or at < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer, self.timer_at = self.loop.call_at(at, self.on_timer), at

    def on_timer(self) -> None:
        self.timer = None
        if self.deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < self.deadline:
            self.timer, self.timer_at = self.loop.call_at(self.deadline, self.on_timer), self.deadline
            return
        self.deadline = None
        if self.closing or self.phase == IDLE:
            self.transport.close()
        elif self.phase == HEAD and not self.began:
            timeout = self.limits.header_timeout
            self.guard.warn(
                "closed a connection from %s: no request within %g s (http_header_timeout_seconds)", self.peer, timeout
            )
            self.transport.close()
        elif self.phase == HEAD:
            what = f"no complete request head within {self.limits.header_timeout:g} s"
            self.refuse(
                AuthError("request_timeout", "the request head did not arrive in time"),
                what,
                "http_header_timeout_seconds",
            )
        elif self.phase == BODY:
            what = f"no complete request body within {self.limits.body_timeout:g} s"
            self.refuse(
                AuthError("request_timeout", "the request body did not arrive in time"),
                what,
                "http_body_timeout_seconds",
            )

    # ---- refusing ---------------------------------------------------------------------------------

    def refuse(self, err: AuthError, what: str, setting: str | None) -> None:
        """Answer ``err`` with Connection: close, read no further request, and close after draining."""
        if self.closing:
            return
        self.closing = True
        guard = self.guard
        guard.waiting.pop(self, None)
        if self.counted:
            guard.closing.add(self)
        guard.warn("%d to %s: %s (%s)", err.status, self.peer, what, setting or "HTTP/1.1")
        self.flow.resume_reading()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if self.phase != BODY:
                # Requests pipelined ahead of this one are answered first, in order (RFC 9112 §9.3.2).
                self.refusal = self.error_response(err)
                self.deadline = None
                return
            # This request's body is late: the app sees a disconnect and sends nothing more.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        self.send_refusal(self.error_response(err))

    def send_refusal(self, response: bytes) -> None:
        self.transport.write(response)
        if self.transport.can_write_eof():  # not over TLS
            self.transport.write_eof()
        self.now = self.loop.time()
        self.set_deadline(LINGER_SECONDS)

    def error_response(self, err: AuthError) -> bytes:
        body = msgspec.json.encode(err.body())
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            (b"connection", b"close"),
            *((name.lower().encode(), value.encode()) for name, value in err.headers.items()),
        ]
        lines = [STATUS_LINE[err.status], *(name + b": " + value + b"\r\n" for name, value in headers), b"\r\n"]
        return b"".join(lines) + body
