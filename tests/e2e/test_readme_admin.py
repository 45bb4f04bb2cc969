"""The README's admin API section, run as written: its `authmd keys admin-key` command makes the key
the server is configured with, and each of its `curl` commands (the operator's claim page's too) runs
against that server (bash, real curl) and answers with the fields and values the README shows."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, StartServer
from tests.e2e.test_admin import access_token, register

pytestmark = pytest.mark.e2e
README = (ROOT / "README.md").read_text()
README_ORIGIN = "http://127.0.0.1:8000"
# Values the README shows that must come back as shown (ids and times differ from run to run).
CHECKED = re.compile(
    r'"(error|active|kind|type|status|operator|by|account_type|next_cursor|login_hint|agent_name)":("[^"…]*"|true|false|null)'
)


def blocks() -> list[list[tuple[str, list[str]]]]:
    """Each console block of the section: [(command, the lines it shows)]."""
    start = README.index("\n## Admin API\n")
    section = README[start : README.index("\n## ", start + 1)]
    found = []
    for block in re.findall(r"```console\n(.+?)```", section, flags=re.DOTALL):
        session: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                session.append((line[2:], []))
            elif line and session:
                session[-1][1].append(line)
        found.append(session)
    return found


def run_as_shown(calls: list[tuple[str, list[str]]], origin: str, env: dict[str, str]) -> None:
    """Each curl of a block answers one JSON value with the fields and the values the README shows."""
    for command, shown in calls:
        assert command.startswith("curl "), command
        run = subprocess.run(
            ["bash", "-c", command.replace(README_ORIGIN, origin)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert run.returncode == 0, (command, run.stderr)
        assert isinstance(json.loads(run.stdout), dict), run.stdout
        expected = " ".join(shown)
        for name in re.findall(r'"(\w+)":', expected):
            assert f'"{name}":' in run.stdout, (command, name, run.stdout)
        for name, value in CHECKED.findall(expected):
            assert f'"{name}":{value}' in run.stdout, (command, name, value, run.stdout)


def test_the_readme_admin_api_examples_run_as_written(start_server: StartServer, tmp_path: Path) -> None:
    keygen, calls, claim_calls = blocks()
    [(command, shown)] = keygen
    argv = shlex.split(command)
    assert argv[0] == "authmd"
    made = subprocess.run(
        [sys.executable, "-m", "app", *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    key = re.search(r"^  (amk_\S+)$", made.stdout, flags=re.MULTILINE)
    assert key is not None, made.stdout
    entry = made.stdout[made.stdout.index("[[admin_keys]]") :]
    assert [line.split(" = ")[0] for line in entry.splitlines()] == [
        line.split(" = ")[0] for line in shown[shown.index("[[admin_keys]]") :]
    ]
    config = tmp_path / "authmd.toml"
    config.write_text(entry)
    page = "http://127.0.0.1:9/claim"  # the product's page: never opened here, the test plays it
    server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off", "AUTHMD_CLAIM_PAGE_URL": page})
    with httpx.Client(timeout=10.0) as http:
        reg = register(http, server, "demo")
        token = access_token(http, server, reg["identity"]["assertion"])
    env = {**os.environ, "ADMIN_KEY": key.group(1), "TOKEN": token, "REG": reg["id"]}
    assert len(calls) >= 5 and len(claim_calls) == 4
    run_as_shown(calls, server.origin, env)

    # The operator's own claim page: an attempt bound to ada, looked up, refused for grace, confirmed, denied.
    with httpx.Client(timeout=10.0) as http:
        other = register(http, server, "demo")
        body = {"type": "service_auth", "claim_token": other["claim"]["token"], "login_hint": "ada@example.com"}
        link = http.post(f"{server.issuer}/agent/identity/claim", json=body).json()["attempt"]["verification_uri"]
    assert link.startswith("http://127.0.0.1:9/claim?claim_attempt_token=cvt_")
    run_as_shown(claim_calls, server.origin, {**env, "ATTEMPT": link.partition("=")[2]})
