"""The token endpoint's form, parsed once (issue 13): each malformed form is answered with the same
error, in the same order, as when the fields were read one by one. Raw bodies, so that a field can be
sent twice."""

from __future__ import annotations

from urllib.parse import quote

import pytest

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOD = "GOOD"  # replaced by a valid identity assertion
BAD = "not.a.jwt"

pytestmark = pytest.mark.anyio


async def _post(harness, pairs: list[tuple[str, str]]):
    agent = harness.agent()
    reg = await agent.register()
    assertion = reg["identity"]["assertion"]
    body = "&".join(f"{quote(k)}={quote(assertion if v == GOOD else v, safe='')}" for k, v in pairs)
    return await harness.client.post(
        f"{harness.settings.issuer}/oauth2/token",
        content=body.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )


@pytest.mark.parametrize(
    ("pairs", "error", "description"),
    [
        pytest.param([("assertion", GOOD)], "invalid_request", "grant_type is missing", id="missing-grant-type"),
        pytest.param(
            [("grant_type", "client_credentials"), ("assertion", GOOD)],
            "unsupported_grant_type",
            "grant_type 'client_credentials' is not supported here",
            id="unsupported-grant-type",
        ),
        pytest.param(
            [("grant_type", JWT_BEARER), ("grant_type", JWT_BEARER), ("assertion", GOOD)],
            "invalid_request",
            "the grant_type parameter appears more than once",
            id="duplicated-grant-type",
        ),
        pytest.param(
            [("grant_type", "client_credentials"), ("assertion", GOOD), ("assertion", GOOD)],
            "unsupported_grant_type",
            "grant_type 'client_credentials' is not supported here",
            id="grant-type-before-duplicated-assertion",
        ),
        pytest.param(
            [("grant_type", JWT_BEARER)],
            "invalid_request",
            "assertion is missing (RFC 7523 §2.1)",
            id="missing-assertion",
        ),
        pytest.param(
            [("grant_type", JWT_BEARER), ("assertion", "")],
            "invalid_request",
            "assertion is missing (RFC 7523 §2.1)",
            id="empty-assertion",
        ),
        pytest.param(
            [("grant_type", JWT_BEARER), ("assertion", GOOD), ("assertion", GOOD)],
            "invalid_request",
            "the assertion parameter appears more than once",
            id="duplicated-assertion",
        ),
        pytest.param(
            [("grant_type", JWT_BEARER), ("assertion", GOOD), ("resource", "x"), ("resource", "y")],
            "invalid_request",
            "the resource parameter appears more than once",
            id="duplicated-resource",
        ),
        pytest.param(
            [("grant_type", JWT_BEARER), ("assertion", BAD), ("scope", "notes:read"), ("scope", "notes:read")],
            "invalid_grant",
            "the token is not a well-formed JWT",
            id="duplicated-scope-bad-assertion",
        ),
        pytest.param(
            [("grant_type", JWT_BEARER), ("assertion", GOOD), ("scope", "notes:read"), ("scope", "notes:read")],
            "invalid_request",
            "the scope parameter appears more than once",
            id="duplicated-scope-good-assertion",
        ),
    ],
)
async def test_token_form_errors(harness, pairs, error: str, description: str):
    r = await _post(harness, pairs)
    assert r.status_code == 400
    body = r.json()
    assert (body["error"], body["error_description"]) == (error, description)


async def test_unknown_extra_fields_are_ignored(harness):
    r = await _post(
        harness,
        [("grant_type", JWT_BEARER), ("assertion", GOOD), ("client_id", "a"), ("extra", "1"), ("extra", "2")],
    )
    assert r.status_code == 200
    assert r.json()["token_type"].lower() == "bearer"
