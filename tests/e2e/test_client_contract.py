"""Replays what the official client (`@workos/auth.md-client`) does for the anonymous flow, and only that
(spec/protocol.md § "What the official client needs"; the (n) below number its items): given an issuer URL
it appends the well-known suffix, reads four metadata members, registers with exactly
{"type":"anonymous"}, reads the nested answer, exchanges the assertion with the jwt-bearer form grant
and calls the API with the access token.

The server runs with its defaults (proof of work `adaptive`): the official client knows no proof of
work, so this proves it works unchanged out of the box.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.e2e.conftest import StartServer

pytestmark = pytest.mark.e2e

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
# What the client's fetch() sends: JSON.stringify(...) and URLSearchParams bodies.
JSON_HEADERS = {"Content-Type": "application/json"}
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}


def utc_time(value: Any) -> datetime:
    """A timestamp JavaScript's Date reads as UTC: RFC 3339 ending in `Z`."""
    assert isinstance(value, str) and RFC3339_Z.match(value), value
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None and parsed.utcoffset() == UTC.utcoffset(parsed)
    return parsed


def json_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The client reads `error` and `message` or `error_description` from a JSON error body (revision 2:
    both, the same text)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    assert isinstance(body["error_description"], str) and body["error_description"], body
    assert body["message"] == body["error_description"], body
    return body


@pytest.mark.parametrize("issuer_path", ["", "/tenant"], ids=["origin-issuer", "path-issuer"])
def test_official_client_anonymous_flow(start_server: StartServer, http: httpx.Client, issuer_path: str) -> None:
    env = {"AUTHMD_ISSUER": "{origin}" + issuer_path} if issuer_path else {}
    server = start_server(env)  # default proof-of-work policy: adaptive
    issuer = server.issuer
    assert issuer == server.origin + issuer_path

    # (1) Discovery: string append of the well-known suffix to the issuer it was given.
    r = http.get(issuer + "/.well-known/oauth-authorization-server")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    meta = r.json()
    token_endpoint = meta["token_endpoint"]
    identity_endpoint = meta["agent_auth"]["identity_endpoint"]
    claim_endpoint = meta["agent_auth"]["claim_endpoint"]
    identity_types = meta["agent_auth"]["identity_types_supported"]
    assert isinstance(token_endpoint, str) and token_endpoint.startswith(issuer + "/")
    assert isinstance(identity_endpoint, str) and identity_endpoint.startswith(issuer + "/")
    assert isinstance(claim_endpoint, str) and claim_endpoint.startswith(issuer + "/")
    assert isinstance(identity_types, list) and "anonymous" in identity_types
    # Not read by the client; checked so the test cannot silently run under another policy.
    assert meta["agent_auth"]["proof_of_work"]["mode"] == "adaptive"
    assert meta["issuer"] == issuer
    if issuer_path:
        # RFC 8414 §3.1 path-inserted form serves the same document.
        inserted = http.get(server.origin + "/.well-known/oauth-authorization-server" + issuer_path)
        assert inserted.status_code == 200, inserted.text
        assert inserted.json() == meta

    # (2) Registration: exactly {"type":"anonymous"}.
    r = http.post(identity_endpoint, content=b'{"type":"anonymous"}', headers=JSON_HEADERS)
    assert r.status_code == 200, r.text
    reg = r.json()
    reg_id = reg["id"]
    assertion = reg["identity"]["assertion"]
    identity_expires = utc_time(reg["identity"]["expires_at"])
    claim_token = reg["claim"]["token"]
    claim_url = reg["claim"]["url"]
    claim_expires = utc_time(reg["claim"]["expires_at"])
    assert isinstance(reg_id, str) and reg_id
    assert isinstance(assertion, str) and assertion.count(".") == 2
    assert isinstance(claim_token, str) and claim_token
    assert claim_url == claim_endpoint
    now = datetime.now(UTC)
    assert identity_expires > now
    assert claim_expires > now

    # (6) Token exchange: the form grant; `expires_in` must be a JSON number.
    form = urlencode({"grant_type": JWT_BEARER, "assertion": assertion})
    r = http.post(token_endpoint, content=form.encode(), headers=FORM_HEADERS)
    assert r.status_code == 200, r.text
    tok = r.json()
    access_token = tok["access_token"]
    expires_in = tok["expires_in"]
    assert isinstance(access_token, str) and access_token
    assert type(expires_in) in (int, float), f"expires_in is {type(expires_in).__name__}, not a number"
    assert expires_in > 0

    # The API, with the access token as a bearer token (authmd_fetch).
    api = issuer + "/api/notes"
    r = http.post(api, json={"text": "from the official client"}, headers={"Authorization": f"Bearer {access_token}"})
    assert r.status_code == 201, r.text
    r = http.get(api, headers={"Authorization": f"Bearer {access_token}"})
    assert r.status_code == 200, r.text
    assert [n["text"] for n in r.json()["notes"]] == ["from the official client"]

    # (7) Errors are JSON with `error` and `error_description`.
    garbage = urlencode({"grant_type": JWT_BEARER, "assertion": "not-a-jwt"})
    json_error(http.post(token_endpoint, content=garbage.encode(), headers=FORM_HEADERS), 400, "invalid_grant")
    json_error(http.get(api, headers={"Authorization": "Bearer not-a-token"}), 401, "invalid_token")
    json_error(
        http.post(identity_endpoint, content=b'{"type":"nonsense"}', headers=JSON_HEADERS), 400, "invalid_request"
    )


@pytest.mark.anyio
@pytest.mark.parametrize("issuer_path", ["", "/tenant"], ids=["origin-issuer", "path-issuer"])
async def test_official_client_claim_flows(start_server: StartServer, issuer_path: str) -> None:
    """Items (2)-(5) for the claim: `service_auth` registration, the claim attempt, completion with the
    code the page revealed, and refresh, in exactly the client's request shapes. A dev-mode server:
    the human signs in with the development form (the real OpenID provider is in test_human_claim)."""
    from tests.helpers import DevHuman

    env = {"AUTHMD_ISSUER": "{origin}" + issuer_path} if issuer_path else {}
    server = start_server(env)
    issuer = server.issuer
    async with httpx.AsyncClient(timeout=10.0) as http:
        meta = (await http.get(issuer + "/.well-known/oauth-authorization-server")).json()
        identity_endpoint = meta["agent_auth"]["identity_endpoint"]
        claim_endpoint = meta["agent_auth"]["claim_endpoint"]
        # (1) service_auth must be listed, or the client silently registers anonymously.
        assert "service_auth" in meta["agent_auth"]["identity_types_supported"]
        human = DevHuman(http, issuer)

        # (2) {"type":"service_auth","login_hint"}: the nested claim block with its attempt, no identity.
        body = b'{"type":"service_auth","login_hint":"ada@example.com"}'
        r = await http.post(identity_endpoint, content=body, headers=JSON_HEADERS)
        assert r.status_code == 200, r.text
        reg = r.json()
        assert "identity" not in reg and reg["claim"]["url"] == claim_endpoint
        utc_time(reg["claim"]["expires_at"])
        utc_time(reg["claim"]["attempt"]["expires_at"])
        # (4) non-2xx while unconfirmed, as JSON with `error` and `error_description`.
        complete = {"claim_token": reg["claim"]["token"], "user_code": "000000"}
        r = await http.post(claim_endpoint + "/complete", json=complete)
        json_error(r, 409, "claim_not_confirmed")
        # (5) The page reveals the code.
        page = await human.open_link(reg["claim"]["attempt"]["verification_uri"], "ada@example.com")
        code = (await human.authorize(page)).code
        r = await http.post(claim_endpoint + "/complete", json={**complete, "user_code": code})
        assert r.status_code == 200, r.text
        done = r.json()
        assert done["id"] == reg["id"] and isinstance(done["identity"]["assertion"], str)
        utc_time(done["identity"]["expires_at"])
        utc_time(done["identity"]["refresh_token"]["expires_at"])

        # (2) + (3): an anonymous registration claimed through {"type":"service_auth","claim_token","login_hint"}.
        anon = (await http.post(identity_endpoint, content=b'{"type":"anonymous"}', headers=JSON_HEADERS)).json()
        start = {"type": "service_auth", "claim_token": anon["claim"]["token"], "login_hint": "bob@example.com"}
        r = await http.post(anon["claim"]["url"], json=start)
        assert r.status_code == 200, r.text
        attempt = r.json()["attempt"]
        assert attempt["verification_uri"].startswith(issuer + "/") and utc_time(attempt["expires_at"])
        page = await human.open_link(attempt["verification_uri"], "bob@example.com")
        assert page.title == "Wrong account"  # still signed in as ada: the hint binds the attempt
        switched = await human.post("/logout", {"csrf": page.csrf, "return_to": "/claim"})
        page = await human.post(
            "/login/dev", {"csrf": switched.csrf, "email": "bob@example.com", "return_to": "/claim"}
        )
        code = (await human.authorize(page)).code
        r = await http.post(
            claim_endpoint + "/complete", json={"claim_token": anon["claim"]["token"], "user_code": code}
        )
        assert r.status_code == 200, r.text

        # (2) {"type":"refresh","refresh_token"}: the presented token is spent.
        refresh = {"type": "refresh", "refresh_token": done["identity"]["refresh_token"]["value"]}
        r = await http.post(identity_endpoint, json=refresh)
        assert r.status_code == 200 and r.json()["identity"]["refresh_token"]["value"], r.text


@pytest.mark.anyio
async def test_revision_2_shapes(start_server: StartServer, tmp_path: Any) -> None:
    """Revision 2 as an agent of the wider world meets it: the renamed and new codes with `message`,
    `retry_after`, several live attempts and the cap, the grouped code, the `login_hint` alias, deny
    versus revoke, a `resource` below the protected resource, and the metadata members for ID-JAGs."""
    from tests.helpers import DevHuman

    config = tmp_path / "authmd.toml"
    config.write_text(
        '[[providers]]\nissuer = "http://127.0.0.1:9/agents"\nname = "Example Agents"\n'
        'client_ids = ["agent-1"]\nscopes = ["notes:read"]\n'
    )
    env = {"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off", "AUTHMD_REGISTER_LIMIT_PER_SOURCE": "8"}
    server = start_server(env)
    issuer = server.issuer
    async with httpx.AsyncClient(timeout=10.0) as http:
        meta = (await http.get(issuer + "/.well-known/oauth-authorization-server")).json()
        assert meta["authorization_grant_profiles_supported"] == ["urn:ietf:params:oauth:grant-profile:id-jag"]
        assert meta["agent_auth"]["identity_assertion"]["issuers_supported"] == [
            {"issuer": "http://127.0.0.1:9/agents", "name": "Example Agents"}
        ]
        identity_endpoint = meta["agent_auth"]["identity_endpoint"]
        claim_endpoint = meta["agent_auth"]["claim_endpoint"]
        human = DevHuman(http, issuer)

        async def register() -> dict[str, Any]:
            r = await http.post(identity_endpoint, content=b'{"type":"anonymous"}', headers=JSON_HEADERS)
            assert r.status_code == 200, r.text
            return dict(r.json())

        # Several live attempts, the flat dialect's alias, and the cap.
        reg = await register()
        token = reg["claim"]["token"]
        links = []
        for kind in ("service_auth", "login_hint", "service_auth"):
            r = await http.post(
                claim_endpoint, json={"type": kind, "claim_token": token, "login_hint": "ada@example.com"}
            )
            assert r.status_code == 200, r.text
            links.append(r.json()["attempt"]["verification_uri"])
        r = await http.post(
            claim_endpoint, json={"type": "service_auth", "claim_token": token, "login_hint": "ada@example.com"}
        )
        body = json_error(r, 429, "too_many_attempts")
        assert int(r.headers["retry-after"]) == body["retry_after"] > 0
        # The code as the page groups it ("123 456") completes the claim, through the first link.
        page = await human.open_link(links[0], "ada@example.com")
        shown = await human.authorize(page)
        grouped = re.search(r'class="code"[^>]*>(\d{3} \d{3})<', shown.text)
        assert grouped, shown.text
        r = await http.post(claim_endpoint + "/complete", json={"claim_token": token, "user_code": grouped.group(1)})
        assert r.status_code == 200 and r.json()["status"] == "claimed", r.text
        json_error(
            await http.post(claim_endpoint, json={"type": "service_auth", "claim_token": token}), 409, "already_claimed"
        )

        # Deny versus revoke.
        denied = await register()
        r = await http.post(claim_endpoint, json={"type": "service_auth", "claim_token": denied["claim"]["token"]})
        page = await human.open_link(r.json()["attempt"]["verification_uri"], "ada@example.com")
        assert (await human.deny(page)).title == "Access revoked"
        complete = {"claim_token": denied["claim"]["token"], "user_code": "000000"}
        json_error(await http.post(claim_endpoint + "/complete", json=complete), 403, "claim_denied")
        start = {"type": "service_auth", "claim_token": denied["claim"]["token"]}
        json_error(await http.post(claim_endpoint, json=start), 410, "claim_revoked")
        status = await http.post(claim_endpoint + "/status", json={"claim_token": denied["claim"]["token"]})
        assert status.json()["status"] == "denied"

        # `resource` = the API URL the agent was given: below the protected resource; aud is the resource.
        fresh = await register()
        form = urlencode(
            {"grant_type": JWT_BEARER, "assertion": fresh["identity"]["assertion"], "resource": issuer + "/api/notes"}
        )
        r = await http.post(meta["token_endpoint"], content=form.encode(), headers=FORM_HEADERS)
        assert r.status_code == 200, r.text
        import jwt

        assert jwt.decode(r.json()["access_token"], options={"verify_signature": False})["aud"] == issuer + "/api"

        # An untrusted ID-JAG issuer, and the renamed 429 with a numeric retry_after.
        assertion = (
            "eyJhbGciOiJSUzI1NiIsInR5cCI6Im9hdXRoLWlkLWphZytqd3QifQ.eyJpc3MiOiJodHRwczovL2V2aWwuZXhhbXBsZSJ9.c2ln"
        )
        r = await http.post(
            identity_endpoint,
            json={
                "type": "identity_assertion",
                "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
                "assertion": assertion,
            },
        )
        json_error(r, 400, "issuer_not_enabled")
        while (
            r := await http.post(identity_endpoint, content=b'{"type":"anonymous"}', headers=JSON_HEADERS)
        ).status_code == 200:
            pass
        body = json_error(r, 429, "rate_limit_exceeded")
        assert isinstance(body["retry_after"], int) and body["retry_after"] == int(r.headers["retry-after"]) > 0


def test_a_claim_method_turned_off_is_auth_method_disabled(start_server: StartServer, http: httpx.Client) -> None:
    """Revision 2 against the real server: the operator removed service_auth from claim_methods."""
    server = start_server({"AUTHMD_POW_MODE": "off", "AUTHMD_CLAIM_METHODS": "identity_assertion"})
    meta = http.get(server.issuer + "/.well-known/oauth-authorization-server").json()["agent_auth"]
    assert "service_auth" not in meta["identity_types_supported"] and meta["claim"]["methods"] == []
    reg = http.post(meta["identity_endpoint"], content=b'{"type":"anonymous"}', headers=JSON_HEADERS).json()
    start = {"type": "service_auth", "claim_token": reg["claim"]["token"], "login_hint": "ada@example.com"}
    json_error(http.post(meta["claim_endpoint"], json=start), 403, "auth_method_disabled")
    body = b'{"type":"service_auth","login_hint":"ada@example.com"}'
    json_error(
        http.post(meta["identity_endpoint"], content=body, headers=JSON_HEADERS),
        400,
        "service_auth_registration_disabled",
    )
