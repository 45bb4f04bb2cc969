"""The browser test infrastructure (tests/browser.py, tests/tls.py) works against real parts: Debian's
Chromium renders a page served over loopback, runs its script, takes clicks, writes screenshots, aborts
and records every non-loopback request; https works with a trustme certificate only on explicit opt-in
(or with that one key trusted); and a human sign-in at the real OpenID provider (tests/oidc_server.py)
completes in the browser, its web-font import blocked, ending at the client's redirect URI with code,
state and iss."""

# The fixtures are imported into this module (tests/conftest.py is not ours to edit); a test parameter
# named like an imported fixture is what ruff calls a redefinition (F811).
# ruff: noqa: F811

from __future__ import annotations

import html
import os
import re
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from tests import browser as browser_module
from tests.browser import (
    CHROMIUM_INSTALL_HINT,
    NewContext,
    blocked_requests,
    browser,  # noqa: F401
    is_loopback_url,
    launch_browser,
    new_context,  # noqa: F401
    page,  # noqa: F401
    require_browser,
    screenshot,
)
from tests.oidc_server import (
    OidcProvider,
    OidcProviderFactory,
    expected_claims,
    oidc_provider,  # noqa: F401
    oidc_provider_factory,  # noqa: F401
    pkce_pair,
)
from tests.tls import TlsFiles, tls_files  # noqa: F401

try:
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import Page, expect
except ImportError:  # require_browser() skips (or fails under CI=true) before anything uses them
    pass

INDEX = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>infra check</title>
<link rel="stylesheet" href="https://fonts.example.com/x.css">
<style>body { font-family: sans-serif; } #out { color: #063; }</style>
</head><body>
<h1>Browser infrastructure</h1>
<button id="go" type="button">Press me</button>
<p id="out">waiting</p>
<script src="/app.js"></script>
</body></html>"""

APP_JS = b"""document.getElementById("go").addEventListener("click", async () => {
  const response = await fetch("/api/ping");
  document.getElementById("out").textContent = "clicked: " + (await response.text());
});"""

CALLBACK = """<!DOCTYPE html><html><head><title>callback</title></head>
<body><h1 id="done">signed in</h1><pre id="cookies">{cookies}</pre></body></html>"""


class LoopbackSite:
    """A stdlib HTTP(S) server on 127.0.0.1 in a thread, recording the paths it served."""

    def __init__(self, tls: TlsFiles | None = None) -> None:
        site = self
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.paths.append(self.path)
                path = urlsplit(self.path).path
                if path == "/start":  # like an app's "sign in" link: set state cookies, redirect to the IdP
                    self.send_response(303)
                    self.send_header("Location", parse_qs(urlsplit(self.path).query)["to"][0])
                    self.send_header("Set-Cookie", "lax=1; Path=/; HttpOnly; SameSite=Lax")
                    self.send_header("Set-Cookie", "strict=1; Path=/; HttpOnly; SameSite=Strict")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                cookies = html.escape(self.headers.get("Cookie") or "")
                routes = {
                    "/": ("text/html; charset=utf-8", INDEX),
                    "/app.js": ("text/javascript", APP_JS),
                    "/api/ping": ("text/plain", b"pong"),
                    "/oidc/callback": ("text/html; charset=utf-8", CALLBACK.format(cookies=cookies).encode()),
                }
                if path not in routes:
                    self.send_error(404)
                    return
                content_type, body = routes[path]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            self.server.socket = tls.server_context().wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.origin = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="loopback-site", daemon=True)

    def __enter__(self) -> LoopbackSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def site() -> Iterator[LoopbackSite]:
    with LoopbackSite() as running:
        yield running


# --- a page over loopback --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_page_renders_clicks_screenshots_and_blocks_the_internet(page: Page, site: LoopbackSite) -> None:
    response = await page.goto(f"{site.origin}/")
    assert response is not None and response.status == 200
    await expect(page.locator("h1")).to_have_text("Browser infrastructure")
    await expect(page.locator("#out")).to_have_text("waiting")
    await page.get_by_role("button", name="Press me").click()
    await expect(page.locator("#out")).to_have_text("clicked: pong")

    path = await screenshot(page, "browser infra/after click")
    assert path == browser_module.SCREENSHOT_DIR / "browser_infra_after_click.png"
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert path.stat().st_size > 1000

    assert blocked_requests(page) == ["https://fonts.example.com/x.css"]
    assert site.paths == ["/", "/app.js", "/api/ping"] or sorted(site.paths) == sorted(
        ["/", "/app.js", "/api/ping", "/favicon.ico"]
    )


@pytest.mark.anyio
async def test_navigation_off_machine_is_aborted(new_context: NewContext) -> None:
    guarded = await new_context()
    page = await guarded.new_page()
    with pytest.raises(PlaywrightError, match="ERR_BLOCKED_BY_CLIENT"):
        await page.goto("https://example.com/")
    assert guarded.blocked == ["https://example.com/"]
    assert blocked_requests(guarded.context) is guarded.blocked


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8000/", True),
        ("http://127.1.2.3/x", True),
        ("http://[::1]:9000/a", True),
        ("http://localhost:5000/", True),
        ("https://LOCALHOST./", True),
        ("http://app.localhost/", True),
        ("ws://127.0.0.1:8000/socket", True),
        ("data:text/css,body{}", True),
        ("about:blank", True),
        ("https://fonts.googleapis.com/css?family=Roboto", False),
        ("http://localhost.example.com/", False),
        ("http://127.0.0.1.nip.io/", False),
        ("http://10.0.0.1/", False),
        ("http://[::ffff:8.8.8.8]/", False),
        ("http://0.0.0.0:8000/", False),
        ("ftp://127.0.0.1/", False),
        ("file:///etc/passwd", False),
    ],
)
def test_is_loopback_url(url: str, allowed: bool) -> None:
    assert is_loopback_url(url) is allowed


# --- https -----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_https_needs_an_explicit_opt_in(new_context: NewContext, tls_files: TlsFiles) -> None:
    with LoopbackSite(tls_files) as site:
        # httpx: trusted through the CA as an SSLContext (httpx 0.28 deprecates verify="<path>")
        with httpx.Client(verify=tls_files.client_context(), timeout=10) as client:
            assert client.get(f"{site.origin}/api/ping").text == "pong"
        with httpx.Client(timeout=10) as client, pytest.raises(httpx.ConnectError):
            client.get(f"{site.origin}/api/ping")

        strict = await (await new_context()).new_page()
        with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
            await strict.goto(f"{site.origin}/")

        lenient = await (await new_context(ignore_https_errors=True)).new_page()
        await lenient.goto(f"{site.origin}/")
        await expect(lenient.locator("h1")).to_have_text("Browser infrastructure")


@pytest.mark.anyio
async def test_https_with_only_the_test_key_trusted(anyio_backend: str, tls_files: TlsFiles) -> None:
    require_browser()
    from tests.browser import GuardedContext

    with LoopbackSite(tls_files) as site:
        async with launch_browser(extra_args=[tls_files.chromium_trust_arg()]) as chromium:
            guarded = await GuardedContext.open(chromium)
            page = await guarded.new_page()
            await page.goto(f"{site.origin}/")
            await expect(page.locator("h1")).to_have_text("Browser infrastructure")
            assert guarded.blocked == ["https://fonts.example.com/x.css"]
            await guarded.close()


def test_tls_files_are_pem_for_loopback_names(tls_files: TlsFiles) -> None:
    from cryptography import x509

    chain = x509.load_pem_x509_certificates(tls_files.cert.read_bytes())
    (ca,) = x509.load_pem_x509_certificates(tls_files.ca_cert.read_bytes())
    assert len(chain) == 1
    chain[0].verify_directly_issued_by(ca)
    names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert tls_files.ca_cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert tls_files.key.stat().st_mode & 0o077 == 0


# --- a human sign-in at the real provider ----------------------------------------------------------


@pytest.mark.anyio
async def test_sign_in_at_the_oidc_provider_in_the_browser(
    page: Page, site: LoopbackSite, oidc_provider: OidcProvider
) -> None:
    client = oidc_provider.register_client([f"{site.origin}/oidc/callback"])
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    login = "unverified+Heidi@Example.com"

    await page.goto(oidc_provider.authorize_url(client, code_challenge=challenge, state=state, nonce=nonce))
    await page.locator('input[name="login"]').fill(login)
    await page.locator('input[name="password"]').fill("whatever")
    await screenshot(page, "oidc-provider-login-form")
    await page.get_by_role("button", name="Sign-in").click()
    await page.wait_for_url(f"{site.origin}/oidc/callback?**")
    await expect(page.locator("#done")).to_have_text("signed in")

    params = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    assert params["state"] == state
    assert params["iss"] == oidc_provider.issuer
    # the provider's page imports Google web fonts: aborted, never fetched
    assert blocked_requests(page)
    assert all(urlsplit(url).hostname == "fonts.googleapis.com" for url in blocked_requests(page))

    response = oidc_provider.exchange_code(params["code"], verifier, client)
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["id_token"], options={"verify_signature": False})
    assert (claims["nonce"], claims["sub"]) == (nonce, login)
    # the email claims come from UserInfo (the provider's default, conformant placement)
    info = oidc_provider.userinfo(response.json()["access_token"]).json()
    assert {k: info.get(k) for k in ("sub", "email", "email_verified")} == {
        k: expected_claims(login).get(k) for k in ("sub", "email", "email_verified")
    }

    # the browser kept the provider's SSO session (its cookies work over plain http): no form the second time
    _, challenge2 = pkce_pair()
    await page.goto(oidc_provider.authorize_url(client, code_challenge=challenge2, state="again"))
    await page.wait_for_url(f"{site.origin}/oidc/callback?**")
    assert parse_qs(urlsplit(page.url).query)["state"] == ["again"]
    cookie_names = {cookie["name"] for cookie in await page.context.cookies(oidc_provider.issuer)}
    assert "oidcp_session" in cookie_names


def app_cookie_names(cookie_text: str) -> set[str]:
    return {part.split("=", 1)[0].strip() for part in cookie_text.split(";") if part.strip()} - {""}


@pytest.mark.anyio
@pytest.mark.parametrize(("issuer_host", "strict_survives"), [("127.0.0.1", True), ("localhost", False)])
async def test_same_site_between_app_and_provider_depends_on_the_issuer_host(
    page: Page,
    site: LoopbackSite,
    oidc_provider_factory: OidcProviderFactory,
    issuer_host: str,
    strict_survives: bool,
) -> None:
    """127.0.0.1:A and 127.0.0.1:B are the same site (ports do not count), so an app's SameSite=Strict
    state cookie survives the round trip through a provider on 127.0.0.1, though it would not between real
    domains. With the provider's issuer on ``localhost`` the two are cross-site, as in production: the
    Strict cookie is withheld on the return navigation, the Lax one is sent."""
    provider = oidc_provider_factory([f"{site.origin}/oidc/callback"], issuer_host=issuer_host)
    assert urlsplit(provider.issuer).hostname == issuer_host
    _, challenge = pkce_pair()
    authorize = provider.authorize_url(code_challenge=challenge, state="st")
    await page.goto(f"{site.origin}/start?{urlencode({'to': authorize})}")
    await page.locator('input[name="login"]').fill("ivan@example.com")
    await page.locator('input[name="password"]').fill("pw")
    await page.get_by_role("button", name="Sign-in").click()
    await page.wait_for_url(f"{site.origin}/oidc/callback?**")
    assert parse_qs(urlsplit(page.url).query)["iss"] == [provider.issuer]
    sent = app_cookie_names(await page.locator("#cookies").inner_text())
    # the provider's own cookies are host-wide too: on 127.0.0.1 the app receives them (hence oidcp_* names)
    assert {name for name in sent if not name.startswith("oidcp_")} == (
        {"lax", "strict"} if strict_survives else {"lax"}
    )
    assert any(name.startswith("oidcp_") for name in sent) is (issuer_host == "127.0.0.1")


# --- require_browser -------------------------------------------------------------------------------


def test_require_browser_passes_when_installed() -> None:
    require_browser()  # the usual rule first: skip here (fail under CI=true) if something is missing
    require_browser(env={"CI": "true"})  # present: neither skip nor fail


@pytest.mark.parametrize("env", [{}, {"CI": "false"}])
def test_require_browser_skips_outside_ci_when_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]
) -> None:
    monkeypatch.setattr(browser_module, "CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_browser(env=env)
    missing = tmp_path / "no-chromium"
    assert str(skipped.value) == f"chromium not found at {missing}; install it with: {CHROMIUM_INSTALL_HINT}"
    assert CHROMIUM_INSTALL_HINT == "apt-get install -y chromium"


def test_require_browser_fails_in_ci_when_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Chromium "present" (any executable file), playwright absent: the message names playwright alone,
    # whether or not this machine has Chromium.
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setattr(browser_module, "CHROMIUM", str(fake))
    monkeypatch.setattr(browser_module, "_playwright_installed", lambda: False)
    with pytest.raises(pytest.fail.Exception) as failed:
        require_browser(env={"CI": "true"})
    assert str(failed.value) == "playwright not found; install it with: pip install playwright"


def test_require_browser_names_both_parts_when_both_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(browser_module, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setattr(browser_module, "_playwright_installed", lambda: False)
    with pytest.raises(pytest.fail.Exception) as failed:
        require_browser(env={"CI": "true"})
    assert str(failed.value) == (
        f"chromium not found at {tmp_path / 'no-chromium'}; install it with: {CHROMIUM_INSTALL_HINT}; "
        "playwright not found; install it with: pip install playwright"
    )


@pytest.mark.skipif(os.environ.get("TESTS_CHROMIUM_PATH") is not None, reason="this is the inner run")
@pytest.mark.parametrize("ci", ["", "true"])
def test_browser_tests_without_chromium(tmp_path: Path, ci: str) -> None:
    """The README's test command on a machine without Chromium, for real: this file and a page test run in
    a child pytest with the browser path pointing at a missing file. Outside CI everything that needs the
    browser skips with the install line and the rest passes; under CI=true each of them fails instead."""
    env = {**os.environ, "TESTS_CHROMIUM_PATH": str(tmp_path / "no-chromium"), "CI": ci}
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", __file__],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = child.stdout
    summary = out.strip().splitlines()[-1]
    if ci:
        assert child.returncode == 1, out
        assert re.search(r"\b\d+ failed\b", summary), summary
        assert f"chromium not found at {tmp_path / 'no-chromium'}; install it with: apt-get install -y chromium" in out
    else:
        assert child.returncode == 0, out
        assert "failed" not in summary and "error" not in summary, summary
        assert re.search(r"\b\d+ passed\b", summary) and re.search(r"\b\d+ skipped\b", summary), summary
        assert "install it with: apt-get install -y chromium" in out  # the skip line says how to install it
