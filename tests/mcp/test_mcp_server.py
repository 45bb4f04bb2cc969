"""The MCP server at /api/mcp (issue 17), black-box: the real server as a subprocess, an agent registered
the auth.md way (anonymous registration, then the jwt-bearer exchange), and the official Python `mcp`
client (`streamable_http_client` + `ClientSession`) carrying the access token as a bearer header.

What the MCP authorization spec (2026-07-28) asks of a protected server, each seen on the wire as the SDK's
own HTTP client saw it: 401 with `resource_metadata` and `scope` without a (good) token, a metadata
document the SDK accepts for the server's URL that names the authorization server, and 403
`insufficient_scope` with `scope` when a tool needs more than the token holds, so a client can step up.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.auth.utils import extract_field_from_www_auth
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url
from mcp.shared.exceptions import MCPError

from tests.e2e.conftest import ServerProcess, StartServer, wait_until
from tests.helpers import Agent, DevHuman, claimed

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ENV = {"AUTHMD_POW_MODE": "off"}
TOOLS = {"list_notes", "add_note", "delete_note"}
ACCEPT = {"Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}


def mcp_url(server: ServerProcess) -> str:
    return f"{server.issuer}/api/mcp"


def metadata_url(server: ServerProcess) -> str:
    return f"{server.origin}/.well-known/oauth-protected-resource/api/mcp"


def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


def field(response: Any, name: str) -> str | None:
    """A parameter of the response's WWW-Authenticate, read by the function the SDK's OAuth client uses."""
    return extract_field_from_www_auth(response, name)


class Exchanges:
    """Every HTTP response the MCP client got, as the SDK's own httpx2 client saw it (an event hook)."""

    def __init__(self) -> None:
        self.responses: list[httpx2.Response] = []

    async def __call__(self, response: httpx2.Response) -> None:
        self.responses.append(response)

    @property
    def last(self) -> httpx2.Response:
        return self.responses[-1]


@contextlib.asynccontextmanager
async def connect(
    server: ServerProcess, token: str | None, exchanges: Exchanges | None = None, *, fresh_connections: bool = False
) -> AsyncIterator[ClientSession]:
    """The official client on the server's /api/mcp, the token in every request's Authorization header."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx2.Limits(max_keepalive_connections=0) if fresh_connections else httpx2.Limits()
    hooks: dict[str, list[Any]] = {"response": [exchanges]} if exchanges else {}
    async with (
        httpx2.AsyncClient(headers=headers, limits=limits, event_hooks=hooks, timeout=30.0) as http,
        streamable_http_client(mcp_url(server), http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        yield session


def assert_scope_challenge(response: Any, server: ServerProcess, scope: str) -> None:
    """RFC 6750 §3.1 and the MCP spec's runtime insufficient-scope error, as both SDKs' clients read it."""
    assert response.status_code == 403, response.text
    assert response.headers["www-authenticate"].startswith("Bearer "), response.headers
    assert field(response, "error") == "insufficient_scope"
    assert field(response, "scope") == scope
    assert field(response, "resource_metadata") == metadata_url(server)
    assert json.loads(response.read())["error"] == "insufficient_scope"


async def test_an_agent_keeps_notes_through_the_official_mcp_client(start_server: StartServer) -> None:
    server = start_server(ENV)
    async with httpx.AsyncClient(timeout=10.0) as http:
        agent = Agent(http, server.issuer)
        _, token = await agent.start()
        async with connect(server, token) as session:
            init = await session.initialize()
            assert init.server_info.name == "authmd"
            assert init.capabilities.tools is not None
            assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS

            added = await session.call_tool("add_note", {"text": "from an MCP client"})
            assert not added.is_error, added
            note = added.structured_content
            assert note["text"] == "from an MCP client" and note["id"].startswith("note_"), note
            assert json.loads(added.content[0].text) == note  # type: ignore[union-attr]

            # The same notes through the REST API, both ways.
            r = await agent.api("GET", "/notes", token)
            assert [n["id"] for n in r.json()["notes"]] == [note["id"]], r.text
            r = await agent.api("POST", "/notes", token, json={"text": "from the REST API"})
            assert r.status_code == 201, r.text
            listed = await session.call_tool("list_notes", {})
            assert not listed.is_error, listed
            assert {n["text"] for n in listed.structured_content["notes"]} == {
                "from an MCP client",
                "from the REST API",
            }
            assert listed.structured_content["count"] == 2

            # What the notes flow refuses is a tool error the model reads, not an HTTP error.
            big = await session.call_tool("add_note", {"text": "x" * 5000})
            assert big.is_error and "quota_exceeded" in big.content[0].text, big  # type: ignore[union-attr]
            wrong = await session.call_tool("add_note", {"txt": "typo"})
            assert wrong.is_error and "invalid arguments" in wrong.content[0].text, wrong  # type: ignore[union-attr]
            with pytest.raises(MCPError):
                await session.call_tool("no_such_tool", {})


async def test_a_tool_the_token_lacks_the_scope_for_is_a_403_to_step_up_on(start_server: StartServer) -> None:
    server = start_server(ENV)
    async with httpx.AsyncClient(timeout=10.0) as http:
        agent = Agent(http, server.issuer)
        human = DevHuman(http, server.issuer)
        reg = await agent.register()
        assert reg["scopes"]["pre_claim"] == ["notes:read", "notes:write"]  # a temporary account: no notes:delete
        assertion = reg["identity"]["assertion"]

        # A token narrowed to notes:read: initialize and tools/list need only a valid token.
        read_only = (await agent.token(assertion, scope="notes:read"))["access_token"]
        exchanges = Exchanges()
        async with connect(server, read_only, exchanges) as session:
            await session.initialize()
            assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
            with pytest.raises(MCPError):
                await session.call_tool("add_note", {"text": "not yet"})
            assert_scope_challenge(exchanges.last, server, "notes:write")

        # Stepped up to what the challenge named (the registration's scopes), the call goes through; the
        # temporary account still cannot delete.
        token = (await agent.token(assertion))["access_token"]
        exchanges = Exchanges()
        async with connect(server, token, exchanges) as session:
            await session.initialize()
            note_id = (await session.call_tool("add_note", {"text": "keep me"})).structured_content["id"]
            with pytest.raises(MCPError):
                await session.call_tool("delete_note", {"note_id": note_id})
            assert_scope_challenge(exchanges.last, server, "notes:delete")
        r = await agent.api("GET", f"/notes/{note_id}", token)
        assert r.status_code == 200, r.text  # nothing was deleted

        # A human claims a new agent's account: its post-claim token deletes through MCP.
        reg, completed = await claimed(agent, human)
        owner = (await agent.token(completed["identity"]["assertion"]))["access_token"]
        async with connect(server, owner) as session:
            await session.initialize()
            note_id = (await session.call_tool("add_note", {"text": "delete me"})).structured_content["id"]
            deleted = await session.call_tool("delete_note", {"note_id": note_id})
            assert not deleted.is_error and deleted.structured_content == {"deleted": note_id}, deleted
            assert (await session.call_tool("list_notes", {})).structured_content["count"] == 0
            gone = await session.call_tool("delete_note", {"note_id": note_id})
            assert gone.is_error and "not_found" in gone.content[0].text, gone  # type: ignore[union-attr]


async def test_without_a_token_the_challenge_leads_to_the_authorization_server(start_server: StartServer) -> None:
    server = start_server(ENV)
    url = mcp_url(server)
    async with httpx.AsyncClient(timeout=10.0) as http:
        r = await http.post(url, json=INITIALIZE, headers=ACCEPT)
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "invalid_token"
        assert r.headers["www-authenticate"].startswith("Bearer ")
        assert field(r, "error") is None  # RFC 6750 §3.1: no token, no error code
        assert field(r, "resource_metadata") == metadata_url(server)
        assert field(r, "scope") == "notes:read"

        # The RFC 9728 document names the resource (the API the server is part of, a parent of the
        # server's URL, which the SDK's check accepts) and the authorization server.
        prm = (await http.get(metadata_url(server))).json()
        assert prm["resource"] == f"{server.issuer}/api"
        assert check_resource_allowed(
            requested_resource=resource_url_from_server_url(url), configured_resource=prm["resource"]
        )
        assert prm["authorization_servers"] == [server.issuer]
        assert set(prm["scopes_supported"]) >= {"notes:read", "notes:write", "notes:delete"}
        as_metadata = (await http.get(f"{server.issuer}/.well-known/oauth-authorization-server")).json()
        assert as_metadata["issuer"] == server.issuer
        assert as_metadata["token_endpoint"] == f"{server.issuer}/oauth2/token"

        # A tool call names the tool's scope; the other methods need a token too.
        r = await http.post(url, json=call("add_note", {"text": "x"}), headers=ACCEPT)
        assert r.status_code == 401 and field(r, "scope") == "notes:write", r.headers
        for method in ("GET", "DELETE"):
            r = await http.request(method, url, headers=ACCEPT)
            assert r.status_code == 401 and field(r, "resource_metadata") == metadata_url(server), r.text
        r = await http.post(url, json=INITIALIZE, headers={**ACCEPT, "Authorization": "Bearer not-a-token"})
        assert r.status_code == 401 and field(r, "error") == "invalid_token", r.headers
        assert field(r, "resource_metadata") == metadata_url(server) and field(r, "scope") == "notes:read"

        # With a token: a stateless server offers no event stream and no session to end.
        _, token = await Agent(http, server.issuer).start()
        for method in ("GET", "DELETE"):
            r = await http.request(method, url, headers={**ACCEPT, "Authorization": f"Bearer {token}"})
            assert r.status_code == 405 and r.headers["allow"] == "POST, OPTIONS", r.text

    exchanges = Exchanges()
    async with connect(server, None, exchanges) as session:
        with pytest.raises(MCPError):
            await session.initialize()
    assert exchanges.last.status_code == 401
    assert field(exchanges.last, "resource_metadata") == metadata_url(server)


async def test_a_revoked_token_is_refused_at_its_next_request(start_server: StartServer) -> None:
    server = start_server(ENV)
    async with httpx.AsyncClient(timeout=10.0) as http:
        _, token = await Agent(http, server.issuer).start()
        exchanges = Exchanges()
        async with connect(server, token, exchanges) as session:
            await session.initialize()
            assert not (await session.call_tool("list_notes", {})).is_error
            r = await http.post(f"{server.issuer}/oauth2/revoke", data={"token": token})
            assert r.status_code == 200, r.text
            with pytest.raises(MCPError):
                await session.call_tool("list_notes", {})
    refused = exchanges.last
    assert refused.status_code == 401, refused.text
    assert field(refused, "error") == "invalid_token"
    assert field(refused, "resource_metadata") == metadata_url(server)
    assert field(refused, "scope") == "notes:read"
    assert "revoked" in json.loads(refused.read())["error_description"]


async def test_the_2026_07_28_single_exchange_requests_are_guarded_the_same(start_server: StartServer) -> None:
    server = start_server(ENV)
    async with httpx.AsyncClient(timeout=10.0) as http:
        _, token = await Agent(http, server.issuer).start()
    exchanges = Exchanges()
    async with connect(server, token, exchanges) as session:
        discovered = await session.discover()  # no initialize: every request stands alone
        assert "2026-07-28" in discovered.supported_versions
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        added = await session.call_tool("add_note", {"text": "modern"})
        assert not added.is_error, added
        listed = await session.call_tool("list_notes", {})
        assert [n["text"] for n in listed.structured_content["notes"]] == ["modern"]
        with pytest.raises(MCPError):
            await session.call_tool("delete_note", {"note_id": added.structured_content["id"]})
        assert_scope_challenge(exchanges.last, server, "notes:delete")
    assert exchanges.last.request.headers["mcp-protocol-version"] == "2026-07-28"


def _workers_that_answered(server: ServerProcess, responses: list[httpx2.Response]) -> set[int]:
    """The worker processes whose access-log lines carry these responses' request ids."""
    ids = {r.headers["x-request-id"] for r in responses}
    processes = set()
    for line in server.read_log().splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry["logger"] == "authmd.access" and entry["request_id"] in ids and " /api/mcp " in entry["message"]:
            processes.add(entry["process"])
    return processes


async def test_two_workers_answer_one_client_without_a_session(start_server: StartServer) -> None:
    server = start_server({**ENV, "AUTHMD_WORKERS": "2", "AUTHMD_ACCESS_LOG": "true", "AUTHMD_LOG_FORMAT": "json"})
    wait_until(
        lambda: len(set(re.findall(r"Started server process \[(\d+)\]", server.read_log()))) == 2,
        30,
        "two worker processes",
    )
    async with httpx.AsyncClient(timeout=10.0) as http:
        _, token = await Agent(http, server.issuer).start()
    exchanges = Exchanges()
    # A new connection for every request: each one is accepted by whichever worker is first.
    async with connect(server, token, exchanges, fresh_connections=True) as session:
        await session.initialize()
        added = (await session.call_tool("add_note", {"text": "one client, two workers"})).structured_content["id"]
        for _ in range(50):
            listed = await session.call_tool("list_notes", {})
            assert [n["id"] for n in listed.structured_content["notes"]] == [added], listed
            if len(_workers_that_answered(server, exchanges.responses)) == 2:
                break
    assert len(_workers_that_answered(server, exchanges.responses)) == 2, server.read_log()
    assert not [r for r in exchanges.responses if "mcp-session-id" in r.headers]  # stateless: no session
