"""RFC 7009 revocation semantics and RFC 7662 introspection with client_secret_basic."""

from __future__ import annotations

import base64

import pytest

from app import events as ev
from app.config import IntrospectionClient, Secret
from app.keys import hash_secret

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-introspection-password"


async def _revoke(h, token: str | None, **extra: str):
    data = {"token": token, **extra} if token is not None else extra
    r = await h.client.post(f"{h.settings.issuer}/oauth2/revoke", data=data)
    return r


async def test_revoking_an_access_token_kills_only_that_token(harness):
    agent = harness.agent()
    reg, token = await agent.start()
    other = (await agent.token(reg["identity"]["assertion"]))["access_token"]
    r = await _revoke(harness, token, token_type_hint="access_token")
    assert r.status_code == 200 and r.content == b"" and r.headers["cache-control"] == "no-store"
    assert (await agent.api("GET", "/notes", token)).status_code == 401
    assert (await agent.api("GET", "/notes", other)).status_code == 200
    assert (await _revoke(harness, token)).status_code == 200  # idempotent


async def test_revoking_the_assertion_of_a_temporary_account_deletes_it(harness):
    agent = harness.agent()
    reg, token = await agent.start()
    await agent.api("POST", "/notes", token, json={"text": "x"})
    # a wrong hint does not matter: the token's own type decides
    assert (await _revoke(harness, reg["identity"]["assertion"], token_type_hint="access_token")).status_code == 200
    assert (await agent.api("GET", "/notes", token)).status_code == 401
    assert (await agent.token(reg["identity"]["assertion"], expect=400))["error"] == "invalid_grant"
    conn = harness.ctx.store.conn
    assert conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 0
    events = [e for e in await harness.ctx.store.events() if isinstance(e, ev.AccountDeleted)]
    assert len(events) == 1 and events[0].by == "agent" and events[0].notes == 1
    assert (await _revoke(harness, reg["identity"]["assertion"])).status_code == 200
    assert len([e for e in await harness.ctx.store.events() if isinstance(e, ev.AccountDeleted)]) == 1


async def test_unknown_invalid_and_forged_tokens_get_the_same_200(harness):
    agent = harness.agent()
    reg, token = await agent.start()
    h, p, s = token.split(".")
    for junk in ("nope", "a.b.c", f"{h}.{p}.{s[:-2]}xx", reg["claim"]["token"]):
        r = await _revoke(harness, junk)
        assert (r.status_code, r.content) == (200, b"")
    assert (await agent.api("GET", "/notes", token)).status_code == 200
    r = await _revoke(harness, None)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def test_introspection(harness_factory):
    clients = [IntrospectionClient(client_id="api-gw", client_secret=Secret(hash_secret(SECRET)))]
    async with harness_factory(introspection_clients=clients) as h:
        agent = h.agent()
        url = f"{h.settings.issuer}/oauth2/introspect"
        _, token = await agent.start()
        for headers in (
            {},
            _basic("api-gw", "wrong-secret-000000"),
            _basic("other", SECRET),
            {"Authorization": "Basic !!!"},
        ):
            r = await h.client.post(url, data={"token": token}, headers=headers)
            assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
            assert r.headers["www-authenticate"].startswith("Basic ")
        r = await h.client.post(url, data={"token": token}, headers=_basic("api-gw", SECRET))
        body = r.json()
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        assert body["active"] is True and body["scope"] == "notes:read notes:write"
        assert body["aud"] == h.settings.resource and body["iss"] == h.settings.issuer
        assert body["sub"].startswith("acct_") and body["client_id"].startswith("reg_")
        # second call takes the memoised path; still correct
        r = await h.client.post(url, data={"token": "garbage"}, headers=_basic("api-gw", SECRET))
        assert r.json() == {"active": False}
        await _revoke(h, token)
        r = await h.client.post(url, data={"token": token}, headers=_basic("api-gw", SECRET))
        assert r.json() == {"active": False}
        r = await h.client.post(url, data={}, headers=_basic("api-gw", SECRET))
        assert (r.status_code, r.json()["error"]) == (400, "invalid_request")


async def test_an_unknown_client_id_costs_the_same_slow_check_as_a_wrong_secret(harness_factory, monkeypatch):
    """Whether or not the client id exists, the presented secret goes through one scrypt check of the
    same cost (the same parameters), so timing does not tell which client ids exist."""
    from app.flows import clients as client_auth

    stored = hash_secret(SECRET)
    checked: list[str] = []

    def spy(secret: str, against: str) -> bool:
        checked.append(against)
        return revoke_verify(secret, against)

    revoke_verify = client_auth.verify_secret
    monkeypatch.setattr(client_auth, "verify_secret", spy)
    clients = [IntrospectionClient(client_id="api-gw", client_secret=Secret(stored))]
    async with harness_factory(introspection_clients=clients) as h:
        url = f"{h.settings.issuer}/oauth2/introspect"
        for headers in (_basic("api-gw", "wrong-secret-000000"), _basic("nobody", "wrong-secret-000000")):
            r = await h.client.post(url, data={"token": "x"}, headers=headers)
            assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
    assert len(checked) == 2 and checked[0] == stored
    params = [h.split("$")[:4] for h in checked]
    assert params[0] == params[1] and params[0][0] == "scrypt"


async def test_the_form_is_read_after_the_client_is_authenticated(harness_factory):
    """RFC 7662 §2.1: an unauthenticated caller gets invalid_client, even for a malformed form; the
    same form from the client is refused for its own fault. Revocation names its own RFC."""
    clients = [IntrospectionClient(client_id="api-gw", client_secret=Secret(hash_secret(SECRET)))]
    async with harness_factory(introspection_clients=clients) as h:
        url = f"{h.settings.issuer}/oauth2/introspect"
        twice = "token=a&token=b"
        form = {"content-type": "application/x-www-form-urlencoded"}
        r = await h.client.post(url, content=twice, headers=form)
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
        r = await h.client.post(url, content=twice, headers={**form, **_basic("api-gw", SECRET)})
        assert (r.status_code, r.json()["error_description"]) == (400, "the token parameter appears more than once")
        r = await h.client.post(url, content="", headers={**form, **_basic("api-gw", SECRET)})
        assert r.json()["error_description"] == "token is missing (RFC 7662 §2.1)"
        r = await h.client.post(f"{h.settings.issuer}/oauth2/revoke", content="", headers=form)
        assert r.json()["error_description"] == "token is missing (RFC 7009 §2.1)"
        r = await h.client.post(
            f"{h.settings.issuer}/oauth2/revoke", content="token=x&token_type_hint=a&token_type_hint=b", headers=form
        )
        assert (r.status_code, r.content) == (200, b"")  # the hint is never read, so never refused
