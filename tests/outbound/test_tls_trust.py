"""Outbound https trust (app/outbound/http.py tls_trust): certifi's CAs and the system's, and a private
CA the operator names in ``SSL_CERT_FILE``, with proxies never taken from the environment."""

from __future__ import annotations

import httpx
import pytest

from app.outbound.http import tls_trust
from tests.outbound.test_cimd import Host, running
from tests.tls import TlsFiles

pytestmark = pytest.mark.anyio


async def test_a_private_ca_is_trusted_only_when_ssl_cert_file_names_it(
    tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(Host(), tls_files.server_context()) as host:
        host.serve({"ok": True}, "/doc.json")
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        async with httpx.AsyncClient(verify=tls_trust(), trust_env=False) as plain:
            with pytest.raises(httpx.ConnectError):
                await plain.get(host.url("/doc.json"))
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_cert))
        async with httpx.AsyncClient(verify=tls_trust(), trust_env=False) as trusting:
            r = await trusting.get(host.url("/doc.json"))
            assert r.status_code == 200 and r.json() == {"ok": True}
