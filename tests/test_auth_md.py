"""/auth.md is a contract: every named JSON example in it has the keys and value types of the real
response (tokens and times differ). The test fails on an example it does not know, so no new example
can go unchecked. Also: content negotiation, caching headers and the exact issuer string."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from markdown_it import MarkdownIt

from tests.conftest import Harness, HarnessFactory
from tests.helpers import Agent, DevHuman, claimed

pytestmark = pytest.mark.anyio

EXAMPLE_INFO = re.compile(r"^json example=(\S+)$")

Fetch = Callable[[Harness], Awaitable[httpx.Response]]


def named_examples(markdown: str) -> dict[str, Any]:
    """The fenced blocks whose info string is `json example=NAME`, parsed, by name (names are unique)."""
    found: dict[str, Any] = {}
    for token in MarkdownIt("commonmark").parse(markdown):
        if token.type != "fence" or not token.info.startswith("json example="):
            continue
        match = EXAMPLE_INFO.match(token.info.strip())
        assert match, f"malformed example info string {token.info!r}"
        name = match.group(1)
        assert name not in found, f"example {name!r} appears twice in /auth.md"
        found[name] = json.loads(token.content)
    return found


def shape(value: Any) -> Any:
    """Keys (recursively) and JSON value types; a list is described by the shape of its first element."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    assert isinstance(value, str), type(value)
    return "string"


# ---- the real responses, one per example name ------------------------------------------------------


async def _auth_md(h: Harness, **headers: str) -> httpx.Response:
    return await h.client.get(f"{h.settings.issuer_str}/auth.md", headers=headers)


async def as_metadata(h: Harness) -> httpx.Response:
    return await h.client.get(f"{h.settings.issuer_str}/.well-known/oauth-authorization-server")


async def protected_resource_metadata(h: Harness) -> httpx.Response:
    # Found the way an agent finds it: from the 401 of the API.
    r = await h.agent().api("GET", "/notes", None)
    assert r.status_code == 401
    url = re.search(r'resource_metadata="([^"]+)"', r.headers["www-authenticate"])
    assert url, r.headers["www-authenticate"]
    return await h.client.get(url.group(1))


async def challenge(h: Harness) -> httpx.Response:
    return await h.client.post(f"{h.settings.issuer_str}/agent/identity/challenge")


async def registration(h: Harness) -> httpx.Response:
    return await h.client.post(f"{h.settings.issuer_str}/agent/identity", json={"type": "anonymous"})


async def proof_of_work_required(h: Harness) -> httpx.Response:
    # pow_free_per_source=1: the first registration is free, the second needs a proof.
    assert (await registration(h)).status_code == 200
    return await registration(h)


async def token(h: Harness) -> httpx.Response:
    reg = await h.agent().register()
    return await h.client.post(
        f"{h.settings.issuer_str}/oauth2/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": reg["identity"]["assertion"]},
    )


async def note(h: Harness) -> httpx.Response:
    _, access = await h.agent().start()
    return await h.agent().api("POST", "/notes", access, json={"text": "hello"})


async def notes(h: Harness) -> httpx.Response:
    _, access = await h.agent().start()
    assert (await h.agent().api("POST", "/notes", access, json={"text": "hello"})).status_code == 201
    return await h.agent().api("GET", "/notes", access)


async def quota_exceeded(h: Harness) -> httpx.Response:
    # quota_notes=1
    _, access = await h.agent().start()
    assert (await h.agent().api("POST", "/notes", access, json={"text": "one"})).status_code == 201
    return await h.agent().api("POST", "/notes", access, json={"text": "two"})


async def invalid_token(h: Harness) -> httpx.Response:
    _, access = await h.agent().start()
    assert (await h.agent().api("GET", "/notes", access)).status_code == 200
    h.clock.advance(h.settings.access_token_ttl_seconds + 1)
    return await h.agent().api("GET", "/notes", access)


async def rate_limited(h: Harness) -> httpx.Response:
    # register_limit_per_source=1
    assert (await registration(h)).status_code == 200
    r = await registration(h)
    assert r.headers.get("retry-after", "").isdigit(), r.headers
    return r


def _human(h: Harness) -> tuple[Agent, DevHuman]:
    return h.agent(), DevHuman(h.client, h.settings.issuer_str)


class _Json:
    """A JSON body already read through the test agent, in the shape the fetchers return."""

    def __init__(self, body: Any, status: int = 200) -> None:
        self.status_code = status
        self.headers = {"content-type": "application/json"}
        self.text = json.dumps(body)
        self._body = body

    def json(self) -> Any:
        return self._body


async def service_auth_registration(h: Harness) -> Any:
    return await h.client.post(
        f"{h.settings.issuer_str}/agent/identity", json={"type": "service_auth", "login_hint": "ada@example.com"}
    )


async def claim_attempt(h: Harness) -> Any:
    agent = h.agent()
    reg = await agent.register()
    return await agent.post_json(
        "/agent/identity/claim", {"type": "service_auth", "claim_token": reg["claim"]["token"], "login_hint": "a@b.c"}
    )


async def claim_status(h: Harness) -> Any:
    agent, human = _human(h)
    reg = await agent.register()
    attempt = await agent.start_claim(reg["claim"]["token"], "ada@example.com")
    await human.authorize(await human.open_link(attempt["attempt"]["verification_uri"], "ada@example.com"))
    return await agent.post_json("/agent/identity/claim/status", {"claim_token": reg["claim"]["token"]})


async def claim_not_confirmed(h: Harness) -> Any:
    agent = h.agent()
    reg = await agent.register()
    await agent.start_claim(reg["claim"]["token"], "ada@example.com")
    body = {"claim_token": reg["claim"]["token"], "user_code": "123456"}
    return await agent.post_json("/agent/identity/claim/complete", body)


async def claim_completed(h: Harness) -> Any:
    _reg, done = await claimed(*_human(h))
    return _Json(done)


async def refreshed(h: Harness) -> Any:
    agent, human = _human(h)
    _reg, done = await claimed(agent, human)
    return await agent.post_json(
        "/agent/identity", {"type": "refresh", "refresh_token": done["identity"]["refresh_token"]["value"]}
    )


# name → (settings overrides, fetch, expected status)
EXAMPLES: dict[str, tuple[dict[str, Any], Fetch, int]] = {
    "authorization-server-metadata": ({}, as_metadata, 200),
    "protected-resource-metadata": ({}, protected_resource_metadata, 200),
    "challenge": ({}, challenge, 200),
    "registration": ({}, registration, 200),
    "proof-of-work-required": ({"pow_mode": "adaptive", "pow_free_per_source": 1}, proof_of_work_required, 400),
    "token": ({}, token, 200),
    "note": ({}, note, 201),
    "notes": ({}, notes, 200),
    "quota-exceeded": ({"quota_notes": 1}, quota_exceeded, 403),
    "invalid-token": ({}, invalid_token, 401),
    "rate-limited": ({"register_limit_per_source": 1}, rate_limited, 429),
    "service-auth-registration": ({}, service_auth_registration, 200),
    "claim-attempt": ({}, claim_attempt, 200),
    "claim-status": ({}, claim_status, 200),
    "claim-not-confirmed": ({}, claim_not_confirmed, 409),
    "claim-completed": ({}, claim_completed, 200),
    "refreshed": ({}, refreshed, 200),
}


async def test_every_example_in_auth_md_is_checked(harness: Harness) -> None:
    r = await _auth_md(harness)
    assert r.status_code == 200
    names = set(named_examples(r.text))
    assert names - set(EXAMPLES) == set(), "auth.md has examples this test does not check"
    assert set(EXAMPLES) - names == set(), "examples this test checks are missing from auth.md"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
async def test_example_has_the_shape_of_the_real_response(harness_factory: HarnessFactory, name: str) -> None:
    overrides, fetch, status = EXAMPLES[name]
    async with harness_factory(**overrides) as h:
        examples = named_examples((await _auth_md(h)).text)
        assert name in examples
        real = await fetch(h)
        assert real.status_code == status, real.text
        assert real.headers["content-type"].startswith("application/json")
        assert shape(examples[name]) == shape(real.json())


# ---- negotiation, caching, issuer ------------------------------------------------------------------


async def test_auth_md_negotiates_markdown_and_html(harness: Harness) -> None:
    md = await _auth_md(harness, accept="text/markdown")
    html = await _auth_md(harness, accept="text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
    assert md.status_code == 200 and html.status_code == 200
    assert md.headers["content-type"].startswith("text/markdown")
    assert html.headers["content-type"].startswith("text/html")
    assert "```json example=" in md.text
    assert "<h1>" in html.text and "<pre><code" in html.text
    assert "```" not in html.text
    for r in (md, html):
        assert "accept" in [v.strip().lower() for v in r.headers.get("vary", "").split(",")], r.headers
        assert r.headers.get("etag"), r.headers
        assert r.headers.get("cache-control"), r.headers
    # Two representations, two strong validators (RFC 9110 §8.8.3).
    assert md.headers["etag"] != html.headers["etag"]
    # A bare request gets Markdown (agents first).
    assert (await _auth_md(harness)).headers["content-type"].startswith("text/markdown")


@pytest.mark.parametrize("accept", ["text/markdown", "text/html"])
async def test_auth_md_revalidates_with_its_etag(harness: Harness, accept: str) -> None:
    first = await _auth_md(harness, accept=accept)
    etag = first.headers["etag"]
    again = await _auth_md(harness, accept=accept, **{"if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    changed = await _auth_md(harness, accept=accept, **{"if-none-match": '"something-else"'})
    assert changed.status_code == 200
    assert changed.content == first.content


@pytest.mark.parametrize(
    "path",
    ["/.well-known/oauth-authorization-server", "/.well-known/jwks.json", "/.well-known/oauth-protected-resource/api"],
)
async def test_discovery_documents_carry_etag_and_cache_control(harness: Harness, path: str) -> None:
    # The issuer has no path here, so every document is at the client's base URL (the issuer) + path.
    first = await harness.client.get(harness.settings.issuer_str + path)
    assert first.status_code == 200, first.text
    assert first.headers.get("cache-control"), first.headers
    etag = first.headers["etag"]
    again = await harness.client.get(first.url, headers={"if-none-match": etag})
    assert again.status_code == 304


async def test_issuer_is_one_exact_string(harness: Harness) -> None:
    issuer = harness.settings.issuer_str
    assert issuer == "http://127.0.0.1:8000"
    meta = (await as_metadata(harness)).json()
    assert meta["issuer"] == issuer
    prm = (await protected_resource_metadata(harness)).json()
    assert prm["authorization_servers"] == [issuer]
    examples = named_examples((await _auth_md(harness)).text)
    assert examples["authorization-server-metadata"]["issuer"] == issuer
    assert examples["protected-resource-metadata"]["authorization_servers"] == [issuer]
