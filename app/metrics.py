"""The Prometheus metric families (README § Metrics lists them). Names follow Prometheus conventions:
``authmd_`` prefix, ``_total`` for counters, base units (``_seconds``). Label values are bounded sets
(route templates, methods, outcomes, limit names, configured provider issuers and webhook endpoint
names): never an id, an email or anything a client chose.

What a domain event or a refusal moves is moved by ``app.observe``; the HTTP, store and webhook families
by the layers that time them.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

# Latency buckets from 1 ms to 10 s: a registration takes a few ms, a JWKS fetch up to the 5 s timeout.
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "authmd_http_requests", "HTTP requests answered, by route template and status", ["route", "method", "status"]
)
HTTP_DURATION = Histogram(
    "authmd_http_request_duration_seconds", "Time to answer an HTTP request", ["route", "method"], buckets=_SECONDS
)
REGISTRATIONS = Counter(
    "authmd_registrations", "Agent registrations, by method and outcome (created or refused)", ["method", "outcome"]
)
CLAIMS = Counter(
    "authmd_claim_attempts",
    "The claim funnel: attempts started, confirmed, denied, completed and expired",
    ["stage"],
)
CODE_FAILURES = Counter(
    "authmd_user_code_failures", "Wrong user codes presented to the claim, and the lockouts they caused", ["kind"]
)
POW_CHALLENGES = Counter("authmd_pow_challenges", "Proof-of-work challenges issued")
POW_DIFFICULTY = Histogram(
    "authmd_pow_difficulty_bits",
    "The difficulty (leading zero bits) required by the challenges issued",
    buckets=tuple(range(0, 41, 2)),
)
REFUSALS = Counter("authmd_refusals", "Requests refused by a rate limit or quota, by limit", ["limit"])
IDJAG_REFUSALS = Counter(
    "authmd_idjag_refusals", "ID-JAGs refused, by provider (issuer) and error code", ["provider", "reason"]
)
# A count of the whole store, set by whichever process read it: the most recent reading is the truth
# ('mostrecent'; a sum would count it once per worker).
TEMPORARY_ACCOUNTS = Gauge(
    "authmd_temporary_accounts", "Live temporary accounts (unclaimed, not expired)", multiprocess_mode="mostrecent"
)
TOKENS_ISSUED = Counter("authmd_tokens_issued", "Tokens issued, by kind", ["kind"])
TOKENS_REVOKED = Counter("authmd_tokens_revoked", "Grants revoked, by who revoked them", ["by"])
STORE_DURATION = Histogram(
    "authmd_store_operation_duration_seconds", "Time of one store operation", ["operation"], buckets=_SECONDS
)
STORE_ERRORS = Counter("authmd_store_errors", "Store operations that failed (store unavailable)", ["operation"])
WEBHOOK_DELIVERIES = Counter(
    "authmd_webhook_deliveries", "Webhook delivery attempts, by endpoint and outcome", ["endpoint", "outcome"]
)
# Each process sets what its own delivery loop took (app/webhooks/worker.py): the sum over the live
# processes is the instance's ('livesum'; a dead worker's last value must not linger, as 'max' would keep it).
WEBHOOK_QUEUE = Gauge(
    "authmd_webhook_queue_depth",
    "Webhook deliveries due and being sent: those the delivery loops took in their latest round",
    ["endpoint"],
    multiprocess_mode="livesum",
)


# ---- collecting and exposing ---------------------------------------------------------------------------

# True when prometheus_client chose its multi-process values (PROMETHEUS_MULTIPROC_DIR was set before it was
# first imported: `authmd serve --workers N` sets it for its workers). What decides is what the values are,
# not the variable: a process that imported prometheus_client earlier keeps its values in memory.
MULTIPROCESS = bool(getattr(values.ValueClass, "_multiprocess", False))


class _Processes(MultiProcessCollector):
    """The sum over every process's files; first drops the live gauges of processes that are gone
    (``mark_process_dead``), however they ended: a killed worker runs no hook of its own."""

    def collect(self) -> Iterable[Metric]:
        dead: set[int] = set()
        for name in os.listdir(self._path):
            if name.startswith("gauge_live") and name.endswith(".db"):
                pid = int(name.rsplit("_", 1)[1][:-3])
                if not _alive(pid):
                    dead.add(pid)
        for pid in dead:
            multiprocess.mark_process_dead(pid, self._path)  # type: ignore[no-untyped-call]
        collected: Iterable[Metric] = super().collect()  # type: ignore[no-untyped-call]
        return collected


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process under a reused pid: leave its files for now
    return True


def registry(path: str | None = None) -> CollectorRegistry:
    """What a scrape reads: every process's files under ``path`` (default PROMETHEUS_MULTIPROC_DIR) in
    multi-process mode, else this process's own metrics."""
    if path is None and not MULTIPROCESS:
        return REGISTRY
    found = CollectorRegistry()
    _Processes(found, path)  # type: ignore[no-untyped-call]
    return found


def exposition(accept: str = "", path: str | None = None) -> tuple[bytes, str]:
    """``registry(path)`` in the format an ``Accept`` header asks for, and its content type: the text format
    (version 0.0.4) by default, OpenMetrics when asked, as prometheus_client's own listener answers (the
    one ``metrics_bind`` runs), so both ports answer a scraper alike."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry(path)), content_type


# ---- the hot paths: tallied here, written in batches ---------------------------------------------------
# A request or a store call adds to a tally of this process (a dict update, about a microsecond);
# ``flush`` writes the tallies into prometheus_client's values, every FLUSH_SECONDS and before this
# process answers a scrape. Written one by one, each request cost three writes to the multi-process
# files (about 12 µs) and each store call two more. Only the event loop's thread tallies and flushes.

FLUSH_SECONDS = 1.0
# Methods by name; any other (httptools parses a few dozen) is "OTHER", so a label stays a short list.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "(unmatched)"  # the route of a path no handler serves: a client's random paths are not labels

# Per key: [count, sum of seconds, then a count per bucket of _SECONDS and one for +Inf].
_http: dict[tuple[str, str, int], list[float]] = {}
_store: dict[str, list[float]] = {}


def _tally(tallies: dict[Any, list[float]], key: Any, seconds: float) -> None:
    entry = tallies.get(key)
    if entry is None:
        entry = tallies[key] = [0.0] * (len(_SECONDS) + 3)
    entry[0] += 1
    entry[1] += seconds
    entry[2 + bisect.bisect_left(_SECONDS, seconds)] += 1  # the first bucket whose bound holds it


_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def inc(family: Any, *labels: str) -> None:
    """``family.labels(*labels).inc()``, with the labelled child looked up once: labels() takes a lock
    and builds its key at every call (~2 µs, measured), and a registration counts in three families."""
    child = _children.get((family, labels))
    if child is None:
        child = _children[(family, labels)] = family.labels(*labels)
    child.inc()


def store_timed(operation: str, seconds: float) -> None:
    """One store operation took ``seconds`` (``operation`` is named in code: a bounded label)."""
    _tally(_store, operation, seconds)


def store_failed(operation: str) -> None:
    STORE_ERRORS.labels(operation).inc()  # rare: written at once


def flush() -> None:
    """Write this process's tallies into the metric families (and so into its multi-process files)."""
    global _http, _store
    http, _http = _http, {}
    store, _store = _store, {}
    for (route, method, status), entry in http.items():
        HTTP_REQUESTS.labels(route, method, status).inc(entry[0])
        _add(HTTP_DURATION.labels(route, method), entry)
    for operation, entry in store.items():
        _add(STORE_DURATION.labels(operation), entry)


def _add(child: Any, entry: list[float]) -> None:
    # Histogram has no public call for many observations at once: its sum and its (non-cumulative)
    # bucket values are what observe() increments, one per bucket; tests/unit/test_metrics.py checks
    # the result against observe()'s.
    child._sum.inc(entry[1])
    for bucket, n in zip(child._buckets, entry[2:], strict=True):
        if n:
            bucket.inc(n)


async def run_flush(interval: float = FLUSH_SECONDS) -> None:
    """The flusher of one server process; a last flush on the way out."""
    try:
        while True:
            await asyncio.sleep(interval)
            flush()
    finally:
        flush()


def http_metrics(app: ASGIApp) -> ASGIApp:
    """Count and time each HTTP request by route template (Litestar's ``path_template``, set in the scope
    when it routes), method and status, from its first byte in to its last byte out."""

    async def timed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            if status:  # else nothing was answered (the client went away first)
                method = scope["method"] if scope["method"] in _METHODS else "OTHER"
                key = (scope.get("path_template") or UNMATCHED, method, status)
                _tally(_http, key, time.perf_counter() - started)

    return timed


def listen(host: str, port: int, path: str | None) -> Callable[[], None]:
    """Serve ``registry(path)`` on host:port from a thread of this process (``metrics_bind``: the
    supervising process of `authmd serve`, which answers no request of its own); returns its stop."""
    server, thread = start_http_server(port, host, registry(path))

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop
