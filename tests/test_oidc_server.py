"""The real OpenID Connect provider (tests/oidc_server.py + tests/oidc/provider.mjs) behaves like one:
discovery, a full authorization-code flow with S256 PKCE over plain HTTP (RFC 9207 `iss` in the response,
an RS256 ID token verified against the JWKS carrying the nonce), the email claims from UserInfo (the
default, conformant placement) or in the ID token too (``claims_in_id_token``), the UserInfo overrides and
faults the relying party's failure paths use, PKCE enforced (missing challenge, wrong verifier), exact
redirect URI matching, both client authentication methods, dynamic client registration for app servers
on their own ports, and a clean stop."""

# The fixtures are imported into this module (tests/conftest.py is not ours to edit); a test parameter
# named like an imported fixture is what ruff calls a redefinition (F811).
# ruff: noqa: F811

from __future__ import annotations

import secrets
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
import pytest

from tests import oidc_server
from tests.oidc_server import (
    INSTALL_HINT,
    OidcClient,
    OidcProvider,
    OidcProviderError,
    OidcProviderFactory,
    alogin_via_http,
    expected_claims,
    login_via_http,
    oidc_provider,  # noqa: F401
    oidc_provider_claims_in_id_token,  # noqa: F401
    oidc_provider_each_placement,  # noqa: F401
    oidc_provider_factory,  # noqa: F401
    pkce_pair,
    require_node,
)


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def verify_id_token(provider: OidcProvider, client: OidcClient, id_token: str) -> dict[str, Any]:
    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256"
    keys = jwt.PyJWKSet.from_dict(provider.jwks())
    key = next(k for k in keys.keys if k.key_id == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key=key.key,
        algorithms=["RS256"],
        audience=client.client_id,
        issuer=provider.issuer,
        options={"require": ["iss", "sub", "aud", "exp", "iat"]},
    )
    return claims


SCOPED_CLAIMS = ("email", "email_verified", "name")  # what the email and profile scopes ask for


def sign_in(provider: OidcProvider, client: OidcClient, login: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A whole code flow over plain HTTP; returns (token response, verified ID token claims)."""
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    url = provider.authorize_url(client, code_challenge=challenge, state=state, nonce=nonce)
    with httpx.Client(timeout=10) as browser:
        redirect = login_via_http(browser, url, login)
    assert redirect.startswith(client.redirect_uri + "?")
    params = query_of(redirect)
    assert params["state"] == state
    assert params["iss"] == provider.issuer
    response = provider.exchange_code(params["code"], verifier, client)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"].lower() == "bearer"
    claims = verify_id_token(provider, client, tokens["id_token"])
    assert claims["nonce"] == nonce
    return tokens, claims


def userinfo(provider: OidcProvider, tokens: dict[str, Any]) -> dict[str, Any]:
    response = provider.userinfo(tokens["access_token"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def seen_by_a_client(provider: OidcProvider, client: OidcClient, login: str) -> dict[str, Any]:
    """The claims a relying party learns from a sign-in: the ID token's, then UserInfo's for the rest."""
    tokens, claims = sign_in(provider, client, login)
    info = userinfo(provider, tokens)
    assert info["sub"] == claims["sub"]
    return {**info, **claims}


# --- discovery -------------------------------------------------------------------------------------


def test_discovery_document(oidc_provider: OidcProvider) -> None:
    issuer = oidc_provider.issuer
    assert issuer == f"http://127.0.0.1:{oidc_provider.port}"
    response = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == issuer
    assert metadata["authorization_endpoint"] == f"{issuer}/auth"
    assert metadata["token_endpoint"] == f"{issuer}/token"
    assert metadata["jwks_uri"] == f"{issuer}/jwks"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert set(metadata["scopes_supported"]) == {"openid", "email", "profile"}
    assert {"email", "email_verified"} <= set(metadata["claims_supported"])
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"client_secret_basic", "client_secret_post"} <= set(metadata["token_endpoint_auth_methods_supported"])
    jwks = oidc_provider.jwks()
    assert [(k["kty"], k.get("alg"), k.get("use")) for k in jwks["keys"]] == [("RSA", "RS256", "sig")]
    assert "d" not in jwks["keys"][0]  # public part only


def test_default_client_of_the_shared_provider(oidc_provider: OidcProvider) -> None:
    assert oidc_provider.client_id == "authmd-test"
    assert oidc_provider.client.redirect_uris == (oidc_server.DEFAULT_REDIRECT_URI,)
    assert oidc_provider.client_secret == oidc_provider.client.client_secret
    assert len(oidc_provider.client_secret) >= 32


# --- the authorization-code flow -------------------------------------------------------------------


ALICE = {"sub": "alice@example.com", "email": "alice@example.com", "email_verified": True, "name": "alice"}


def test_by_default_the_email_claims_come_from_userinfo_only(oidc_provider: OidcProvider) -> None:
    """oidc-provider's default (conformIdTokenClaims: true, OIDC Core §5.4): with an access token issued, the
    scope-requested claims are not in the ID token; the UserInfo endpoint has them."""
    assert oidc_provider.claims_in_id_token is False
    tokens, claims = sign_in(oidc_provider, oidc_provider.client, "alice@example.com")
    assert claims["sub"] == "alice@example.com"
    assert not set(SCOPED_CLAIMS) & set(claims), claims
    assert tokens["scope"] == "openid email profile"
    assert userinfo(oidc_provider, tokens) == ALICE
    # UserInfo needs that access token as a Bearer token (RFC 6750 §3.1: 401 invalid_token, 400 without one)
    wrong = oidc_provider.userinfo("not-a-token")
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    bare = httpx.get(oidc_provider.metadata()["userinfo_endpoint"], timeout=10)
    assert bare.status_code == 400 and bare.headers["www-authenticate"].startswith("Bearer")


def test_claims_in_id_token_puts_them_in_both(oidc_provider_claims_in_id_token: OidcProvider) -> None:
    provider = oidc_provider_claims_in_id_token
    tokens, claims = sign_in(provider, provider.client, "alice@example.com")
    assert {k: claims.get(k) for k in ALICE} == ALICE
    assert userinfo(provider, tokens) == ALICE


@pytest.mark.parametrize(
    "login",
    ["unverified+bob@example.com", "Carol@Example.COM", "dave", "unverified+Erin@Example.org"],
)
def test_login_convention(oidc_provider_each_placement: OidcProvider, login: str) -> None:
    provider = oidc_provider_each_placement
    claims = seen_by_a_client(provider, provider.client, login)
    expected = expected_claims(login)
    assert {k: claims.get(k) for k in ("sub", "email", "email_verified", "name")} == {
        "sub": expected["sub"],
        "email": expected.get("email"),
        "email_verified": expected.get("email_verified"),
        "name": expected["name"],
    }
    if login == "unverified+bob@example.com":
        assert claims["email"] == "bob@example.com"
        assert claims["email_verified"] is False
    if login == "dave":
        assert "email" not in claims and "email_verified" not in claims


def test_wrong_pkce_verifier_is_refused(oidc_provider: OidcProvider) -> None:
    verifier, challenge = pkce_pair()
    url = oidc_provider.authorize_url(code_challenge=challenge, state="s1", nonce="n1")
    with httpx.Client(timeout=10) as browser:
        code = query_of(login_via_http(browser, url, "alice@example.com"))["code"]
    wrong, _ = pkce_pair()
    response = oidc_provider.exchange_code(code, wrong)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    missing = oidc_provider.exchange_code(code, "")
    assert missing.status_code == 400
    assert verifier != wrong


def test_authorization_request_without_pkce_is_refused(oidc_provider: OidcProvider) -> None:
    client = oidc_provider.client
    url = httpx.URL(
        oidc_provider.metadata()["authorization_endpoint"],
        params={
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "scope": "openid email",
            "state": "st",
        },
    )
    response = httpx.get(url, timeout=10)
    assert response.is_redirect
    params = query_of(response.headers["location"])
    assert response.headers["location"].startswith(client.redirect_uri + "?")
    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]
    assert params["state"] == "st"
    assert params["iss"] == oidc_provider.issuer


def test_unregistered_redirect_uri_is_refused_without_redirecting(oidc_provider: OidcProvider) -> None:
    _, challenge = pkce_pair()
    url = oidc_provider.authorize_url(
        code_challenge=challenge, state="s", redirect_uri="http://127.0.0.1:8001/oidc/callback"
    )
    response = httpx.get(url, timeout=10)
    assert response.status_code == 400
    assert '<span id="error">invalid_redirect_uri</span>' in response.text
    with httpx.Client(timeout=10) as browser, pytest.raises(OidcProviderError, match="unexpected response 400"):
        login_via_http(browser, url, "alice@example.com")


def test_code_is_single_use(oidc_provider: OidcProvider) -> None:
    verifier, challenge = pkce_pair()
    url = oidc_provider.authorize_url(code_challenge=challenge, state="s")
    with httpx.Client(timeout=10) as browser:
        code = query_of(login_via_http(browser, url, "alice@example.com"))["code"]
    assert oidc_provider.exchange_code(code, verifier).status_code == 200
    again = oidc_provider.exchange_code(code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_session_cookie_skips_the_form_until_prompt_login(oidc_provider: OidcProvider) -> None:
    """The provider's SSO session lives in its (oidcp_*) cookies: a second request signs in without the form,
    prompt=login forces it again."""
    _, challenge = pkce_pair()
    with httpx.Client(timeout=10) as browser:
        login_via_http(browser, oidc_provider.authorize_url(code_challenge=challenge, state="a"), "alice@example.com")
        assert {c.name for c in browser.cookies.jar} >= {"oidcp_session"}
        assert not any(c.name.startswith("_") for c in browser.cookies.jar)
        second = browser.get(oidc_provider.authorize_url(code_challenge=challenge, state="b"))
        assert second.is_redirect
        assert second.headers["location"].startswith(oidc_provider.client.redirect_uri + "?")
        assert "code" in query_of(second.headers["location"])
        forced = browser.get(oidc_provider.authorize_url(code_challenge=challenge, state="c", prompt="login"))
        assert forced.is_redirect
        assert "/interaction/" in forced.headers["location"]
        # and the cookie set by the interaction is not Secure (plain http) and SameSite=Lax
        interaction = browser.get(urljoin(oidc_provider.issuer, forced.headers["location"]))
        assert interaction.status_code == 200
        assert 'name="login"' in interaction.text
        cookie_headers = forced.headers.get_list("set-cookie")
        assert cookie_headers
        assert all("samesite=lax" in h.lower() and "secure" not in h.lower() for h in cookie_headers)


# --- clients ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_registered_client_for_an_app_on_its_own_port(oidc_provider: OidcProvider) -> None:
    app_origin = "http://127.0.0.1:45678"
    client = oidc_provider.register_client([f"{app_origin}/oidc/callback"])
    assert client in oidc_provider.clients
    verifier, challenge = pkce_pair()
    url = oidc_provider.authorize_url(client, code_challenge=challenge, state="st", nonce="nn")
    async with httpx.AsyncClient(timeout=10) as browser:
        redirect = await alogin_via_http(browser, url, "frank@example.com")
    assert redirect.startswith(f"{app_origin}/oidc/callback?")
    params = query_of(redirect)
    response = oidc_provider.exchange_code(params["code"], verifier, client)
    assert response.status_code == 200, response.text
    claims = verify_id_token(oidc_provider, client, response.json()["id_token"])
    assert (claims["sub"], claims["nonce"]) == ("frank@example.com", "nn")
    assert userinfo(oidc_provider, response.json())["email"] == "frank@example.com"
    # the default client may not redeem another client's code
    assert oidc_provider.exchange_code(params["code"], verifier).status_code in (400, 401)


def test_registration_needs_the_initial_access_token(oidc_provider: OidcProvider) -> None:
    response = httpx.post(
        f"{oidc_provider.issuer}/reg",
        json={"redirect_uris": ["http://127.0.0.1:1/cb"], "client_id": "intruder"},
        headers={"Authorization": "Bearer wrong"},
        timeout=10,
    )
    assert response.status_code == 401


def test_private_provider_with_client_secret_post_and_claim_overrides(
    oidc_provider_factory: OidcProviderFactory,
) -> None:
    provider = oidc_provider_factory(
        ["http://127.0.0.1:8000/oidc/callback"],
        client_id="my-app",
        client_secret="my-secret-value",
        token_endpoint_auth_method="client_secret_post",
        accounts={"grace@example.com": {"email": "Grace.Other@Example.com", "name": None}},
    )
    assert (provider.client_id, provider.client_secret) == ("my-app", "my-secret-value")
    claims = seen_by_a_client(provider, provider.client, "grace@example.com")
    assert claims["sub"] == "grace@example.com"
    assert claims["email"] == "Grace.Other@Example.com"
    assert "name" not in claims
    # oidc-provider treats client_secret_basic and client_secret_post as interchangeable: a client registered
    # with one may authenticate with the other (an app under test may use either).
    verifier, challenge = pkce_pair()
    url = provider.authorize_url(code_challenge=challenge, state="s")
    with httpx.Client(timeout=10) as browser:
        code = query_of(login_via_http(browser, url, "grace@example.com"))["code"]
    basic = OidcClient("my-app", "my-secret-value", provider.client.redirect_uris, "client_secret_basic")
    assert provider.exchange_code(code, verifier, basic).status_code == 200


def test_issuer_on_localhost(oidc_provider_factory: OidcProviderFactory) -> None:
    provider = oidc_provider_factory(["http://127.0.0.1:8000/oidc/callback"], issuer_host="localhost")
    assert provider.issuer == f"http://localhost:{provider.port}"
    assert provider.metadata()["issuer"] == provider.issuer
    assert provider.metadata()["authorization_endpoint"] == f"{provider.issuer}/auth"
    claims = seen_by_a_client(provider, provider.client, "judy@example.com")
    assert (claims["iss"], claims["email"]) == (provider.issuer, "judy@example.com")


def test_userinfo_overrides_and_a_provider_without_userinfo(oidc_provider_factory: OidcProviderFactory) -> None:
    """``userinfo_claims`` changes the UserInfo response only (even its ``sub``, as no conformant provider
    would); ``userinfo=False`` removes the endpoint, and the claims then go in the ID token."""
    redirect = ["http://127.0.0.1:8000/oidc/callback"]
    other = oidc_provider_factory(redirect, userinfo_claims={"kim@example.com": {"sub": "someone-else"}})
    tokens, claims = sign_in(other, other.client, "kim@example.com")
    assert claims["sub"] == "kim@example.com"
    assert userinfo(other, tokens) == {**expected_claims("kim@example.com"), "sub": "someone-else"}

    none = oidc_provider_factory(redirect, userinfo=False)
    assert "userinfo_endpoint" not in none.metadata()
    _, claims = sign_in(none, none.client, "kim@example.com")
    expected = expected_claims("kim@example.com")
    assert {k: claims.get(k) for k in SCOPED_CLAIMS} == {k: expected[k] for k in SCOPED_CLAIMS}


def test_signed_userinfo_for_a_client_that_asks(oidc_provider_factory: OidcProviderFactory) -> None:
    provider = oidc_provider_factory(["http://127.0.0.1:8000/oidc/callback"], userinfo_signed_response_alg="RS256")
    assert "RS256" in provider.metadata()["userinfo_signing_alg_values_supported"]
    tokens, _ = sign_in(provider, provider.client, "lee@example.com")
    response = provider.userinfo(tokens["access_token"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/jwt")
    keys = jwt.PyJWKSet.from_dict(provider.jwks())
    signed = jwt.decode(response.text, key=keys.keys[0].key, algorithms=["RS256"], audience=provider.client_id)
    assert (signed["iss"], signed["sub"], signed["email"]) == (provider.issuer, "lee@example.com", "lee@example.com")


@pytest.mark.parametrize(
    ("fault", "answer"),
    [
        ({"status": 503}, (503, "")),
        ({"body": "{not json", "content_type": "application/json"}, (200, "{not json")),
    ],
)
def test_userinfo_faults_answer_as_configured(
    oidc_provider_factory: OidcProviderFactory, fault: dict[str, Any], answer: tuple[int, str]
) -> None:
    provider = oidc_provider_factory(["http://127.0.0.1:8000/oidc/callback"], userinfo_fault=fault)
    tokens, claims = sign_in(provider, provider.client, "mo@example.com")  # the rest of the provider works
    assert claims["sub"] == "mo@example.com"
    response = provider.userinfo(tokens["access_token"])
    assert (response.status_code, response.text) == answer


def test_userinfo_faults_that_never_answer(oidc_provider_factory: OidcProviderFactory) -> None:
    redirect = ["http://127.0.0.1:8000/oidc/callback"]
    reset = oidc_provider_factory(redirect, userinfo_fault={"reset": True})
    with pytest.raises(httpx.RemoteProtocolError):
        reset.userinfo("any")
    hang = oidc_provider_factory(redirect, userinfo_fault={"hang": True})
    with pytest.raises(httpx.ReadTimeout):  # a watchdog, not a measurement: the endpoint never answers
        httpx.get(hang.metadata()["userinfo_endpoint"], timeout=0.5)
    assert hang.stop() == 0  # the hanging connection does not keep the provider from stopping


def test_wrong_client_secret_is_refused(oidc_provider: OidcProvider) -> None:
    verifier, challenge = pkce_pair()
    url = oidc_provider.authorize_url(code_challenge=challenge, state="s")
    with httpx.Client(timeout=10) as browser:
        code = query_of(login_via_http(browser, url, "alice@example.com"))["code"]
    impostor = OidcClient(oidc_provider.client_id, "not-the-secret", oidc_provider.client.redirect_uris)
    response = oidc_provider.exchange_code(code, verifier, impostor)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


# --- lifecycle -------------------------------------------------------------------------------------


def refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_stop_is_clean_and_leaves_nothing(tmp_path: Path) -> None:
    require_node()
    client = OidcClient.new(["http://127.0.0.1:8000/oidc/callback"])
    with OidcProvider([client], directory=tmp_path / "op") as provider:
        port = provider.port
        assert provider.is_running
        assert "READY " + provider.issuer in provider.log_path.read_text()
        assert provider.stop() == 0  # SIGTERM → exit 0
        assert not provider.is_running
    assert refuses(port)


def test_start_failure_reports_the_log(tmp_path: Path) -> None:
    require_node()
    bad = OidcClient("c", "s", ("not a url",))
    provider = OidcProvider([bad], directory=tmp_path / "bad")
    with pytest.raises(OidcProviderError, match="oidc provider exited"):
        provider.start()
    assert not provider.is_running
    assert "redirect_uris" in provider.log_path.read_text()


# --- require_node ----------------------------------------------------------------------------------


def test_require_node_passes_when_installed() -> None:
    require_node(need_npm=True)  # the usual rule first: skip here (fail under CI=true) if they are missing
    require_node(env={"CI": "true"}, need_npm=True)  # present: neither skip nor fail
    assert oidc_server.NODE is not None and oidc_server.NPM is not None


@pytest.mark.parametrize("env", [{}, {"CI": "false"}, {"CI": ""}])
def test_require_node_skips_outside_ci_when_missing(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.setattr(oidc_server, "NODE", None)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_node(env=env)
    assert str(skipped.value) == f"node not found; install it with: {INSTALL_HINT}"


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_require_node_fails_in_ci_when_missing(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setattr(oidc_server, "NODE", "/nonexistent/node")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_node(env={"CI": ci})
    assert str(failed.value) == "node not found; install it with: apt-get install -y nodejs npm"


def test_require_node_needs_npm_only_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oidc_server, "NODE", sys.executable)  # any executable: node itself is not the point
    monkeypatch.setattr(oidc_server, "NPM", None)
    require_node(env={"CI": "true"}, need_npm=False)
    with pytest.raises(pytest.fail.Exception, match=r"^npm not found; install it with: apt-get install"):
        require_node(env={"CI": "true"}, need_npm=True)


def test_npm_dependency_is_pinned_and_installed(oidc_provider: OidcProvider) -> None:
    assert oidc_server.npm_deps_installed()
    locked = oidc_server.OIDC_NPM.locked_version()
    assert locked is not None and locked.startswith("8.")
