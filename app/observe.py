"""What the operator sees of each domain event and each refusal, made in one place: a log line (logger
``authmd.security``, one per security event), the Prometheus metrics (app/metrics.py) and the
per-minute counts the console charts (``SERIES``).

Counts are kept per process in a ``Tally`` (the server's context holds it) and added to the store's
per-minute counters every ``FLUSH_SECONDS`` (one store call for all of them), so a request pays a
dictionary update, not a store round trip. A process killed between two flushes loses at most that
many seconds of counts; the events themselves are in the store regardless.

Log lines carry ids, kinds and counts, never a secret: events hold none (app/events.py), and refusals
log the limit's name and the source's counting unit only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from app import events as ev
from app import metrics

if TYPE_CHECKING:
    from app.store.port import Store

log = logging.getLogger("authmd.security")
# The operator CLI configures no logging: its lines go nowhere there rather than to stderr.
log.addHandler(logging.NullHandler())
FLUSH_SECONDS = 5.0
# At most this many refusal lines a second per process (a flood of refused requests must not become a
# flood of log lines); the rest are counted and summed up in the next line.
REFUSAL_LINES_PER_SECOND = 20

# The per-minute series the console charts, by name. ``{…}`` parts take a bounded set of values.
SERIES = (
    "registered:{method}",  # anonymous, service_auth, identity_assertion, mcp
    "registration_refused:{method}",
    "claim:{stage}",  # started, confirmed, denied, completed, expired
    "accounts:expired",
    "accounts:deleted",
    "revoked:{by}",  # agent, human, provider, operator
    "refused:{limit}",
    "pow:challenges",
    "pow:difficulty",  # the sum of the bits required: with pow:challenges, the mean difficulty
    "code:wrong",
    "code:lockout",
    "idjag_refused:{provider}",  # a configured issuer, or "untrusted"
    "webhook:{outcome}",  # delivered, retry, failed (each attempt), disabled (an endpoint)
)


class Tally:
    """Counts per (series, minute) not yet added to the store."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}

    def add(self, name: str, at: float, n: int = 1) -> None:
        key = (name, int(at // 60))
        self.counts[key] = self.counts.get(key, 0) + n

    def take(self) -> dict[tuple[str, int], int]:
        taken, self.counts = self.counts, {}
        return taken

    def put_back(self, counts: dict[tuple[str, int], int]) -> None:
        for (name, minute), n in counts.items():
            self.add(name, minute * 60, n)


# The claim funnel's stage of each event of the claim (metrics and series ``claim:<stage>``).
_CLAIM_STAGES: dict[type[ev.Event], str] = {
    ev.ClaimAttemptCreated: "started",
    ev.ClaimConfirmed: "confirmed",
    ev.ClaimDenied: "denied",
    ev.ClaimCompleted: "completed",
    ev.ClaimAttemptExpired: "expired",
}


def _fields(event: ev.Event) -> dict[str, object]:
    out: dict[str, object] = {"event": ev.type_of(event), "event_id": event.id, "account_id": event.account_id}
    if event.registration_id is not None:
        out["registration_id"] = event.registration_id
    return out


def emitted(tally: Tally | None, events: Sequence[ev.Event]) -> None:
    """The store committed these events (``tally``: None in the operator CLI, which counts nothing)."""
    for event in events:
        _one(tally, event)


def _one(tally: Tally | None, event: ev.Event) -> None:
    fields = _fields(event)
    at, level, words, series = event.at, logging.INFO, "", None
    if (stage := _CLAIM_STAGES.get(type(event))) is not None:
        metrics.inc(metrics.CLAIMS, stage)
        series = f"claim:{stage}"
    match event:
        case ev.RegistrationCreated(method=method):
            series = f"registered:{method}"
            fields.update(method=method, pending=event.pending, agent_name=event.agent_name, provider=event.provider)
            # Routine and the most frequent event (a sign-up spike is thousands a second): at debug, like
            # credential_issued. Every one is a domain event in the store and counted in the metrics.
            level, words = logging.DEBUG, f"registration created ({method})"
        case ev.ClaimAttemptCreated():
            fields.update(attempt_id=event.attempt_id, method=event.method)
            words = "claim attempt started"
        case ev.ClaimConfirmed():
            fields.update(attempt_id=event.attempt_id, user_id=event.user_id)
            words = "claim confirmed by a signed-in human"
        case ev.ClaimDenied():
            fields.update(attempt_id=event.attempt_id, user_id=event.user_id)
            level, words = logging.WARNING, "claim denied by the human"
        case ev.ClaimCompleted():
            fields.update(user_id=event.user_id, provider=event.provider)
            words = "claim completed"
        case ev.ClaimAttemptExpired():
            fields.update(attempt_id=event.attempt_id, reason=event.reason)
            words = f"claim attempt ended ({event.reason})"
        case ev.CredentialIssued(kind=kind):
            metrics.inc(metrics.TOKENS_ISSUED, "identity_assertion")
            if kind != "registration":
                metrics.inc(metrics.TOKENS_ISSUED, "refresh_token")
            fields.update(kind=kind, generation=event.generation)
            # Routine (every registration and refresh makes one): at debug, so the default level costs
            # one line per registration, not two (README § Logs).
            level, words = logging.DEBUG, f"credential issued ({kind})"
        case ev.RefreshRotated():
            return  # its credential_issued says it
        case ev.RegistrationRevoked(by=by):
            metrics.inc(metrics.TOKENS_REVOKED, by)
            series = f"revoked:{by}"
            fields.update(by=by, reason=event.reason, user_id=event.user_id, provider=event.provider)
            level, words = logging.WARNING, f"registration revoked by the {by}"
        case ev.AccountDeleted(by=by):
            metrics.inc(metrics.TOKENS_REVOKED, by)
            series = "accounts:deleted"
            fields.update(by=by, registrations=event.registrations, notes=event.notes)
            words = f"account deleted by the {by}"
        case ev.AccountExpired():
            account_expired(tally, event.account_id, event.registrations, event.notes, at)
            return
        case ev.OperatorAction():
            fields.update(operator=event.operator, action=event.action, endpoint=event.endpoint)
            level, words = logging.WARNING, f"operator {event.operator}: {event.action}"
        case ev.WebhookEndpointDisabled():
            series = "webhook:disabled"
            fields.update(endpoint=event.endpoint, attempts=event.attempts, last_status=event.last_status)
            level, words = logging.WARNING, f"webhook endpoint {event.endpoint} disabled"
    if tally is not None and series is not None:
        tally.add(series, at)
    log.log(level, words, extra={"fields": {k: v for k, v in fields.items() if v is not None}})


# ---- what is not a state change ----------------------------------------------------------------------


class _Throttle:
    """At most REFUSAL_LINES_PER_SECOND lines a second; says how many it held back."""

    def __init__(self) -> None:
        self.second, self.lines, self.held = 0, 0, 0

    def __call__(self) -> int | None:
        """None: do not log; else how many were held back before this one."""
        now = int(time.monotonic())
        if now != self.second:
            self.second, self.lines = now, 0
        if self.lines >= REFUSAL_LINES_PER_SECOND:
            self.held += 1
            return None
        self.lines += 1
        held, self.held = self.held, 0
        return held


_throttle = _Throttle()


def refused(tally: Tally, limit: str, at: float, *, code: str, source: str | None = None) -> None:
    """A request refused by a rate limit or a quota (429, or 403 ``quota_exceeded``)."""
    metrics.inc(metrics.REFUSALS, limit)
    tally.add(f"refused:{limit}", at)
    held = _throttle()
    if held is not None:
        fields: dict[str, object] = {"event": "refused", "limit": limit, "code": code, "held_back": held}
        if source:
            fields["source"] = source
        log.warning("request refused by the %s limit", limit, extra={"fields": fields})


def registration_answered(tally: Tally, method: str, outcome: str, at: float) -> None:
    """A registration request answered: ``created`` (credentials or a pending account), ``pending`` (a
    provider's subject must be linked by a human first), or ``refused``. A request that registers an
    already linked provider subject again is ``created`` here but makes no event."""
    metrics.inc(metrics.REGISTRATIONS, method, outcome)
    if outcome == "refused":
        tally.add(f"registration_refused:{method}", at)


def account_expired(tally: Tally | None, account_id: str, registrations: int, notes: int, at: float) -> None:
    """The sweeper deleted an unclaimed temporary account (its ``account.expired`` event is the store's)."""
    if tally is not None:
        tally.add("accounts:expired", at)
    fields = {"event": "account.expired", "account_id": account_id, "registrations": registrations, "notes": notes}
    log.info("temporary account expired unclaimed", extra={"fields": fields})


def challenge_issued(tally: Tally, difficulty: int, at: float) -> None:
    metrics.POW_CHALLENGES.inc()
    metrics.POW_DIFFICULTY.observe(difficulty)
    tally.add("pow:challenges", at)
    tally.add("pow:difficulty", at, difficulty)


def wrong_code(tally: Tally, account_id: str, registration_id: str, at: float, *, lockout: bool) -> None:
    """A wrong user code; ``lockout``: it spent the claim's budget, ending every attempt."""
    metrics.inc(metrics.CODE_FAILURES, "wrong")
    tally.add("code:wrong", at)
    fields = {"event": "user_code.wrong", "account_id": account_id, "registration_id": registration_id}
    log.warning("wrong user code for a claim", extra={"fields": fields})
    if lockout:
        metrics.inc(metrics.CODE_FAILURES, "lockout")
        tally.add("code:lockout", at)
        log.warning("claim locked: wrong codes spent its budget", extra={"fields": {**fields, "event": "lockout"}})


def idjag_refused(tally: Tally, provider: str | None, reason: str, why: str, at: float) -> None:
    """An ID-JAG refused; ``provider``: its issuer when on the trust list, else None (the issuer a
    stranger wrote is never a label or a log field)."""
    name = provider or "untrusted"
    metrics.inc(metrics.IDJAG_REFUSALS, name, reason)
    tally.add(f"idjag_refused:{name}", at)
    fields = {"event": "id_jag.refused", "provider": name, "reason": reason}
    log.warning("ID-JAG refused (%s): %s", reason, why, extra={"fields": fields})


def webhook_attempt(tally: Tally, endpoint: str, outcome: str, at: float) -> None:
    """A webhook delivery attempt ended: ``delivered``, ``retry`` (sent again later) or ``failed`` (given up)."""
    metrics.inc(metrics.WEBHOOK_DELIVERIES, endpoint, outcome)
    tally.add(f"webhook:{outcome}", at)


def token_issued(kind: str) -> None:
    """An access token (not an event: that path only reads)."""
    metrics.inc(metrics.TOKENS_ISSUED, kind)


async def flush(tally: Tally, store: Store) -> None:
    """Add what this process counted to the store (put back if the store did not answer)."""
    counts = tally.take()
    if not counts:
        return
    try:
        await store.add_counts(counts)
    except BaseException:
        tally.put_back(counts)
        raise


async def run_flush(tally: Tally, store: Store, interval: float = FLUSH_SECONDS) -> None:
    """The flusher of one process; a last flush on the way out."""
    try:
        while True:
            await asyncio.sleep(interval)
            try:
                await flush(tally, store)
            except Exception:
                log.warning("could not add the counts to the store; kept for the next try", exc_info=True)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(flush(tally, store))
