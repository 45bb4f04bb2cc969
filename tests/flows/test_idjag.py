"""Provider-attested registration against a real test identity provider (an HTTP server with its own
keys and JWKS): clean matches, just-in-time users, the account-linking gate, the token endpoint, and a
battery of bad assertions that each get spec/protocol.md's code and change nothing."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest

from app.clock import ManualClock
from app.config import Provider
from app.flows.delegate import registration_id_for
from app.keys import public_jwk
from tests.provider import TestProvider, new_private_key

pytestmark = pytest.mark.anyio

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
URN = "urn:ietf:params:oauth:token-type:id-jag"
ISSUER = "http://127.0.0.1:8000"
ALL_SCOPES = ["notes:read", "notes:write", "notes:delete"]


def trust(provider: TestProvider, **overrides: Any) -> Provider:
    values: dict[str, Any] = {
        "issuer": provider.issuer,
        "client_ids": ["agent-cli"],
        "scopes": ALL_SCOPES,
        "name": "Test Agents",
    }
    values.update(overrides)
    return Provider(**values)


@contextlib.asynccontextmanager
async def attested(
    harness_factory: Any, provider: TestProvider, trusted: dict[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[Any]:
    providers = [trust(provider, **(trusted or {}))]
    # The provider mints with the real clock; ours starts there and only moves when a test says so.
    async with harness_factory(clock=ManualClock(time.time()), providers=providers, **overrides) as h:
        yield h


async def register(h: Any, assertion: str, *, expect: int = 200, **extra: Any) -> dict[str, Any]:
    body = {"type": "identity_assertion", "assertion_type": URN, "assertion": assertion, **extra}
    r = await h.client.post(f"{ISSUER}/agent/identity", json=body)
    assert r.status_code == expect, r.text
    return dict(r.json())


async def exchange(h: Any, assertion: str, *, expect: int = 200) -> dict[str, Any]:
    r = await h.client.post(f"{ISSUER}/oauth2/token", data={"grant_type": JWT_BEARER, "assertion": assertion})
    assert r.status_code == expect, r.text
    return dict(r.json())


async def snapshot(h: Any) -> tuple[int, ...]:
    conn = h.ctx.store.conn
    return tuple(
        conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("users", "delegations", "registrations", "accounts", "events")
    )


async def test_just_in_time_user_then_clean_matches(harness_factory, provider):
    async with attested(harness_factory, provider) as h:
        first = await register(h, provider.mint_id_jag("u-1", aud=ISSUER, email="Ada@Example.com"))
        assert first["type"] == "identity_assertion"
        assert first["id"] == registration_id_for(h.ctx, provider.issuer, "u-1")
        assert first["scopes"] == ALL_SCOPES and first["identity"]["expires_at"].endswith("Z")
        assert set(first) == {"id", "type", "identity", "scopes"}
        token = (await exchange(h, first["identity"]["assertion"]))["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        note = await h.client.post(f"{ISSUER}/api/notes", json={"text": "x" * 5000}, headers=headers)
        assert note.status_code == 201  # a persistent account: the claimed quota applies
        assert (await h.client.delete(f"{ISSUER}/api/notes/{note.json()['id']}", headers=headers)).status_code == 204
        user = await h.ctx.store.find_user_by_email("ada@example.com")  # emails compared lower-cased
        assert user is not None
        # The same subject again, with a fresh ID-JAG: the same registration, same account.
        again = await register(h, provider.mint_id_jag("u-1", aud=ISSUER, email="ada@example.com"))
        assert again["id"] == first["id"]
        claims = jwt.decode(again["identity"]["assertion"], options={"verify_signature": False})
        assert claims["sub"] == user.account_id
        assert await snapshot(h) == (1, 1, 1, 1, 2)  # events: created, credential issued


async def test_an_id_jag_is_also_a_jwt_bearer_grant(harness_factory, provider):
    async with attested(harness_factory, provider) as h:
        direct = await exchange(h, provider.mint_id_jag("u-2", aud=ISSUER, email="bo@example.com", scope="notes:read"))
        assert direct["scope"] == "notes:read" and "refresh_token" not in direct
        claims = jwt.decode(direct["access_token"], options={"verify_signature": False})
        assert claims["client_id"] == registration_id_for(h.ctx, provider.issuer, "u-2")
        r = await h.client.get(f"{ISSUER}/api/notes", headers={"Authorization": f"Bearer {direct['access_token']}"})
        assert r.status_code == 200
        # A bad ID-JAG at the token endpoint is invalid_grant (RFC 6749 §5.2), naming the reason.
        body = await exchange(h, provider.mint_id_jag("u-2", aud=f"{ISSUER}/api", email="bo@example.com"), expect=400)
        assert body["error"] == "invalid_grant" and "invalid_audience" in body["error_description"]


async def test_account_linking_gate_never_links_silently(harness_factory, provider):
    async with attested(harness_factory, provider) as h:
        await register(h, provider.mint_id_jag("u-a", aud=ISSUER, email="cy@example.com"))
        before = await snapshot(h)
        r = await h.client.post(
            f"{ISSUER}/agent/identity",
            json={
                "type": "identity_assertion",
                "assertion_type": URN,
                "assertion": provider.mint_id_jag("u-b", aud=ISSUER, email="CY@example.com"),
            },
        )
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith('AgentAuth error="interaction_required"')
        body = r.json()
        assert body["error"] == "interaction_required" and body["type"] == "identity_assertion"
        assert body["id"] == registration_id_for(h.ctx, provider.issuer, "u-b")
        assert body["claim"]["url"] == f"{ISSUER}/agent/identity/claim"
        assert body["claim"]["token"].startswith("clm_")
        attempt = body["claim"]["attempt"]
        assert attempt["verification_uri"].startswith(f"{ISSUER}/login?return_to=")
        assert "cvt_" in attempt["verification_uri"] and attempt["expires_at"].endswith("Z")
        assert body["scopes"] == {"post_claim": ALL_SCOPES} and "identity" not in body
        assert r.headers["cache-control"] == "no-store"
        pending = await h.ctx.store.get_delegation(provider.issuer, "u-b")
        user = await h.ctx.store.find_user_by_email("cy@example.com")
        assert pending is not None and user is not None
        assert pending.status == "pending" and pending.user_id == user.id
        # Still no credential for u-b: the token endpoint refuses its ID-JAG ...
        assert (await exchange(h, provider.mint_id_jag("u-b", aud=ISSUER, email="cy@example.com"), expect=400))[
            "error"
        ] == "invalid_grant"
        # ... and asking again mints a new claim (a new attempt replaces the old one).
        again = (
            await h.client.post(
                f"{ISSUER}/agent/identity",
                json={
                    "type": "identity_assertion",
                    "assertion_type": URN,
                    "assertion": provider.mint_id_jag("u-b", aud=ISSUER, email="cy@example.com"),
                },
            )
        ).json()
        # The claim token names the (stable) registration; the attempt link is new and the old one is dead.
        assert again["claim"]["token"] == body["claim"]["token"]
        assert again["claim"]["attempt"]["verification_uri"] != attempt["verification_uri"]
        users, delegations, registrations, accounts, _events = await snapshot(h)
        assert (users, delegations, registrations, accounts) == (before[0], before[1] + 1, before[2] + 1, before[3])
        active = await h.ctx.store.get_delegation(provider.issuer, "u-a")
        assert active is not None and active.status == "active"


async def test_bad_assertions_get_their_code_and_change_nothing(harness_factory, provider):
    other = TestProvider().start()  # a provider nobody trusts
    async with attested(harness_factory, provider, trusted={"max_age": 600}) as h:
        await register(h, provider.mint_id_jag("seed", aud=ISSUER, email="seed@example.com"))
        access = (await exchange(h, provider.mint_id_jag("seed", aud=ISSUER, email="seed@example.com")))["access_token"]
        ours = (await register(h, provider.mint_id_jag("seed", aud=ISSUER, email="seed@example.com")))["identity"][
            "assertion"
        ]
        good = {"aud": ISSUER, "email": "x@example.com"}
        claims = provider.id_jag_claims("x", **good)
        now = int(time.time())
        attacker = new_private_key("RS256")
        cases: list[tuple[str, str, int]] = [
            (provider.unsigned(claims), "invalid_signature", 400),
            (provider.unsigned(claims, {"alg": "nOnE"}), "invalid_signature", 400),
            (provider.hs256_with_public_key(claims), "invalid_signature", 400),
            (provider.mint_id_jag("x", **good, kid="no-such-kid"), "invalid_signature", 400),
            (provider.mint_id_jag("x", **good, key=attacker), "invalid_signature", 400),
            (
                provider.mint_id_jag(
                    "x",
                    **good,
                    key=attacker,
                    kid="evil",
                    headers={"jku": "http://127.0.0.1:1/jwks", "x5u": "http://127.0.0.1:1/x5u"},
                ),
                "invalid_signature",
                400,
            ),
            (
                provider.mint_id_jag("x", **good, key=attacker, kid="evil", headers={"jwk": public_jwk(attacker)}),
                "invalid_signature",
                400,
            ),
            (provider.mint_id_jag("x", **good, typ=None), "invalid_request", 400),
            (provider.mint_id_jag("x", **good, typ="JWT"), "invalid_request", 400),
            (provider.mint_id_jag("x", **good, typ="secevent+jwt"), "invalid_request", 400),
            (provider.revocation_set("x", aud=ISSUER), "invalid_request", 400),
            (access, "invalid_request", 400),
            (ours, "invalid_request", 400),
            (provider.mint_id_jag("x", **good, iat=now - 900, exp=now - 300, auth_time=now - 900), "expired", 400),
            (provider.mint_id_jag("x", **good, iat=now + 3600, exp=now + 3900), "invalid_request", 400),
            (provider.mint_id_jag("x", aud=f"{ISSUER}/api", email="x@example.com"), "invalid_audience", 400),
            (
                provider.mint_id_jag("x", aud=[ISSUER, "https://other.example"], email="x@example.com"),
                "invalid_audience",
                400,
            ),
            (other.mint_id_jag("x", **good), "issuer_not_enabled", 400),
            (provider.mint_id_jag("x", **good, issuer="https://spoofed.example"), "issuer_not_enabled", 400),
            (
                provider.mint_id_jag("x", aud=ISSUER, email="x@example.com", email_verified=False),
                "missing_verified_email",
                400,
            ),
            (provider.mint_id_jag("x", aud=ISSUER), "missing_verified_email", 400),
            (provider.mint_id_jag("x", **good, auth_time=now - 3600), "login_required", 401),
            (provider.mint_id_jag("x", **good, drop_claims=("auth_time",)), "login_required", 401),
            (provider.mint_id_jag("x", **good, client_id="unknown-agent"), "invalid_client_id", 400),
            (provider.mint_id_jag("x", **good, drop_claims=("client_id",)), "invalid_client_id", 400),
            (provider.mint_id_jag("x", **good, extra_claims={"cnf": {"jkt": "abc"}}), "invalid_request", 400),
            (provider.mint_id_jag("x", **good, scope="admin:all"), "invalid_scope", 400),
            (provider.oversized(20_000, aud=ISSUER, sub="x", email="x@example.com"), "invalid_request", 400),
            ("not.a.jwt", "invalid_request", 400),
        ]
        before = await snapshot(h)
        for token, code, status in cases:
            body = await register(h, token, expect=status)
            assert body["error"] == code, (code, body)
            assert body["error_description"] and body["hint"]
        assert await snapshot(h) == before
        body = await register(h, provider.mint_id_jag("x", **good), expect=400, assertion_type="urn:other")
        assert body["error"] == "invalid_request"
        # login_required carries max_age in the body and the challenge.
        r = await h.client.post(
            f"{ISSUER}/agent/identity",
            json={
                "type": "identity_assertion",
                "assertion_type": URN,
                "assertion": provider.mint_id_jag("x", **good, auth_time=now - 3600),
            },
        )
        assert r.json()["max_age"] == 600 and 'max_age="600"' in r.headers["www-authenticate"]
        # A forged token never burns the jti it carries: the genuine token with that jti still works.
        forged = provider.mint_id_jag("x", **good, jti="shared-jti", key=attacker)
        assert (await register(h, forged, expect=400))["error"] == "invalid_signature"
        genuine = provider.mint_id_jag("x", **good, jti="shared-jti")
        await register(h, genuine)
        assert (await register(h, genuine, expect=400))["error"] == "replay_detected"
    other.stop()


async def test_client_id_metadata_documents_are_fetched_with_ssrf_guards(harness_factory, provider):
    client_url = provider.serve_json(
        "/clients/agent.json", {"client_id": provider.url("/clients/agent.json"), "client_name": "Agent"}
    )
    # On loopback, a private address: refused unless the operator allows private targets.
    async with attested(harness_factory, provider, trusted={"cimd": True}) as h:
        body = await register(
            h, provider.mint_id_jag("c", aud=ISSUER, email="c@example.com", client_id=client_url), expect=400
        )
        assert body["error"] == "invalid_client_id"
        assert provider.hits("/clients/agent.json") == 0  # refused before any request left
    async with attested(harness_factory, provider, trusted={"cimd": True}, cimd_allow_private=True) as h:
        await register(h, provider.mint_id_jag("c", aud=ISSUER, email="c@example.com", client_id=client_url))
        assert provider.hits("/clients/agent.json") == 1
    # The operator's host policy (cimd_allow_domains / cimd_deny_domains): refused before any request.
    host = urlsplit(client_url).hostname
    for policy in ({"cimd_deny_domains": [host]}, {"cimd_allow_domains": ["clients.example"]}):
        async with attested(harness_factory, provider, trusted={"cimd": True}, cimd_allow_private=True, **policy) as h:
            body = await register(
                h, provider.mint_id_jag("d", aud=ISSUER, email="d@example.com", client_id=client_url), expect=400
            )
            assert body["error"] == "invalid_client_id" and "not one this server accepts" in body["error_description"]
            assert provider.hits("/clients/agent.json") == 1, policy
    async with attested(
        harness_factory, provider, trusted={"cimd": True}, cimd_allow_private=True, cimd_allow_domains=[host]
    ) as h:
        await register(h, provider.mint_id_jag("e", aud=ISSUER, email="e@example.com", client_id=client_url))
        assert provider.hits("/clients/agent.json") == 2


async def test_provider_key_rotation_mid_test(harness_factory, provider):
    async with attested(harness_factory, provider) as h:
        await register(h, provider.mint_id_jag("r", aud=ISSUER, email="r@example.com"))
        fetches = provider.jwks_requests
        provider.rotate_key(keep_old=False)
        # Right after our last fetch, an unknown kid may not make us refetch (rate limit) ...
        body = await register(h, provider.mint_id_jag("r", aud=ISSUER, email="r@example.com"), expect=400)
        assert body["error"] == "invalid_signature" and provider.jwks_requests == fetches
        # ... once the interval has passed, a token under the new kid triggers one refetch and verifies.
        h.clock.advance(h.settings.jwks_refetch_interval_seconds)
        await register(h, provider.mint_id_jag("r", aud=ISSUER, email="r@example.com"))
        assert provider.jwks_requests == fetches + 1
        await register(h, provider.mint_id_jag("r", aud=ISSUER, email="r@example.com"))
        assert provider.jwks_requests == fetches + 1  # cached again


async def test_metadata_advertises_exactly_what_is_enabled(harness_factory, provider):
    async with attested(harness_factory, provider) as h:
        document = (await h.client.get(f"{ISSUER}/.well-known/oauth-authorization-server")).json()
        # ID-JAG draft -04 §7 (revision 2): the grant profile, for clients (MCP) that look for it.
        assert document["authorization_grant_profiles_supported"] == ["urn:ietf:params:oauth:grant-profile:id-jag"]
        meta = document["agent_auth"]
        assert meta["identity_types_supported"] == ["anonymous", "service_auth", "identity_assertion"]
        assert meta["identity_assertion"]["assertion_types_supported"] == [URN]
        # The trust list (workos/auth.md#24): issuer and display name, nothing else.
        [trusted] = meta["identity_assertion"]["issuers_supported"]
        assert trusted == {"issuer": provider.issuer, "name": h.settings.providers[0].display_name}
        assert meta["claim"]["methods"] == ["service_auth", "identity_assertion"]
        assert meta["claim"]["max_live_attempts"] == 3
        assert meta["events_endpoint"] == f"{ISSUER}/agent/events"
        assert len(meta["events_supported"]) == 2
    async with harness_factory(anonymous_enabled=False) as h:
        meta = (await h.client.get(f"{ISSUER}/.well-known/oauth-authorization-server")).json()["agent_auth"]
        assert meta["identity_types_supported"] == ["service_auth"]  # dev mode: the dev sign-in claims
        assert "identity_assertion" not in meta and "events_endpoint" not in meta
        assert meta["claim"]["methods"] == ["service_auth"]
        no_profiles = (await h.client.get(f"{ISSUER}/.well-known/oauth-authorization-server")).json()
        assert "authorization_grant_profiles_supported" not in no_profiles
        body = (
            await h.client.post(
                f"{ISSUER}/agent/identity",
                json={"type": "identity_assertion", "assertion_type": URN, "assertion": "a.b.c"},
            )
        ).json()
        assert body["error"] == "invalid_request" and "unsupported registration type" in body["error_description"]


async def test_auth_md_documents_the_provider_path_with_real_shapes(harness_factory, provider):
    from tests.test_auth_md import named_examples, shape

    async with attested(harness_factory, provider) as h:
        markdown = (await h.client.get(f"{ISSUER}/auth.md")).text
        examples = named_examples(markdown)
        assert provider.issuer in markdown and f"{ISSUER}/agent/events" in markdown
        real = await register(h, provider.mint_id_jag("d-1", aud=ISSUER, email="d@example.com"))
        assert shape(examples["identity-registration"]) == shape(real)
        gate = await register(h, provider.mint_id_jag("d-2", aud=ISSUER, email="d@example.com"), expect=401)
        assert shape(examples["interaction-required"]) == shape(gate)
        meta = (await h.client.get(f"{ISSUER}/.well-known/oauth-authorization-server")).json()
        assert shape(examples["authorization-server-metadata"]) == shape(meta)


async def test_a_stale_or_missing_auth_time_is_refused_by_default(harness_factory, provider):
    """Revision 2: without a provider max_age, an ID-JAG login older than idjag_max_age_seconds (3600)
    or without auth_time is login_required with max_age, at registration and at the token endpoint."""
    async with attested(harness_factory, provider) as h:
        now = int(time.time())
        good = {"aud": ISSUER, "email": "x@example.com"}
        before = await snapshot(h)
        for token in (
            provider.mint_id_jag("x", **good, auth_time=now - 10 * 86_400),
            provider.mint_id_jag("x", **good, auth_time=now - 3601),
            provider.mint_id_jag("x", **good, drop_claims=("auth_time",)),
        ):
            r = await h.client.post(
                f"{ISSUER}/agent/identity",
                json={"type": "identity_assertion", "assertion_type": URN, "assertion": token},
            )
            assert r.status_code == 401 and r.json()["error"] == "login_required", r.text
            assert r.json()["max_age"] == 3600 and 'max_age="3600"' in r.headers["www-authenticate"]
        assert await snapshot(h) == before
        assert (await register(h, provider.mint_id_jag("x", **good, auth_time=now - 3000)))["type"] == (
            "identity_assertion"
        )
    async with attested(harness_factory, provider, trusted={"max_age": 30 * 86_400}) as h:
        body = await register(h, provider.mint_id_jag("y", aud=ISSUER, email="y@example.com", auth_time=now - 86_400))
        assert body["type"] == "identity_assertion"  # the provider's own max_age overrides the default


async def test_the_token_endpoint_names_an_untrusted_issuer(harness_factory, provider):
    """Revision 2: an ID-JAG whose issuer is not on the trust list is issuer_not_enabled at the token
    endpoint too; every other ID-JAG failure there stays RFC 7523's invalid_grant, naming its code."""
    other = TestProvider().start()
    async with attested(harness_factory, provider) as h:
        good = {"aud": ISSUER, "email": "t@example.com"}
        assert (await exchange(h, other.mint_id_jag("t", **good), expect=400))["error"] == "issuer_not_enabled"
        stale = await exchange(h, provider.mint_id_jag("t", **good, drop_claims=("auth_time",)), expect=400)
        assert stale["error"] == "invalid_grant" and stale["error_description"].startswith("login_required:")
        assert "access_token" in await exchange(h, provider.mint_id_jag("t", **good))


async def test_an_authenticated_client_may_present_only_an_id_jag_issued_to_it(harness_factory, provider):
    """MCP's Enterprise-Managed Authorization: a confidential client exchanges an ID-JAG its user's
    IdP issued to it. The ID-JAG's client_id must be exactly the authenticated client; an agent's
    identity assertion is never a client's to present."""
    import base64

    from app.config import OAuthClient, Secret
    from app.keys import hash_secret

    secret = "enterprise-client-secret-0000000"
    client = OAuthClient(
        client_id="ent-client",
        client_name="Enterprise Client",
        redirect_uris=["https://ent.example/cb"],
        token_endpoint_auth_method="client_secret_basic",
        client_secret=Secret(hash_secret(secret)),
    )
    trusted = {"client_ids": ["agent-cli", "ent-client"]}
    async with attested(harness_factory, provider, trusted=trusted, clients=[client]) as h:

        async def as_client(assertion: str, password: str = secret) -> Any:
            basic = base64.b64encode(f"ent-client:{password}".encode()).decode()
            return await h.client.post(
                f"{ISSUER}/oauth2/token",
                data={"grant_type": JWT_BEARER, "assertion": assertion},
                headers={"Authorization": f"Basic {basic}"},
            )

        own = provider.mint_id_jag("u-e", aud=ISSUER, email="en@example.com", client_id="ent-client")
        ok = await as_client(own)
        assert ok.status_code == 200, ok.text
        assert jwt.decode(ok.json()["access_token"], options={"verify_signature": False})["scope"]
        others = provider.mint_id_jag("u-f", aud=ISSUER, email="fo@example.com", client_id="agent-cli")
        r = await as_client(others)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
        assert "another client" in r.json()["error_description"]
        wrong = await as_client(
            provider.mint_id_jag("u-e", aud=ISSUER, email="en@example.com", client_id="ent-client"), "nope"
        )
        assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
        # An agent's own identity assertion, presented by the client: refused.
        agent = await register(h, provider.mint_id_jag("u-g", aud=ISSUER, email="ag@example.com"))
        r = await as_client(agent["identity"]["assertion"])
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
        # Without client credentials the same agent assertion works as ever.
        assert (await exchange(h, agent["identity"]["assertion"]))["token_type"] == "Bearer"
