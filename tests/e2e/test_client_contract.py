"""Replays what the official client (`@workos/auth.md-client`) does for the anonymous flow, and only that
(PROTOCOL.md § "What the official client needs"; the (n) below number its items): given an issuer URL
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


def json_error(response: httpx.Response, status: int, code: str) -> None:
    """The client reads `error` and `message` or `error_description` from a JSON error body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["error_description"], str) and body["error_description"], body


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
