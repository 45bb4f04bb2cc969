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
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, ServerProcess, StartServer
from tests.e2e.fake_service import CLAIM, IDENTITY, FakeAuthService, Reply
from tests.helpers import DevHuman
from tests.provider import TestProvider

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
    server = start_server({"AUTHMD_POW_MODE": "always", "AUTHMD_POW_DIFFICULTY": "10", "AUTHMD_ACCESS_LOG": "true"})
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


# ---------------------------------------------------------------------------------------------------
# Against a fake service (tests/e2e/fake_service.py): the revision 1 and revision 2 answers an agent
# meets at other services, some of which the real server never gives on demand
# ---------------------------------------------------------------------------------------------------


def _registered(home: Path, svc: FakeAuthService) -> dict[str, Any]:
    reg = agent(home, "register", svc.issuer, "--json")
    assert reg.returncode == 0, reg.stderr
    return as_json(reg)


def _rate_limit(svc: FakeAuthService, seconds: int) -> Reply:
    return svc.error("rate_limit_exceeded", "too many registrations from this address", retry_after=seconds)


@pytest.mark.parametrize("revision", [1, 2])
def test_register_waits_out_a_short_rate_limit(tmp_path: Path, revision: int) -> None:
    """rate_limit_exceeded with retry_after (revision 2) or rate_limited with Retry-After (revision 1):
    a wait of at most 10 s is waited out and the registration sent once more."""
    with FakeAuthService(revision=revision) as svc:
        svc.script("POST", IDENTITY, _rate_limit(svc, 1))
        body = _registered(tmp_path / "home", svc)
        posts = svc.requests("POST", IDENTITY)
    assert body["ok"] and body["type"] == "anonymous"
    assert len(posts) == 2 and posts[0].body == posts[1].body


@pytest.mark.parametrize("revision", [1, 2])
def test_register_reports_a_long_rate_limit(tmp_path: Path, revision: int) -> None:
    with FakeAuthService(revision=revision) as svc:
        svc.script("POST", IDENTITY, _rate_limit(svc, 120))
        refused = agent(tmp_path / "home", "register", svc.issuer, "--json")
        posts = svc.requests("POST", IDENTITY)
    assert refused.returncode == 1
    body = as_json(refused)
    assert body["ok"] is False and body["retry_after"] == 120
    assert body["error"] == ("rate_limit_exceeded" if revision == 2 else "rate_limited")
    assert "rate limiting" in body["message"] and "retry in 120 s" in body["message"]
    assert len(posts) == 1  # not retried: the wait is too long to sit through


def test_register_gives_up_after_a_second_rate_limit(tmp_path: Path) -> None:
    with FakeAuthService(revision=2) as svc:
        svc.script("POST", IDENTITY, _rate_limit(svc, 1), _rate_limit(svc, 1))
        refused = agent(tmp_path / "home", "register", svc.issuer, "--json")
        assert len(svc.requests("POST", IDENTITY)) == 2
    assert refused.returncode == 1 and as_json(refused)["retry_after"] == 1


def test_message_only_error_body_is_shown(tmp_path: Path) -> None:
    """The reference service answers {error, message}: the message is the text shown."""
    with FakeAuthService(revision=2) as svc:
        svc.script("POST", IDENTITY, Reply(400, {"error": "invalid_request", "message": "agent.name is too long"}))
        refused = agent(tmp_path / "home", "register", svc.issuer, "--json")
    assert refused.returncode == 1
    assert "agent.name is too long" in as_json(refused)["message"]
    assert "agent.name is too long" in refused.stderr


def test_too_many_attempts_shows_the_last_link_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with FakeAuthService(revision=2, max_live_attempts=1) as svc:
        _registered(home, svc)
        first = as_json(agent(home, "claim", "--email", "ada@example.com", "--no-wait", "--json"))
        assert first["reused_link"] is False
        again = agent(home, "claim", "--email", "ADA@example.com", "--no-wait", "--json")
        assert again.returncode == 0, again.stderr
        assert as_json(again)["reused_link"] is True
        assert as_json(again)["verification_uri"] == first["verification_uri"]
        # Another human: the open link is not theirs, and the service takes no new one.
        other = agent(home, "claim", "--email", "bob@example.com", "--no-wait", "--json")
        starts = svc.requests("POST", CLAIM)
    assert other.returncode == 1
    body = as_json(other)
    assert body["error"] == "too_many_attempts" and "too_many_attempts" in body["message"]
    assert "link you gave them" in body["hint"] and "expires" in body["hint"]
    assert len(starts) == 3  # each run asked the service; only the first got a new attempt


def test_a_denied_claim_ends_with_exit_1_and_forgets_the_credentials(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with FakeAuthService(revision=2) as svc:
        _registered(home, svc)
        assert agent(home, "claim", "--email", "ada@example.com", "--no-wait").returncode == 0
        svc.deny()  # the human pressed "This wasn't me"
        denied = agent(home, "claim", "--code", "870581", "--json")
        assert denied.returncode == 1
        body = as_json(denied)
        assert body["error"] == "claim_denied" and "This wasn't me" in body["message"]
        creds = stored(home)
        assert creds["claim_outcome"] == "denied"
        assert creds["claim_token"] is None and creds["assertion"] is None and creds["access_token"] is None
        assert creds["claim_attempt_uri"] is None
        # Every later command says so, without asking the service for a dead claim.
        completes = len(svc.requests("POST", CLAIM + "/complete"))
        status = agent(home, "status", "--json")
        assert status.returncode == 1 and as_json(status)["claim_status"] == "denied"
        token = agent(home, "token")
        assert token.returncode == 5 and "This wasn't me" in token.stderr
        assert agent(home, "claim", "--code", "870581").returncode == 1
        assert len(svc.requests("POST", CLAIM + "/complete")) == completes
        # A new registration replaces the dead one without --new.
        assert _registered(home, svc)["registration_id"] != body["registration_id"]


@pytest.mark.parametrize("revision", [1, 2])
def test_status_understands_a_denied_claim(tmp_path: Path, revision: int) -> None:
    home = tmp_path / "home"
    with FakeAuthService(revision=revision) as svc:
        _registered(home, svc)
        assert agent(home, "claim", "--no-wait").returncode == 0
        svc.deny()
        status = agent(home, "status")
    assert status.returncode == 1
    expected = "denied" if revision == 2 else "revoked"  # revision 1 has no `denied` status
    assert f"Claim:         {expected}" in status.stdout
    assert stored(home)["claim_outcome"] == expected and stored(home)["claim_token"] is None


def test_a_revoked_registration_at_complete(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with FakeAuthService(revision=2) as svc:
        _registered(home, svc)
        assert agent(home, "claim", "--no-wait").returncode == 0
        httpx.post(svc.url("/oauth2/revoke"), data={"token": svc.only().assertion})  # e.g. the operator
        revoked = agent(home, "claim", "--code", "870581", "--json")
    assert revoked.returncode == 1
    body = as_json(revoked)
    assert body["error"] == "claim_revoked" and "revoked" in body["message"]
    assert stored(home)["claim_token"] is None and stored(home)["claim_outcome"] == "revoked"


def test_the_code_goes_as_typed(tmp_path: Path) -> None:
    """The human reads "870 581" off the page: sent as typed (trimmed), the service normalises."""
    home = tmp_path / "home"
    with FakeAuthService(revision=2) as svc:
        _registered(home, svc)
        assert agent(home, "claim", "--no-wait").returncode == 0
        svc.confirm("870581")
        done = agent(home, "claim", "--code", " 870 581 ", "--json")
        sent = [r.json()["user_code"] for r in svc.requests("POST", CLAIM + "/complete")]
    assert done.returncode == 0, done.stderr
    assert as_json(done)["claimed"] is True
    assert sent == ["870 581"]


def test_a_revision_1_service_refusing_a_spaced_code_says_why(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with FakeAuthService(revision=1) as svc:
        _registered(home, svc)
        assert agent(home, "claim", "--no-wait").returncode == 0
        svc.confirm("870581")
        wrong = agent(home, "claim", "--code", "870 581", "--json")
        right = agent(home, "claim", "--code", "870581", "--json")
    assert wrong.returncode == 1 and as_json(wrong)["error"] == "invalid_user_code"
    assert "digits alone" in as_json(wrong)["hint"]
    assert right.returncode == 0 and as_json(right)["claimed"] is True


def test_a_claim_method_turned_off(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with FakeAuthService(revision=2) as svc:
        _registered(home, svc)
        svc.script("POST", CLAIM, svc.error("auth_method_disabled", "claims by sign-in link are turned off"))
        refused = agent(home, "claim", "--email", "ada@example.com", "--no-wait", "--json")
    assert refused.returncode == 1
    body = as_json(refused)
    assert body["error"] == "auth_method_disabled"
    assert "turned this claim method off" in body["message"] and "sign-in link" in body["message"]
    assert stored(home)["claim_token"]  # the claim itself is not over: another method may work


# ---------------------------------------------------------------------------------------------------
# Revision 2 against the real server
# ---------------------------------------------------------------------------------------------------


def test_real_server_rate_limit_too_long_to_wait(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(
        {"AUTHMD_POW_MODE": "off", "AUTHMD_REGISTER_LIMIT_PER_SOURCE": "1", "AUTHMD_ACCESS_LOG": "true"}
    )
    home = tmp_path / "home"
    assert agent(home, "register", server.issuer).returncode == 0
    refused = agent(home, "register", server.issuer, "--new", "--json")
    assert refused.returncode == 1
    body = as_json(refused)
    assert body["error"] == "rate_limit_exceeded" and body["status"] == 429
    assert isinstance(body["retry_after"], int | float) and body["retry_after"] > 10
    assert f"retry in {body['retry_after']:g} s" in body["message"]
    assert server.read_log().count("POST /agent/identity 429") == 1  # a long wait is not sat through


async def test_real_server_live_links_and_a_spaced_code(start_server: StartServer, tmp_path: Path) -> None:
    """Revision 2: links stay live up to the cap; past it the last one is shown again; the code is
    accepted as the page groups it."""
    server = start_server({"AUTHMD_POW_MODE": "off"})
    home = tmp_path / "home"
    assert agent(home, "register", server.issuer).returncode == 0
    links = [as_json(agent(home, "claim", "--email", "ada@example.com", "--no-wait", "--json")) for _ in range(4)]
    assert [link["reused_link"] for link in links] == [False, False, False, True]
    assert len({link["verification_uri"] for link in links[:3]}) == 3
    assert links[3]["verification_uri"] == links[2]["verification_uri"]
    other = agent(home, "claim", "--email", "bob@example.com", "--no-wait", "--json")
    assert other.returncode == 1 and as_json(other)["error"] == "too_many_attempts"
    # The first link still works: the human uses it, and reads the code back with a space.
    code = await human_code(server, links[0]["verification_uri"], "ada@example.com")
    done = agent(home, "claim", "--code", f"{code[:3]} {code[3:]}", "--json")
    assert done.returncode == 0, done.stderr
    assert as_json(done)["claimed"] is True


async def test_real_server_this_wasnt_me(start_server: StartServer, tmp_path: Path) -> None:
    """The human denies: `/complete` answers claim_denied, the status says denied; either way exit 1
    and nothing of the dead registration is kept."""
    server = start_server({"AUTHMD_POW_MODE": "off"})
    async with httpx.AsyncClient(timeout=10.0) as client:
        for name, probe in (("complete", ("claim", "--code", "123456", "--json")), ("status", ("status", "--json"))):
            home = tmp_path / name
            assert agent(home, "register", server.issuer).returncode == 0
            claim = agent(home, "claim", "--email", "ada@example.com", "--no-wait", "--json")
            human = DevHuman(client, server.issuer)
            await human.deny(await human.open_link(as_json(claim)["verification_uri"], "ada@example.com"))
            refused = agent(home, *probe)
            assert refused.returncode == 1, refused.stderr
            body = as_json(refused)
            assert body["error"] == "claim_denied" and body["claim_status"] == "denied", body
            assert stored(home)["claim_token"] is None and stored(home)["assertion"] is None
            assert agent(home, "token").returncode == 5


def test_real_server_trust_list_and_a_stale_sign_in(start_server: StartServer, tmp_path: Path) -> None:
    """Revision 2's issuers_supported: an ID-JAG from a provider the service does not list is never
    sent; a trusted one with a sign-in older than the provider's max_age is login_required."""
    with TestProvider() as trusted, TestProvider() as stranger:
        config = tmp_path / "authmd.toml"
        config.write_text(
            f'[[providers]]\nissuer = "{trusted.issuer}"\nname = "Trusted IdP"\nclient_ids = ["agent-cli"]\n'
            'scopes = ["notes:read"]\nmax_age = 300\n'
        )
        server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
        home = tmp_path / "home"

        def register_with(jag: str) -> subprocess.CompletedProcess[str]:
            path = tmp_path / "id-jag.jwt"
            path.write_text(jag)
            return agent(home, "register", server.issuer, "--id-jag", str(path), "--json")

        foreign = register_with(stranger.mint_id_jag("u1", aud=server.issuer, email="ada@example.com"))
        assert foreign.returncode == 1
        body = as_json(foreign)
        assert body["error"] == "issuer_not_enabled" and body["trusted"] == [trusted.issuer]
        assert "Trusted IdP" in body["hint"]
        assert "POST /agent/identity" not in server.read_log()  # decided from the metadata alone

        stale = register_with(
            trusted.mint_id_jag("u1", aud=server.issuer, email="ada@example.com", auth_time=int(time.time()) - 3600)
        )
        assert stale.returncode == 1
        body = as_json(stale)
        assert body["error"] == "login_required" and body["max_age"] == 300
        assert "at most 300 s old" in body["message"]

        fresh = register_with(trusted.mint_id_jag("u1", aud=server.issuer, email="ada@example.com"))
        assert fresh.returncode == 0, fresh.stderr
        assert as_json(fresh)["type"] == "identity_assertion"
