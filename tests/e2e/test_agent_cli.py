"""`authmd agent` as a subprocess against the real server: from a bare API URL to authenticated calls
in one command, the claim with a human (the development sign-in of a dev-mode server), refresh,
revocation, and the errors an agent scripts against (exit codes, --json)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, ServerProcess, StartServer
from tests.helpers import DevHuman

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
TIMEOUT = 60


def agent(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")}
    env["AUTHMD_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "app", "agent", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, f"--json must print exactly one line:\n{result.stdout}\n{result.stderr}"
    value: dict[str, Any] = json.loads(lines[0])
    return value


def stored(home: Path) -> dict[str, Any]:
    files = list(home.glob("*.json"))
    assert len(files) == 1, files
    value: dict[str, Any] = json.loads(files[0].read_text())
    return value


async def human_code(server: ServerProcess, uri: str, email: str) -> str:
    async with httpx.AsyncClient(timeout=10.0) as client:
        human = DevHuman(client, server.issuer)
        page = await human.open_link(uri, email)
        return (await human.authorize(page)).code


def test_one_command_from_an_api_url_to_calls(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server({"AUTHMD_POW_MODE": "always", "AUTHMD_POW_DIFFICULTY": "10"})
    home = tmp_path / "home"
    api = f"{server.issuer}/api/notes"
    reg = agent(home, "register", api, "--json", "--name", "cli-test")
    assert reg.returncode == 0, reg.stderr
    body = as_json(reg)
    assert body["ok"] and body["issuer"] == server.issuer and body["type"] == "anonymous"
    assert body["account"]["type"] == "temporary" and body["scope"] == "notes:read notes:write"
    # The credential file is the owner's alone, and holds no more than it should.
    files = list(home.glob("*.json"))
    assert stat.S_IMODE(home.stat().st_mode) == 0o700 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stored(home)["claim_token"].startswith("clm_")
    contract = Path(body["auth_md"])
    assert contract.parent == home and "identity" in contract.read_text() and server.issuer in contract.read_text()

    created = agent(home, "call", api, "-d", '{"text":"from the cli"}')
    assert created.returncode == 0 and json.loads(created.stdout)["text"] == "from the cli", created.stderr
    listed = as_json(agent(home, "call", api, "--json"))
    assert listed["status"] == 200 and listed["body"]["count"] == 1
    token = agent(home, "token")
    assert token.returncode == 0 and token.stdout.count(".") == 2
    r = httpx.get(api, headers={"Authorization": f"Bearer {token.stdout.strip()}"})
    assert r.status_code == 200

    # A second register reuses the stored registration instead of creating another account.
    again = as_json(agent(home, "register", api, "--json"))
    assert again["reused"] is True and again["registration_id"] == body["registration_id"]
    # A revoked access token: `call` gets a new one once and succeeds, with the stored metadata
    # (no discovery round trips after registration).
    discovered = server.read_log().count("GET /.well-known/oauth-authorization-server")
    httpx.post(f"{server.issuer}/oauth2/revoke", data={"token": stored(home)["access_token"]})
    assert agent(home, "call", api).returncode == 0
    log = server.read_log()
    assert log.count("POST /oauth2/token") >= 2
    assert log.count("GET /.well-known/oauth-authorization-server") == discovered
    status = as_json(agent(home, "status", "--json"))
    assert status["claim_status"] == "pending" and status["registration_id"] == body["registration_id"]

    # Revoke: the temporary account is gone at the service and the file is forgotten.
    kept = stored(home)["access_token"]
    assert agent(home, "revoke").returncode == 0
    assert list(home.glob("*.json")) == [] and not contract.exists()
    assert httpx.get(api, headers={"Authorization": f"Bearer {kept}"}).status_code == 401
    nothing = agent(home, "token", "--json")
    assert nothing.returncode == 5 and as_json(nothing)["ok"] is False
    # --new registers a second time even with a live credential.
    agent(home, "register", api)
    second = as_json(agent(home, "register", api, "--new", "--json"))
    assert second.get("reused") is None


async def test_claim_then_refresh_with_the_cli(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off"})
    home = tmp_path / "home"
    api = f"{server.issuer}/api/notes"
    assert agent(home, "register", api).returncode == 0
    early = agent(home, "claim", "--code", "123456", "--json")
    assert early.returncode == 1 and as_json(early)["error"] == "invalid_claim"  # no attempt yet

    # The interactive path: the command prints the link, waits for the human, reads the code.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")} | {"AUTHMD_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "agent", "claim", "--email", "ada@example.com", "--wait", "60"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(TIMEOUT * 2, proc.kill)  # a stuck command cannot hang the suite
    watchdog.start()
    try:
        assert proc.stdout is not None and proc.stdin is not None
        link = ""
        for line in proc.stdout:  # the link comes first; readline blocks only until the command prints it
            if "/login?return_to=" in line:
                link = line.strip()
                break
        assert link.startswith(server.issuer), link
        code = await human_code(server, link, "ada@example.com")
        out, err = proc.communicate(code + "\n", timeout=TIMEOUT)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Claimed" in out
    creds = stored(home)
    assert creds["claimed"] and creds["claim_token"] is None and creds["refresh_token"].startswith("art_")
    assert "notes:delete" in creds["scope"]
    note = json.loads(agent(home, "call", api, "-d", '{"text":"mine now"}').stdout)
    deleted = agent(home, "call", f"{api}/{note['id']}", "-X", "DELETE")
    assert deleted.returncode == 0, deleted.stderr

    # The assertion and access token "expire": the next token comes through the refresh token.
    path = next(home.glob("*.json"))
    data = json.loads(path.read_text())
    data.update(assertion=None, assertion_expires_at=None, access_token=None, access_expires_at=None)
    path.write_text(json.dumps(data))
    assert agent(home, "token").returncode == 0
    after = stored(home)
    assert after["refresh_token"] != creds["refresh_token"] and after["assertion"]


async def test_service_auth_and_non_interactive_claim(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off"})
    home = tmp_path / "home"
    reg = as_json(agent(home, "register", server.issuer, "--login-hint", "bob@example.com", "--json"))
    assert reg["type"] == "service_auth" and reg["verification_uri"].startswith(server.issuer)
    pending = agent(home, "token")
    assert pending.returncode == 5 and "claim" in pending.stderr
    code = await human_code(server, reg["verification_uri"], "bob@example.com")
    done = as_json(agent(home, "claim", "--code", code, "--json"))
    assert done["ok"] and done["claimed"] is True
    assert agent(home, "call", f"{server.issuer}/api/notes").returncode == 0


def test_errors_an_agent_scripts_against(tmp_path: Path, start_server: StartServer) -> None:
    home = tmp_path / "home"
    unreachable = agent(home, "register", "http://127.0.0.1:9/api", "--json")
    assert unreachable.returncode == 3 and as_json(unreachable)["ok"] is False
    assert agent(home, "status").returncode == 5
    usage = agent(home, "register")
    assert usage.returncode == 2
    helped = agent(home, "claim", "--help")
    assert helped.returncode == 0 and "example:" in helped.stdout
    server = start_server({"AUTHMD_ANONYMOUS_ENABLED": "false"})
    refused = agent(home, "register", server.issuer, "--json")
    assert refused.returncode == 1 and "anonymous" in as_json(refused)["message"]
