"""The bytes of responses built from wire structs: member order and members left out, as the dicts
they replaced wrote them (json.loads keeps the order on the wire)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from app.config import IntrospectionClient, Secret
from app.keys import hash_secret

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-introspection-password"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"api-gw:{SECRET}".encode()).decode()}


def order(raw: bytes) -> Any:
    """The members of every object in ``raw``, in the order they were written."""

    def keys(value: Any) -> Any:
        if isinstance(value, dict):
            return [(k, keys(v)) if isinstance(v, dict) else k for k, v in value.items()]
        return value

    return keys(json.loads(raw))


async def test_introspection_members_in_rfc_7662_order(harness_factory: Any) -> None:
    clients = [IntrospectionClient(client_id="api-gw", client_secret=Secret(hash_secret(SECRET)))]
    async with harness_factory(introspection_clients=clients) as h:
        url = f"{h.settings.issuer}/oauth2/introspect"
        _, token = await h.agent().start()
        r = await h.client.post(url, data={"token": token}, headers=BASIC)
        assert order(r.content) == [
            "active", "scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "token_type", "account_type",
        ]  # fmt: skip
        body = r.json()
        assert (body["token_type"], body["account_type"]) == ("Bearer", "temporary")
        assert all(isinstance(body[k], int) for k in ("exp", "iat"))
        r = await h.client.post(url, data={"token": "garbage"}, headers=BASIC)
        assert r.content == b'{"active":false}'


async def test_service_auth_registration_members(harness: Any) -> None:
    r = await harness.client.post(
        f"{harness.settings.issuer}/agent/identity", json={"type": "service_auth", "login_hint": "ada@example.com"}
    )
    assert r.status_code == 200, r.text
    assert order(r.content) == [
        "id",
        "type",
        ("scopes", ["post_claim"]),
        ("claim", ["token", "expires_at", "url", ("attempt", ["verification_uri", "expires_at"])]),
    ]
    assert r.json()["type"] == "service_auth"


async def test_proof_of_work_refusal_carries_a_challenge_in_endpoint_order(harness_factory: Any) -> None:
    async with harness_factory(pow_mode="always", pow_difficulty=8) as h:
        r = await h.client.post(f"{h.settings.issuer}/agent/identity", json={"type": "anonymous"})
        assert r.status_code == 400
        challenge = ("challenge", ["challenge", "algorithm", "difficulty", "expires_at"])
        assert order(r.content) == ["error", "error_description", "message", "hint", challenge]
        fetched = await h.client.post(f"{h.settings.issuer}/agent/identity/challenge")
        assert order(fetched.content) == challenge[1]
        bad = {"type": "anonymous", "proof_of_work": {"challenge": "v1.x", "nonce": "0"}}
        r = await h.client.post(f"{h.settings.issuer}/agent/identity", json=bad)
        assert (r.json()["error"], order(r.content)[-1]) == ("invalid_proof_of_work", challenge)
