"""HSTS (issue 10 § 11, RFC 6797): when authmd serves https itself, every response tells browsers to
use https only (so a later plain-http link cannot strip TLS from the claim pages); over plain http the
header is never sent (RFC 6797 §7.2). Behind a TLS-terminating proxy, the proxy sends it (README)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import StartServer
from tests.tls import TlsFiles

pytestmark = [pytest.mark.e2e]

PATHS = ["/healthz", "/.well-known/oauth-authorization-server", "/no-such-page", "/login", "/auth.md"]


def _tls(tls_files: TlsFiles) -> dict[str, str]:
    return {
        "AUTHMD_TLS_CERT_FILE": str(tls_files.cert),
        "AUTHMD_TLS_KEY_FILE": str(tls_files.key),
        "AUTHMD_ISSUER": "{origin}",
    }


def test_https_responses_carry_hsts(start_server: StartServer, tls_files: TlsFiles, store_env: dict[str, str]) -> None:
    server = start_server({**_tls(tls_files), **store_env}, verify=tls_files.client_context())
    with httpx.Client(base_url=server.origin, verify=tls_files.client_context(), timeout=10.0) as client:
        for path in PATHS:
            r = client.get(path)
            assert r.headers.get("strict-transport-security") == "max-age=31536000", (path, r.headers)
        r = client.post("/agent/identity", json={"type": "nonsense"})
        assert r.status_code == 400 and r.headers["strict-transport-security"] == "max-age=31536000"


def test_hsts_is_configurable(start_server: StartServer, tls_files: TlsFiles) -> None:
    env = {**_tls(tls_files), "AUTHMD_HSTS_MAX_AGE_SECONDS": "600", "AUTHMD_HSTS_INCLUDE_SUBDOMAINS": "true"}
    server = start_server(env, verify=tls_files.client_context())
    with httpx.Client(base_url=server.origin, verify=tls_files.client_context(), timeout=10.0) as client:
        assert client.get("/healthz").headers["strict-transport-security"] == "max-age=600; includeSubDomains"
    off = start_server({**_tls(tls_files), "AUTHMD_HSTS_MAX_AGE_SECONDS": "0"}, verify=tls_files.client_context())
    with httpx.Client(base_url=off.origin, verify=tls_files.client_context(), timeout=10.0) as client:
        assert "strict-transport-security" not in client.get("/healthz").headers


def test_plain_http_never_sends_hsts(start_server: StartServer, store_env: dict[str, str]) -> None:
    server = start_server(store_env)
    with httpx.Client(base_url=server.origin, timeout=10.0) as client:
        for path in PATHS:
            assert "strict-transport-security" not in client.get(path).headers, path
