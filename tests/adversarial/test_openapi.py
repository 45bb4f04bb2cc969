"""The published OpenAPI document (issue 10): valid OpenAPI 3.1, the API and only the API, the right
request schemas; and every answer of a real journey — including the success shapes a fuzzer cannot
reach (a claim completed by a human, a refresh) — conforms to it, on both stores."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import jwt
import pytest
import schemathesis
from litestar import get
from litestar.testing import TestClient

from app.asgi import create_app
from app.errors import STATUS
from app.keys import hash_secret
from app.routes.guard import requires
from app.tokens import admin_key_hash, new_admin_key
from tests.adversarial.test_malformed_input import no_unhandled_errors
from tests.conftest import make_settings
from tests.e2e.common import JWT_BEARER, bearer
from tests.e2e.conftest import ServerProcess, StartServer
from tests.helpers import Page

pytestmark = pytest.mark.e2e

DOCUMENT = "/schema/openapi.json"
CLIENT = ("gateway", "gateway-secret")
NO_CONFIG = schemathesis.Config.from_dict({})  # never a schemathesis.toml from the working directory


def load(http: httpx.Client, server: ServerProcess, base: str = "") -> tuple[dict[str, Any], Any]:
    r = http.get(f"{server.origin}{base}{DOCUMENT}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.oai.openapi+json"
    doc: dict[str, Any] = r.json()
    return doc, schemathesis.openapi.from_dict(doc, config=NO_CONFIG)


def test_the_document_is_valid_openapi_3_1_and_describes_the_api(start_server: StartServer, http: httpx.Client) -> None:
    server = start_server({"AUTHMD_ISSUER": "{origin}/tenant"})
    doc, schema = load(http, server, "/tenant")
    schema.validate()  # against the OpenAPI 3.1 meta-schema schemathesis ships; raises if invalid
    assert doc["openapi"].startswith("3.1") and doc["servers"] == [{"url": server.origin}]
    paths = doc["paths"]
    assert "/tenant/agent/identity" in paths and "/.well-known/oauth-authorization-server/tenant" in paths
    assert not [p for p in paths if re.match(r"/tenant/(login|oidc|logout|claim$|claim/(confirm|deny)|account)", p)]
    assert not [p for p in paths if p.startswith("/tenant/schema")]

    bodies = {
        (path.removeprefix("/tenant"), method): next(iter(op["requestBody"]["content"]))
        for path, item in paths.items()
        for method, op in item.items()
        if "requestBody" in op
    }
    form, json_ = "application/x-www-form-urlencoded", "application/json"
    assert bodies == {
        ("/agent/identity", "post"): json_,
        ("/agent/identity/claim", "post"): json_,
        ("/agent/identity/claim/complete", "post"): json_,
        ("/agent/identity/claim/status", "post"): json_,
        ("/api/notes", "post"): json_,
        ("/oauth2/token", "post"): form,
        ("/oauth2/register", "post"): json_,
        ("/oauth2/revoke", "post"): form,
        ("/oauth2/introspect", "post"): form,
        ("/agent/events", "post"): "application/secevent+jwt",
        ("/admin/v1/credentials/validate", "post"): json_,
        ("/admin/v1/claim-attempts/lookup", "post"): json_,
        ("/admin/v1/claim-attempts/confirm", "post"): json_,
        ("/admin/v1/claim-attempts/deny", "post"): json_,
    }
    registration = paths["/tenant/agent/identity"]["post"]["requestBody"]["content"][json_]["schema"]
    assert registration["discriminator"]["propertyName"] == "type"
    assert set(registration["discriminator"]["mapping"]) == {
        "anonymous",
        "identity_assertion",
        "service_auth",
        "refresh",
    }

    components = doc["components"]["schemas"]
    # Request bodies ignore unknown fields (spec/protocol.md): no schema may forbid them.
    assert not [name for name, s in components.items() if s.get("additionalProperties") is False]
    for name, s in components.items():
        if (status := re.fullmatch(r"Error(\d{3})", name)) is not None:
            assert s["properties"]["error"]["enum"] == sorted(c for c, v in STATUS.items() if v == int(status[1]))
    # A refused proof of work carries the challenge endpoint's own shape.
    assert components["Error400"]["properties"]["challenge"] == {"$ref": "#/components/schemas/Challenge"}
    assert "challenge" not in components["Error400"]["required"] and "Challenge" in components
    assert paths["/tenant/api/notes"]["get"]["security"] == [{"bearer": []}]
    # The bare ASGI routes (app/routes/http.py asgi_route) are found among the app's routes and named
    # as Litestar names a handler.
    ids = {(path, method): op.get("operationId") for path, item in paths.items() for method, op in item.items()}
    assert ids[("/tenant/agent/identity", "post")] == "register_identity"
    assert ids[("/tenant/oauth2/token", "post")] == "token"
    assert (ids[("/tenant/api/notes", "get")], ids[("/tenant/api/notes", "post")]) == ("list_notes", "create_note")
    admin = [op for path, item in paths.items() if path.startswith("/tenant/admin/v1/") for op in item.values()]
    assert len(admin) == 14 and all(op["security"] == [{"admin": []}] for op in admin)
    assert doc["components"]["securitySchemes"]["admin"]["scheme"] == "bearer"
    no_unhandled_errors(server)


def test_an_operators_own_route_is_described_as_litestar_generates_it(tmp_path: Path) -> None:
    @get("/reports", guards=[requires("notes:read")], sync_to_thread=False)
    def reports() -> dict[str, int]:
        return {"count": 0}

    settings = make_settings(tmp_path)
    with TestClient(create_app(settings, route_handlers=[reports], background=False)) as client:
        r = client.get(DOCUMENT)
    assert r.status_code == 200, r.text
    ok = r.json()["paths"]["/reports"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["type"] == "object"


def _attempt_token(claim: dict[str, Any]) -> dict[str, str]:
    """The claim attempt token inside a claim block's verification_uri."""
    link = unquote(unquote(claim["attempt"]["verification_uri"]))
    found = re.search(r"claim_attempt_token=(cvt_[^&]+)", link)
    assert found is not None, link
    return {"claim_attempt_token": found[1]}


class Checked:
    """Sends a request and checks the answer against the document: a documented status, and a body
    (and headers) that match what the document says for it."""

    def __init__(self, http: httpx.Client, server: ServerProcess, doc: dict[str, Any], schema: Any) -> None:
        self.http, self.server, self.doc, self.schema = http, server, doc, schema
        self.seen: set[tuple[str, str, int]] = set()

    def __call__(self, method: str, path: str, template: str | None = None, **kwargs: Any) -> httpx.Response:
        r = self.http.request(method, f"{self.server.issuer}{path}", **kwargs)
        template = template or path
        documented = self.doc["paths"][template][method.lower()]["responses"]
        assert str(r.status_code) in documented, (method, path, r.status_code, r.text)
        self.schema[template][method].validate_response(r)  # raises with every violation it finds
        self.seen.add((method, template, r.status_code))
        return r


def _mcp_client_journey(call: Any, browser: httpx.Client, server: ServerProcess) -> str:
    """Register, send the human through consent (dev sign-in), redeem, refresh; the grant's id."""
    redirect = "http://127.0.0.1:5173/callback"
    metadata = {
        "client_name": "Journey",
        "redirect_uris": [redirect],
        "grant_types": ["authorization_code", "refresh_token"],
    }
    client = call("POST", "/oauth2/register", json=metadata).json()
    call("POST", "/oauth2/register", json={"redirect_uris": []})  # 400 invalid_redirect_uri
    verifier = "v" * 43
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": redirect,
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    page = Page(browser.get(f"{server.issuer}/oauth2/authorize", params=query, follow_redirects=True))
    if page.title == "Development sign-in":
        fields = {**page.form("/login/dev"), "email": "ada@example.com"}
        page = Page(browser.post(f"{server.issuer}/login/dev", data=fields, follow_redirects=True))
    answer = browser.post(
        f"{server.issuer}/oauth2/consent", data={**page.form("/oauth2/consent"), "decision": "approve"}
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith(redirect), answer.text
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    redeem = {**form, "redirect_uri": redirect, "client_id": client["client_id"]}
    tokens = call("POST", "/oauth2/token", data=redeem)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens.json()["refresh_token"]}
    refreshed = call("POST", "/oauth2/token", data={**refresh, "client_id": client["client_id"]})
    call("POST", "/oauth2/token", data=redeem)  # 400: the code again (which revokes the grant)
    claims = jwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})
    return str(claims["reg"])


def test_every_answer_of_a_real_journey_conforms(
    start_server: StartServer, store_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "authmd.toml"
    admin_key, reader_key = new_admin_key(), new_admin_key()
    config.write_text(
        f'[[introspection_clients]]\nclient_id = "{CLIENT[0]}"\nclient_secret = "{hash_secret(CLIENT[1])}"\n'
        f'[[admin_keys]]\nname = "ops"\nkey_hash = "{admin_key_hash(admin_key)}"\n'
        'scopes = ["admin:read", "admin:write"]\n'
        f'[[admin_keys]]\nname = "ro"\nkey_hash = "{admin_key_hash(reader_key)}"\nscopes = ["admin:read"]\n'
    )
    env = {"AUTHMD_DCR_ENABLED": "true"}
    server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off", **store_env, **env})
    with httpx.Client(timeout=10.0) as http, httpx.Client(timeout=10.0) as browser:
        doc, schema = load(http, server)
        call = Checked(http, server, doc, schema)
        for path in ("/.well-known/oauth-authorization-server", "/.well-known/jwks.json", "/auth.md", "/healthz"):
            call("GET", path)
        call("GET", "/readyz")
        call("POST", "/agent/identity/challenge")

        reg = call("POST", "/agent/identity", json={"type": "anonymous", "agent": {"name": "journey"}}).json()
        form = {"grant_type": JWT_BEARER, "assertion": reg["identity"]["assertion"]}
        token = call("POST", "/oauth2/token", data=form).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        note = call("POST", "/api/notes", json={"text": "hello"}, headers=auth).json()
        call("GET", "/api/notes", headers=auth)
        call("GET", f"/api/notes/{note['id']}", "/api/notes/{note_id}", headers=auth)
        call("DELETE", f"/api/notes/{note['id']}", "/api/notes/{note_id}", headers=auth)  # 403: not yet claimed
        call("GET", "/api/notes")  # 401 with a Bearer challenge
        basic = httpx.BasicAuth(*CLIENT)
        assert call("POST", "/oauth2/introspect", data={"token": token}, auth=basic).json()["active"] is True

        # The claim: an attempt, the human signs in (dev form) and authorizes, the agent completes.
        claim_token = reg["claim"]["token"]
        attempt = call("POST", "/agent/identity/claim", json={"type": "service_auth", "claim_token": claim_token})
        status = {"claim_token": claim_token}
        assert call("POST", "/agent/identity/claim/status", json=status).json()["status"] == "pending"
        complete = {"claim_token": claim_token, "user_code": "000000"}
        call("POST", "/agent/identity/claim/complete", json=complete)  # 409: the human has not authorized
        page = Page(browser.get(attempt.json()["attempt"]["verification_uri"], follow_redirects=True))
        fields = {"csrf": page.csrf, "email": "ada@example.com", "return_to": "/claim"}
        page = Page(browser.post(f"{server.issuer}/login/dev", data=fields, follow_redirects=True))
        code = Page(browser.post(f"{server.issuer}/claim/confirm", data=page.form("/claim/confirm"))).code
        assert call("POST", "/agent/identity/claim/status", json=status).json()["status"] == "confirmed"
        done = call("POST", "/agent/identity/claim/complete", json={**complete, "user_code": code}).json()
        refresh = {"type": "refresh", "refresh_token": done["identity"]["refresh_token"]["value"]}
        assert call("POST", "/agent/identity", json=refresh).json()["type"] == "refresh"
        call("POST", "/agent/identity/claim", json={"type": "service_auth", "claim_token": claim_token})  # 409

        service = {"type": "service_auth", "login_hint": "grace@example.com"}
        graces = call("POST", "/agent/identity", json=service).json()["claim"]
        attempt_token = _attempt_token(graces)
        call("POST", "/oauth2/revoke", data={"token": token})
        assert call("POST", "/oauth2/introspect", data={"token": token}, auth=basic).json() == {"active": False}
        call("POST", "/agent/events", content=b"not-a-set", headers={"Content-Type": "application/secevent+jwt"})

        # An MCP client: dynamic registration, the human's consent, the code and refresh grants.
        mcp = _mcp_client_journey(call, browser, server)
        one = "/admin/v1/registrations/{registration_id}"
        grant = call("GET", f"/admin/v1/registrations/{mcp}", one, headers=bearer(reader_key)).json()
        assert grant["type"] == "mcp" and grant["client_id"].startswith("dcr_")

        # The admin API: the success shapes (a live credential, a claimed account, a revocation) and its refusals.
        ops, ro = bearer(admin_key), bearer(reader_key)
        account_id, reg_id = reg["account"]["id"], reg["id"]
        validate = "/admin/v1/credentials/validate"
        assertion = done["identity"]["assertion"]
        assert call("POST", validate, json={"token": assertion}, headers=ro).json()["active"] is True
        assert call("POST", validate, json={"token": token}, headers=ro).json() == {"active": False}
        call("GET", "/admin/v1/registrations?limit=1", "/admin/v1/registrations", headers=ro)
        one = "/admin/v1/registrations/{registration_id}"
        call("GET", f"/admin/v1/registrations/{reg_id}", one, headers=ro)
        assert (
            call("GET", f"/admin/v1/accounts/{account_id}", "/admin/v1/accounts/{account_id}", headers=ro).json()[
                "owner_email"
            ]
            == "ada@example.com"
        )
        revoke = "/admin/v1/registrations/{registration_id}/revoke"
        call("POST", f"/admin/v1/registrations/{reg_id}/revoke", revoke, headers=ro)  # 403
        call("POST", f"/admin/v1/registrations/{reg_id}/revoke", revoke, headers=ops)
        call("POST", f"/admin/v1/registrations/{reg_id}/revoke", revoke, headers=ops)  # 409
        call("POST", f"/admin/v1/accounts/{account_id}/revoke", "/admin/v1/accounts/{account_id}/revoke", headers=ops)
        call("GET", "/admin/v1/events?type=operator.*", "/admin/v1/events", headers=ro)
        call("GET", "/admin/v1/events", headers=bearer(token))  # 401: an agent's token is not an admin key
        call("GET", "/admin/v1/accounts/acct_none", "/admin/v1/accounts/{account_id}", headers=ro)  # 404
        claims = "/admin/v1/claim-attempts"
        # Humans confirm on authmd's own page here: the operator's login cannot (400).
        assert call("POST", f"{claims}/lookup", json=attempt_token, headers=ops).json()["error"] == "invalid_request"

    seen = call.seen
    # The operator's login confirms claims on a service with claim_page_url.
    config.write_text(
        config.read_text().replace(
            "[[introspection_clients]]", 'claim_page_url = "http://127.0.0.1:9/claim"\n[[introspection_clients]]', 1
        )
    )
    server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off", **store_env})
    with httpx.Client(timeout=10.0) as http:
        call = Checked(http, server, *load(http, server))
        service = {"type": "service_auth", "login_hint": "grace@example.com"}
        attempt_token = _attempt_token(call("POST", "/agent/identity", json=service).json()["claim"])
        ops = bearer(admin_key)
        assert (
            call("POST", f"{claims}/lookup", json=attempt_token, headers=ops).json()["login_hint"]
            == "grace@example.com"
        )
        grace = {**attempt_token, "user": {"email": "grace@example.com", "external_id": "g-1"}}
        assert call("POST", f"{claims}/confirm", json=grace, headers=ops).json()["status"] == "confirmed"
        call("POST", f"{claims}/confirm", json={**grace, "user": {"email": "eve@example.com"}}, headers=ops)  # 400
        assert call("POST", f"{claims}/deny", json=attempt_token, headers=ops).json()["status"] == "denied"
        call("POST", f"{claims}/lookup", json=attempt_token, headers=ops)  # the claim was denied

    statuses = {status for _, _, status in seen | call.seen}
    assert {200, 201, 400, 401, 403, 404, 409} <= statuses, call.seen
    no_unhandled_errors(server)
