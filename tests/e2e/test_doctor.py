"""`authmd doctor URL`, run as a subprocess: against the real server (a clean bill of health, from the
issuer and from an API URL, with and without an issuer path) and against deliberately broken services
(a stdlib HTTP server on 127.0.0.1 serving one defect at a time), each asserting the check id it trips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, StartServer, free_port
from tests.e2e.fake_service import CLAIM, IDENTITY, FakeAuthService, Reply
from tests.provider import TestProvider

pytestmark = pytest.mark.e2e

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
URN_ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
PROFILE_ID_JAG = "urn:ietf:params:oauth:grant-profile:id-jag"
AS_PATH = "/.well-known/oauth-authorization-server"
PRM_PATH = "/.well-known/oauth-protected-resource/api"
JWKS_PATH = "/.well-known/jwks.json"
DOC_HEADERS = {"Cache-Control": "public, max-age=300", "ETag": '"v1"'}
RUN_TIMEOUT = 60.0


# ---------------------------------------------------------------------------------------------------
# Running the command
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.stdout)  # --json: exactly one JSON object on stdout
        return doc

    def check(self, check_id: str) -> dict[str, Any]:
        found = [c for c in self.report["checks"] if c["id"] == check_id]
        assert len(found) == 1, f"{check_id}: {found} in {self.stdout}"
        check: dict[str, Any] = found[0]
        return check

    def status(self, check_id: str) -> str:
        status: str = self.check(check_id)["status"]
        return status

    def failing(self) -> list[str]:
        return [c["id"] for c in self.report["checks"] if c["status"] == "fail"]

    def warning(self) -> list[str]:
        return [c["id"] for c in self.report["checks"] if c["status"] == "warn"]


# What a clean --probe of a revision 2 service passes (authmd's own, and the revision 2 fake).
PROBE_CHECKS = (
    "probe.register",
    "probe.token",
    "probe.invalid_grant",
    "probe.claim_attempts",
    "probe.claim_alias",
    "probe.claim_cap",
    "probe.cleanup",
    "probe.claim_revoked",
    "errors.body",
    "errors.codes",
    "agent_auth.max_live_attempts",
)


def doctor(*args: str, as_json: bool = True) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")}
    argv = [sys.executable, "-m", "app", "doctor", *args, *(["--json"] if as_json else [])]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_clean(result: Result) -> None:
    assert result.code == 0, result.stdout
    assert result.failing() == [], result.stdout
    summary = result.report["summary"]
    assert summary["fail"] == 0
    assert summary["pass"] == sum(1 for c in result.report["checks"] if c["status"] == "pass")


# ---------------------------------------------------------------------------------------------------
# Against the real server
# ---------------------------------------------------------------------------------------------------


def test_real_server_from_issuer_and_from_api(start_server: StartServer) -> None:
    server = start_server()
    from_issuer = doctor(server.issuer)
    assert_clean(from_issuer)
    assert from_issuer.report["mode"] == "issuer"
    assert from_issuer.report["issuer"] == server.issuer
    for check_id in ("as.issuer", "agent_auth.identity_types", "jwks.private", "auth_md.as_example", "cache.jwks"):
        assert from_issuer.status(check_id) == "pass"

    from_api = doctor(f"{server.issuer}/api/notes")
    assert_clean(from_api)
    assert from_api.status("errors.body") == "pass"  # the API's 401 body
    assert from_api.status("auth_md.error_codes") == "pass"
    assert from_api.report["mode"] == "api"
    assert from_api.report["issuer"] == server.issuer
    assert from_api.status("resource.401") == "pass"
    assert from_api.status("prm.resource") == "pass"
    assert f"{server.issuer}/api" in from_api.check("prm.resource")["message"]
    assert from_api.warning() == []


def test_real_server_with_an_issuer_path(start_server: StartServer) -> None:
    server = start_server({"AUTHMD_ISSUER": "{origin}/tenant"})
    assert server.issuer.endswith("/tenant")
    for url in (server.issuer, f"{server.issuer}/api/notes"):
        result = doctor(url)
        assert_clean(result)
        assert result.report["issuer"] == server.issuer
        assert result.status("as.path_inserted") == "pass"  # RFC 8414 sec 3.1 form beside the appended one
        assert result.status("as.issuer") == "pass"


def test_real_server_with_an_identity_provider(start_server: StartServer, tmp_path: Path) -> None:
    with TestProvider() as provider:
        config = tmp_path / "authmd.toml"
        config.write_text(
            f'[[providers]]\nissuer = "{provider.issuer}"\nclient_ids = ["agent-cli"]\nscopes = ["notes:read"]\n'
        )
        server = start_server({"AUTHMD_CONFIG": str(config)})
        result = doctor(server.issuer)
    assert_clean(result)
    assert result.warning() == [], result.stdout
    assert result.status("agent_auth.id_jag") == "pass"
    assert result.status("agent_auth.events") == "pass"
    assert "events_endpoint" in result.check("agent_auth.events")["message"]
    # Revision 2: the grant profile for MCP clients, and the trust list naming the one provider.
    assert result.status("as.grant_profiles") == "pass"
    assert result.status("agent_auth.issuers") == "pass"
    assert "1 issuer(s)" in result.check("agent_auth.issuers")["message"]


def test_real_server_text_output(start_server: StartServer) -> None:
    server = start_server()
    result = doctor(f"{server.issuer}/api/notes", as_json=False)
    assert result.code == 0, result.stdout
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("STATUS"))
    assert header.split() == ["STATUS", "CHECK", "REFERENCE", "RESULT"]
    rows = [line for line in lines if line.startswith(("PASS ", "WARN ", "FAIL "))]
    assert len(rows) >= 25
    assert any(line.split()[:2] == ["PASS", "resource.401"] for line in rows)
    column = header.index("CHECK")
    assert all(row[column - 1] == " " and row[column] != " " for row in rows)  # aligned columns
    assert lines[-1].startswith("summary: ") and lines[-1].endswith("0 fail -> OK"), lines[-1]
    assert result.stdout.isascii()


def test_real_server_probe(start_server: StartServer) -> None:
    server = start_server()
    result = doctor(server.issuer, "--probe")
    assert_clean(result)
    assert result.warning() == [], result.stdout
    # The unclaimed account goes with its revocation: its claim then reads like an expired one.
    assert "went with its revocation" in result.check("probe.claim_revoked")["message"]
    for check_id in ("probe.no_store", *PROBE_CHECKS):
        assert result.status(check_id) == "pass", result.check(check_id)
    assert "429 too_many_attempts" in result.check("probe.claim_cap")["message"]
    # From the API URL the probe also asks for a token for a URI below the resource (revision 2).
    from_api = doctor(f"{server.issuer}/api/notes", "--probe")
    assert_clean(from_api)
    assert from_api.warning() == [], from_api.stdout
    assert from_api.status("probe.resource") == "pass"
    assert f"aud is {server.issuer}/api" in from_api.check("probe.resource")["message"]
    # Without --probe nothing is registered.
    assert not any(c["id"].startswith("probe.") for c in doctor(server.issuer).report["checks"])


# ---------------------------------------------------------------------------------------------------
# Against broken services: a healthy fake on a stdlib HTTP server, broken one way per test
# ---------------------------------------------------------------------------------------------------


def _bytes(doc: Any) -> bytes:
    return doc if isinstance(doc, bytes) else json.dumps(doc).encode()


class FakeService:
    """A small, healthy auth.md service (issuer = the server's origin); tests break one document and
    call ``publish()``. Documents may be replaced by raw bytes (garbage) or None (not served: 404)."""

    def __init__(self, provider: TestProvider) -> None:
        self.provider = provider
        issuer = self.issuer = provider.issuer
        self.api_url = f"{issuer}/api/notes"
        self.prm_url = provider.url(PRM_PATH)
        self.as_metadata: Any = {
            "issuer": issuer,
            "jwks_uri": issuer + JWKS_PATH,
            "token_endpoint": f"{issuer}/oauth2/token",
            "revocation_endpoint": f"{issuer}/oauth2/revoke",
            "introspection_endpoint": f"{issuer}/oauth2/introspect",
            "response_types_supported": [],
            "grant_types_supported": [JWT_BEARER],
            "agent_auth": {
                "skill": f"{issuer}/auth.md",
                "identity_endpoint": f"{issuer}/agent/identity",
                "claim_endpoint": f"{issuer}/agent/identity/claim",
                "identity_types_supported": ["anonymous", "service_auth"],
            },
        }
        self.prm: Any = {"resource": f"{issuer}/api", "authorization_servers": [issuer], "jwks_uri": issuer + JWKS_PATH}
        self.jwks: Any = provider.jwks()
        self.auth_md: bytes | str | None = None  # None: generated from the metadata at publish()
        self.www_authenticate: str | None = f'Bearer resource_metadata="{self.prm_url}"'
        text = "the access token is missing or invalid"
        self.api_error: Any = {"error": "invalid_token", "error_description": text, "message": text}

    def generated_auth_md(self) -> str:
        example = ""
        if isinstance(self.as_metadata, dict):
            example = f"```json example=authorization-server-metadata\n{json.dumps(self.as_metadata, indent=2)}\n```\n"
        return (
            f"# auth.md - fake\n\nIssuer: `{self.issuer}`\n\n"
            f'Register with `POST {self.issuer}/agent/identity` and `{{"type": "anonymous"}}`.\n\n{example}'
        )

    def publish(self) -> None:
        p = self.provider
        for path, doc in ((AS_PATH, self.as_metadata), (PRM_PATH, self.prm), (JWKS_PATH, self.jwks)):
            if doc is None:
                p.serve_json(path, {"error": "not_found"}, status=404)
            else:
                p.serve_bytes(path, _bytes(doc), "application/json", headers=DOC_HEADERS)
        auth_md = self.generated_auth_md() if self.auth_md is None else self.auth_md
        if auth_md == b"":
            p.serve_json("/auth.md", {"error": "not_found"}, status=404)
        else:
            body = auth_md.encode() if isinstance(auth_md, str) else auth_md
            p.serve_bytes("/auth.md", body, "text/markdown; charset=utf-8", headers=DOC_HEADERS)
        challenge = {"WWW-Authenticate": self.www_authenticate} if self.www_authenticate is not None else {}
        p.serve_bytes("/api/notes", _bytes(self.api_error), "application/json", status=401, headers=challenge)


@pytest.fixture
def fake() -> Iterator[FakeService]:
    with TestProvider() as provider:
        yield FakeService(provider)


def test_the_healthy_fake_is_clean(fake: FakeService) -> None:
    """The baseline every broken variant departs from: nothing fails, nothing warns."""
    fake.publish()
    for url in (fake.issuer, fake.api_url):
        result = doctor(url)
        assert_clean(result)
        assert result.warning() == [], result.stdout


def test_issuer_mismatch_fails(fake: FakeService) -> None:
    fake.as_metadata["issuer"] = fake.issuer + "/"
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 1
    assert result.status("as.issuer") == "fail"
    assert "must be identical" in result.check("as.issuer")["message"]
    assert result.check("as.issuer")["reference"] == "RFC 8414 sec 3.3"


def test_protected_resource_mismatch_fails(fake: FakeService) -> None:
    fake.prm["resource"] = fake.issuer  # served at .../oauth-protected-resource/api, so it must say {origin}/api
    fake.publish()
    result = doctor(fake.api_url)
    assert result.code == 1
    assert result.status("prm.resource") == "fail"
    assert f"derived from {fake.issuer}/api" in result.check("prm.resource")["message"]
    assert result.status("resource.401") == "pass"


def test_private_jwk_member_fails(fake: FakeService) -> None:
    fake.jwks["keys"][0]["d"] = "c2VjcmV0"
    fake.publish()
    result = doctor(fake.api_url)
    assert result.code == 1
    assert result.status("jwks.private") == "fail"
    assert "keys[0].d" in result.check("jwks.private")["message"]
    assert result.status("prm.jwks_uri") == "fail"  # the PRM names the same JWKS


def test_symmetric_key_fails(fake: FakeService) -> None:
    fake.jwks["keys"].append({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"})
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 1
    assert result.status("jwks.keys") == "fail"
    assert result.status("jwks.private") == "fail"


def test_missing_agent_auth_fails(fake: FakeService) -> None:
    del fake.as_metadata["agent_auth"]
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 1
    assert result.status("agent_auth.present") == "fail"


def test_missing_claim_endpoint_fails(fake: FakeService) -> None:
    del fake.as_metadata["agent_auth"]["claim_endpoint"]
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 1
    assert result.failing() == ["agent_auth.claim_endpoint"]


def test_identity_types_without_service_auth_warns(fake: FakeService) -> None:
    fake.as_metadata["agent_auth"]["identity_types_supported"] = ["anonymous"]
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 0, result.stdout
    assert result.warning() == ["agent_auth.identity_types"]
    assert "silently registers anonymously" in result.check("agent_auth.identity_types")["message"]


def test_identity_assertion_without_the_id_jag_urn_fails(fake: FakeService) -> None:
    fake.as_metadata["agent_auth"]["identity_types_supported"] = ["anonymous", "service_auth", "identity_assertion"]
    fake.as_metadata["agent_auth"]["identity_assertion"] = {"assertion_types_supported": ["urn:example:saml"]}
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 1
    assert result.failing() == ["agent_auth.id_jag"]


@pytest.mark.parametrize(
    "challenge",
    [None, 'Bearer realm="api"', 'Basic realm="api"'],
    ids=["no-header", "bearer-without-resource-metadata", "not-bearer"],
)
def test_401_without_resource_metadata_fails(fake: FakeService, challenge: str | None) -> None:
    fake.www_authenticate = challenge
    fake.publish()
    result = doctor(fake.api_url)
    assert result.code == 1
    assert result.failing() == ["resource.401"]
    # The doctor still finds the metadata by RFC 9728 sec 3.1 derivation and checks the rest.
    assert result.report["issuer"] == fake.issuer
    assert any("derivation" in note for note in result.report["notes"])


def test_missing_auth_md_fails(fake: FakeService) -> None:
    """A missing /auth.md is a FAIL: spec/protocol.md's prose contract for agents that read."""
    fake.auth_md = b""
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 1
    assert result.failing() == ["auth_md.fetch"]
    assert "404" in result.check("auth_md.fetch")["message"]


def test_auth_md_example_drift_and_broken_json_warn(fake: FakeService) -> None:
    stale = {k: v for k, v in fake.as_metadata.items() if k != "introspection_endpoint"}
    fake.auth_md = (
        f"# auth.md\nIssuer `{fake.issuer}`; register at {fake.issuer}/agent/identity\n\n"
        f"```json example=authorization-server-metadata\n{json.dumps(stale)}\n```\n\n"
        '```json example=registration\n{"id": "reg_...", }\n```\n'
    )
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 0, result.stdout
    assert result.status("auth_md.examples") == "warn"
    assert "registration" in result.check("auth_md.examples")["message"]
    assert result.status("auth_md.as_example") == "warn"
    assert "lacks introspection_endpoint" in result.check("auth_md.as_example")["message"]


def test_endpoint_on_plain_http_elsewhere_fails(fake: FakeService) -> None:
    # Never fetched without --probe: no traffic leaves loopback.
    fake.as_metadata["revocation_endpoint"] = "http://auth.example.com/oauth2/revoke"
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 1
    assert result.status("as.endpoints_https") == "fail"
    assert result.status("as.endpoints_origin") == "warn"


def test_missing_cache_headers_warn(fake: FakeService) -> None:
    fake.publish()
    fake.provider.serve_json(AS_PATH, fake.as_metadata)  # no Cache-Control, no ETag
    result = doctor(fake.issuer)
    assert result.code == 0
    assert result.warning() == ["cache.as_metadata"]


@pytest.mark.parametrize(
    ("document", "check_id"),
    [("as_metadata", "as.fetch"), ("prm", "prm.fetch"), ("jwks", "jwks.fetch")],
)
@pytest.mark.parametrize("garbage", [b"{not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b""], ids=repr)
def test_invalid_json_fails_without_a_traceback(
    fake: FakeService, document: str, check_id: str, garbage: bytes
) -> None:
    setattr(fake, document, garbage)
    fake.publish()
    result = doctor(fake.api_url)  # from the API URL, so the PRM is on the path too
    assert result.code == 1
    assert result.status(check_id) == "fail"
    assert "not JSON" in result.check(check_id)["message"] or "not an object" in result.check(check_id)["message"]


def test_oversized_document_fails(fake: FakeService) -> None:
    fake.as_metadata = b" " * 2_000_000 + b"{}"
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 1
    assert result.status("as.fetch") == "fail"
    assert "bytes" in result.check("as.fetch")["message"]


def test_hostile_values_stay_ascii_in_the_table(fake: FakeService) -> None:
    fake.as_metadata["issuer"] = "\x1b[2J\x1b[31mhttps://evil.example\u202e"
    fake.publish()
    result = doctor(fake.issuer, as_json=False)
    assert result.code == 1
    assert result.stdout.isascii()
    assert "\x1b" not in result.stdout
    assert any(line.startswith("FAIL") and "as.issuer" in line for line in result.stdout.splitlines())


# ---------------------------------------------------------------------------------------------------
# Revision 2 (spec/protocol.md): the metadata it adds, error bodies, and revision 1 names as warnings
# ---------------------------------------------------------------------------------------------------


def _accept_id_jags(fake: FakeService, **identity_assertion: Any) -> None:
    block = fake.as_metadata["agent_auth"]
    block["identity_types_supported"] = ["anonymous", "service_auth", "identity_assertion"]
    block["identity_assertion"] = {"assertion_types_supported": [URN_ID_JAG], **identity_assertion}


def test_revision_2_metadata_passes(fake: FakeService) -> None:
    _accept_id_jags(
        fake,
        issuers_supported=[
            {"issuer": "https://idp.example.com", "name": "Example IdP"},
            {"issuer": "http://127.0.0.1:9", "name": "A provider on loopback"},
        ],
    )
    fake.as_metadata["authorization_grant_profiles_supported"] = [PROFILE_ID_JAG]
    fake.as_metadata["agent_auth"]["claim"] = {"max_live_attempts": 3}
    fake.publish()
    for url in (fake.issuer, fake.api_url):
        result = doctor(url)
        assert_clean(result)
        assert result.warning() == [], result.stdout
    assert result.status("as.grant_profiles") == "pass"
    assert "2 issuer(s)" in result.check("agent_auth.issuers")["message"]
    assert "Example IdP" in result.check("agent_auth.issuers")["message"]
    assert result.status("agent_auth.max_live_attempts") == "pass"
    assert result.status("auth_md.error_codes") == "pass"
    assert result.status("errors.body") == "pass"  # the API's 401 body: error, error_description, message


def test_id_jags_without_grant_profiles_or_a_trust_list_warn(fake: FakeService) -> None:
    _accept_id_jags(fake)
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 0, result.stdout
    assert sorted(result.warning()) == ["agent_auth.issuers", "as.grant_profiles"]
    assert PROFILE_ID_JAG in result.check("as.grant_profiles")["message"]
    assert "trust list" in result.check("agent_auth.issuers")["message"]


def test_without_id_jags_the_revision_2_fields_are_not_asked_for(fake: FakeService) -> None:
    fake.publish()
    ids = [c["id"] for c in doctor(fake.issuer).report["checks"]]
    assert "as.grant_profiles" not in ids and "agent_auth.issuers" not in ids
    assert "agent_auth.max_live_attempts" not in ids


@pytest.mark.parametrize(
    ("issuers", "found"),
    [
        ({"issuer": "https://idp.example.com", "name": "x"}, "not a list"),
        (["https://idp.example.com"], "not an object"),
        ([{"issuer": "http://idp.example.com", "name": "Plain"}], "plain http"),
        ([{"issuer": "idp.example.com", "name": "No scheme"}], "not an absolute"),
        ([{"issuer": "https://idp.example.com"}], "name must be a string"),
        ([{"issuer": "https://idp.example.com", "name": "x", "client_secret": "s3cr3t"}], "client_secret"),
        (
            [{"issuer": "https://idp.example.com", "name": "x", "keys": [{"kty": "EC", "d": "c2VjcmV0"}]}],
            "keys[0].d",
        ),
        (
            [{"issuer": "https://idp.example.com", "name": "x", "pem": "-----BEGIN PRIVATE KEY-----\nMII..."}],
            ".pem",
        ),
    ],
    ids=["not-a-list", "strings", "plain-http", "no-scheme", "no-name", "client-secret", "jwk-d", "pem"],
)
def test_a_malformed_trust_list_fails(fake: FakeService, issuers: Any, found: str) -> None:
    _accept_id_jags(fake, issuers_supported=issuers)
    fake.as_metadata["authorization_grant_profiles_supported"] = [PROFILE_ID_JAG]
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 1
    assert result.failing() == ["agent_auth.issuers"]
    assert found in result.check("agent_auth.issuers")["message"]


@pytest.mark.parametrize(
    ("path", "value", "check_id"),
    [
        ("authorization_grant_profiles_supported", PROFILE_ID_JAG, "as.grant_profiles"),
        ("authorization_grant_profiles_supported", [PROFILE_ID_JAG, 7], "as.grant_profiles"),
        ("agent_auth.claim.max_live_attempts", 0, "agent_auth.max_live_attempts"),
        ("agent_auth.claim.max_live_attempts", "3", "agent_auth.max_live_attempts"),
        ("agent_auth.claim.max_live_attempts", True, "agent_auth.max_live_attempts"),
    ],
    ids=["profiles-string", "profiles-not-strings", "attempts-zero", "attempts-string", "attempts-bool"],
)
def test_malformed_revision_2_fields_fail(fake: FakeService, path: str, value: Any, check_id: str) -> None:
    node = fake.as_metadata
    *parents, last = path.split(".")
    for name in parents:
        node = node.setdefault(name, {})
    node[last] = value
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 1
    assert result.failing() == [check_id]


def test_grant_profile_without_id_jags_warns(fake: FakeService) -> None:
    fake.as_metadata["authorization_grant_profiles_supported"] = [PROFILE_ID_JAG]
    fake.publish()
    result = doctor(fake.issuer)
    assert result.code == 0
    assert result.warning() == ["as.grant_profiles"]


def test_revision_1_error_body_and_names_in_auth_md_warn(fake: FakeService) -> None:
    """A revision 1 service: the 401 body has only error_description, /auth.md documents `rate_limited`."""
    fake.api_error = {"error": "invalid_token", "error_description": "the access token is missing"}
    fake.auth_md = fake.generated_auth_md() + "\nToo many requests: 429 `rate_limited` with Retry-After.\n"
    fake.publish()
    result = doctor(fake.api_url)
    assert result.code == 0, result.stdout
    assert sorted(result.warning()) == ["auth_md.error_codes", "errors.body"]
    assert "no message" in result.check("errors.body")["message"]
    assert "GET /api/notes 401 invalid_token" in result.check("errors.body")["message"]
    assert "rate_limit_exceeded" in result.check("auth_md.error_codes")["message"]


@pytest.mark.parametrize(
    ("body", "status", "found"),
    [
        ({"error": "invalid_token"}, "fail", "neither message nor error_description"),
        ({"error": "invalid_token", "message": "no token"}, "warn", "no error_description"),
        ({"error": "invalid_token", "message": 7, "error_description": "x"}, "fail", "not a string"),
        (b"Unauthorized", "warn", "not a JSON error body"),  # a resource server: RFC 6750 needs no body
    ],
    ids=["bare-code", "message-only", "message-not-text", "not-json"],
)
def test_the_401_error_body(fake: FakeService, body: Any, status: str, found: str) -> None:
    fake.api_error = body
    fake.publish()
    result = doctor(fake.api_url)
    assert result.status("errors.body") == status
    assert found in result.check("errors.body")["message"]
    assert result.code == (1 if status == "fail" else 0)


# ---------------------------------------------------------------------------------------------------
# --probe against a fake service in each revision (tests/e2e/fake_service.py)
# ---------------------------------------------------------------------------------------------------


def test_probe_of_a_revision_2_service_is_clean() -> None:
    with FakeAuthService(revision=2, max_live_attempts=3) as svc:
        result = doctor(svc.issuer, "--probe")
        starts = svc.requests("POST", CLAIM)
        registration = svc.only()
    assert_clean(result)
    assert result.warning() == [], result.stdout
    for check_id in PROBE_CHECKS:
        assert result.status(check_id) == "pass", result.check(check_id)
    assert "429 too_many_attempts" in result.check("probe.claim_cap")["message"]
    # Three attempts up to the cap, one past it, one after the revocation; the second was the alias.
    assert [r.json()["type"] for r in starts] == ["service_auth", "login_hint", *["service_auth"] * 3]
    assert {r.json()["login_hint"] for r in starts} == {"doctor-probe@example.com"}
    assert registration.status == "revoked"  # cleaned up
    assert "errors.retry_after" not in [c["id"] for c in result.report["checks"]]  # no 429 rate limit met


def test_probe_of_a_revision_1_service_warns_naming_revision_2() -> None:
    with FakeAuthService(revision=1) as svc:
        result = doctor(svc.issuer, "--probe")
        registration = svc.only()
    assert result.code == 0, result.stdout
    assert sorted(result.warning()) == [
        "auth_md.error_codes",
        "errors.body",
        "probe.claim_alias",
        "probe.claim_revoked",
    ]
    assert "claim_revoked" in result.check("probe.claim_revoked")["message"]
    assert "410 claim_expired" in result.check("probe.claim_revoked")["message"]
    assert "login_hint" in result.check("probe.claim_alias")["message"]
    assert result.status("probe.claim_attempts") == "pass"  # two attempts started (revision 1 replaces)
    assert "probe.claim_cap" not in [c["id"] for c in result.report["checks"]]
    assert any("max_live_attempts" in note for note in result.report["notes"])
    assert registration.status == "revoked"


@pytest.mark.parametrize("revision", [1, 2])
def test_probe_from_an_api_url_asks_for_a_uri_below_the_resource(revision: int) -> None:
    with FakeAuthService(revision=revision) as svc:
        result = doctor(svc.url("/api/notes"), "--probe")
        asked = [r.form().get("resource") for r in svc.requests("POST", "/oauth2/token")]
    assert f"{svc.issuer}/api/authmd-doctor-probe" in asked
    if revision == 2:
        assert result.status("probe.resource") == "pass"
        assert result.warning() == [], result.stdout
    else:
        assert result.status("probe.resource") == "warn"
        assert "400 invalid_target" in result.check("probe.resource")["message"]
    assert result.code == 0


def test_probe_finds_an_attempt_cap_that_is_not_enforced() -> None:
    with FakeAuthService(revision=2, max_live_attempts=5, advertised=2) as svc:
        result = doctor(svc.issuer, "--probe")
    assert result.code == 0
    assert result.warning() == ["probe.claim_cap"]
    assert "max_live_attempts is 2" in result.check("probe.claim_cap")["message"]


@pytest.mark.parametrize(
    ("code", "retry_after", "header", "status", "found"),
    [
        ("rate_limit_exceeded", 7, "7", "pass", "same numeric retry_after"),
        ("rate_limit_exceeded", 30, "7", "fail", "disagrees"),
        ("rate_limit_exceeded", "soon", "7", "fail", "not a number"),
        ("rate_limit_exceeded", 7, None, "warn", "no Retry-After header"),
        ("rate_limited", None, "7", "warn", "no numeric retry_after"),  # revision 1
        ("rate_limited", None, None, "fail", "neither"),
    ],
    ids=["consistent", "disagree", "not-a-number", "no-header", "revision-1", "nothing"],
)
def test_a_rate_limited_registration(code: str, retry_after: Any, header: str | None, status: str, found: str) -> None:
    text = "too many registrations from this address"
    body: dict[str, Any] = {"error": code, "error_description": text, "message": text}
    if retry_after is not None:
        body["retry_after"] = retry_after
    with FakeAuthService(revision=2) as svc:
        svc.script("POST", IDENTITY, Reply(429, body, {"Retry-After": header} if header else {}))
        result = doctor(svc.issuer, "--probe")
        assert svc.registrations == {}  # nothing registered, nothing to clean up
    assert result.status("probe.register") == "warn"
    assert result.status("errors.retry_after") == status
    assert found in result.check("errors.retry_after")["message"]
    if code == "rate_limited":
        assert result.status("errors.codes") == "warn"
        assert "rate_limited (revision 2: rate_limit_exceeded)" in result.check("errors.codes")["message"]
    else:
        assert result.status("errors.codes") == "pass"


def test_probe_error_body_without_text_fails() -> None:
    with FakeAuthService(revision=2) as svc:
        svc.script("POST", CLAIM, Reply(400, {"error": "invalid_request"}))
        result = doctor(svc.issuer, "--probe")
        assert svc.only().status == "revoked"  # cleaned up all the same
    assert result.code == 1
    assert sorted(result.failing()) == ["errors.body", "probe.claim_attempts"]
    assert "POST /agent/identity/claim 400 invalid_request" in result.check("errors.body")["message"]
    assert "neither message nor error_description" in result.check("errors.body")["message"]


# ---------------------------------------------------------------------------------------------------
# Exit codes without a service
# ---------------------------------------------------------------------------------------------------


def test_unreachable_url_exits_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = doctor(url)
    assert result.code == 3
    assert result.report["error"]
    assert result.report["checks"] == []
    assert "cannot reach" in result.stderr
    assert doctor(url, as_json=False).code == 3


@pytest.mark.parametrize("argv", [["ftp://127.0.0.1/"], ["not a url"], [], ["http://127.0.0.1:1", "--timeout", "0"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    result = doctor(*argv, as_json=False)
    assert result.code == 2
    assert result.stdout == ""


def test_help_shows_an_example() -> None:
    result = doctor("--help", as_json=False)
    assert result.code == 0
    assert "authmd doctor http://127.0.0.1:8000" in result.stdout
    assert "--probe" in result.stdout and "--json" in result.stdout
