"""Anonymous registration: proof-of-work policy and failure paths, rate limits, bad input."""

from __future__ import annotations

import pytest

from app import events as ev
from app.protocol import solve
from app.tokens import mint_challenge as mint

pytestmark = pytest.mark.anyio


async def _challenge(h):
    r = await h.client.post(f"{h.settings.issuer}/agent/identity/challenge")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()


async def _register(h, body, expect):
    r = await h.client.post(f"{h.settings.issuer}/agent/identity", json=body)
    assert r.status_code == expect, r.text
    return r


async def _counts(h) -> tuple[int, int]:
    """(accounts that exist, audit events): what 'nothing stored' is checked against."""
    conn = h.ctx.store.conn  # the SQLite adapter's connection: read-only peek for assertions
    return (
        conn.execute("SELECT count(*) FROM accounts").fetchone()[0],
        conn.execute("SELECT count(*) FROM events").fetchone()[0],
    )


async def test_response_shape_and_headers(harness):
    r = await _register(harness, {"type": "anonymous", "agent": {"name": "bot", "platform": "cli"}}, 200)
    body = r.json()
    assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    assert body["id"].startswith("reg_") and body["type"] == "anonymous"
    assert body["claim"]["token"].startswith("clm_")
    assert body["claim"]["url"] == f"{harness.settings.issuer}/agent/identity/claim"
    assert body["identity"]["expires_at"].endswith("Z")
    assert body["scopes"] == {
        "pre_claim": ["notes:read", "notes:write"],
        "post_claim": ["notes:read", "notes:write", "notes:delete"],
    }
    assert body["account"]["type"] == "temporary"
    assert body["account"]["quotas"] == {"notes": 25, "note_bytes": 4096}
    created, issued = await harness.ctx.store.events()
    assert isinstance(created, ev.RegistrationCreated) and isinstance(issued, ev.CredentialIssued)
    assert (created.method, created.agent_name, created.agent_platform) == ("anonymous", "bot", "cli")
    assert (issued.kind, issued.registration_id) == ("registration", body["id"])
    # The claim token is a MAC under a server key: no copy of it (nor of its secret part) is stored.
    dump = "\n".join(harness.ctx.store.conn.iterdump())
    assert body["claim"]["token"].rsplit(".", 1)[1] not in dump


async def test_always_mode_requires_a_proof_and_teaches_in_one_round_trip(harness_factory):
    async with harness_factory(pow_mode="always", pow_difficulty=8) as h:
        r = await _register(h, {"type": "anonymous"}, 400)
        body = r.json()
        assert body["error"] == "proof_of_work_required"
        ch = body["challenge"]
        assert ch["algorithm"] == "sha256" and ch["difficulty"] == 8
        assert await _counts(h) == (0, 0)
        nonce = solve(ch["challenge"], ch["difficulty"])
        ok = await _register(
            h, {"type": "anonymous", "proof_of_work": {"challenge": ch["challenge"], "nonce": nonce}}, 200
        )
        assert ok.json()["type"] == "anonymous"


async def test_forged_expired_reused_and_too_easy_proofs(harness_factory):
    async with harness_factory(pow_mode="always", pow_difficulty=8) as h:
        ch = await _challenge(h)
        good = solve(ch["challenge"], ch["difficulty"])

        async def refused(challenge: str, nonce: str, fragment: str) -> None:
            before = await _counts(h)
            r = await _register(
                h, {"type": "anonymous", "proof_of_work": {"challenge": challenge, "nonce": nonce}}, 400
            )
            body = r.json()
            assert body["error"] == "invalid_proof_of_work", body
            assert fragment in body["error_description"]
            assert body["challenge"]["challenge"] != challenge  # a fresh one to retry with
            assert await _counts(h) == before

        # forged: a different difficulty under the old MAC, or a MAC from another key
        v, cid, exp, _diff, mac = ch["challenge"].split(".")
        await refused(f"{v}.{cid}.{exp}.1.{mac}", "0", "not issued by this service")
        await refused(mint(b"k" * 32, 8, int(exp)), "0", "not issued by this service")
        # too easy: a nonce that misses the difficulty; and a genuine challenge below the floor
        bad = next(str(n) for n in range(10_000) if str(n) != good and not _meets(ch["challenge"], str(n), 8))
        await refused(ch["challenge"], bad, "leading zero bits")
        easy = mint(h.ctx.pow_key, 2, int(exp))
        await refused(easy, solve(easy, 2), "easier than this service now accepts")
        await refused(ch["challenge"], "12a", "decimal")
        await refused(ch["challenge"], "1" * 33, "decimal")
        # reused: first use wins, second is refused
        await _register(h, {"type": "anonymous", "proof_of_work": {"challenge": ch["challenge"], "nonce": good}}, 200)
        await refused(ch["challenge"], good, "already used")
        # expired
        ch2 = await _challenge(h)
        nonce2 = solve(ch2["challenge"], ch2["difficulty"])
        h.clock.advance(h.settings.pow_challenge_ttl_seconds)
        await refused(ch2["challenge"], nonce2, "expired")


def _meets(challenge: str, nonce: str, difficulty: int) -> bool:
    from app.protocol import meets

    return meets(challenge, nonce, difficulty)


async def test_adaptive_is_free_for_a_sparse_agent_then_rises_with_volume(harness_factory):
    async with harness_factory(
        pow_mode="adaptive", pow_difficulty=4, pow_max_difficulty=12, pow_free_per_source=2
    ) as h:
        for _ in range(2):
            await _register(h, {"type": "anonymous"}, 200)
        r = await _register(h, {"type": "anonymous"}, 400)
        assert r.json()["error"] == "proof_of_work_required"
        difficulties = [r.json()["challenge"]["difficulty"]]
        for _ in range(6):
            ch = r.json()["challenge"]
            nonce = solve(ch["challenge"], ch["difficulty"])
            await _register(
                h, {"type": "anonymous", "proof_of_work": {"challenge": ch["challenge"], "nonce": nonce}}, 200
            )
            r = await _register(h, {"type": "anonymous"}, 400)
            difficulties.append(r.json()["challenge"]["difficulty"])
        assert difficulties == sorted(difficulties) and difficulties[-1] > difficulties[0]
        assert all(4 <= d <= 12 for d in difficulties)
        # The window slides: after it, the source is sparse again and registers for free.
        h.clock.advance(2 * h.settings.rate_window_seconds)
        await _register(h, {"type": "anonymous"}, 200)


async def test_adaptive_global_allowance(harness_factory):
    async with harness_factory(pow_mode="adaptive", pow_difficulty=4, pow_free_per_source=100, pow_free_global=1) as h:
        await _register(h, {"type": "anonymous"}, 200)
        r = await _register(h, {"type": "anonymous"}, 400)
        assert r.json()["error"] == "proof_of_work_required"
        assert r.json()["challenge"]["difficulty"] == 4  # the source is sparse: base price only


async def test_off_mode_still_checks_a_sent_proof(harness):
    r = await _register(harness, {"type": "anonymous", "proof_of_work": {"challenge": "v1.x.1.1.y", "nonce": "1"}}, 400)
    assert r.json()["error"] == "invalid_proof_of_work"


async def test_rate_limits_per_source_and_global(harness_factory):
    async with harness_factory(register_limit_per_source=3, challenge_limit_per_source=2) as h:
        for _ in range(3):
            await _register(h, {"type": "anonymous"}, 200)
        r = await _register(h, {"type": "anonymous"}, 429)
        body = r.json()
        assert body["error"] == "rate_limit_exceeded" and body["hint"]
        retry = int(r.headers["retry-after"])
        assert body["retry_after"] == retry  # revision 2: the wait in the body too, as a number
        assert body["message"] == body["error_description"]
        assert 1 <= retry <= 2 * h.settings.rate_window_seconds
        accounts, _ = await _counts(h)
        assert accounts == 3
        await _challenge(h)
        await _challenge(h)
        r = await h.client.post(f"{h.settings.issuer}/agent/identity/challenge")
        assert r.status_code == 429 and "retry-after" in r.headers
        h.clock.advance(retry)
        await _register(h, {"type": "anonymous"}, 200)
    async with harness_factory(register_limit_global=1) as h:
        await _register(h, {"type": "anonymous"}, 200)
        await _register(h, {"type": "anonymous"}, 429)


async def test_sources_are_counted_separately_only_through_trusted_proxies(harness_factory):
    async with harness_factory(register_limit_per_source=1, trusted_proxies=["127.0.0.0/8"]) as h:
        url = f"{h.settings.issuer}/agent/identity"
        # The test client's peer is not an IP in the trusted list: X-Forwarded-For is ignored.
        r1 = await h.client.post(url, json={"type": "anonymous"}, headers={"x-forwarded-for": "203.0.113.1"})
        r2 = await h.client.post(url, json={"type": "anonymous"}, headers={"x-forwarded-for": "203.0.113.2"})
        assert (r1.status_code, r2.status_code) == (200, 429)


async def test_bad_input_is_a_clear_4xx_and_stores_nothing(harness_factory):
    async with harness_factory(max_body_bytes=1024) as h:
        url = f"{h.settings.issuer}/agent/identity"
        cases = [
            ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_request"),
            (
                {"content": b'{"type":"anonymous"}', "headers": {"content-type": "text/plain"}},
                415,
                "unsupported_media_type",
            ),
            ({"content": b'{"type":"anonymous"}'}, 415, "unsupported_media_type"),
            ({"json": {"type": "teleport"}}, 400, "invalid_request"),
            ({"json": {"kind": "anonymous"}}, 400, "invalid_request"),
            ({"json": {"type": 7}}, 400, "invalid_request"),
            ({"json": ["anonymous"]}, 400, "invalid_request"),
            ({"json": {"type": "anonymous", "proof_of_work": "yes"}}, 400, "invalid_request"),
            ({"json": {"type": "anonymous", "agent": {"name": "x" * 200}}}, 400, "invalid_request"),
            ({"json": {"type": "anonymous", "agent": {"name": "x" * 2000}}}, 413, "request_too_large"),
            (
                {"content": b"{" + b" " * 2000 + b"}", "headers": {"content-type": "application/json"}},
                413,
                "request_too_large",
            ),
        ]
        for kwargs, status, code in cases:
            r = await h.client.post(url, **kwargs)
            assert (r.status_code, r.json()["error"]) == (status, code), (kwargs, r.text)
            assert r.json()["error_description"] and r.json()["hint"]
        assert await _counts(h) == (0, 0)
        # Unknown fields are ignored (forward compatibility).
        await _register(h, {"type": "anonymous", "future_field": {"x": 1}}, 200)


async def test_anonymous_disabled(harness_factory):
    async with harness_factory(anonymous_enabled=False) as h:
        r = await _register(h, {"type": "anonymous"}, 400)
        assert r.json()["error"] == "anonymous_registration_disabled"
        meta = (await h.client.get(f"{h.settings.issuer}/.well-known/oauth-authorization-server")).json()
        assert meta["agent_auth"]["identity_types_supported"] == ["service_auth"]
