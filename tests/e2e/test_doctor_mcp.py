"""`authmd doctor` pointed at an MCP server URL (mcp.*): the chain an MCP client follows (the MCP
authorization specification, revision 2026-07-28), against the real server's `/api/mcp` (with and
without an issuer path) and against a tiny MCP server on 127.0.0.1 that serves one defect at a time."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.agent.doctor.checks.mcp import discovery_urls, python_sdk_accepts, typescript_sdk_accepts
from tests.e2e.conftest import HOST, StartServer
from tests.e2e.test_doctor import Result, assert_clean, doctor

pytestmark = pytest.mark.e2e

AS_PATH = "/.well-known/oauth-authorization-server"
OIDC_PATH = "/.well-known/openid-configuration"
PRM_PREFIX = "/.well-known/oauth-protected-resource"
MCP_CHECKS = (
    "mcp.challenge",
    "mcp.challenge_scope",
    "mcp.prm",
    "mcp.prm_well_known",
    "mcp.resource",
    "mcp.as_discovery",
    "mcp.as_issuer",
    "mcp.as_endpoints",
    "mcp.pkce",
    "mcp.response_types",
    "mcp.registration",
    "mcp.iss",
)


def mcp_checks(result: Result) -> dict[str, str]:
    return {c["id"]: c["status"] for c in result.report["checks"] if c["id"].startswith("mcp.")}


def message(result: Result, check_id: str) -> str:
    text: str = result.check(check_id)["message"]
    return text


# ---------------------------------------------------------------------------------------------------
# The rules the doctor applies, as the SDKs and the specification state them
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "resource", "python", "typescript"),
    [
        ("https://h/api/mcp", "https://h/api", True, True),
        ("https://h/api/mcp", "https://h/api/", True, True),
        ("https://h/api/mcp", "https://h", True, True),
        ("https://h/api/mcp", "https://h/api/mcp", True, True),
        ("https://h/api123", "https://h/api", False, False),  # not at a segment boundary
        ("https://h/api/mcp", "https://h/api/mcp/x", False, False),  # a child is not a parent
        ("https://h/mcp", "http://h/mcp", False, False),
        ("https://h/mcp", "https://H/mcp", True, True),
        ("https://h/api", "https://h/api/", True, False),  # TypeScript: the server's path may not be shorter
        ("https://h:443/mcp", "https://h/mcp", False, True),  # Python compares host:port as written
    ],
)
def test_the_sdks_resource_rules(server: str, resource: str, python: bool, typescript: bool) -> None:
    assert (python_sdk_accepts(server, resource), typescript_sdk_accepts(server, resource)) == (python, typescript)


def test_the_authorization_server_discovery_order() -> None:
    assert [u for u, _ in discovery_urls("https://a.example/tenant1")] == [
        "https://a.example/.well-known/oauth-authorization-server/tenant1",
        "https://a.example/.well-known/openid-configuration/tenant1",
        "https://a.example/tenant1/.well-known/openid-configuration",
    ]
    assert [u for u, _ in discovery_urls("https://a.example")] == [
        "https://a.example/.well-known/oauth-authorization-server",
        "https://a.example/.well-known/openid-configuration",
    ]


# ---------------------------------------------------------------------------------------------------
# Against the real server
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("issuer", ["{origin}", "{origin}/tenant"], ids=["root-issuer", "issuer-path"])
def test_the_real_mcp_server_passes_the_chain(start_server: StartServer, issuer: str) -> None:
    server = start_server({"AUTHMD_ISSUER": issuer})
    result = doctor(f"{server.issuer}/api/mcp")
    assert_clean(result)
    assert result.report["mode"] == "mcp"
    assert mcp_checks(result) == dict.fromkeys(MCP_CHECKS, "pass"), result.stdout
    assert f'resource_metadata="{server.origin}{PRM_PREFIX}' in message(result, "mcp.challenge")
    assert 'scope="notes:read"' in message(result, "mcp.challenge_scope")
    assert f"ask for resource={server.issuer}/api" in message(result, "mcp.resource")
    as_url = f"{server.origin}{AS_PATH}{server.issuer.removeprefix(server.origin)}"
    assert message(result, "mcp.as_discovery").startswith(f"{as_url} (RFC 8414"), result.stdout
    # The one warning: the document for /api/mcp names the enclosing resource /api (docs/mcp-server.md),
    # which RFC 9728 sec 3.3 would have identical and both MCP SDKs accept.
    assert result.warning() == ["prm.resource"], result.stdout
    assert "MCP clients accept a parent path" in message(result, "prm.resource")


def test_the_real_server_without_mcp_path_keeps_the_api_checks_and_mcp_insists(start_server: StartServer) -> None:
    server = start_server()
    api = doctor(f"{server.issuer}/api/notes")
    assert_clean(api)
    assert api.report["mode"] == "api" and mcp_checks(api) == {}
    # --mcp: any URL answering 401 with resource_metadata is followed as an MCP client would.
    forced = doctor(f"{server.issuer}/api/notes", "--mcp")
    assert forced.code == 0 and forced.report["mode"] == "mcp", forced.stdout
    warned = {"mcp.challenge_scope", "mcp.prm_well_known"}
    assert mcp_checks(forced) == {k: "warn" if k in warned else "pass" for k in MCP_CHECKS}, forced.stdout
    # The REST API's 401 names no scope (the MCP server's does) ...
    assert "no scope in the challenge" in message(forced, "mcp.challenge_scope")
    # ... and .../oauth-protected-resource/api/notes is not served: a client without the challenge finds the
    # issuer's own document at the root, which names another resource.
    assert "differs from the challenge's" in message(forced, "mcp.prm_well_known")
    text = doctor(f"{server.issuer}/api/notes", "--mcp", as_json=False).stdout
    assert "started from: an MCP server URL" in text
    assert any(line.split()[:2] == ["PASS", "mcp.resource"] for line in text.splitlines())


# ---------------------------------------------------------------------------------------------------
# Against a tiny MCP server on loopback, broken one way per test
# ---------------------------------------------------------------------------------------------------


class FakeMcp:
    """An MCP server at ``/mcp`` with its authorization server on the same origin (issuer = the origin,
    or ``{origin}{issuer_path}``): healthy until a test changes a document. Documents set to None are not
    served (404); bytes are served as they are."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, dict[str, str], bytes]] = {}
        self.server = ThreadingHTTPServer((HOST, 0), _handler(self))
        self.origin = f"http://{HOST}:{self.server.server_address[1]}"
        self.url = f"{self.origin}/mcp"
        self.issuer_path = ""
        self.as_path = AS_PATH
        self.mcp_status = 401
        self.challenge: str | None = f'Bearer resource_metadata="{self.origin}{PRM_PREFIX}/mcp", scope="files:read"'
        self.prm: Any = {
            "resource": self.url,
            "authorization_servers": [self.origin],
            "scopes_supported": ["files:read"],
        }
        self.as_metadata: Any = {
            "issuer": self.origin,
            "authorization_endpoint": f"{self.origin}/authorize",
            "token_endpoint": f"{self.origin}/token",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "client_id_metadata_document_supported": True,
            "authorization_response_iss_parameter_supported": True,
        }

    @property
    def issuer(self) -> str:
        return self.origin + self.issuer_path

    def publish(self) -> None:
        error = {"error": "invalid_token", "error_description": "no token", "message": "no token"}
        headers = {"Content-Type": "application/json"}
        if self.challenge is not None:
            headers["WWW-Authenticate"] = self.challenge
        routes = {("POST", "/mcp"): (self.mcp_status, headers, json.dumps(error).encode())}
        for path, doc in ((f"{PRM_PREFIX}/mcp", self.prm), (self.as_path, self.as_metadata)):
            if doc is not None:
                body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
                routes[("GET", path)] = (200, {"Content-Type": "application/json"}, body)
        self.routes = routes

    def serve(self) -> None:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(fake: FakeMcp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 5.0

        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            status, headers, body = fake.routes.get(
                (self.command, self.path.split("?", 1)[0]), (404, {"Content-Type": "application/json"}, b"{}")
            )
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeMcp]:
    server = FakeMcp()
    server.serve()
    try:
        yield server
    finally:
        server.close()


def test_the_healthy_fake_passes_every_mcp_check(fake: FakeMcp) -> None:
    fake.publish()
    result = doctor(fake.url)
    assert result.report["mode"] == "mcp"
    assert mcp_checks(result) == dict.fromkeys(MCP_CHECKS, "pass"), result.stdout
    assert "resource_metadata=" in message(result, "mcp.challenge")
    assert "the server URL itself" in message(result, "mcp.resource")
    # Not an auth.md service: its other groups fail, which the MCP chain does not depend on.
    assert result.status("agent_auth.present") == "fail"


@pytest.mark.parametrize(
    ("prm", "found"),
    [
        (b"{not json", "not JSON"),
        ({"resource": "http://x/mcp", "authorization_servers": []}, "authorization_servers must list at least one"),
        ({"authorization_servers": ["http://127.0.0.1:9"]}, "resource is not an absolute http(s) URL"),
    ],
    ids=["garbage", "no-authorization-server", "no-resource"],
)
def test_a_broken_protected_resource_document_fails(fake: FakeMcp, prm: Any, found: str) -> None:
    fake.prm = prm
    fake.publish()
    result = doctor(fake.url)
    assert result.code == 1
    assert result.status("mcp.prm") == "fail"
    assert found in message(result, "mcp.prm")
    assert result.status("mcp.prm_well_known") == "pass"  # the same URL: nothing more to compare
    assert not {"mcp.resource", "mcp.as_discovery"} & set(mcp_checks(result))  # the chain stops there


@pytest.mark.parametrize(
    "resource",
    ["{origin}/other", "{origin}/mc", "http://localhost:1/mcp", "{origin}/mcp/deeper"],
    ids=["sibling-path", "not-a-segment-boundary", "other-origin", "child-path"],
)
def test_a_resource_the_sdks_refuse_fails(fake: FakeMcp, resource: str) -> None:
    fake.prm["resource"] = resource.format(origin=fake.origin)
    fake.publish()
    result = doctor(fake.url)
    assert result.code == 1
    assert result.status("mcp.resource") == "fail"
    assert "MCP clients refuse the document" in message(result, "mcp.resource")


def test_a_parent_resource_passes(fake: FakeMcp) -> None:
    fake.prm["resource"] = fake.origin
    fake.publish()
    result = doctor(fake.url)
    assert result.status("mcp.resource") == "pass"
    assert "a parent path of the server URL" in message(result, "mcp.resource")


def test_an_issuer_mismatch_fails(fake: FakeMcp) -> None:
    fake.as_metadata["issuer"] = fake.origin + "/"
    fake.publish()
    result = doctor(fake.url)
    assert result.code == 1
    assert result.status("mcp.as_issuer") == "fail"
    assert f'issuer is "{fake.origin}/", but the URL was built from {fake.origin}' in message(result, "mcp.as_issuer")
    assert result.check("mcp.as_issuer")["reference"].startswith("RFC 8414 sec 3.3")


@pytest.mark.parametrize(
    ("methods", "found"),
    [(None, "MCP clients must then refuse to proceed"), (["plain"], "lacks S256")],
    ids=["absent", "plain-only"],
)
def test_no_s256_fails(fake: FakeMcp, methods: Any, found: str) -> None:
    if methods is None:
        del fake.as_metadata["code_challenge_methods_supported"]
    else:
        fake.as_metadata["code_challenge_methods_supported"] = methods
    fake.publish()
    result = doctor(fake.url)
    assert result.code == 1
    assert result.status("mcp.pkce") == "fail"
    assert found in message(result, "mcp.pkce")


def test_what_the_authorization_code_flow_needs(fake: FakeMcp) -> None:
    for key in ("authorization_endpoint", "client_id_metadata_document_supported"):
        del fake.as_metadata[key]
    fake.as_metadata["response_types_supported"] = ["token"]
    fake.as_metadata["authorization_response_iss_parameter_supported"] = False
    fake.publish()
    result = doctor(fake.url)
    assert result.code == 1
    statuses = mcp_checks(result)
    assert {k: statuses[k] for k in ("mcp.as_endpoints", "mcp.response_types", "mcp.registration", "mcp.iss")} == {
        "mcp.as_endpoints": "fail",
        "mcp.response_types": "fail",
        "mcp.registration": "fail",
        "mcp.iss": "warn",
    }
    assert "no authorization_endpoint" in message(result, "mcp.as_endpoints")
    assert "only clients registered in advance" in message(result, "mcp.registration")
    # Dynamic registration alone is enough to connect.
    fake.as_metadata["registration_endpoint"] = f"{fake.origin}/register"
    fake.publish()
    assert doctor(fake.url).status("mcp.registration") == "pass"


def test_a_challenge_without_resource_metadata_fails_and_the_fallback_finds_the_document(fake: FakeMcp) -> None:
    fake.challenge = 'Bearer realm="mcp"'
    fake.publish()
    result = doctor(fake.url)
    assert result.code == 1
    assert result.status("mcp.challenge") == "fail"
    assert "without resource_metadata" in message(result, "mcp.challenge")
    assert result.status("mcp.challenge_scope") == "warn"  # and no scope either
    assert "found by the well-known fallback" in message(result, "mcp.prm")
    for check_id in ("mcp.prm", "mcp.prm_well_known", "mcp.resource", "mcp.as_discovery", "mcp.pkce"):
        assert result.status(check_id) == "pass", result.check(check_id)


def test_metadata_only_at_the_openid_connect_url_is_found_in_the_spec_order(fake: FakeMcp) -> None:
    fake.issuer_path = "/tenant"
    fake.as_path = f"/tenant{OIDC_PATH}"  # the third URL for an issuer with a path
    fake.prm["authorization_servers"] = [fake.issuer]
    fake.as_metadata["issuer"] = fake.issuer
    fake.publish()
    result = doctor(fake.url)
    assert result.status("mcp.as_discovery") == "pass"
    found = message(result, "mcp.as_discovery")
    assert found.startswith(f"{fake.issuer}{OIDC_PATH} (OpenID Connect discovery, path appended; URL 3 of the 3")
    assert f"{fake.origin}{AS_PATH}/tenant (404)" in found
    assert result.status("mcp.as_issuer") == "pass"


def test_a_server_that_does_not_answer_401(fake: FakeMcp) -> None:
    fake.mcp_status, fake.challenge = 200, None
    fake.publish()
    auto = doctor(fake.url)  # a path ending in /mcp is taken for an MCP server only when it answers 401
    assert auto.report["mode"] == "issuer"
    assert any("not checked as an MCP server" in note for note in auto.report["notes"])
    insisted = doctor(fake.url, "--mcp")
    assert insisted.code == 1 and insisted.report["mode"] == "mcp"
    assert insisted.status("mcp.challenge") == "fail"
    assert "answered 200, not 401" in message(insisted, "mcp.challenge")
