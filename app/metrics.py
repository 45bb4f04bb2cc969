"""The Prometheus metric families (README § Metrics lists them). Names follow Prometheus conventions:
``authmd_`` prefix, ``_total`` for counters, base units (``_seconds``). Label values are bounded sets
(route templates, methods, outcomes, limit names, configured provider issuers and webhook endpoint
names): never an id, an email or anything a client chose.

What a domain event or a refusal moves is moved by ``app.observe``; the HTTP, store and webhook families
by the layers that time them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
WEBHOOK_QUEUE = Gauge(
    "authmd_webhook_queue_depth", "Webhook deliveries waiting to be sent", ["endpoint"], multiprocess_mode="mostrecent"
)
