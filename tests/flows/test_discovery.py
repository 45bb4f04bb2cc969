"""Discovery documents: RFC 8414 and RFC 9728 fields, JWKS, caching headers, issuer with a path."""

from __future__ import annotations

import pytest

from app.keys import rotate, thumbprint

pytestmark = pytest.mark.anyio


async def test_authorization_server_metadata(harness):
    iss = harness.settings.issuer
    r = await harness.client.get(f"{iss}/.well-known/oauth-authorization-server")
    meta = r.json()
    assert r.headers["content-type"].startswith("application/json")
    assert meta["issuer"] == iss  # RFC 8414 §3.3: identical to the issuer the client used
    for field, path in [
        ("jwks_uri", "/.well-known/jwks.json"),
        ("token_endpoint", "/oauth2/token"),
        ("revocation_endpoint", "/oauth2/revoke"),
        ("introspection_endpoint", "/oauth2/introspect"),
    ]:
        assert meta[field] == iss + path
    # The authorization endpoint (MCP clients): dev mode's sign-in stands in for a provider.
    assert meta["authorization_endpoint"] == iss + "/oauth2/authorize"
    assert meta["response_types_supported"] == ["code"]
    assert meta["response_modes_supported"] == ["query"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["client_id_metadata_document_supported"] is True
    assert meta["token_endpoint_auth_methods_supported"] == ["none"]
    assert meta["grant_types_supported"] == [
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ]
    assert meta["scopes_supported"] == ["notes:read", "notes:write", "notes:delete", "offline_access"]
    aa = meta["agent_auth"]
    assert aa["identity_endpoint"] == iss + "/agent/identity"
    assert aa["claim_endpoint"] == iss + "/agent/identity/claim"
    assert aa["challenge_endpoint"] == iss + "/agent/identity/challenge"
    assert aa["skill"] == iss + "/auth.md"
    assert aa["anonymous"]["lifetime_seconds"] == 3600
    assert aa["scopes"]["post_claim"] == meta["scopes_supported"][:-1]


async def test_without_a_sign_in_for_people_there_is_no_authorization_endpoint(harness_factory):
    """The operator's own login (claim_page_url) gives OAuth clients no consent page yet: the metadata
    lists only what agents use, as before."""
    async with harness_factory(claim_page_url="https://app.example.com/claim") as h:
        iss = h.settings.issuer
        meta = (await h.client.get(f"{iss}/.well-known/oauth-authorization-server")).json()
        for member in (
            "authorization_endpoint",
            "code_challenge_methods_supported",
            "response_modes_supported",
            "authorization_response_iss_parameter_supported",
            "client_id_metadata_document_supported",
        ):
            assert member not in meta
        assert meta["response_types_supported"] == []
        assert meta["grant_types_supported"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        assert meta["scopes_supported"] == ["notes:read", "notes:write", "notes:delete"]
        r = await h.client.get(f"{iss}/oauth2/authorize", params={"client_id": "x", "response_type": "code"})
        assert r.status_code == 404


async def test_protected_resource_metadata_documents(harness):
    iss = harness.settings.issuer
    api = (await harness.client.get(f"{iss}/.well-known/oauth-protected-resource/api")).json()
    root = (await harness.client.get(f"{iss}/.well-known/oauth-protected-resource")).json()
    # RFC 9728 §3.3: `resource` equals the identifier the URL was derived from.
    assert api["resource"] == f"{iss}/api" and root["resource"] == iss
    for doc in (api, root):
        assert doc["authorization_servers"] == [iss]
        assert doc["bearer_methods_supported"] == ["header"]
        assert doc["jwks_uri"] == f"{iss}/.well-known/jwks.json"


async def test_caching_headers_and_conditional_requests(harness):
    iss = harness.settings.issuer
    for path in (
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource/api",
        "/.well-known/jwks.json",
        "/auth.md",
    ):
        r = await harness.client.get(iss + path)
        assert r.status_code == 200
        etag = r.headers["etag"]
        assert etag.startswith('"') and "max-age" in r.headers["cache-control"]
        r2 = await harness.client.get(iss + path, headers={"If-None-Match": etag})
        assert r2.status_code == 304 and r2.content == b"" and r2.headers["etag"] == etag
        r3 = await harness.client.get(iss + path, headers={"If-None-Match": '"other"'})
        assert r3.status_code == 200


async def test_jwks_follows_rotation(harness):
    iss = harness.settings.issuer
    agent = harness.agent()
    _, old_token = await agent.start()
    jwks = (await harness.client.get(f"{iss}/.well-known/jwks.json")).json()
    assert len(jwks["keys"]) == 1
    key = jwks["keys"][0]
    assert key["kid"] == thumbprint(key) and key["alg"] == "ES256" and key["use"] == "sig" and "d" not in key
    new_kid = rotate(harness.settings.data_dir, "ES256", now=harness.clock.now())
    assert harness.ctx.reload_keys_if_changed(force=True)
    jwks = (await harness.client.get(f"{iss}/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {key["kid"], new_kid}
    # Tokens signed by the retired key keep working; new ones carry the new kid.
    assert (await agent.api("GET", "/notes", old_token)).status_code == 200
    _, new_token = await agent.start()
    import jwt

    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    # Once every token the old key could have signed is dead, it leaves the JWKS.
    harness.clock.advance(harness.ctx.max_token_lifetime + 1)
    harness.ctx.reload_keys_if_changed(force=True)
    jwks = (await harness.client.get(f"{iss}/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]] == [new_kid]


async def test_rs256_is_selectable(harness_factory):
    async with harness_factory(signing_alg="RS256") as h:
        agent = h.agent()
        _, token = await agent.start()
        import jwt

        assert jwt.get_unverified_header(token)["alg"] == "RS256"
        assert (await agent.api("GET", "/notes", token)).status_code == 200
        jwks = (await h.client.get(f"{h.settings.issuer}/.well-known/jwks.json")).json()
        assert jwks["keys"][0]["kty"] == "RSA"


async def test_issuer_with_a_path(harness_factory):
    iss = "http://127.0.0.1:8000/tenant"
    async with harness_factory(issuer=iss) as h:
        appended = await h.client.get(f"{iss}/.well-known/oauth-authorization-server")
        inserted = await h.client.get("http://127.0.0.1:8000/.well-known/oauth-authorization-server/tenant")
        assert appended.status_code == inserted.status_code == 200
        assert appended.json() == inserted.json()
        assert appended.json()["issuer"] == iss
        assert appended.json()["token_endpoint"] == f"{iss}/oauth2/token"
        prm = await h.client.get("http://127.0.0.1:8000/.well-known/oauth-protected-resource/tenant/api")
        assert prm.json()["resource"] == f"{iss}/api"
        agent = h.agent()
        _, token = await agent.start()
        r = await h.client.get(f"{iss}/api/notes", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        r = await h.client.get(f"{iss}/api/notes")
        assert (
            'resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/tenant/api"'
            in (r.headers["www-authenticate"])
        )


async def test_unknown_paths_and_methods_get_our_error_shape(harness):
    iss = harness.settings.issuer
    r = await harness.client.get(f"{iss}/nope")
    assert (r.status_code, r.json()["error"]) == (404, "not_found") and r.json()["hint"]
    r = await harness.client.put(f"{iss}/oauth2/token")
    assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")
    assert "POST" in r.headers.get("allow", "")


async def test_the_bare_asgi_routes_answer_methods_and_bodies_as_the_others(harness):
    """/agent/identity, /oauth2/token and /api/notes are bare ASGI routes (app/routes/http.py asgi_route):
    OPTIONS lists their methods, any other method is our 405 with Allow, a body past the limit is our
    413, and the API authenticates before it reads a body."""
    iss, client = harness.settings.issuer, harness.client
    for path, methods in (("/agent/identity", {"POST"}), ("/oauth2/token", {"POST"}), ("/api/notes", {"GET", "POST"})):
        r = await client.options(iss + path)
        assert r.status_code == 204 and set(r.headers["allow"].split(", ")) == {*methods, "OPTIONS"}
        for method in ("PUT", "DELETE", "PATCH", "HEAD", *({"GET"} - methods)):
            r = await client.request(method, iss + path)
            assert r.status_code == 405, (method, path)
            assert set(r.headers["allow"].split(", ")) == {*methods, "OPTIONS"}
            if method != "HEAD":
                assert r.json()["error"] == "method_not_allowed"
    big = b"grant_type=" + b"x" * (harness.settings.max_body_bytes + 1)
    r = await client.post(
        iss + "/oauth2/token", content=big, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert (r.status_code, r.json()["error"]) == (413, "request_too_large")
    r = await client.post(iss + "/api/notes", content=big, headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["error"]) == (401, "invalid_token")  # the token first, the body after


async def test_health(harness):
    assert (await harness.client.get(f"{harness.settings.issuer}/healthz")).json() == {"status": "ok"}
    assert (await harness.client.get(f"{harness.settings.issuer}/readyz")).json() == {"status": "ready"}


async def test_documents_answer_head_and_refuse_other_methods(harness):
    url = f"{harness.settings.issuer}/.well-known/oauth-authorization-server"
    get = await harness.client.get(url)
    head = await harness.client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert int(head.headers["content-length"]) == len(get.content)
    for method in ("POST", "PUT", "DELETE"):
        r = await harness.client.request(method, url)
        assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")
        assert r.headers["allow"] == "GET, HEAD"
