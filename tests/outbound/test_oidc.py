"""The sign-in provider's discovery document is kept by the app that fetched it (app/outbound/oidc.py), for
METADATA_TTL_SECONDS of that app's injected clock: a second app in the same process does not see it, and
it ends when the clock says so. Against a real OpenID provider (node oidc-provider, tests/oidc_server.py)
that is stopped midway, so "kept" means "served with nobody left to ask"."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.config import Secret
from app.outbound.oidc import METADATA_TTL_SECONDS
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
