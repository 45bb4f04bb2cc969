"""app/outbound/oidc.py. The sign-in provider's discovery document is kept by the app that fetched it, for
METADATA_TTL_SECONDS of that app's injected clock: a second app in the same process does not see it, and
it ends when the clock says so (against a real OpenID provider, node oidc-provider, stopped midway, so
"kept" means "served with nobody left to ask"). The token endpoint's answer is read like every other
answer, within MAX_DOCUMENT_BYTES (against a real HTTP server that says what the test tells it to)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from app.config import Secret
from app.errors import AuthError
from app.outbound.oidc import MAX_DOCUMENT_BYTES, METADATA_TTL_SECONDS, token_response
from tests.oidc_server import DEFAULT_REDIRECT_URI

pytestmark = pytest.mark.anyio


async def start_sign_in(h: Any) -> httpx.Response:
    """/login: a redirect to the provider needs its discovery document; without one, a 503 page."""
    return await h.client.get("/login", params={"return_to": "/account"}, follow_redirects=False)


def assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503 and "the sign-in provider cannot be reached" in r.text, r.text


async def test_the_discovery_document_is_per_app_and_ends_by_its_clock(
    harness_factory, oidc_provider_factory, tmp_path
):
    provider = oidc_provider_factory([DEFAULT_REDIRECT_URI])
    signin: dict[str, Any] = {
        "oidc_issuer": provider.issuer,
        "oidc_client_id": provider.client_id,
        "oidc_client_secret": Secret(provider.client_secret),
    }
    authorization_endpoint = provider.metadata()["authorization_endpoint"]
    async with harness_factory(**signin) as first:
        r = await start_sign_in(first)
        assert r.status_code == 303 and r.headers["location"].startswith(authorization_endpoint), r.text
        provider.stop()  # from here on, nobody answers at the issuer

        r = await start_sign_in(first)  # the first app still has the document
        assert r.status_code == 303 and r.headers["location"].startswith(authorization_endpoint), r.text
        async with harness_factory(data_dir=str(tmp_path / "second"), **signin) as second:
            assert_unavailable(await start_sign_in(second))  # ... which another app does not share

        first.clock.advance(METADATA_TTL_SECONDS - 1)
        assert (await start_sign_in(first)).status_code == 303  # still within its lifetime
        first.clock.advance(1)
        assert_unavailable(await start_sign_in(first))  # its clock ended it: the app asks again


@contextlib.contextmanager
def token_endpoint(status: int, body: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """A real HTTP server answering every POST with ``status`` and ``body`` (as JSON); the URL and the
    request bodies it received."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token", received
    finally:
        server.shutdown()
        server.server_close()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"id_token": "a.b.c", "token_type": "Bearer"}', {"id_token": "a.b.c", "token_type": "Bearer"}),
        (400, b'{"error": "invalid_grant"}', {"error": "invalid_grant"}),  # RFC 6749 §5.2: errors are JSON too
        (502, b"<html>bad gateway</html>", None),
    ],
    ids=["tokens", "error", "not-json"],
)
async def test_a_token_response_is_its_status_and_json(status: int, body: bytes, expected: Any) -> None:
    with token_endpoint(status, body) as (url, received):
        async with httpx.AsyncClient(trust_env=False) as http:
            assert await token_response(http, url, "grant_type=authorization_code&code=c", FORM) == (status, expected)
    assert received == [b"grant_type=authorization_code&code=c"]


async def test_a_token_response_larger_than_the_limit_is_refused() -> None:
    big = b'{"id_token": "' + b"a" * MAX_DOCUMENT_BYTES + b'"}'
    with token_endpoint(200, big) as (url, _), pytest.raises(AuthError) as err:
        async with httpx.AsyncClient(trust_env=False) as http:
            await token_response(http, url, "grant_type=authorization_code&code=c", FORM)
    assert err.value.code == "invalid_grant"
    assert f"token response is larger than {MAX_DOCUMENT_BYTES} bytes" in err.value.description
