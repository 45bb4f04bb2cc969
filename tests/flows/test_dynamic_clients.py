"""RFC 7591 dynamic client registration (``dcr_enabled``): the answer, the checks and their errors, the
flood limit (also under a concurrent burst), and deletion of clients left unused."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Harness, HarnessFactory
from tests.flows.test_authorize import REDIRECT, Browser, approved, authorize_url, pkce, redeem

pytestmark = pytest.mark.anyio

NATIVE = {
    "client_name": "Notes Desktop",
    "redirect_uris": [REDIRECT],
    "grant_types": ["authorization_code", "refresh_token"],
}


@contextlib.asynccontextmanager
async def enabled(harness_factory: HarnessFactory, **overrides: Any) -> AsyncIterator[Harness]:
    async with harness_factory(dcr_enabled=True, **overrides) as h:
        yield h


async def register(h: Harness, body: Any) -> Any:
    return await h.client.post(f"{h.settings.issuer}/oauth2/register", json=body)


async def test_off_by_default_and_not_in_the_metadata(harness_factory):
    async with harness_factory() as h:
        meta = (await h.client.get(f"{h.settings.issuer}/.well-known/oauth-authorization-server")).json()
        assert "registration_endpoint" not in meta
        r = await register(h, NATIVE)
        assert (r.status_code, r.json()["error"]) == (404, "not_found")


async def test_a_native_client_registers_and_connects(harness_factory):
    async with enabled(harness_factory) as h:
        meta = (await h.client.get(f"{h.settings.issuer}/.well-known/oauth-authorization-server")).json()
        assert meta["registration_endpoint"] == f"{h.settings.issuer}/oauth2/register"
        r = await register(h, {**NATIVE, "token_endpoint_auth_method": "client_secret_post", "logo_uri": "x"})
        assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
        body = r.json()
        assert body["client_id"].startswith("dcr_") and "client_secret" not in body
        # RFC 7591 §3.2.1: what the server replaced is said in the answer.
        assert body["token_endpoint_auth_method"] == "none" and body["application_type"] == "native"
        assert body["redirect_uris"] == [REDIRECT] and body["response_types"] == ["code"]
        verifier, challenge = pkce()
        browser = Browser(h.client, h.settings.issuer)
        got = await approved(h, browser, authorize_url(h, client_id=body["client_id"], code_challenge=challenge))
        tokens = await redeem(h, got["code"], verifier, client_id=body["client_id"])
        assert tokens.status_code == 200 and tokens.json()["refresh_token"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([REDIRECT], "invalid_client_metadata"),
        ({"client_name": "x"}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://a.example/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["noscheme/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": [f"https://a.example/{i}" for i in range(11)]}, "invalid_redirect_uri"),
        ({"redirect_uris": [REDIRECT], "application_type": "tv"}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "grant_types": ["refresh_token"]}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "response_types": ["token"]}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "client_name": "\u202eevil"}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "client_name": "x" * 500}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "client_name": 7}, "invalid_client_metadata"),
    ],
)
async def test_bad_metadata_is_refused_and_not_counted(harness_factory, body, error):
    async with enabled(harness_factory, dcr_limit_per_source=1) as h:
        r = await register(h, body)
        assert (r.status_code, r.json()["error"]) == (400, error), r.text
        # Nothing was counted against the source: its one registration is still there to make.
        assert (await register(h, NATIVE)).status_code == 201


async def test_a_web_client_may_not_redirect_to_localhost_outside_dev_mode(harness_factory):
    """In dev mode http is allowed anywhere; the rule itself is checked on the pure function."""
    from app.errors import AuthError
    from app.flows.dynamic_clients import _redirect_uris

    with pytest.raises(AuthError) as refused:
        _redirect_uris({"redirect_uris": [REDIRECT], "application_type": "web"}, dev_mode=False)
    assert refused.value.code == "invalid_redirect_uri"
    assert _redirect_uris({"redirect_uris": [REDIRECT]}, dev_mode=False) == ([REDIRECT], "native")
    assert _redirect_uris({"redirect_uris": ["com.example.app:/cb"]}, dev_mode=False)[1] == "native"
    assert _redirect_uris({"redirect_uris": ["https://a.example/cb", REDIRECT]}, dev_mode=True)[1] == "web"
    with pytest.raises(AuthError):
        _redirect_uris({"redirect_uris": ["http://a.example/cb"]}, dev_mode=False)


async def test_a_registration_flood_is_cut_at_the_limit_even_in_a_burst(harness_factory):
    async with enabled(harness_factory, dcr_limit_per_source=3) as h:
        answers = await asyncio.gather(*(register(h, NATIVE) for _ in range(12)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [201] * 3 + [429] * 9
        refused = next(r for r in answers if r.status_code == 429)
        assert refused.json()["error"] == "rate_limit_exceeded" and int(refused.headers["retry-after"]) > 0
        h.clock.advance(2 * h.settings.rate_window_seconds)
        assert (await register(h, NATIVE)).status_code == 201


async def test_a_client_unused_for_its_days_is_gone_and_each_use_renews_it(harness_factory):
    async with enabled(harness_factory, dcr_unused_days=30) as h:
        day = 86_400
        unused = (await register(h, NATIVE)).json()["client_id"]
        used = (await register(h, NATIVE)).json()["client_id"]
        h.clock.advance(20 * day)
        verifier, challenge = pkce()
        got = await approved(
            h, Browser(h.client, h.settings.issuer), authorize_url(h, client_id=used, code_challenge=challenge)
        )
        assert (await redeem(h, got["code"], verifier, client_id=used)).status_code == 200
        h.clock.advance(15 * day)  # day 35: the unused one is gone, the used one lives until day 50
        for client_id, status in ((unused, 401), (used, 303)):
            r = await h.client.get(
                authorize_url(h, client_id=client_id, code_challenge=challenge), follow_redirects=False
            )
            assert r.status_code == status, (client_id, r.text)
        h.clock.advance(16 * day)  # day 51
        r = await h.client.get(authorize_url(h, client_id=used, code_challenge=challenge), follow_redirects=False)
        assert r.status_code == 401
