"""The agent loop of issue 2, black-box against the real server process (spec/protocol.md)."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
from typing import Any

import httpx
import pytest

from app.protocol import solve
from tests.e2e.conftest import ServerProcess, StartServer, wait_until

pytestmark = pytest.mark.e2e

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
QUOTA = 5


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def auth_param(header: str, name: str) -> str | None:
    match = re.search(rf'\b{name}="((?:[^"\\]|\\.)*)"', header)
    return match.group(1) if match else None


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert isinstance(body["hint"], str) and body["hint"]
    return body


def assert_no_store(response: httpx.Response) -> None:
    assert "no-store" in response.headers.get("cache-control", ""), response.headers
    assert response.headers.get("pragma") == "no-cache", response.headers


def test_agent_loop_survives_restart(start_server: StartServer, http: httpx.Client) -> None:
    server = start_server({"AUTHMD_POW_MODE": "always", "AUTHMD_POW_DIFFICULTY": "8", "AUTHMD_QUOTA_NOTES": str(QUOTA)})
    issuer = server.issuer

    # 1. The API without a token: 401 pointing at the RFC 9728 metadata (no `error`: no token was sent).
    r = http.get(f"{issuer}/api/notes")
    assert_error(r, 401, "invalid_token")
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Bearer "), challenge
    assert auth_param(challenge, "error") is None, challenge
    prm_url = auth_param(challenge, "resource_metadata")
    assert prm_url == f"{server.origin}/.well-known/oauth-protected-resource/api"

    # 2. Protected-resource metadata names the resource and this issuer.
    r = http.get(prm_url)
    assert r.status_code == 200, r.text
    prm = r.json()
    assert prm["resource"] == f"{issuer}/api"
    assert prm["authorization_servers"] == [issuer]

    # 3. Authorization-server metadata.
    r = http.get(f"{prm['authorization_servers'][0]}/.well-known/oauth-authorization-server")
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["issuer"] == issuer
    agent_auth = meta["agent_auth"]
    endpoints = {
        "token": meta["token_endpoint"],
        "identity": agent_auth["identity_endpoint"],
        "claim": agent_auth["claim_endpoint"],
        "challenge": agent_auth["challenge_endpoint"],
    }
    for name, url in endpoints.items():
        assert isinstance(url, str) and url.startswith(f"{issuer}/"), (name, url)
    assert "anonymous" in agent_auth["identity_types_supported"]
    assert agent_auth["proof_of_work"]["mode"] == "always"

    # 4. auth.md, the prose contract, names the identity endpoint.
    r = http.get(f"{issuer}/auth.md")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/markdown")
    assert endpoints["identity"] in r.text

    # 5. Registration without a proof: 400 with a challenge to solve; nothing is created.
    r = http.post(endpoints["identity"], json={"type": "anonymous"})
    body = assert_error(r, 400, "proof_of_work_required")
    assert isinstance(body["challenge"]["challenge"], str)
    assert body["challenge"]["difficulty"] >= 8

    # 6. Challenge → solve → register.
    r = http.post(endpoints["challenge"])
    assert r.status_code == 200, r.text
    chal = r.json()
    assert chal["algorithm"] == "sha256"
    assert chal["difficulty"] >= 8
    proof = {"challenge": chal["challenge"], "nonce": solve(chal["challenge"], chal["difficulty"])}
    r = http.post(endpoints["identity"], json={"type": "anonymous", "proof_of_work": proof})
    assert r.status_code == 200, r.text
    assert_no_store(r)
    reg = r.json()
    assert reg["type"] == "anonymous"
    assert reg["claim"]["url"] == endpoints["claim"]
    assert reg["account"]["quotas"]["notes"] == QUOTA

    # The same proof does not work twice.
    r = http.post(endpoints["identity"], json={"type": "anonymous", "proof_of_work": proof})
    assert_error(r, 400, "invalid_proof_of_work")

    # 7. Exchange the identity assertion for an access token.
    r = http.post(endpoints["token"], data={"grant_type": JWT_BEARER, "assertion": reg["identity"]["assertion"]})
    assert r.status_code == 200, r.text
    assert_no_store(r)
    tok = r.json()
    assert tok["token_type"] == "Bearer"
    assert type(tok["expires_in"]) in (int, float) and tok["expires_in"] > 0
    assert set(tok["scope"].split()) == {"notes:read", "notes:write"}
    token = tok["access_token"]

    # 8. Notes up to the quota, then quota_exceeded with a hint.
    created = []
    for i in range(QUOTA):
        r = http.post(f"{issuer}/api/notes", json={"text": f"note {i}"}, headers=bearer(token))
        assert r.status_code == 201, r.text
        note = r.json()
        assert note["text"] == f"note {i}"
        created.append(note["id"])
    assert len(set(created)) == QUOTA
    r = http.post(f"{issuer}/api/notes", json={"text": "one too many"}, headers=bearer(token))
    assert_error(r, 403, "quota_exceeded")

    # 9. Deleting needs notes:delete, which only a claimed account has.
    r = http.delete(f"{issuer}/api/notes/{created[0]}", headers=bearer(token))
    body = assert_error(r, 403, "insufficient_scope")
    assert "notes:delete" in body["error_description"]
    assert auth_param(r.headers["www-authenticate"], "scope") == "notes:delete"

    # 10. The list shows every note, none deleted.
    r = http.get(f"{issuer}/api/notes", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert sorted(n["id"] for n in r.json()["notes"]) == sorted(created)
    assert r.json()["count"] == QUOTA

    # 11. Restart on the same port and data directory: the same token still works, the notes are there.
    # uvicorn shuts down gracefully, then re-raises the signal: -SIGTERM (never -SIGKILL from the fixture).
    assert server.restart() in (0, -signal.SIGTERM), "the server did not stop cleanly on SIGTERM"
    r = http.get(f"{issuer}/api/notes", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert sorted(n["id"] for n in r.json()["notes"]) == sorted(created)
    r = http.get(f"{issuer}/api/notes/{created[1]}", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "note 1"
    # And the quota still holds after the restart.
    r = http.post(f"{issuer}/api/notes", json={"text": "still too many"}, headers=bearer(token))
    assert_error(r, 403, "quota_exceeded")


def _store_rows(server: ServerProcess, account_id: str) -> dict[str, Any]:
    """What the SQLite file holds for one account, read through a read-only connection."""
    uri = f"file:{server.db_path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
        one = conn.execute
        return {
            "accounts": one("SELECT count(*) FROM accounts WHERE id = ?", (account_id,)).fetchone()[0],
            "registrations": one("SELECT count(*) FROM registrations WHERE account_id = ?", (account_id,)).fetchone()[
                0
            ],
            "notes": one("SELECT count(*) FROM notes WHERE account_id = ?", (account_id,)).fetchone()[0],
            "events": [
                json.loads(body)
                for (body,) in one("SELECT body FROM events WHERE account_id = ? ORDER BY seq", (account_id,))
            ],
        }


def test_temporary_account_expires_with_everything_it_owns(start_server: StartServer, http: httpx.Client) -> None:
    server = start_server(
        {"AUTHMD_ANONYMOUS_TTL_SECONDS": "2", "AUTHMD_SWEEP_INTERVAL_SECONDS": "0.2", "AUTHMD_POW_MODE": "off"}
    )
    issuer = server.issuer

    r = http.post(f"{issuer}/agent/identity", json={"type": "anonymous"})
    assert r.status_code == 200, r.text
    reg = r.json()
    account_id = reg["account"]["id"]
    assertion = reg["identity"]["assertion"]
    r = http.post(f"{issuer}/oauth2/token", data={"grant_type": JWT_BEARER, "assertion": assertion})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert r.json()["expires_in"] <= 2, "an access token must not outlive its temporary account"
    r = http.post(f"{issuer}/api/notes", json={"text": "soon gone"}, headers=bearer(token))
    assert r.status_code == 201, r.text

    # The API refuses the token once the account has expired.
    def refused() -> httpx.Response | None:
        response = http.get(f"{issuer}/api/notes", headers=bearer(token))
        return response if response.status_code != 200 else None

    r = wait_until(refused, 20.0, "the API to refuse the token of the expired account")
    assert_error(r, 401, "invalid_token")
    assert auth_param(r.headers["www-authenticate"], "error") == "invalid_token"
    assert auth_param(r.headers["www-authenticate"], "resource_metadata") is not None

    # The token endpoint refuses the identity assertion.
    r = http.post(f"{issuer}/oauth2/token", data={"grant_type": JWT_BEARER, "assertion": assertion})
    assert_error(r, 400, "invalid_grant")

    # The sweeper deleted the account with its registration and notes, and audited it.
    def swept() -> dict[str, Any] | None:
        rows = _store_rows(server, account_id)
        return rows if rows["accounts"] == 0 else None

    rows = wait_until(swept, 20.0, "the sweeper to delete the expired account")
    assert rows["registrations"] == 0
    assert rows["notes"] == 0
    events = rows["events"]
    assert [e["type"] for e in events].count("agent_registration.created") == 1, events
    expired = [e for e in events if e["type"] == "account.expired"]
    assert len(expired) == 1, events
    assert (expired[0]["registrations"], expired[0]["notes"]) == (1, 1)
