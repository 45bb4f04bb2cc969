"""Throwaway TLS for https tests (``trustme``): a private CA and a server certificate for 127.0.0.1,
localhost and ::1, written as PEM files.

    files = make_tls_files(tmp_path / "tls")
    # a server:   uvicorn ... --ssl-certfile files.cert --ssl-keyfile files.key   (or files.server_context())
    # a client:   httpx.Client(verify=files.client_context())

Traps:
* httpx 0.28 deprecates ``verify="<path>"`` (a DeprecationWarning, which pytest's ``filterwarnings = error``
  turns into a failure): pass ``verify=files.client_context()`` (an ``ssl.SSLContext``), not ``files.ca_cert``.
* Chromium does not read a CA file. Either open the browser context with ``ignore_https_errors=True`` (see
  tests/browser.py) or launch it with ``--ignore-certificate-errors-spki-list=<files.spki_sha256>``, which
  trusts only this server key (``launch_browser(extra_args=[files.chromium_trust_arg()])``).

Fixture: ``tls_files`` (session scope; certificates are read-only, so sharing them is safe).
"""

from __future__ import annotations

import base64
import hashlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path  # the CA certificate (PEM): the trust bundle for clients
    cert: Path  # the server certificate chain (PEM; trustme signs the leaf with the CA directly: one cert)
    key: Path  # the server private key (PEM, unencrypted)
    hosts: tuple[str, ...]

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only the test CA (for ``httpx.Client(verify=...)``)."""
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def server_context(self) -> ssl.SSLContext:
        """A server context presenting the test certificate (for ``ssl_context.wrap_socket``)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context

    @property
    def spki_sha256(self) -> str:
        """base64(SHA-256(SubjectPublicKeyInfo)) of the server key, as Chromium's
        ``--ignore-certificate-errors-spki-list`` wants it."""
        leaf = x509.load_pem_x509_certificates(self.cert.read_bytes())[0]
        spki = leaf.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()

    def chromium_trust_arg(self) -> str:
        return f"--ignore-certificate-errors-spki-list={self.spki_sha256}"


def make_tls_files(directory: Path | str, hosts: Sequence[str] = DEFAULT_HOSTS) -> TlsFiles:
    """A fresh CA and a server certificate for ``hosts`` (IP addresses become IP SANs), written to
    ``directory`` as ca.pem, server.pem (chain) and server.key."""
    import trustme  # imported here so a missing trustme only affects the tests that use it

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert(*hosts)
    files = TlsFiles(
        ca_cert=directory / "ca.pem",
        cert=directory / "server.pem",
        key=directory / "server.key",
        hosts=tuple(hosts),
    )
    ca.cert_pem.write_to_path(str(files.ca_cert))
    leaf.private_key_pem.write_to_path(str(files.key))
    with files.cert.open("wb") as chain:
        for blob in leaf.cert_chain_pems:
            chain.write(blob.bytes())
    files.key.chmod(0o600)
    return files


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA + server certificate for 127.0.0.1/localhost/::1, shared by the session (read-only)."""
    pytest.importorskip("trustme", reason="trustme not installed; install it with: pip install trustme")
    return make_tls_files(tmp_path_factory.mktemp("tls"))
