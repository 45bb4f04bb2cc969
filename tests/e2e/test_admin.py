"""`authmd admin` as an operator runs it: a separate process, on the data of a running server (same
AUTHMD_* environment), while agents use their tokens against that server."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.common import IDENTITY, JWT_BEARER, NOTES, TOKEN, bearer
from tests.e2e.conftest import ROOT, ServerProcess, StartServer, free_port
from tests.helpers import Agent, DevHuman, claimed
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.e2e


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self) -> Any:
        return json.loads(self.out)  # the whole of stdout is one JSON value

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def admin(server: ServerProcess, *args: str, env: dict[str, str] | None = None) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "app", "admin", *args],
        cwd=ROOT,
        env={**server.environment(), **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Run(proc)


def register(http: httpx.Client, server: ServerProcess, name: str) -> dict[str, Any]:
    body = {"type": "anonymous", "agent": {"name": name, "platform": "pytest"}}
    r = http.post(f"{server.issuer}{IDENTITY}", json=body)
    assert r.status_code == 200, r.text
    reg: dict[str, Any] = r.json()
    return reg


def access_token(http: httpx.Client, server: ServerProcess, assertion: str) -> str:
    r = http.post(f"{server.issuer}{TOKEN}", data={"grant_type": JWT_BEARER, "assertion": assertion})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def notes_status(http: httpx.Client, server: ServerProcess, token: str) -> int:
    return http.get(f"{server.issuer}{NOTES}", headers=bearer(token)).status_code


async def claim_as(server: ServerProcess, email: str) -> tuple[str, str, str]:
    """An anonymous agent claimed by ``email`` through the dev-mode ceremony: (account, registration,
    the agent's new identity assertion)."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(client, server.issuer)
        reg, done = await claimed(agent, DevHuman(client, server.issuer), email)
    return reg["account"]["id"], reg["id"], done["identity"]["assertion"]


def audit(server: ServerProcess, event_type: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(account, registration, the rest) of each event of ``event_type``, in commit order."""
    with sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True) as db:
        rows = [json.loads(body) for (body,) in db.execute("SELECT body FROM events ORDER BY seq").fetchall()]
    common = ("type", "id", "at", "account_id", "registration_id")
    return [
        (e["account_id"], e["registration_id"], {k: v for k, v in e.items() if k not in common and v is not None})
        for e in rows
        if e["type"] == event_type
    ]


@pytest.mark.anyio
async def test_list_show_revoke_and_revoke_all_on_a_running_server(start_server: StartServer) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off"})
    with httpx.Client(timeout=10.0) as http:
        a, b = register(http, server, "agent-a"), register(http, server, "agent-b")
        acct_a, acct_b = a["account"]["id"], b["account"]["id"]
        token_a = access_token(http, server, a["identity"]["assertion"])
        token_b = access_token(http, server, b["identity"]["assertion"])
        r = http.post(f"{server.issuer}{NOTES}", json={"text": "hello"}, headers=bearer(token_b))
        assert r.status_code == 201, r.text
        assert notes_status(http, server, token_a) == notes_status(http, server, token_b) == 200
        acct_c, reg_c, assertion_c = await claim_as(server, "Ada@Example.com")
        token_c = access_token(http, server, assertion_c)
        assert notes_status(http, server, token_c) == 200

        # list: every live account, with its kind, owner, registrations and notes.
        run = admin(server, "list", "--json")
        assert run.code == 0, run
        listing = run.json()
        by_id = {v["id"]: v for v in listing["accounts"]}
        assert listing["next_after"] is None
        assert [v["id"] for v in listing["accounts"]] == sorted(by_id)
        assert by_id[acct_a]["kind"] == "temporary" and by_id[acct_a]["owner_email"] is None
        assert by_id[acct_a]["registrations"] == by_id[acct_a]["active_registrations"] == 1
        assert by_id[acct_b]["notes"] == 1 and by_id[acct_a]["notes"] == 0
        assert by_id[acct_c]["kind"] == "persistent" and by_id[acct_c]["owner_email"] == "ada@example.com"
        own = [v for v in listing["accounts"] if v["owner_email"] == "ada@example.com" and v["id"] != acct_c]
        assert len(own) == 1 and own[0]["registrations"] == 0  # Ada's own account, made at her sign-in
        assert set(by_id) == {acct_a, acct_b, acct_c, own[0]["id"]}
        # Pages of one, walked with --after, give the same accounts in the same order.
        walked, after = [], None
        while True:
            run = admin(server, "list", "--json", "--limit", "1", *(["--after", after] if after else []))
            assert run.code == 0, run
            walked += [v["id"] for v in run.json()["accounts"]]
            after = run.json()["next_after"]
            if after is None:
                break
        assert walked == [v["id"] for v in listing["accounts"]]
        run = admin(server, "list", "--kind", "temporary", "--json")
        assert {v["id"] for v in run.json()["accounts"]} == {acct_a, acct_b}
        run = admin(server, "list")  # the table for humans
        assert run.code == 0 and run.out.splitlines()[0].split()[:3] == ["ID", "KIND", "CREATED"], run
        assert acct_a in run.out and "ada@example.com" in run.out

        # show: by account, by registration, by email.
        run = admin(server, "show", acct_a, "--json")
        assert run.code == 0, run
        shown = run.json()
        assert shown["user"] is None and [v["id"] for v in shown["accounts"]] == [acct_a]
        (reg,) = shown["accounts"][0]["registrations"]
        assert reg["id"] == a["id"] and reg["type"] == "anonymous" and reg["status"] == "active"
        assert reg["agent_name"] == "agent-a" and reg["agent_platform"] == "pytest"
        assert reg["scopes"] == ["notes:read", "notes:write"] and reg["generation"] == 0
        assert reg["revoked_at"] is None and reg["pending"] is False
        run = admin(server, "show", reg_c, "--account", acct_c, "--json")
        assert run.code == 0, run
        (claimed_reg,) = run.json()["accounts"][0]["registrations"]
        assert claimed_reg["id"] == reg_c and claimed_reg["generation"] == 1
        assert claimed_reg["claim"]["status"] == "claimed" and claimed_reg["claim"]["claimed_by"]
        assert "token_hash" not in json.dumps(claimed_reg)
        run = admin(server, "show", "ada@example.com", "--json")
        assert run.code == 0, run
        person = run.json()
        assert person["user"]["email"] == "ada@example.com"
        assert [v["id"] for v in person["accounts"]] == [person["user"]["account_id"], acct_c]
        run = admin(server, "show", "ada@example.com")
        assert run.code == 0 and "claim    claimed by" in run.out and reg_c in run.out, run
        for args, code in (
            (("show", "acct_missing"), 1),
            (("show", "nobody@example.com"), 1),
            (("show", "reg_missing", "--account", acct_a), 1),
            (("show", "agent-a"), 2),  # neither an account id, a registration id nor an email
            (("revoke", "acct_missing"), 1),
            (("list", "--limit", "0"), 2),
            (("frobnicate",), 2),
        ):
            run = admin(server, *args)
            assert run.code == code and run.out == "" and run.err, (args, run)
            run = admin(server, *args, "--json")  # the error is then also the one JSON value on stdout
            assert run.code == code and run.json()["exit"] == code and run.err, (args, run)

        # revoke: A's token dies at its next use on the running server; B's lives on.
        run = admin(server, "revoke", acct_a)
        assert run.code == 0, run
        assert f"revoked {acct_a} {a['id']}" in run.out
        assert notes_status(http, server, token_a) == 401
        assert notes_status(http, server, token_b) == 200
        assert audit(server, "agent_registration.revoked") == [(acct_a, a["id"], {"by": "operator"})]
        [(_, _, action)] = audit(server, "operator.action")
        assert action["action"] == "revoke" and action["operator"]  # who did it
        run = admin(server, "revoke", acct_a)
        assert run.code == 1 and "no live registration" in run.err, run
        run = admin(server, "show", acct_a, "--json")
        (reg,) = run.json()["accounts"][0]["registrations"]
        assert reg["status"] == "revoked" and reg["revoked_at"] is not None

        # revoke-all without --yes: refuses, says what it would do, changes nothing.
        run = admin(server, "revoke-all", "ada@example.com")
        assert run.code == 2 and run.out == "", run
        assert "would revoke 1 grant(s)" in run.err and reg_c in run.err and "--yes" in run.err
        assert notes_status(http, server, token_c) == 200
        assert len(audit(server, "agent_registration.revoked")) == 1
        # With --yes: every grant of every account she owns.
        run = admin(server, "revoke-all", "ada@example.com", "--yes", "--json")
        assert run.code == 0, run
        assert run.json()["revoked"] == [{"account_id": acct_c, "registration_id": reg_c, "type": "anonymous"}]
        assert notes_status(http, server, token_c) == 401
        assert notes_status(http, server, token_b) == 200
        run = admin(server, "revoke-all", "ada@example.com", "--yes")
        assert run.code == 1, run
        # By account id; one registration by id.
        run = admin(server, "revoke", acct_b, b["id"], "--yes")
        assert run.code == 0 and b["id"] in run.out, run
        assert notes_status(http, server, token_b) == 401
        assert [e[1] for e in audit(server, "agent_registration.revoked")] == [a["id"], reg_c, b["id"]]


def test_admin_on_a_redis_store_lists_what_the_server_wrote(
    start_server: StartServer, shared_redis: RedisServer, http: httpx.Client
) -> None:
    prefix = f"adm{uuid.uuid4().hex[:10]}:"
    server = start_server({"AUTHMD_POW_MODE": "off", "AUTHMD_STORE_URL": f"{shared_redis.url}?prefix={prefix}"})
    regs = [register(http, server, f"agent-{i}") for i in range(3)]
    tokens = [access_token(http, server, r["identity"]["assertion"]) for r in regs]
    ids = sorted(r["account"]["id"] for r in regs)
    run = admin(server, "list", "--json")
    assert run.code == 0, run
    assert [v["id"] for v in run.json()["accounts"]] == ids
    # A store written before the listing index existed (or that lost it) is indexed again at the next list.
    assert shared_redis.command("DEL", f"{prefix}{{ids}}:accounts", f"{prefix}{{ids}}:indexed") == 2
    run = admin(server, "list", "--json", "--limit", "2")
    assert run.code == 0, run
    assert [v["id"] for v in run.json()["accounts"]] == ids[:2] and run.json()["next_after"] == ids[1]
    run = admin(server, "revoke", regs[0]["account"]["id"])
    assert run.code == 0, run
    assert notes_status(http, server, tokens[0]) == 401
    assert [notes_status(http, server, t) for t in tokens[1:]] == [200, 200]
    run = admin(server, "revoke-all", regs[1]["account"]["id"])
    assert run.code == 2 and notes_status(http, server, tokens[1]) == 200, run
    run = admin(server, "revoke-all", regs[1]["account"]["id"], "--yes")
    assert run.code == 0 and notes_status(http, server, tokens[1]) == 401, run
    run = admin(server, "show", regs[0]["account"]["id"], "--json")
    assert [r["status"] for r in run.json()["accounts"][0]["registrations"]] == ["revoked"]


def test_exit_codes_for_configuration_and_an_unreachable_store(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off"})
    # Nothing listens there: the store is unavailable.
    run = admin(server, "list", env={"AUTHMD_STORE_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert run.code == 3 and "unavailable" in run.err and run.out == "", run
    # A data directory with no store: a configuration mistake, and nothing is created there.
    empty = tmp_path / "elsewhere"
    run = admin(server, "list", env={"AUTHMD_DATA_DIR": str(empty)})
    assert run.code == 2 and "no store at" in run.err, run
    assert not empty.exists()
    run = admin(server, "list", "--config", str(tmp_path / "missing.toml"))
    assert run.code == 2 and "not found" in run.err, run
    run = admin(server, "list", env={"AUTHMD_POW_MODE": "sometimes"})
    assert run.code == 2 and "configuration error" in run.err, run
    # The store itself is fine and empty.
    run = admin(server, "list", "--json")
    assert run.code == 0 and run.json() == {"accounts": [], "next_after": None}, run
