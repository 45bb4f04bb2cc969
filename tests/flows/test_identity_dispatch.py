"""POST /agent/identity: one decode into the tagged union, a table {type → handler}, and the refusals
worded as they always were (each pinned here, body by body)."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from app.flows import discover
from app.routes.identity import GRANTS, REQUESTS, grants
from app.wire import Registration
from tests.flows.test_idjag import ISSUER, attested

pytestmark = pytest.mark.anyio

CONTRACT = "the JSON body does not match the contract: "
NEEDS_TYPE = 'the body needs a `type`, e.g. {"type": "anonymous"}'


def test_every_member_of_the_union_has_a_handler_and_every_handler_a_member() -> None:
    assert set(GRANTS) == set(REQUESTS) == {"anonymous", "service_auth", "identity_assertion", "refresh"}
    assert set(REQUESTS.values()) == set(get_args(Registration))


async def test_every_advertised_type_has_a_handler(harness_factory: Any, provider: Any) -> None:
    async with attested(harness_factory, provider) as h:
        advertised = set(discover.identity_types(h.ctx))
        assert advertised == {"anonymous", "service_auth", "identity_assertion"}
        # The handlers are what is advertised, plus refresh (renewing a grant is not a way to register).
        assert set(grants(h.ctx)) == advertised | {"refresh"}
    async with harness_factory() as h:
        assert "identity_assertion" not in grants(h.ctx)
        assert set(discover.identity_types(h.ctx)) <= set(grants(h.ctx))


async def test_a_handled_type_turned_off_names_its_own_refusal(harness_factory: Any) -> None:
    """anonymous and service_auth keep their handler when turned off: the handler says why, instead of
    the generic "unsupported registration type"."""
    async with harness_factory(anonymous_enabled=False) as h:
        r = await h.client.post(f"{ISSUER}/agent/identity", json={"type": "anonymous"})
        assert r.json()["error"] == "anonymous_registration_disabled"
    async with harness_factory(claim_methods=["identity_assertion"]) as h:  # service_auth claims turned off
        assert "service_auth" not in discover.identity_types(h.ctx)
        r = await h.client.post(f"{ISSUER}/agent/identity", json={"type": "service_auth", "login_hint": "a@b.c"})
        assert r.json()["error"] == "service_auth_registration_disabled"


UNSUPPORTED = "unsupported registration type {!r}; supported: anonymous, service_auth"
REFUSALS = [
    (b"{}", NEEDS_TYPE),
    (b'{"type":null}', NEEDS_TYPE),
    (b'{"type":5}', CONTRACT + "Expected `str | null`, got `int` - at `$.type`"),
    (b'{"type":"login_hint"}', UNSUPPORTED.format("login_hint")),  # an alias at the claim endpoint only
    (b'{"type":"x"}', UNSUPPORTED.format("x")),
    # No provider is trusted: a well-formed and an ill-formed ID-JAG body are both simply unsupported.
    (b'{"type":"identity_assertion","assertion_type":"u","assertion":"a"}', UNSUPPORTED.format("identity_assertion")),
    (b'{"type":"identity_assertion"}', UNSUPPORTED.format("identity_assertion")),
    (b"[1]", CONTRACT + "Expected `object`, got `array`"),
    (b'"s"', CONTRACT + "Expected `object`, got `str`"),
    (b"{", "the body is not valid JSON"),
    (b'{"type":"service_auth","login_hint":5}', CONTRACT + "Expected `str | null`, got `int` - at `$.login_hint`"),
    (b'{"login_hint":5,"type":"service_auth"}', CONTRACT + "Expected `str | null`, got `int` - at `$.login_hint`"),
    (b'{"type":"anonymous","agent":[]}', CONTRACT + "Expected `object | null`, got `array` - at `$.agent`"),
    (b'{"type":"refresh"}', CONTRACT + "Object missing required field `refresh_token`"),
    # A repeated `type`: the last one names the struct, whose own decode refuses the first.
    (b'{"type":"anonymous","type":"refresh"}', CONTRACT + "Invalid value 'anonymous' - at `$.type`"),
    (
        b'{"type":"anonymous","x":' + b"[" * 40 + b"]" * 40 + b"}",
        "the JSON body nests arrays or objects deeper than 32 levels",
    ),
]


@pytest.mark.parametrize(("body", "description"), REFUSALS)
async def test_refusals_keep_their_words(harness: Any, body: bytes, description: str) -> None:
    r = await harness.client.post(
        f"{ISSUER}/agent/identity", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert r.json()["error_description"] == description


async def test_a_body_that_is_not_json_media_type_is_refused_before_decoding(harness: Any) -> None:
    r = await harness.client.post(f"{ISSUER}/agent/identity", content=b"{}", headers={"content-type": "text/plain"})
    assert r.json()["error"] == "unsupported_media_type"
