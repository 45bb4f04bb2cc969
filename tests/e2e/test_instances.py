"""Several authmd instances on one Redis (issue 3): the protocol's guarantees hold across processes.

Three real `authmd serve` processes (A, B, C) on their own ports share one Redis (``AUTHMD_STORE_URL``),
one data dir (the signing keys and the server secret) and one issuer (the URL a load balancer in
front of them would have). Every request goes to a chosen instance's own origin.
"""

# ruff: noqa: F811
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from app.protocol import solve
from tests.e2e.common import (
    CHALLENGE,
    IDENTITY,
    JWT_BEARER,
    NOTES,
    REVOKE,
    TOKEN,
    assert_error,
    bearer,
    shared_env,
)
from tests.e2e.conftest import ROOT, ServerProcess, StartServer, wait_until
from tests.redis_servers import RedisServer, redis_server  # noqa: F401

pytestmark = pytest.mark.e2e

JWKS = "/.well-known/jwks.json"
OUTBOXES = "authmd:{o}:outboxes"  # on one Redis, every account's outbox is in one index
EXPIRY_INDEX = "authmd:{exp}:accounts"


# --- helpers ---------------------------------------------------------------------------------------


def start_instances(
    start_server: StartServer, redis: RedisServer, tmp_path: Path, env: Mapping[str, str], count: int = 3
) -> list[ServerProcess]:
    """``count`` instances sharing one Redis, one data dir and one issuer (started one after the other)."""
    shared = shared_env(redis, tmp_path, env)
    instances = [start_server(shared) for _ in range(count)]
    assert len({i.port for i in instances}) == count
    assert len({i.issuer for i in instances}) == 1
    return instances


def retry_after(response: httpx.Response) -> int:
    value = response.headers.get("retry-after", "")
    assert value.isdigit() and int(value) > 0, response.headers
    return int(value)


def register(server: ServerProcess, body: Mapping[str, Any] | None = None) -> httpx.Response:
    return httpx.post(f"{server.origin}{IDENTITY}", json=dict(body or {"type": "anonymous"}), timeout=10)


def registered(server: ServerProcess) -> dict[str, Any]:
    r = register(server)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def exchange(server: ServerProcess, assertion: str) -> httpx.Response:
    return httpx.post(f"{server.origin}{TOKEN}", data={"grant_type": JWT_BEARER, "assertion": assertion}, timeout=10)


def access_token(server: ServerProcess, assertion: str) -> str:
    r = exchange(server, assertion)
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def list_notes(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.get(f"{server.origin}{NOTES}", headers=bearer(token), timeout=10)


def revoke(server: ServerProcess, token: str) -> None:
    r = httpx.post(f"{server.origin}{REVOKE}", data={"token": token}, timeout=10)
    assert r.status_code == 200, r.text


def concurrently(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run every call on its own thread, released together by a barrier; responses in call order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def audit_events(redis: RedisServer) -> list[dict[str, Any]]:
    """Every domain event, read straight from each account's outbox stream (field ``e``: the event)."""
    events = []
    for account_id in redis.command("ZRANGE", OUTBOXES, "0", "-1"):
        for _stream_id, fields in redis.command("XRANGE", f"authmd:{{a:{account_id}}}:events", "-", "+"):
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            events.append(json.loads(values["e"]))
    return events


def published_kids(server: ServerProcess) -> set[str]:
    r = httpx.get(f"{server.origin}{JWKS}", timeout=10)
    assert r.status_code == 200, r.text
    return {key["kid"] for key in r.json()["keys"]}


def has_kids(server: ServerProcess, kids: set[str]) -> bool:
    return published_kids(server) == kids


# --- tests -----------------------------------------------------------------------------------------


def test_rate_limits_are_shared(start_server: StartServer, redis_server: RedisServer, tmp_path: Path) -> None:
    servers = start_instances(
        start_server, redis_server, tmp_path, {"AUTHMD_REGISTER_LIMIT_PER_SOURCE": "3", "AUTHMD_POW_MODE": "off"}
    )
    # Nine registrations from one source, three on each instance at once: the limit is one counter.
    responses = concurrently([partial(register, s) for s in servers * 3])
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 3, 429: 6}, [r.text for r in responses]
    for r in responses:
        if r.status_code == 429:
            assert_error(r, 429, "rate_limit_exceeded")
            retry_after(r)
    # The next one is refused by every instance, whichever served the three that passed.
    for server in servers:
        r = register(server)
        assert_error(r, 429, "rate_limit_exceeded")
        retry_after(r)


def test_a_challenge_is_redeemed_once_across_instances(
    start_server: StartServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    a, b, c = start_instances(
        start_server, redis_server, tmp_path, {"AUTHMD_POW_MODE": "always", "AUTHMD_POW_DIFFICULTY": "8"}
    )

    def solved(server: ServerProcess) -> dict[str, Any]:
        r = httpx.post(f"{server.origin}{CHALLENGE}", timeout=10)
        assert r.status_code == 200, r.text
        chal = r.json()
        return {
            "type": "anonymous",
            "proof_of_work": {"challenge": chal["challenge"], "nonce": solve(chal["challenge"], chal["difficulty"])},
        }

    # Redeemed on A, refused on B and C.
    body = solved(a)
    assert register(a, body).status_code == 200
    for server in (b, c):
        assert_error(register(server, body), 400, "invalid_proof_of_work")

    # A challenge minted by B redeems on C (the MAC key is shared) ...
    assert register(c, solved(b)).status_code == 200

    # ... and 30 concurrent redemptions of one proof, spread over A, B and C: exactly one wins.
    body = solved(c)
    responses = concurrently([partial(register, s, body) for s in [a, b, c] * 10])
    assert Counter(r.status_code for r in responses) == {200: 1, 400: 29}, [r.text for r in responses]
    for r in responses:
        if r.status_code == 400:
            assert_error(r, 400, "invalid_proof_of_work")


def test_tokens_and_revocation_across_instances(
    start_server: StartServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    a, b, c = start_instances(start_server, redis_server, tmp_path, {"AUTHMD_POW_MODE": "off"})
    assertion = registered(a)["identity"]["assertion"]
    token = access_token(b, assertion)
    for server in (c, a, b):
        assert list_notes(server, token).status_code == 200

    # An access token revoked on B fails on C and A (and B); the grant itself lives on.
    revoke(b, token)
    for server in (c, a, b):
        r = list_notes(server, token)
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"].startswith("Bearer ")
    second = access_token(c, assertion)
    assert list_notes(a, second).status_code == 200

    # Revoking the identity assertion on C deletes the temporary account: no exchange, no use, anywhere.
    revoke(c, assertion)
    for server in (a, b, c):
        assert_error(exchange(server, assertion), 400, "invalid_grant")
        assert list_notes(server, second).status_code == 401


def test_quotas_hold_under_concurrency_across_instances(
    start_server: StartServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    servers = start_instances(
        start_server, redis_server, tmp_path, {"AUTHMD_POW_MODE": "off", "AUTHMD_QUOTA_NOTES": "5"}
    )
    token = access_token(servers[0], registered(servers[1])["identity"]["assertion"])

    def create(server: ServerProcess, i: int) -> httpx.Response:
        return httpx.post(f"{server.origin}{NOTES}", json={"text": f"note {i}"}, headers=bearer(token), timeout=10)

    responses = concurrently([partial(create, servers[i % 3], i) for i in range(12)])
    assert Counter(r.status_code for r in responses) == {201: 5, 403: 7}, [r.text for r in responses]
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 5
    for r in responses:
        if r.status_code == 403:
            assert_error(r, 403, "quota_exceeded")
    for server in servers:
        r = list_notes(server, token)
        assert r.status_code == 200, r.text
        assert r.json()["count"] == 5
        assert {n["id"] for n in r.json()["notes"]} == created


def test_expiry_and_one_sweep_per_account_across_instances(
    start_server: StartServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    servers = start_instances(
        start_server,
        redis_server,
        tmp_path,
        {"AUTHMD_POW_MODE": "off", "AUTHMD_ANONYMOUS_TTL_SECONDS": "2", "AUTHMD_SWEEP_INTERVAL_SECONDS": "0.2"},
    )
    accounts = []  # (account id, assertion, access token), one registered on each instance
    for server in servers:
        reg = registered(server)
        accounts.append(
            (reg["account"]["id"], reg["identity"]["assertion"], access_token(server, reg["identity"]["assertion"]))
        )
    ids = {account_id for account_id, _, _ in accounts}
    assert len(ids) == 3

    def refused_everywhere() -> bool:
        for _, assertion, token in accounts:
            for server in servers:
                if list_notes(server, token).status_code != 401:
                    return False
                r = exchange(server, assertion)
                if r.status_code != 400 or r.json()["error"] != "invalid_grant":
                    return False
        return True

    def swept() -> bool:
        expired = {e["account_id"] for e in audit_events(redis_server) if e["type"] == "account.expired"}
        indexed = redis_server.command("ZRANGE", EXPIRY_INDEX, "0", "-1")
        return ids <= expired and not ids & set(indexed)

    wait_until(refused_everywhere, 30, "every account refused by every instance")
    wait_until(swept, 30, "the sweepers to delete the three accounts")

    # Three sweepers raced for the same accounts: one account.expired event each, no duplicates.
    expired_events = Counter(e["account_id"] for e in audit_events(redis_server) if e["type"] == "account.expired")
    assert expired_events == dict.fromkeys(ids, 1), expired_events
    for account_id in ids:
        assert redis_server.command("EXISTS", f"authmd:{{a:{account_id}}}:acct") == 0
        # Only the outbox is left: it outlives the account (spec/events.md, retention).
        assert redis_server.command("KEYS", f"authmd:{{a:{account_id}}}:*") == [f"authmd:{{a:{account_id}}}:events"]


def test_signing_keys_are_shared_and_rotation_reaches_every_instance(
    start_server: StartServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    servers = start_instances(
        start_server, redis_server, tmp_path, {"AUTHMD_POW_MODE": "off", "AUTHMD_KEY_CHECK_INTERVAL_SECONDS": "0.2"}
    )
    a, b, c = servers
    (old_kid,) = published_kids(a)
    assert published_kids(b) == published_kids(c) == {old_kid}
    assertion = registered(a)["identity"]["assertion"]
    old_token = access_token(a, assertion)
    assert jwt.get_unverified_header(old_token)["kid"] == old_kid
    for server in (b, c):
        assert list_notes(server, old_token).status_code == 200

    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")}
    env["AUTHMD_DATA_DIR"] = str(tmp_path / "shared-data")
    done = subprocess.run(
        [sys.executable, "-m", "app", "keys", "rotate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    match = re.search(r"new current key (\S+);", done.stdout)
    assert match, done.stdout
    new_kid = match.group(1)
    assert new_kid != old_kid

    for server in servers:
        wait_until(partial(has_kids, server, {old_kid, new_kid}), 20, f"both keys in {server.origin}'s JWKS")
    # What any instance mints now uses the new key, and every instance accepts both.
    new_token = access_token(c, assertion)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    for server in servers:
        for token in (old_token, new_token):
            assert list_notes(server, token).status_code == 200
