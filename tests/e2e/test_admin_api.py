"""The admin HTTP API (README § Admin API) against a real server: every endpoint's success and its
failures (no key, a wrong key, an agent's token as a key, a read-only key on a write, unknown ids, a
second revocation), pagination walked to the end, the events filter, the audit log, and the throttle on
wrong keys, sequential and as a concurrent burst, on SQLite and Redis."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.tokens import admin_key_hash, new_admin_key
from tests.e2e.common import assert_error, bearer
from tests.e2e.conftest import ServerProcess, StartServer
from tests.e2e.test_admin import access_token, notes_status, register
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.e2e

API = "/admin/v1"
WRITER, READER = new_admin_key(), new_admin_key()
HIGH = "1000000"
DAY = "86400"  # one window for the whole test: the wrong-key count never rolls over mid-test


def admin_config(tmp_path: Path) -> Path:
    path = tmp_path / "admin.toml"
    path.write_text(
        f'[[admin_keys]]\nname = "ops"\nkey_hash = "{admin_key_hash(WRITER)}"\nscopes = ["admin:read", "admin:write"]\n'
        f'[[admin_keys]]\nname = "viewer"\nkey_hash = "{admin_key_hash(READER)}"\nscopes = ["admin:read"]\n'
    )
    return path


@pytest.fixture(params=["sqlite", "redis"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    redis: RedisServer = request.getfixturevalue("shared_redis")
    return {"AUTHMD_STORE_URL": f"{redis.url}?prefix=adm{secrets.token_hex(4)}:"}


def serve(start_server: StartServer, tmp_path: Path, **env: str) -> ServerProcess:
    return start_server(
        {
            "AUTHMD_CONFIG": str(admin_config(tmp_path)),
            "AUTHMD_POW_MODE": "off",
            "AUTHMD_REGISTER_LIMIT_PER_SOURCE": HIGH,
            "AUTHMD_RATE_WINDOW_SECONDS": DAY,
            **env,
        }
    )


class Admin:
    def __init__(self, http: httpx.Client, server: ServerProcess, key: str = WRITER) -> None:
        self.http, self.server, self.key = http, server, key

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(f"{self.server.issuer}{API}{path}", params=params, headers=bearer(self.key))

    def post(self, path: str, json: Any = None, **params: Any) -> httpx.Response:
        return self.http.post(f"{self.server.issuer}{API}{path}", json=json, params=params, headers=bearer(self.key))


def walk(call: Any, path: str, cursor_name: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every item of a list, page by page; and how many pages it took."""
    items: list[dict[str, Any]] = []
    pages, cursor = 0, None
    while True:
        r = call.get(path, **params, **({cursor_name: cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["data"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 100, "the cursor never ended"


def test_read_revoke_and_validate_with_every_failure_path(
    start_server: StartServer, store_env: dict[str, str], tmp_path: Path
) -> None:
    server = serve(start_server, tmp_path, **store_env)
    with httpx.Client(timeout=10.0) as http:
        ops, viewer = Admin(http, server), Admin(http, server, READER)
        regs = [register(http, server, f"agent-{i}") for i in range(7)]
        tokens = {r["id"]: access_token(http, server, r["identity"]["assertion"]) for r in regs}
        first = regs[0]

        # Reads: one registration, one account, lists walked page by page to the end, exactly once each.
        r = viewer.get(f"/registrations/{first['id']}")
        assert r.status_code == 200, r.text
        view = r.json()
        assert view["id"] == first["id"] and view["account_id"] == first["account"]["id"]
        assert view["status"] == "active" and view["agent_name"] == "agent-0" and view["claim"] is None
        assert viewer.get(f"/registrations/{first['id']}", account=first["account"]["id"]).json() == view
        account = viewer.get(f"/accounts/{first['account']['id']}").json()
        assert account["kind"] == "temporary" and [x["id"] for x in account["registrations"]] == [first["id"]]
        items, pages = walk(viewer, "/registrations", "cursor", limit=2)
        expected = sorted((r["account"]["id"], r["id"]) for r in regs)
        assert [(x["account_id"], x["id"]) for x in items] == expected and pages == 4
        assert viewer.get("/registrations", account=first["account"]["id"]).json()["data"] == [view]
        assert viewer.get("/registrations", type="service_auth").json() == {"data": [], "next_cursor": None}

        # A validated credential: whose, which scopes, until when; an identity assertion too.
        check = viewer.post("/credentials/validate", {"token": tokens[first["id"]]}).json()
        assert check["active"] is True and check["kind"] == "access_token"
        assert (check["account_id"], check["registration_id"]) == (first["account"]["id"], first["id"])
        assert check["scopes"] == ["notes:read", "notes:write"] and check["account_type"] == "temporary"
        check = viewer.post("/credentials/validate", {"token": first["identity"]["assertion"]}).json()
        assert check["active"] is True and check["kind"] == "identity_assertion"
        for junk in ("nope", "a.b.c", first["claim"]["token"], ""):
            assert viewer.post("/credentials/validate", {"token": junk}).json() == {"active": False}
        assert_error(viewer.post("/credentials/validate", {"nothing": 1}), 400, "invalid_request")

        # A read-only key may not write: 403 insufficient_scope, naming the scope (RFC 6750 §3.1).
        r = viewer.post(f"/registrations/{first['id']}/revoke")
        assert_error(r, 403, "insufficient_scope")
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="authmd-admin"') and 'error="insufficient_scope"' in challenge
        assert 'scope="admin:write"' in challenge
        assert notes_status(http, server, tokens[first["id"]]) == 200

        # Revoke one registration: its tokens die, it is no longer valid, and twice is a conflict.
        r = ops.post(f"/registrations/{first['id']}/revoke")
        assert r.status_code == 200, r.text
        assert r.json()["revoked"] == [
            {"account_id": first["account"]["id"], "registration_id": first["id"], "type": "anonymous"}
        ]
        assert notes_status(http, server, tokens[first["id"]]) == 401
        assert viewer.post("/credentials/validate", {"token": tokens[first["id"]]}).json() == {"active": False}
        assert viewer.post("/credentials/validate", {"token": first["identity"]["assertion"]}).json() == {
            "active": False
        }
        assert_error(ops.post(f"/registrations/{first['id']}/revoke"), 409, "already_revoked")
        assert viewer.get(f"/registrations/{first['id']}").json()["status"] == "revoked"
        active, _ = walk(viewer, "/registrations", "cursor", status="active", limit=3)
        assert sorted(x["id"] for x in active) == sorted(r["id"] for r in regs[1:])
        revoked = viewer.get("/registrations", status="revoked").json()["data"]
        assert [x["id"] for x in revoked] == [first["id"]]

        # Revoke an account: every live registration of it; then nothing is left to revoke.
        second = regs[1]
        r = ops.post(f"/accounts/{second['account']['id']}/revoke")
        assert r.status_code == 200 and [x["registration_id"] for x in r.json()["revoked"]] == [second["id"]]
        assert notes_status(http, server, tokens[second["id"]]) == 401
        assert_error(ops.post(f"/accounts/{second['account']['id']}/revoke"), 409, "already_revoked")

        # Unknown ids: 404.
        for path in ("/registrations/reg_doesnotexist0000", "/accounts/acct_doesnotexist000"):
            assert_error(viewer.get(path), 404, "not_found")
        assert_error(ops.post("/registrations/reg_doesnotexist0000/revoke"), 404, "not_found")
        assert_error(ops.post("/accounts/acct_doesnotexist000/revoke"), 404, "not_found")
        assert_error(viewer.get(f"/registrations/{regs[2]['id']}", account=regs[3]["account"]["id"]), 404, "not_found")
        assert_error(viewer.get("/registrations", cursor="garbage"), 400, "invalid_request")
        assert_error(viewer.get("/registrations", limit=0), 400, "invalid_request")
        assert_error(viewer.get("/registrations", status="gone"), 400, "invalid_request")

        # The events, in order, filtered by type and by family, walked page by page.
        everything, _ = walk(viewer, "/events", "after", limit=200)
        ids = [e["id"] for e in everything]
        assert ids == sorted(ids) and len(ids) == len(set(ids))
        paged, pages = walk(viewer, "/events", "after", limit=3)
        assert paged == everything and pages >= len(everything) // 3
        acted = viewer.get("/events", type=["operator.action", "agent_registration.revoked"]).json()["data"]
        assert [(e["type"], e["registration_id"]) for e in acted] == [
            ("agent_registration.revoked", first["id"]),
            ("operator.action", first["id"]),
            ("agent_registration.revoked", second["id"]),
            ("operator.action", second["id"]),
        ]
        assert {e["data"]["operator"] for e in acted if e["type"] == "operator.action"} == {"admin-key:ops"}
        assert acted[0]["data"]["by"] == "operator"
        family = viewer.get("/events", type="agent_registration.*").json()["data"]
        assert family and all(e["type"].startswith("agent_registration.") for e in family)
        assert {e["type"] for e in family} >= {"agent_registration.created", "agent_registration.revoked"}
        assert viewer.get("/events", after=ids[-1]).json() == {"data": [], "next_cursor": None}
        assert_error(viewer.get("/events", after="0"), 400, "invalid_request")

    # Every call was audited once, with the key's name and never the key.
    log = server.read_log()
    assert WRITER not in log and READER not in log
    audit = re.findall(r"authmd\.admin admin key=(\S+) (\w+) (\S+) -> (\d+)", log)
    assert ("ops", "POST", f"{API}/registrations/{first['id']}/revoke", "200") in audit
    assert ("viewer", "POST", f"{API}/registrations/{first['id']}/revoke", "403") in audit
    assert ("viewer", "GET", f"{API}/registrations/reg_doesnotexist0000", "404") in audit


def test_no_key_a_wrong_key_and_an_agents_token_get_401_then_the_source_is_throttled(
    start_server: StartServer, store_env: dict[str, str], tmp_path: Path
) -> None:
    limit = 5
    server = serve(start_server, tmp_path, AUTHMD_ADMIN_FAILURES_PER_SOURCE=str(limit), **store_env)
    with httpx.Client(timeout=10.0) as http:
        url = f"{server.issuer}{API}/registrations"
        r = http.get(url)
        assert_error(r, 401, "invalid_token")
        assert r.headers["www-authenticate"] == 'Bearer realm="authmd-admin"'  # RFC 6750 §3: no error without a key
        agent = register(http, server, "not-an-admin")
        token = access_token(http, server, agent["identity"]["assertion"])
        wrong = [token, agent["identity"]["assertion"], new_admin_key(), "amk_" + WRITER[4:-1] + "x", WRITER.upper()]
        assert len(wrong) == limit
        for n, key in enumerate(wrong, 1):
            r = http.get(url, headers=bearer(key))
            assert_error(r, 401, "invalid_token")
            assert r.headers["www-authenticate"].startswith('Bearer realm="authmd-admin", error="invalid_token"')
            if n == limit - 1:  # under the allowance (a missing key is not a guess): a right key works
                assert http.get(url, headers=bearer(WRITER)).status_code == 200
        # The allowance of wrong keys is spent: every admin call from this source is refused, a right key's too.
        for key in (new_admin_key(), WRITER, READER):
            r = http.get(url, headers=bearer(key))
            body = assert_error(r, 429, "rate_limit_exceeded")
            assert int(r.headers["retry-after"]) >= 1 and body["retry_after"] == int(r.headers["retry-after"])
        # The API the agents use is not throttled by the admin API's failures, and an admin key is no
        # agent's token there.
        assert notes_status(http, server, token) == 200
        assert notes_status(http, server, WRITER) == 401
    assert len(re.findall(r"authmd\.admin admin key=- GET \S+ -> 401", server.read_log())) == 1 + len(wrong)


@pytest.mark.anyio
async def test_a_burst_of_wrong_keys_gets_at_most_the_allowance_of_answers(
    start_server: StartServer, store_env: dict[str, str], tmp_path: Path
) -> None:
    limit, burst = 8, 60
    server = serve(start_server, tmp_path, AUTHMD_ADMIN_FAILURES_PER_SOURCE=str(limit), **store_env)
    limits = httpx.Limits(max_connections=burst)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        url = f"{server.issuer}{API}/events"
        answers = await asyncio.gather(*(client.get(url, headers=bearer(new_admin_key())) for _ in range(burst)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [401] * limit + [429] * (burst - limit), statuses
        assert (await client.get(url, headers=bearer(WRITER))).status_code == 429
