"""`authmd agent` on day one, as a subprocess against the real server: a claimed credential is never
thrown away silently, every hint names a command that works when followed literally, `status` and
`token` ask the service instead of trusting what is stored, a connection error says why, progress
stays off a pipe, and the exit codes are the ones the README gives."""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, ServerProcess, StartServer, free_port
from tests.e2e.fake_service import CLAIM, FakeAuthService, Reply
from tests.e2e.test_agent_cli import TIMEOUT, agent, as_json, human_code, stored
from tests.tls import TlsFiles

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
COMMAND = re.compile(r"`(authmd [^`]+)`")


def hinted(result: subprocess.CompletedProcess[str], *, stdout: bool = False) -> list[str]:
    """The commands named in the hints of a run's stderr (and, with ``stdout``, in its guidance)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("hint:")]
    lines += result.stdout.splitlines() if stdout else []
    return [cmd for line in lines for cmd in COMMAND.findall(line)]


def follow(home: Path, command: str) -> subprocess.CompletedProcess[str]:
    """Run a hinted command exactly as written (`authmd` is this checkout's `python -m app`)."""
    words = shlex.split(command)
    assert words[:2] == ["authmd", "agent"], command
    assert not [w for w in words if re.fullmatch(r"[A-Z_]{3,}", w)], f"a placeholder in {command!r}"
    return agent(home, *words[2:])


def follow_every_hint(home: Path, result: subprocess.CompletedProcess[str]) -> None:
    commands = hinted(result)
    assert commands, f"no command in the hint:\n{result.stderr}"
    for command in commands:
        followed = follow(home, command)
        assert followed.returncode == 0, f"{command}:\n{followed.stderr}"


def revoke_registration(server: ServerProcess, home: Path) -> None:
    """What a human at /account or the operator does: the grant dies at the service (RFC 7009)."""
    creds = stored(home)
    token = creds["refresh_token"] or creds["assertion"]
    assert httpx.post(f"{server.issuer}/oauth2/revoke", data={"token": token}).status_code == 200


async def claimed(server: ServerProcess, home: Path, api: str) -> dict[str, object]:
    assert agent(home, "register", api).returncode == 0
    claim = as_json(agent(home, "claim", "--email", "ada@example.com", "--no-wait", "--json"))
    code = await human_code(server, str(claim["verification_uri"]), "ada@example.com")
    done = agent(home, "claim", "--code", code, "--json")
    assert done.returncode == 0, done.stderr
    return as_json(done)


# ---------------------------------------------------------------------------------------------------
# A claimed credential
# ---------------------------------------------------------------------------------------------------


async def test_register_new_never_silently_discards_a_claimed_credential(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off", "AUTHMD_ACCESS_LOG": "true"})
    home = tmp_path / "home"
    api = f"{server.issuer}/api/notes"
    done = await claimed(server, home, api)
    account = done["account"]
    assert isinstance(account, dict)
    # The temporary account's quotas lifted with the claim: none are shown as if they still held.
    status = as_json(agent(home, "status", "--json"))
    assert status["claimed"] is True and "quotas" not in status["account"], status
    kept = {k: v for k, v in stored(home).items() if not k.startswith("access_")}

    refused = agent(home, "register", api, "--new", "--json")
    assert refused.returncode == 2, refused.stderr
    body = as_json(refused)
    assert account["id"] in body["message"] and done["registration_id"] in body["message"]
    assert "--discard-claimed" in body["hint"]
    # Nothing changed here but a new access token (the service was asked whether the grant lives).
    assert {k: v for k, v in stored(home).items() if not k.startswith("access_")} == kept
    log = server.read_log()
    assert "POST /agent/identity/claim/complete" in log  # the access log is on
    assert "POST /agent/identity " not in log.rsplit("POST /agent/identity/claim/complete", 1)[1]

    # The hint's first command keeps the claimed credential; its second forgets it for good.
    keep, discard = hinted(refused)
    reused = follow(home, keep)
    assert reused.returncode == 0 and stored(home)["registration_id"] == done["registration_id"], reused.stderr
    assert "--discard-claimed" in reused.stdout  # not "run with --new", which would be refused
    assert "--discard-claimed" in discard
    replaced = follow(home, discard)
    assert replaced.returncode == 0, replaced.stderr
    assert stored(home)["registration_id"] != done["registration_id"] and stored(home)["claimed"] is False


async def test_a_claimed_credential_the_service_revoked_is_replaced_without_the_flag(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Nothing to keep once the service refuses it: `register --new` checks with the service first."""
    server = start_server({"AUTHMD_POW_MODE": "off"})
    home = tmp_path / "home"
    api = f"{server.issuer}/api/notes"
    done = await claimed(server, home, api)
    revoke_registration(server, home)
    again = agent(home, "register", api, "--new", "--json")
    assert again.returncode == 0, again.stderr
    assert as_json(again)["registration_id"] != done["registration_id"]


# ---------------------------------------------------------------------------------------------------
# After a revocation: status and token ask the service; every hint works when followed
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["call", "token", "status", "register"])
def test_after_a_revocation_every_hint_works(start_server: StartServer, tmp_path: Path, verb: str) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off"})
    home = tmp_path / "home"
    api = f"{server.issuer}/api/notes"
    assert agent(home, "register", api).returncode == 0
    first = stored(home)["registration_id"]
    revoke_registration(server, home)

    args = {"call": ["call", api], "token": ["token"], "status": ["status"], "register": ["register", api]}[verb]
    result = agent(home, *args)
    if verb == "register":
        # The stored registration is dead: register makes a new one (and says so), as after a denial.
        assert result.returncode == 0, result.stderr
        assert stored(home)["registration_id"] != first
        assert "revoked" in result.stdout + result.stderr
    else:
        assert result.returncode == 1, result.stderr
        assert "revoked" in result.stderr
        if verb == "token":
            assert result.stdout == ""  # never a revoked token
        follow_every_hint(home, result)
        assert stored(home)["registration_id"] != first
    assert agent(home, "call", api).returncode == 0
    # Later commands know without asking again, and their hints work too.
    revoke_registration(server, home)
    assert agent(home, "call", api).returncode == 1
    later = agent(home, "token")
    assert later.returncode == 5 and later.stdout == ""
    follow_every_hint(home, later)


async def test_after_a_claimed_registration_is_revoked(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off"})
    home = tmp_path / "home"
    api = f"{server.issuer}/api/notes"
    await claimed(server, home, api)
    revoke_registration(server, home)
    status = agent(home, "status", "--json")
    assert status.returncode == 1 and as_json(status)["claim_status"] == "revoked", status.stderr
    follow_every_hint(home, status)
    assert agent(home, "call", api).returncode == 0


def test_status_and_token_ask_the_service(start_server: StartServer, tmp_path: Path) -> None:
    """A revoked access token alone (the grant lives): `token` prints a new one, `status` shows one."""
    server = start_server({"AUTHMD_POW_MODE": "off"})
    home = tmp_path / "home"
    api = f"{server.issuer}/api/notes"
    assert agent(home, "register", api).returncode == 0
    old = stored(home)["access_token"]
    httpx.post(f"{server.issuer}/oauth2/revoke", data={"token": old})
    token = agent(home, "token")
    assert token.returncode == 0 and token.stdout.strip() != old
    assert httpx.get(api, headers={"Authorization": f"Bearer {token.stdout.strip()}"}).status_code == 200
    httpx.post(f"{server.issuer}/oauth2/revoke", data={"token": token.stdout.strip()})
    status = agent(home, "status")
    assert status.returncode == 0, status.stderr
    shown = stored(home)["access_token"]
    assert shown != token.stdout.strip()
    assert httpx.get(api, headers={"Authorization": f"Bearer {shown}"}).status_code == 200


def test_hints_keep_home_and_name_the_issuer_when_several_are_stored(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off"})
    home = tmp_path / "elsewhere"  # --home, not $AUTHMD_HOME: a hint that drops it finds nothing
    unused = tmp_path / "unused"
    with FakeAuthService(revision=2) as svc:
        assert agent(unused, "--home", str(home), "register", svc.issuer).returncode == 0
        reg = agent(unused, "--home", str(home), "register", server.issuer)
        assert reg.returncode == 0, reg.stderr
        token = next(cmd for cmd in hinted(reg, stdout=True) if " token" in cmd)
        assert f"--home {home}" in token and f"--issuer {server.issuer}" in token
        assert follow(unused, token).returncode == 0

        creds = json.loads(next(p for p in home.glob("*.json") if server.issuer in p.read_text()).read_text())
        httpx.post(f"{server.issuer}/oauth2/revoke", data={"token": creds["assertion"]})
        refused = agent(unused, "--home", str(home), "token", "--issuer", server.issuer)
        assert refused.returncode == 1, refused.stderr
        follow_every_hint(unused, refused)
        assert follow(unused, token).returncode == 0
    assert not unused.exists()


@pytest.mark.parametrize("ending", ["denied", "expired"])
def test_the_hints_after_a_claim_ends_work(tmp_path: Path, ending: str) -> None:
    home = tmp_path / "home"
    with FakeAuthService(revision=2) as svc:
        assert agent(home, "register", svc.issuer).returncode == 0
        first = stored(home)["registration_id"]
        if ending == "denied":
            svc.deny()
            ended = agent(home, "status")
            assert ended.returncode == 1
        else:
            svc.script("POST", CLAIM + "/status", Reply(200, {"id": first, "status": "expired"}))
            assert agent(home, "status").returncode == 0  # the account lives on; the claim window is shut
            ended = agent(home, "claim", "--email", "ada@example.com")
            assert ended.returncode == 5
        follow_every_hint(home, ended)
        assert stored(home)["registration_id"] != first


# ---------------------------------------------------------------------------------------------------
# Connection errors say why
# ---------------------------------------------------------------------------------------------------


def test_connection_errors_say_why(start_server: StartServer, tmp_path: Path, tls_files: TlsFiles) -> None:
    home = tmp_path / "home"
    refused = agent(home, "register", f"http://127.0.0.1:{free_port()}/api/notes", "--json")
    assert refused.returncode == 3 and "connection refused" in as_json(refused)["message"], refused.stderr
    assert "ConnectError" not in refused.stderr
    unknown = agent(home, "register", "http://no-such-host.invalid/api/notes")
    assert unknown.returncode == 3 and "name not resolved" in unknown.stderr, unknown.stderr
    tls = {"AUTHMD_TLS_CERT_FILE": str(tls_files.cert), "AUTHMD_TLS_KEY_FILE": str(tls_files.key)}
    server = start_server(tls, verify=tls_files.client_context())
    untrusted = agent(home, "register", f"{server.issuer}/api/notes")  # the test CA is not trusted
    assert untrusted.returncode == 3 and "TLS failure" in untrusted.stderr, untrusted.stderr
    assert "certificate" in untrusted.stderr
    # `authmd doctor` says the same with the same words (one helper).
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")}
    doctor = subprocess.run(
        [sys.executable, "-m", "app", "doctor", f"http://127.0.0.1:{free_port()}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert doctor.returncode == 3 and "connection refused" in doctor.stderr, doctor.stderr


# ---------------------------------------------------------------------------------------------------
# Progress: in place on a terminal, at most one line on a pipe
# ---------------------------------------------------------------------------------------------------

# A proof of work long enough to show progress (about a million hashes, a second or so).
SLOW_POW = {"AUTHMD_POW_MODE": "always", "AUTHMD_POW_DIFFICULTY": "20"}


def test_progress_on_a_pipe_is_one_line_at_most(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(SLOW_POW)
    reg = agent(tmp_path / "home", "register", f"{server.issuer}/api/notes")
    assert reg.returncode == 0, reg.stderr
    assert "\r" not in reg.stderr and len(reg.stderr.splitlines()) <= 1, reg.stderr


def test_progress_on_a_terminal_redraws_in_place(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(SLOW_POW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")} | {"AUTHMD_HOME": str(tmp_path)}
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "agent", "register", f"{server.issuer}/api/notes"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    shown = bytearray()

    def read() -> None:  # until the terminal closes (EIO once the command has exited)
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(TIMEOUT)
    os.close(controller)
    assert proc.returncode == 0
    assert b"Registered with" in out
    text = shown.decode()
    # Every redraw returns to the start of one line; the line is cleared before anything else prints.
    assert "\n" not in text, repr(text)
    if "proof of work" in text:
        assert text.count("\r") >= 2 and text.endswith("\r\x1b[K"), repr(text)


# ---------------------------------------------------------------------------------------------------
# Exit codes as the README gives them
# ---------------------------------------------------------------------------------------------------


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for args in (
        ["register", "notaurl"],
        ["register", "ftp://127.0.0.1/api"],
        ["register", "http://127.0.0.1:1/api", "--id-jag", str(tmp_path / "missing.jwt")],
        ["call", "notaurl"],
        ["call", "http://127.0.0.1:1/api", "-d", f"@{tmp_path / 'missing.json'}"],
    ):
        result = agent(home, *args, "--json")
        assert result.returncode == 2, (args, result.stderr)
        assert as_json(result)["exit"] == 2 and "Traceback" not in result.stderr
    assert not home.exists()  # bad input changes nothing
