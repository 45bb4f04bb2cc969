"""The delivery loop each server process runs: fan the outboxes out into deliveries, then send what is
due. Several processes (and instances) run it at once: fan-out is idempotent, and a delivery is sent
only by the holder of its lease, so each is in flight from one place at a time; a process that dies
mid-send loses its lease when it runs out, and another sends the delivery again (at least once)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time

import httpx
import msgspec

from app import __version__, metrics, observe
from app import events as ev
from app.config import Webhook
from app.context import Context
from app.errors import StoreUnavailable
from app.outbound.http import tls_trust
from app.store.port import Delivery
from app.webhooks import message, schedule

log = logging.getLogger("authmd.webhooks")

BATCH = 100  # outboxes per fan-out round, events per outbox read
IN_FLIGHT = 16  # deliveries sent at once by one process
TRIM_EVERY = 60.0  # seconds between trims of the delivery log


class Worker:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        s = ctx.settings
        # Deliveries never follow a redirect (a 3xx is a failure), never use proxies from the
        # environment, and give up on a slow endpoint quickly.
        self.http = httpx.AsyncClient(
            verify=tls_trust(),
            follow_redirects=False,
            trust_env=False,
            timeout=s.webhook_timeout_seconds,
            headers={"user-agent": f"authmd/{__version__} (webhooks)"},
        )
        # A lease outlives the slowest attempt (bounded as a whole below), so a live holder never loses
        # one mid-send; a dead holder's deliveries go to another this long after it took them.
        self.lease_seconds = s.webhook_timeout_seconds + 5
        self.endpoints = {hook.label: hook for hook in s.webhooks}
        self.since: dict[str, float] = {}
        self._trimmed = 0.0

    async def open(self) -> None:
        """Before the server takes requests: each endpoint's first-configured time, stored the first time
        (an endpoint added to a running service receives what happens from then on, not its history)."""
        states = await self.ctx.store.open_endpoints(list(self.endpoints), self.ctx.clock.now())
        self.since = {state.name: state.since or 0.0 for state in states}

    async def close(self) -> None:
        await self.http.aclose()

    async def step(self) -> int:
        """One round: fan out, send what is due, trim now and then. How much it did (0: idle)."""
        done = await self.fan_out()
        done += await self.send_due()
        now = self.ctx.clock.now()
        if now - self._trimmed >= TRIM_EVERY:
            self._trimmed = now
            await self.ctx.store.trim_deliveries(now - self.ctx.settings.webhook_log_days * 86_400, 1000)
        return done

    async def fan_out(self) -> int:
        """Every pending outbox becomes deliveries to the endpoints that want its events (those since the
        endpoint was configured); then the outbox is marked delivered. How many outboxes it consumed."""
        store, now, consumed = self.ctx.store, self.ctx.clock.now(), 0
        for account_id in await store.outboxes_with_pending(BATCH):
            events = await store.read_outbox(account_id, BATCH)
            if not events:
                continue
            deliveries = [
                message.make(hook, event, now)
                for event in events
                for name, hook in self.endpoints.items()
                if hook.wants(ev.type_of(event)) and event.at >= self.since[name]
            ]
            if deliveries:
                await store.add_deliveries(deliveries)
            await store.mark_delivered(account_id, events[-1].id)
            consumed += 1
        return consumed

    async def send_due(self) -> int:
        store, now = self.ctx.store, self.ctx.clock.now()
        disabled = {state.name for state in await store.endpoint_states() if state.disabled_at is not None}
        live = [name for name in self.endpoints if name not in disabled]
        due = await store.lease_deliveries(live, now, self.holder, self.lease_seconds, IN_FLIGHT)
        # What this process took this round, per endpoint (a count of the store's queues would cost a
        # query per endpoint and round): at most IN_FLIGHT in all, so a gauge that stays there is a backlog.
        taken = dict.fromkeys(self.endpoints, 0)
        for d in due:
            taken[d.endpoint] = taken.get(d.endpoint, 0) + 1
        for name, n in taken.items():
            metrics.WEBHOOK_QUEUE.labels(name).set(n)
        await asyncio.gather(*(self._send(d) for d in due))
        return len(due)

    async def _send(self, delivery: Delivery) -> None:
        hook = self.endpoints[delivery.endpoint]
        signing = [hook.secret] + ([hook.previous_secret] if hook.previous_secret is not None else [])
        at = self.ctx.clock.now()
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            headers = message.headers(delivery, signing, at)
            # httpx bounds each phase (connect, write, read); this bounds the attempt as a whole.
            timeout = self.ctx.settings.webhook_timeout_seconds
            status = await asyncio.wait_for(self._post(hook.url, delivery.body, headers), timeout)
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        except (httpx.TimeoutException, TimeoutError):
            error = "timed out"
        except httpx.HTTPError as exc:
            error = _reason(exc)
        latency = round((time.perf_counter() - started) * 1000)
        await self._finish(hook, delivery, at, status, error, latency)

    async def _post(self, url: str, body: str, headers: dict[str, str]) -> int:
        """The endpoint's status. Its body is never read: whatever an endpoint answers costs no memory."""
        async with self.http.stream("POST", url, content=body.encode(), headers=headers) as response:
            return response.status_code

    async def _finish(
        self, hook: Webhook, d: Delivery, at: float, status: int | None, error: str | None, latency: int
    ) -> None:
        attempts = d.attempts + 1
        outcome = msgspec.structs.replace(
            d, attempts=attempts, last_attempt_at=at, last_status=status, last_error=error, last_latency_ms=latency
        )
        events: list[ev.Event] = []
        if error is None:
            outcome = msgspec.structs.replace(outcome, status="delivered", delivered_at=at)
        elif schedule.gives_up(attempts, self.ctx.settings):
            outcome = msgspec.structs.replace(outcome, status="failed")
            events.append(
                ev.new(
                    ev.WebhookEndpointDisabled,
                    at,
                    ev.SERVICE,
                    None,
                    endpoint=hook.label,
                    delivery_id=d.id,
                    attempts=attempts,
                    last_status=status,
                    last_error=error,
                )
            )
        else:
            outcome = msgspec.structs.replace(outcome, next_at=at + schedule.retry_delay(attempts, self.ctx.settings))
        # Each attempt's outcome: delivered, retry (to be sent again later) or failed (given up).
        observe.webhook_attempt(
            self.ctx.tally, hook.label, "retry" if outcome.status == "pending" else outcome.status, at
        )
        if not await self.ctx.store.finish_delivery(outcome, self.holder, events):
            log.warning("webhook delivery %s to %s: lease lost before the outcome was stored", d.id, hook.label)
        elif events:
            observe.emitted(self.ctx.tally, events)  # the endpoint's disabling, with its security line
            log.warning(
                "webhook delivery %s to %s given up after %d attempts (last: %s); the endpoint is disabled "
                "until `authmd admin webhooks enable %s`",
                d.id,
                hook.label,
                attempts,
                error,
                hook.label,
            )


def _reason(exc: httpx.HTTPError) -> str:
    """A failed connection in words, bounded: the operating system's reason when one caused it (e.g.
    "Connection refused", found under the causes and the groups of errors anyio raises), else httpx's."""
    seen: list[BaseException] = [exc]
    while seen:
        cause = seen.pop(0)
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[:200]
        seen += [c for c in (cause.__cause__, cause.__context__) if c is not None]
        if isinstance(cause, BaseExceptionGroup):
            seen += list(cause.exceptions)
    return (str(exc) or type(exc).__name__)[:200]


async def start(ctx: Context) -> asyncio.Task[None] | None:
    """The background task of a server process, when webhooks are configured (none otherwise: the
    outboxes then wait, unread, and an endpoint configured later starts from its own first time)."""
    if not ctx.settings.webhooks:
        return None
    worker = Worker(ctx)
    await worker.open()
    return asyncio.create_task(run(worker))


async def run(worker: Worker) -> None:
    """A round, then a pause of ``webhook_poll_seconds`` unless the round found work (then the next
    round starts at once)."""
    ctx = worker.ctx
    try:
        while True:
            busy = 0
            try:
                busy = await worker.step()
            except StoreUnavailable as exc:
                log.warning("webhook round skipped, store unavailable: %s", exc)
            except Exception:
                log.exception("webhook round failed")
            if not busy:
                await asyncio.sleep(ctx.settings.webhook_poll_seconds)
    finally:
        await worker.close()
