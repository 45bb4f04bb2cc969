"""Claims confirmed by the operator's own login (README § Claims on the operator's own login): with
``claim_page_url`` set, the agent's link opens a small "product" (a real HTTP server here, with its own
cookie login) which drives the admin API: lookup, confirm (the human's code) or deny. The agent
completes with the official client, unchanged. Failure paths: a bad token, a mismatched login_hint, a
read-only key, confirm twice (by the same person: a new code; by another: refused), deny then complete,
confirm after the claim landed, on SQLite and Redis; and an expired attempt (in process, moving the
clock)."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.agent.client import Client, ServiceError
from app.clock import ManualClock
from app.config import AdminKey
from app.tokens import admin_key_hash, new_admin_key
from tests.conftest import HarnessFactory
from tests.e2e.common import assert_error, bearer
from tests.e2e.conftest import HOST, ServerProcess, StartServer
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.e2e

WRITER, READER = new_admin_key(), new_admin_key()
CLAIM = "/admin/v1/claim-attempts"


class Product:
    """The operator's product: its own login (an email in a cookie session, no OpenID Connect), and a
    claim page that keeps the attempt token server-side and asks authmd through the admin API."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, str]] = {}
        self.authmd = ""  # set once the authmd server is up
        product = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _session(self) -> dict[str, str] | None:
                cookie = SimpleCookie(self.headers.get("cookie", ""))
                return product.sessions.get(cookie["sid"].value) if "sid" in cookie else None

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                for k, v in {"content-type": "application/json", **(headers or {})}.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _admin(self, action: str, body: dict[str, Any]) -> None:
                with httpx.Client(timeout=10.0) as http:
                    r = http.post(f"{product.authmd}{CLAIM}/{action}", json=body, headers=bearer(WRITER))
                self._send(r.status_code, r.json())

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if self.path == "/login":
                    sid = secrets.token_urlsafe(16)
                    product.sessions[sid] = {"email": form["email"], "user_id": f"user-{form['email']}"}
                    return self._send(200, {"signed_in": form["email"]}, {"set-cookie": f"sid={sid}; HttpOnly"})
                session = self._session()
                if session is None or "token" not in session:
                    return self._send(401, {"error": "sign in and open the agent's link first"})
                if self.path == "/claim/confirm":
                    user = {"email": session["email"], "external_id": session["user_id"]}
                    return self._admin("confirm", {"claim_attempt_token": session["token"], "user": user})
                if self.path == "/claim/deny":
                    return self._admin("deny", {"claim_attempt_token": session["token"]})
                return self._send(404, {"error": "no such page"})

            def do_GET(self) -> None:
                session = self._session()
                parts = urlsplit(self.path)
                if parts.path != "/claim" or session is None:
                    return self._send(401, {"error": "sign in first"})
                token = parse_qs(parts.query).get("claim_attempt_token", [None])[0]
                if token is not None:  # the secret leaves the URL: into the session, then a clean page
                    session["token"] = token
                    self.send_response(303)
                    self.send_header("location", "/claim")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return None
                return self._admin("lookup", {"claim_attempt_token": session["token"]})

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @contextlib.contextmanager
    def human(self, email: str) -> Iterator[httpx.Client]:
        """A browser signed in to the product as ``email``."""
        with httpx.Client(timeout=10.0, follow_redirects=True) as browser:
            r = browser.post(f"{self.url}/login", data={"email": email})
            assert r.status_code == 200, r.text
            yield browser


@pytest.fixture
def product() -> Iterator[Product]:
    p = Product()
    p.thread.start()
    yield p
    p.server.shutdown()
    p.server.server_close()
    p.thread.join()


@pytest.fixture(params=["sqlite", "redis"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    redis: RedisServer = request.getfixturevalue("shared_redis")
    return {"AUTHMD_STORE_URL": f"{redis.url}?prefix=opl{secrets.token_hex(4)}:"}


def serve(start_server: StartServer, tmp_path: Path, product: Product, store_env: dict[str, str]) -> ServerProcess:
    config = tmp_path / "authmd.toml"
    config.write_text(
        f'[[admin_keys]]\nname = "product"\nkey_hash = "{admin_key_hash(WRITER)}"\n'
        'scopes = ["admin:read", "admin:write"]\n'
        f'[[admin_keys]]\nname = "viewer"\nkey_hash = "{admin_key_hash(READER)}"\nscopes = ["admin:read"]\n'
    )
    server = start_server(
        {
            "AUTHMD_CONFIG": str(config),
            "AUTHMD_POW_MODE": "off",
            "AUTHMD_CLAIM_PAGE_URL": f"{product.url}/claim",
            **store_env,
        }
    )
    product.authmd = server.issuer
    return server


class AgentSide:
    """The agent, with the official client exactly as it is."""

    def __init__(self, server: ServerProcess) -> None:
        self.client = Client()
        self.service = self.client.discover(f"{server.issuer}/api/notes")
        self.claim_url = self.service.endpoint("claim_endpoint")

    def register(self) -> dict[str, Any]:
        return self.client.register(self.service, {"type": "anonymous", "agent": {"name": "helper", "platform": "ci"}})

    def start(self, reg: dict[str, Any], email: str | None = None) -> str:
        started = self.client.start_claim(self.claim_url, reg["claim"]["token"], email)
        uri: str = started["attempt"]["verification_uri"]
        return uri

    def complete(self, reg: dict[str, Any], code: str) -> dict[str, Any]:
        return self.client.complete_claim(self.claim_url, reg["claim"]["token"], code)


@pytest.fixture
def agent_for() -> Iterator[Callable[[ServerProcess], AgentSide]]:
    made: list[AgentSide] = []

    def make(server: ServerProcess) -> AgentSide:
        made.append(AgentSide(server))
        return made[-1]

    yield make
    for agent in made:
        agent.client.close()


def test_the_product_signs_the_human_in_and_the_agent_completes_unchanged(
    start_server: StartServer,
    tmp_path: Path,
    product: Product,
    agent_for: Callable[[ServerProcess], AgentSide],
    store_env: dict[str, str],
) -> None:
    server = serve(start_server, tmp_path, product, store_env)
    agent = agent_for(server)
    reg = agent.register()
    link = agent.start(reg, "ada@example.com")
    assert link.startswith(f"{product.url}/claim?claim_attempt_token=cvt_")
    token = parse_qs(urlsplit(link).query)["claim_attempt_token"][0]

    with product.human("ada@example.com") as browser:
        facts = browser.get(link)  # the product keeps the token, redirects to a clean page, asks authmd
        assert facts.status_code == 200, facts.text
        assert str(facts.url) == f"{product.url}/claim"
        shown = facts.json()
        assert shown["registration_id"] == reg["id"] and shown["type"] == "anonymous"
        assert (shown["agent_name"], shown["agent_platform"], shown["login_hint"]) == (
            "helper",
            "ci",
            "ada@example.com",
        )
        assert shown["scopes_now"] == ["notes:read", "notes:write"]
        assert shown["scopes_after"] == ["notes:read", "notes:write", "notes:delete"]
        assert (shown["quota_now"], shown["quota_after"]) == (25, 10_000) and shown["account_expires_at"]
        assert agent.client.claim_status(agent.claim_url, reg["claim"]["token"]) == "pending"
        decided = browser.post(f"{product.url}/claim/confirm")
        assert decided.status_code == 200, decided.text
        body = decided.json()
        assert (body["id"], body["status"]) == (reg["id"], "confirmed") and len(body["user_code"]) == 6

    assert agent.client.claim_status(agent.claim_url, reg["claim"]["token"]) == "confirmed"
    done = agent.complete(reg, body["user_code"])
    assert done["status"] == "claimed" and done["identity"]["refresh_token"]["value"].startswith("art_")
    with httpx.Client(timeout=10.0) as http:
        account = http.get(f"{server.issuer}/admin/v1/accounts/{reg['account']['id']}", headers=bearer(READER)).json()
        assert (account["kind"], account["owner_email"]) == ("persistent", "ada@example.com")
        # After the claim landed, the attempt is spent: nothing more to confirm.
        again = http.post(
            f"{server.issuer}{CLAIM}/confirm",
            json={"claim_attempt_token": token, "user": {"email": "ada@example.com"}},
            headers=bearer(WRITER),
        )
        assert again.status_code in (400, 409), again.text
        events = http.get(
            f"{server.issuer}/admin/v1/events", params={"type": "agent_registration.claim.*"}, headers=bearer(READER)
        )
        kinds = [e["type"] for e in events.json()["data"] if e["registration_id"] == reg["id"]]
        assert kinds == ["agent_registration.claim.confirmed", "agent_registration.claim.completed"]
    # The token travelled only in bodies: authmd never logged it.
    assert token not in server.read_log()


def test_failure_paths_of_the_operators_claim_page(
    start_server: StartServer,
    tmp_path: Path,
    product: Product,
    agent_for: Callable[[ServerProcess], AgentSide],
    store_env: dict[str, str],
) -> None:
    server = serve(start_server, tmp_path, product, store_env)
    agent = agent_for(server)
    with httpx.Client(timeout=10.0) as http:

        def admin(action: str, body: dict[str, Any], key: str = WRITER) -> httpx.Response:
            return http.post(f"{server.issuer}{CLAIM}/{action}", json=body, headers=bearer(key))

        # A bad token, a missing field, a read-only key.
        for bad in ("nope", "cvt_acct_x.reg_y.zzzzzzzzzzzzzzzzzzzz", ""):
            assert_error(admin("lookup", {"claim_attempt_token": bad}), 400, "invalid_claim")
        assert_error(admin("confirm", {"claim_attempt_token": "nope"}), 400, "invalid_request")
        reg = agent.register()
        link = agent.start(reg, "ada@example.com")
        token = parse_qs(urlsplit(link).query)["claim_attempt_token"][0]
        assert_error(admin("lookup", {"claim_attempt_token": token}, READER), 403, "insufficient_scope")
        assert_error(
            admin("confirm", {"claim_attempt_token": token, "user": {"email": "not an email"}}), 400, "invalid_request"
        )

        # The agent named ada: bob, signed in to the product, is refused.
        with product.human("bob@example.com") as bob:
            assert bob.get(link).status_code == 200
            assert_error(bob.post(f"{product.url}/claim/confirm"), 400, "invalid_login_hint")
        assert agent.client.claim_status(agent.claim_url, reg["claim"]["token"]) == "pending"

        # Confirm twice by the same person: a new code, and only it completes; another person is refused.
        first = admin("confirm", {"claim_attempt_token": token, "user": {"email": "ada@example.com"}}).json()
        second = admin("confirm", {"claim_attempt_token": token, "user": {"email": "ada@example.com"}}).json()
        assert first["status"] == second["status"] == "confirmed" and first["user_code"] != second["user_code"]
        unhinted = agent.register()
        unhinted_token = parse_qs(urlsplit(agent.start(unhinted)).query)["claim_attempt_token"][0]
        admin("confirm", {"claim_attempt_token": unhinted_token, "user": {"email": "carol@example.com"}})
        taken = admin("confirm", {"claim_attempt_token": unhinted_token, "user": {"email": "dave@example.com"}})
        assert_error(taken, 400, "invalid_claim")
        with pytest.raises(ServiceError) as wrong:
            agent.complete(reg, first["user_code"])
        assert wrong.value.status == 401
        assert agent.complete(reg, second["user_code"])["status"] == "claimed"

        # Deny, then the agent's completion is refused and its registration is revoked.
        denied = agent.register()
        denied_link = agent.start(denied)
        with product.human("erin@example.com") as erin:
            assert erin.get(denied_link).status_code == 200
            r = erin.post(f"{product.url}/claim/deny")
            assert r.status_code == 200 and r.json() == {"id": denied["id"], "status": "denied"}
        assert agent.client.claim_status(agent.claim_url, denied["claim"]["token"]) == "denied"
        with pytest.raises(ServiceError) as refused:
            agent.complete(denied, "123456")
        assert refused.value.status in (403, 410)
        shown = http.get(f"{server.issuer}/admin/v1/registrations/{denied['id']}", headers=bearer(READER)).json()
        assert shown["status"] == "revoked"
        acted = http.get(f"{server.issuer}/admin/v1/events", params={"type": "operator.action"}, headers=bearer(READER))
        assert [(e["registration_id"], e["data"]["operator"]) for e in acted.json()["data"]] == [
            (denied["id"], "admin-key:product")
        ]
        denied_token = parse_qs(urlsplit(denied_link).query)["claim_attempt_token"][0]
        assert admin("lookup", {"claim_attempt_token": denied_token}).status_code in (400, 403, 410)


@pytest.mark.anyio
async def test_an_expired_attempt_is_refused(harness_factory: HarnessFactory) -> None:
    clock = ManualClock()
    key = AdminKey(name="product", key_hash=admin_key_hash(WRITER), scopes=["admin:write"])
    async with harness_factory(clock, admin_keys=[key], claim_page_url="http://127.0.0.1:9/claim") as h:
        reg = await h.agent().register()
        started = await h.client.post(
            "/agent/identity/claim", json={"type": "service_auth", "claim_token": reg["claim"]["token"]}
        )
        link = started.json()["attempt"]["verification_uri"]
        assert link.startswith("http://127.0.0.1:9/claim?claim_attempt_token=cvt_")
        body = {"claim_attempt_token": parse_qs(urlsplit(link).query)["claim_attempt_token"][0]}
        assert (await h.client.post(f"{CLAIM}/lookup", json=body, headers=bearer(WRITER))).status_code == 200
        clock.advance(11 * 60)  # attempts live 10 minutes
        for action, extra in (("lookup", {}), ("confirm", {"user": {"email": "ada@example.com"}}), ("deny", {})):
            r = await h.client.post(f"{CLAIM}/{action}", json={**body, **extra}, headers=bearer(WRITER))
            assert r.status_code in (400, 410), r.text
            assert r.json()["error"] in ("claim_expired", "invalid_claim")


@pytest.mark.anyio
async def test_the_link_keeps_the_pages_own_query_and_auth_md_says_where_humans_sign_in(
    harness_factory: HarnessFactory,
) -> None:
    async with harness_factory(claim_page_url="https://app.example.com/agents/claim?from=agent") as h:
        reg = await h.agent().register()
        started = await h.client.post(
            "/agent/identity/claim", json={"type": "service_auth", "claim_token": reg["claim"]["token"]}
        )
        link = started.json()["attempt"]["verification_uri"]
        assert link.startswith("https://app.example.com/agents/claim?from=agent&claim_attempt_token=cvt_")
        contract = (await h.client.get("/auth.md")).text
        assert "They sign in\n   on this service's own site" in contract
