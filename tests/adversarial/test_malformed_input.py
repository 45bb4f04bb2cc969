"""Malformed input is a 4xx, never a 500 (issue 10): bodies nested thousands deep, bytes that are not
what their encoding says, and values that cannot travel in a header, against the real server on both
stores. Each answer is the documented error, the server logs no unhandled exception, and nothing
changes."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import pytest

from app.wire import MAX_JSON_DEPTH
from tests.e2e.common import JWT_BEARER, assert_error, bearer
from tests.e2e.conftest import ServerProcess, StartServer
from tests.oidc_server import OidcProvider, login_via_http

pytestmark = pytest.mark.e2e

JSON_ENDPOINTS = (
    "/agent/identity",
    "/agent/identity/claim",
    "/agent/identity/claim/complete",
    "/agent/identity/claim/status",
    "/api/notes",
)
DEV = {"AUTHMD_POW_MODE": "off"}


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


def no_unhandled_errors(server: ServerProcess) -> None:
    log = server.read_log()
    assert "unhandled" not in log and "Traceback" not in log, log


def access_token(http: httpx.Client, server: ServerProcess) -> str:
    reg = http.post(f"{server.issuer}/agent/identity", json={"type": "anonymous"})
    assert reg.status_code == 200, reg.text
    form = {"grant_type": JWT_BEARER, "assertion": reg.json()["identity"]["assertion"]}
    tok = http.post(f"{server.issuer}/oauth2/token", data=form)
    assert tok.status_code == 200, tok.text
    return str(tok.json()["access_token"])


def post_json(http: httpx.Client, url: str, body: bytes, headers: Mapping[str, str] | None = None) -> httpx.Response:
    return http.post(url, content=body, headers={"Content-Type": "application/json", **(headers or {})})


def test_json_nested_thousands_deep_is_refused_on_every_json_endpoint(
    start_server: StartServer, http: httpx.Client, store_env: dict[str, str]
) -> None:
    server = start_server({**DEV, **store_env})
    auth = bearer(access_token(http, server))
    # Inside an unknown field (which the decoder skips by recursing) and as the whole body; ~60 KB.
    bodies = (b'{"type":"anonymous","x":' + nested(30_000) + b"}", nested(30_000))
    for path in JSON_ENDPOINTS:
        for body in bodies:
            r = post_json(http, f"{server.issuer}{path}", body, auth if path == "/api/notes" else None)
            error = assert_error(r, 400, "invalid_request")
            assert f"deeper than {MAX_JSON_DEPTH}" in error["error_description"], (path, error)
    assert http.get(f"{server.issuer}/api/notes", headers=auth).json()["count"] == 0  # nothing was created
    no_unhandled_errors(server)


def test_the_nesting_limit_counts_structure_not_brackets_in_strings(
    start_server: StartServer, http: httpx.Client, store_env: dict[str, str]
) -> None:
    server = start_server({**DEV, **store_env})
    auth = bearer(access_token(http, server))
    # The whole body is one level, so an unknown field may nest MAX_JSON_DEPTH - 1 levels more.
    at_limit = b'{"type":"anonymous","future":' + nested(MAX_JSON_DEPTH - 1) + b"}"
    over = b'{"type":"anonymous","future":' + nested(MAX_JSON_DEPTH) + b"}"
    assert post_json(http, f"{server.issuer}/agent/identity", at_limit).status_code == 200
    error = assert_error(post_json(http, f"{server.issuer}/agent/identity", over), 400, "invalid_request")
    assert error["error_description"] == f"the JSON body nests arrays or objects deeper than {MAX_JSON_DEPTH} levels"
    # Brackets and escaped quotes inside strings are text, however many.
    text = '[{"\\' * 200
    r = http.post(f"{server.issuer}/api/notes", json={"text": text}, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["text"] == text
    no_unhandled_errors(server)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe{}",  # not UTF-8
        b'{"type":"anonymous"',  # truncated
        b'{"type":"\\ud800"}',  # a lone surrogate
        b'{"type":' + b"9" * 5000 + b',"claim_token":' + b"9" * 5000 + b"}",  # integers of 5,000 digits
        b"[" * 40 + b'"unterminated',
        b'{"type":' + b'"\\"' * 20_000,  # an unterminated string full of escaped quotes
        b"NaN",
        b"null",
    ],
    ids=["empty", "not-utf8", "truncated", "surrogate", "huge-int", "open-brackets", "open-string", "nan", "null"],
)
def test_undecodable_json_is_invalid_request(
    start_server: StartServer, http: httpx.Client, store_env: dict[str, str], body: bytes
) -> None:
    server = start_server({**DEV, **store_env})
    for path in JSON_ENDPOINTS[:4]:
        assert_error(post_json(http, f"{server.issuer}{path}", body), 400, "invalid_request")
    no_unhandled_errors(server)


def dev_sign_in_form(http: httpx.Client, server: ServerProcess, return_to: str) -> dict[str, str]:
    page = http.get(f"{server.issuer}/login", params={"return_to": return_to})
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    return {"csrf": csrf.group(1), "email": "ada@example.com", "return_to": return_to}


def test_a_return_to_that_is_not_latin_1_is_percent_encoded_in_the_location(
    start_server: StartServer, store_env: dict[str, str]
) -> None:
    """RFC 9110 §5.5: a field value is octets; a URI reference carries non-ASCII only
    percent-encoded (RFC 3986 §2.1, RFC 3987 §3.1)."""
    server = start_server({**DEV, **store_env})
    with httpx.Client(timeout=10.0) as browser:
        form = dev_sign_in_form(browser, server, "/account?q=€ ✓")
        r = browser.post(f"{server.issuer}/login/dev", data=form)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/account?q=" + quote("€ ✓")
        # Signed in already: /login redirects at once, with the same encoding.
        r = browser.get(f"{server.issuer}/login", params={"return_to": "/account#日本"})
        assert r.status_code == 303 and r.headers["location"] == "/account#" + quote("日本")
        # Control characters (header injection) and other hosts are still refused outright.
        for bad in ("/account\r\nSet-Cookie: x=y", "//evil.example/€", "/\\evil.example"):
            r = browser.get(f"{server.issuer}/login", params={"return_to": bad})
            assert r.status_code == 303 and r.headers["location"] == "/account", bad
    no_unhandled_errors(server)


def test_a_state_that_is_not_ascii_and_a_return_to_that_is_not_latin_1_at_the_real_provider(
    start_server: StartServer, oidc_provider: OidcProvider, store_env: dict[str, str]
) -> None:
    client_id, secret = f"authmd-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    env = {"AUTHMD_OIDC_ISSUER": oidc_provider.issuer, "AUTHMD_OIDC_CLIENT_ID": client_id}
    server = start_server({**DEV, **store_env, **env, "AUTHMD_OIDC_CLIENT_SECRET": secret})
    oidc_provider.register_client([f"{server.origin}/oidc/callback"], client_id=client_id, client_secret=secret)

    def provider_callback(browser: httpx.Client) -> str:
        r = browser.get(f"{server.issuer}/login", params={"return_to": "/account?q=€"})
        assert r.status_code == 303 and r.headers["location"].startswith(oidc_provider.issuer), r.text
        return login_via_http(browser, r.headers["location"], "ada@example.com")

    with httpx.Client(timeout=10.0) as browser:
        callback = provider_callback(browser)
        query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        forged = f"{server.origin}/oidc/callback?" + urlencode({**query, "state": "é" + query["state"][1:]})
        r = browser.get(forged)
        assert r.status_code == 400 and "state mismatch" in r.text
        r = browser.get(provider_callback(browser))  # a fresh sign-in lands on the encoded path
        assert r.status_code == 303 and r.headers["location"] == "/account?q=" + quote("€")
    no_unhandled_errors(server)


def test_a_csrf_field_that_is_not_ascii_is_refused(start_server: StartServer, store_env: dict[str, str]) -> None:
    server = start_server({**DEV, **store_env})
    with httpx.Client(timeout=10.0) as browser:
        form = dev_sign_in_form(browser, server, "/account")
        r = browser.post(f"{server.issuer}/login/dev", data={**form, "csrf": "é" + form["csrf"][1:]})
        assert r.status_code == 400 and "this form has expired" in r.text
        assert browser.get(f"{server.issuer}/account").headers.get("location", "").startswith("/login")
    no_unhandled_errors(server)


def test_basic_credentials_that_are_not_ascii_are_invalid_client(
    start_server: StartServer, http: httpx.Client, store_env: dict[str, str]
) -> None:
    server = start_server({**DEV, **store_env})
    for credentials in ("é", "bm90IGJhc2U2NA==é", base64.b64encode(b"\xff\xfe:secret").decode(), "!!!"):
        r = http.post(
            f"{server.issuer}/oauth2/introspect",
            data={"token": "x"},
            headers={b"Authorization": b"Basic " + credentials.encode()},  # UTF-8 bytes on the wire
        )
        assert_error(r, 401, "invalid_client")
        assert r.headers["www-authenticate"].startswith("Basic ")
    no_unhandled_errors(server)


def test_a_security_event_token_with_a_deeply_nested_header_is_refused(
    start_server: StartServer, http: httpx.Client, store_env: dict[str, str]
) -> None:
    server = start_server({**DEV, **store_env})
    header = base64.urlsafe_b64encode(nested(3_000)).rstrip(b"=")
    r = http.post(
        f"{server.issuer}/agent/events",
        content=header + b".e30.c2ln",
        headers={"Content-Type": "application/secevent+jwt"},
    )
    assert r.status_code == 400, r.text
    assert r.json() == {"err": "invalid_request", "description": "the assertion is not a well-formed JWT"}
    no_unhandled_errors(server)
