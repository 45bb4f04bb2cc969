"""The demo API within quotas, scope guard, and expiry enforced at use and by the sweeper."""

from __future__ import annotations

import pytest

from app import events as ev
from app.flows.expire import sweep_once

pytestmark = pytest.mark.anyio


async def test_notes_crud_and_quota(harness_factory):
    async with harness_factory(quota_notes=3, quota_note_bytes=10) as h:
        agent = h.agent()
        _reg, token = await agent.start()
        ids = []
        for i in range(3):
            r = await agent.api("POST", "/notes", token, json={"text": f"note {i}"})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        r = await agent.api("POST", "/notes", token, json={"text": "one more"})
        assert (r.status_code, r.json()["error"]) == (403, "quota_exceeded")
        assert "claim" in r.json()["hint"]
        listing = (await agent.api("GET", "/notes", token)).json()
        assert [n["id"] for n in listing["notes"]] == ids and listing["count"] == 3 and listing["limit"] == 3
        got = (await agent.api("GET", f"/notes/{ids[1]}", token)).json()
        assert got == {"id": ids[1], "text": "note 1", "created_at": got["created_at"]}
        r = await agent.api("GET", "/notes/note_missing", token)
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        r = await agent.api("DELETE", f"/notes/{ids[0]}", token)
        assert (r.status_code, r.json()["error"]) == (403, "insufficient_scope")
        assert 'scope="notes:delete"' in r.headers["www-authenticate"]
        assert r.json()["scope"] == "notes:delete"


async def test_note_size_quota_counts_utf8_bytes(harness_factory):
    async with harness_factory(quota_note_bytes=4) as h:
        agent = h.agent()
        _, token = await agent.start()
        assert (await agent.api("POST", "/notes", token, json={"text": "abcd"})).status_code == 201
        r = await agent.api("POST", "/notes", token, json={"text": "ééé"})  # 6 bytes, 3 characters
        assert (r.status_code, r.json()["error"]) == (403, "quota_exceeded")
        r = await agent.api("POST", "/notes", token, json={"text": 5})
        assert (r.status_code, r.json()["error"]) == (400, "invalid_request")


async def test_accounts_are_isolated(harness):
    agent = harness.agent()
    _, token_a = await agent.start()
    _, token_b = await agent.start()
    note = (await agent.api("POST", "/notes", token_a, json={"text": "a's"})).json()
    assert (await agent.api("GET", f"/notes/{note['id']}", token_b)).status_code == 404
    assert (await agent.api("GET", "/notes", token_b)).json()["notes"] == []


async def test_missing_or_malformed_authorization(harness):
    agent = harness.agent()
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        r = await harness.client.get(f"{harness.settings.issuer}/api/notes", headers=headers)
        assert r.status_code == 401
        # RFC 6750 §3.1: no error attribute when no token was sent.
        assert r.headers["www-authenticate"] == (
            'Bearer resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/api"'
        )
        assert r.json()["error"] == "invalid_token"
    r = await agent.api("GET", "/notes", "garbage")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    # A token in the query string is not accepted (RFC 6750 §2.3 is not offered).
    _, token = await agent.start()
    r = await harness.client.get(f"{harness.settings.issuer}/api/notes", params={"access_token": token})
    assert r.status_code == 401


async def test_expiry_is_enforced_at_use_whatever_the_sweeper_lag(harness):
    agent = harness.agent()
    reg, token = await agent.start()
    assert (await agent.api("POST", "/notes", token, json={"text": "x"})).status_code == 201
    harness.clock.advance(harness.settings.anonymous_ttl_seconds - 1)
    assert (await agent.api("GET", "/notes", token)).status_code == 401  # the access token ended first
    fresh = await agent.token(reg["identity"]["assertion"])
    assert fresh["expires_in"] == 1
    harness.clock.advance(1)
    # No sweep has run: the rows still exist, yet nothing works.
    assert harness.ctx.store.conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 1
    r = await agent.api("GET", "/notes", fresh["access_token"])
    assert (r.status_code, r.json()["error"]) == (401, "invalid_token")
    body = await agent.token(reg["identity"]["assertion"], expect=400)
    assert body["error"] == "invalid_grant"


async def test_sweeper_deletes_expired_accounts_with_everything_they_own(harness):
    agent = harness.agent()
    keep_reg, keep_token = await agent.start()
    harness.clock.advance(100)
    gone_regs = []
    for _ in range(3):
        reg, token = await agent.start()
        gone_regs.append(reg)
        for i in range(2):
            assert (await agent.api("POST", "/notes", token, json={"text": str(i)})).status_code == 201
    await agent.api("POST", "/notes", keep_token, json={"text": "kept"})
    # The first account expires 100 s before the others.
    harness.clock.advance(harness.settings.anonymous_ttl_seconds - 100)
    assert await sweep_once(harness.ctx) == 1
    harness.clock.advance(100)
    assert await sweep_once(harness.ctx) == 3
    assert await sweep_once(harness.ctx) == 0
    conn = harness.ctx.store.conn
    for table in ("accounts", "registrations", "notes"):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    expired = [e for e in await harness.ctx.store.events() if isinstance(e, ev.AccountExpired)]
    assert sorted(e.account_id for e in expired) == sorted(
        [keep_reg["account"]["id"], *(r["account"]["id"] for r in gone_regs)]
    )
    assert {e.notes for e in expired if e.account_id != keep_reg["account"]["id"]} == {2}


async def test_store_outage_is_a_503_that_changes_nothing(harness_factory, tmp_path):
    import sqlite3

    db = tmp_path / "outage.sqlite3"
    async with harness_factory(store_url=f"sqlite:///{db}?busy_timeout_ms=50") as h:
        agent = h.agent()
        _, token = await agent.start()
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            r = await h.client.post(f"{h.settings.issuer}/agent/identity", json={"type": "anonymous"})
            assert (r.status_code, r.json()["error"]) == (503, "temporarily_unavailable")
            assert int(r.headers["retry-after"]) >= 1
            r = await agent.api("POST", "/notes", token, json={"text": "x"})
            assert r.status_code == 503
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert h.ctx.store.conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 1
        assert (await agent.api("GET", "/notes", token)).json()["notes"] == []
        assert (await agent.api("POST", "/notes", token, json={"text": "x"})).status_code == 201
