"""The MCP SDK client parts (tests/mcp_sdk_clients.py): the skip-or-fail rule for Node, the pinned SDK
version, the Python client's loopback redirect listener and its record of the wire. The clients themselves
run in tests/e2e/test_mcp_clients.py."""

from __future__ import annotations

import json
import sys

import httpx
import httpx2
import pytest

from tests import mcp_sdk_clients
from tests.mcp_sdk_clients import CLIENTS_DIR, INSTALL_HINT, SDK, Exchanges, LoopbackCallback, require_sdk_client

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("env", [{}, {"CI": "false"}, {"CI": ""}])
def test_a_missing_node_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.setattr(mcp_sdk_clients, "NODE", None)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_sdk_client(env=env)
    assert str(skipped.value) == f"node not found; install it with: {INSTALL_HINT}"


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_a_missing_node_fails_in_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setattr(mcp_sdk_clients, "NODE", "/nonexistent/node")
    with pytest.raises(pytest.fail.Exception, match=r"^node not found; install it with: apt-get install"):
        require_sdk_client(env={"CI": ci})


def test_npm_is_needed_only_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcp_sdk_clients, "NODE", sys.executable)  # any executable: node itself is not the point
    monkeypatch.setattr(mcp_sdk_clients, "NPM", None)
    monkeypatch.setattr(mcp_sdk_clients, "sdk_installed", lambda: True)
    require_sdk_client(env={"CI": "true"})
    monkeypatch.setattr(mcp_sdk_clients, "sdk_installed", lambda: False)
    with pytest.raises(pytest.fail.Exception, match=r"^npm not found; install it with: apt-get install"):
        require_sdk_client(env={"CI": "true"})


def test_the_sdk_is_pinned_to_one_version_in_package_json_and_the_lock() -> None:
    version = mcp_sdk_clients.pinned_sdk_version()
    assert version == "1.32.2"  # exact: no range
    lock = json.loads((CLIENTS_DIR / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"][SDK] == version
    assert lock["packages"][f"node_modules/{SDK}"]["version"] == version


async def test_the_loopback_callback_hands_over_each_redirect() -> None:
    async with LoopbackCallback() as callback, httpx.AsyncClient(timeout=5.0) as http:
        assert callback.redirect_uri == f"http://127.0.0.1:{callback.port}/callback"
        r = await http.get(callback.redirect_uri, params={"code": "c1", "state": "s", "iss": "http://x"})
        assert r.status_code == 200 and "Authorization received" in r.text
        assert await callback.next(timeout=5) == {"code": "c1", "state": "s", "iss": "http://x"}
        assert (await http.get(f"http://127.0.0.1:{callback.port}/favicon.ico")).status_code == 404
        await http.get(callback.redirect_uri, params={"error": "access_denied", "state": "t"})
        assert await callback.next(timeout=5) == {"error": "access_denied", "state": "t"}


async def test_the_record_of_the_wire_tells_mcp_token_and_registration_requests_apart() -> None:
    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/register":
            return httpx2.Response(201, json={"client_id": "dcr_1", "token_endpoint_auth_method": "none"})
        if request.url.path == "/token":
            return httpx2.Response(400, json={"error": "invalid_grant"})
        return httpx2.Response(403, headers={"www-authenticate": 'Bearer error="insufficient_scope", scope="s"'})

    exchanges = Exchanges()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer), event_hooks={"response": [exchanges]}) as c:
        await c.post("http://as.test/register", json={"client_name": "n", "redirect_uris": ["http://127.0.0.1/cb"]})
        await c.post("http://as.test/token", data={"grant_type": "refresh_token", "refresh_token": "r"})
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "add_note", "arguments": {}}}
        await c.post("http://rs.test/mcp", json=call)
    registration, token, mcp = exchanges.seen
    assert registration.sent == {"client_name": "n", "redirect_uris": ["http://127.0.0.1/cb"]}
    assert registration.body == {"client_id": "dcr_1", "token_endpoint_auth_method": "none"}
    assert (registration.rpc, registration.grant_type, registration.status) == (None, None, 201)
    assert (token.grant_type, token.status, token.body, token.sent) == (
        "refresh_token",
        400,
        {"error": "invalid_grant"},
        None,
    )
    assert (mcp.rpc, mcp.sent, mcp.field("scope")) == ("tools/call:add_note", None, "s")
    assert exchanges.grants(0) == [("refresh_token", 400)] and exchanges.calls(0, "tools/call:add_note") == [mcp]
