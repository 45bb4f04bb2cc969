"""The operator's commands as an operator runs them: `authmd serve`, `config`, `keys` and `admin` as
subprocesses, on the SQLite file or the Redis of a running server (issue 12, "Day one")."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

from app import keys
from tests.e2e.conftest import HOST, ROOT, ServerProcess, StartServer, free_port
from tests.e2e.test_admin import Run, access_token, claim_as, notes_status, register
from tests.parts import signal_and_wait
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.e2e

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
SECRET = "an-introspection-client-secret"


def authmd(env: dict[str, str], *args: str, stdin: str | None = None) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Run(proc)


def one_json_value(run: Run) -> Any:
    """The whole of stdout is exactly one JSON value (json.loads refuses anything before or after it)."""
    assert run.out.strip(), run
    return json.loads(run.out)


def times_in(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key, value) of a time field anywhere in a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from times_in(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from times_in(item, key)
    elif key.endswith("_at") or key in ("at", "not_before"):
        yield key, value


def assert_rfc3339(value: Any) -> None:
    found = list(times_in(value))
    assert found, value
    for key, when in found:
        assert when is None or (isinstance(when, str) and ISO.fullmatch(when)), (key, when)


# ---------------------------------------------------------------------------------------------------
# A running server with a little of everything, on each store
# ---------------------------------------------------------------------------------------------------


@dataclass
class World:
    server: ServerProcess
    revoked: dict[str, Any]  # a registration the operator revoked
    live: dict[str, Any]  # a registration still active
    ada_account: str
    ada_registration: str

    def env(self, **extra: str) -> dict[str, str]:
        return {**self.server.environment(), **extra}

    def fill(self, args: tuple[str, ...], fresh: dict[str, Any] | None = None) -> list[str]:
        names = {
            "REVOKED_ACCT": self.revoked["account"]["id"],
            "REVOKED_REG": self.revoked["id"],
            "LIVE_ACCT": self.live["account"]["id"],
            "LIVE_REG": self.live["id"],
            "ADA_ACCT": self.ada_account,
            "ADA_REG": self.ada_registration,
        }
        if fresh is not None:
            names |= {"FRESH_ACCT": fresh["account"]["id"], "FRESH_REG": fresh["id"]}
        return [names.get(a, a) for a in args]


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    env = {"AUTHMD_POW_MODE": "off"}
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("shared_redis")
        env["AUTHMD_STORE_URL"] = f"{redis.url}?prefix=op{uuid.uuid4().hex[:10]}:"
    server = ServerProcess(tmp_path_factory.mktemp(f"operator-{request.param}"), env)
    server.start()
    try:
        with httpx.Client(timeout=10.0) as http:
            revoked, live = register(http, server, "revoked-agent"), register(http, server, "live-agent")
        ada_account, ada_registration, _ = asyncio.run(claim_as(server, "ada@example.com"))
        run = authmd(server.environment(), "admin", "revoke", revoked["account"]["id"], "--yes")
        assert run.code == 0, run
        yield World(server, revoked, live, ada_account, ada_registration)
    finally:
        server.stop()


# Every admin verb with --json, on success and on each kind of failure: (arguments, exit status).
# FRESH_* is a registration made for the case alone (the verbs that revoke use it up).
ADMIN_CASES = [
    (("list",), 0),
    (("list", "--kind", "temporary"), 0),
    (("list", "--limit", "1", "--after", "acct_"), 0),
    (("list", "--limit", "0"), 2),
    (("list", "--limit", "many"), 2),  # refused by the argument parser itself
    (("list", "--kind", "forever"), 2),
    (("show", "LIVE_ACCT"), 0),
    (("show", "ada@example.com"), 0),
    (("show", "ADA_REG"), 0),  # a registration id alone: its account is looked up
    (("show", "LIVE_REG", "--account", "LIVE_ACCT"), 0),
    (("show", "acct_missing"), 1),
    (("show", "reg_missing"), 1),
    (("show", "nobody@example.com"), 1),
    (("show", "neither"), 2),
    (("revoke", "FRESH_ACCT", "FRESH_REG", "--yes"), 0),
    (("revoke", "FRESH_ACCT", "--yes"), 0),
    (("revoke", "REVOKED_ACCT", "REVOKED_REG", "--yes"), 1),  # already revoked: printed nothing before
    (("revoke", "REVOKED_ACCT", "--yes"), 1),
    (("revoke", "acct_missing", "--yes"), 1),
    (("revoke-all", "FRESH_ACCT", "--yes"), 0),
    (("revoke-all", "ada@example.com"), 2),  # without --yes: what it would do; printed nothing before
    (("revoke-all", "nobody@example.com", "--yes"), 1),
    (("events",), 0),
    (("events", "--since", "1h", "--type", "agent_registration.*"), 0),
    (("events", "--account", "LIVE_ACCT"), 0),
    (("events", "--until", "2000-01-01T00:00:00Z"), 0),  # an empty array is still one value
    (("events", "--since", "yesterday"), 2),
    (("events", "--follow", "--until", "1h"), 2),
    (("frobnicate",), 2),
]


@pytest.mark.parametrize(("args", "code"), ADMIN_CASES, ids=[" ".join(a) for a, _ in ADMIN_CASES])
def test_every_admin_verb_with_json_prints_exactly_one_json_value(
    world: World, http: httpx.Client, args: tuple[str, ...], code: int
) -> None:
    fresh = register(http, world.server, "fresh-agent") if any(a.startswith("FRESH") for a in args) else None
    run = authmd(world.env(), "admin", *world.fill(args, fresh), "--json")
    assert run.code == code, run
    value = one_json_value(run)
    if code != 0:
        assert value["ok"] is False and value["exit"] == code and value["message"], value
        assert run.err.strip(), run  # the message for a human too
    elif value != []:  # times are RFC 3339 in UTC (list and show gave Unix seconds)
        assert_rfc3339(value)


def test_admin_json_values_say_what_happened(world: World, http: httpx.Client) -> None:
    # Times are RFC 3339 in UTC everywhere (they were Unix seconds in list and show).
    for args in (("list",), ("show", "ada@example.com"), ("show", "LIVE_ACCT")):
        run = authmd(world.env(), "admin", *world.fill(args), "--json")
        assert run.code == 0, run
        assert_rfc3339(one_json_value(run))
    # show by a registration id alone finds its account.
    run = authmd(world.env(), "admin", "show", world.ada_registration, "--json")
    assert run.code == 0, run
    (account,) = one_json_value(run)["accounts"]
    assert account["id"] == world.ada_account
    assert [r["id"] for r in account["registrations"]] == [world.ada_registration]
    run = authmd(world.env(), "admin", "show", world.ada_registration)  # the same for a human
    assert run.code == 0 and f"account {world.ada_account}" in run.out and world.ada_registration in run.out, run
    # revoke-all without --yes lists what it would revoke, and revokes nothing.
    ada_token = access_token(http, world.server, asyncio.run(claim_as(world.server, "ada@example.com"))[2])
    run = authmd(world.env(), "admin", "revoke-all", "ada@example.com", "--json")
    assert run.code == 2, run
    would = one_json_value(run)["would_revoke"]
    assert {(w["account_id"], w["registration_id"]) for w in would} >= {(world.ada_account, world.ada_registration)}
    assert notes_status(http, world.server, ada_token) == 200
    # revoke of an already revoked registration says when it was revoked.
    run = authmd(world.env(), "admin", "revoke", *world.fill(("REVOKED_ACCT", "REVOKED_REG")), "--yes", "--json")
    value = one_json_value(run)
    assert run.code == 1 and value["revoked"] == [] and ISO.fullmatch(value["already_revoked_at"]), run
    # A successful revoke: its time too.
    fresh = register(http, world.server, "fresh-agent")
    run = authmd(world.env(), "admin", "revoke", fresh["account"]["id"], "--yes", "--json")
    assert run.code == 0 and ISO.fullmatch(one_json_value(run)["at"]), run


def test_admin_json_on_an_unreachable_store_or_a_bad_configuration(world: World, tmp_path: Path) -> None:
    cases = [({"AUTHMD_STORE_URL": f"redis://127.0.0.1:{free_port()}/0"}, 3), ({"AUTHMD_POW_MODE": "sometimes"}, 2)]
    if "AUTHMD_STORE_URL" not in world.server.overrides:  # SQLite: a data directory with no store in it
        cases.append(({"AUTHMD_DATA_DIR": str(tmp_path / "no-store-here")}, 2))
    for extra, code in cases:
        for verb in (("list",), ("events",), ("events", "--follow")):
            run = authmd(world.env(**extra), "admin", *verb, "--json")
            assert run.code == code and one_json_value(run)["exit"] == code, (extra, verb, run)


# ---------------------------------------------------------------------------------------------------
# keys and config
# ---------------------------------------------------------------------------------------------------

KEYS_CASES: list[tuple[tuple[str, ...], str | None, int]] = [
    (("keys", "list"), None, 0),
    (("keys", "generate"), None, 0),
    (("keys", "init"), None, 0),
    (("keys", "rotate"), None, 0),
    (("keys", "hash-secret"), SECRET + "\n", 0),
    (("keys", "hash-secret", "--stdin"), SECRET + "\n", 0),
    (("keys", "hash-secret"), None, 2),  # stdin is /dev/null: no terminal, no secret
    (("keys", "hash-secret"), "", 2),
    (("keys", "hash-secret"), "short\n", 2),
    (("config",), None, 0),
    (("config", "check"), None, 0),
]


@pytest.mark.parametrize(("args", "stdin", "code"), KEYS_CASES, ids=[f"{' '.join(a)}-{s!r}" for a, s, _ in KEYS_CASES])
def test_keys_and_config_with_json_print_exactly_one_json_value(
    start_server: StartServer, args: tuple[str, ...], stdin: str | None, code: int
) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off"})
    run = authmd(server.environment(), *args, "--json", stdin=stdin)
    assert run.code == code and "Traceback" not in run.err, run
    value = one_json_value(run)
    if code:
        assert value == {"ok": False, "exit": code, "message": value["message"]} and value["message"] in run.err
    elif args[0] == "keys" and args[1] != "hash-secret":
        assert value["current"] in {k["kid"] for k in keys.list_keys(server.data_dir)["keys"]}


@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        (("keys", "list"), {}, 1),  # no keys in the data directory
        (("config", "check"), {"AUTHMD_QUOTA_NOTES": "-1"}, 2),
        (("config",), {"AUTHMD_POW_MODE": "sometimes"}, 2),
        (("keys", "list", "--alg", "HS256"), {}, 2),  # refused by the argument parser itself
    ],
)
def test_keys_and_config_errors_with_json(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], code: int
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")} | env
    env["AUTHMD_DATA_DIR"] = str(tmp_path / "empty")
    run = authmd(env, *args, "--json")
    assert run.code == code and one_json_value(run) == {"ok": False, "exit": code, "message": ANY}, run
    assert "Traceback" not in run.err and not (tmp_path / "empty").exists(), run


def test_keys_list_gives_rfc3339_times(start_server: StartServer) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off"})
    assert authmd(server.environment(), "keys", "rotate").code == 0
    for args in (("keys", "list"), ("keys", "list", "--json")):
        run = authmd(server.environment(), *args)
        assert run.code == 0, run
        listed = one_json_value(run)
        assert len(listed["keys"]) == 2 and listed["keys"][0]["retired_at"] is not None
        assert_rfc3339(listed)


def test_hash_secret_reads_a_pipe_and_refuses_nothing_with_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")}
    run = authmd(env, "keys", "hash-secret", stdin=SECRET + "\n")
    assert run.code == 0 and keys.verify_secret(SECRET, run.out.strip()), run
    assert SECRET not in run.out + run.err
    run = authmd(env, "keys", "hash-secret")  # stdin is /dev/null: not a terminal, and empty
    assert run.code == 2 and run.out == "" and "Traceback" not in run.err, run
    assert "no secret on stdin" in run.err and "terminal" in run.err, run


# ---------------------------------------------------------------------------------------------------
# serve and config check: warnings, a busy port, file modes
# ---------------------------------------------------------------------------------------------------


def warning_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "WARNING" in line]


def test_serve_warns_when_the_development_sign_in_is_active(start_server: StartServer) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off"})  # dev mode, no provider
    (line,) = warning_lines(server.read_log())
    assert "development sign-in is active" in line and "oidc_issuer" in line, line


def test_serve_warns_when_claims_are_off(start_server: StartServer) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off", "AUTHMD_ISSUER": "https://auth.example.test"})
    (line,) = warning_lines(server.read_log())
    assert "claims are off" in line and "oidc_issuer" in line, line


def test_serve_with_a_provider_has_no_warning(start_server: StartServer) -> None:
    server = start_server(
        {
            "AUTHMD_POW_MODE": "off",
            "AUTHMD_OIDC_ISSUER": "http://127.0.0.1:9",
            "AUTHMD_OIDC_CLIENT_ID": "authmd",
            "AUTHMD_OIDC_CLIENT_SECRET": "a-client-secret",
        }
    )
    assert warning_lines(server.read_log()) == []


def test_serve_on_a_busy_port_says_so_and_creates_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")}
    env["AUTHMD_DATA_DIR"] = str(tmp_path / "data")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = authmd(env, "serve", "--host", HOST, "--port", str(port))
    assert run.code == 2 and "Traceback" not in run.err, run
    assert f"port {port} on {HOST} is already in use" in run.err and "--port" in run.err, run
    assert not (tmp_path / "data").exists()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_its_wal_and_shm_files_are_0600_and_so_are_the_keys(
    start_server: StartServer, http: httpx.Client
) -> None:
    umask = os.umask(0o022)  # the usual umask, under which SQLite makes its files 0644
    try:
        server = start_server({"AUTHMD_POW_MODE": "off"})
    finally:
        os.umask(umask)
    register(http, server, "an-agent")  # a write: the WAL holds data now
    db = server.db_path
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    files += [*sorted((server.data_dir / "keys").glob("*.pem")), server.data_dir / "keys" / "secret.key"]
    assert all(p.exists() for p in files), files
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    # Rotation by the operator: the new key file is 0600 as well.
    run = authmd(server.environment(), "keys", "rotate")
    assert run.code == 0, run
    pems = sorted((server.data_dir / "keys").glob("*.pem"))
    assert len(pems) == 2 and {mode(p) for p in pems} == {0o600}
    assert mode(server.data_dir / "keys") == 0o700


# ---------------------------------------------------------------------------------------------------
# admin events
# ---------------------------------------------------------------------------------------------------


def events(world: World, *args: str) -> list[dict[str, Any]]:
    run = authmd(world.env(), "admin", "events", *args, "--json")
    assert run.code == 0, run
    value: list[dict[str, Any]] = one_json_value(run)
    return value


def test_events_filter_by_account_type_and_time(world: World) -> None:
    revoked_acct, live_acct = world.revoked["account"]["id"], world.live["account"]["id"]
    everything = events(world)
    assert [e["id"] for e in everything] == sorted(e["id"] for e in everything)
    assert_rfc3339(everything)
    mine = events(world, "--account", revoked_acct)
    assert mine and {e["account_id"] for e in mine} == {revoked_acct}
    assert [e["type"] for e in mine][:1] == ["agent_registration.created"]
    assert [(e["type"], e["data"]) for e in mine if e["type"] == "agent_registration.revoked"] == [
        ("agent_registration.revoked", {"by": "operator"})
    ]
    assert {e["account_id"] for e in events(world, "--account", live_acct)} == {live_acct}
    revocations = events(world, "--type", "agent_registration.revoked")
    assert revocations and {e["type"] for e in revocations} == {"agent_registration.revoked"}
    family = events(world, "--type", "agent_registration.*")
    assert {"agent_registration.created", "agent_registration.revoked"} <= {e["type"] for e in family}
    assert all(e["type"].startswith("agent_registration.") for e in family)
    both = events(world, "--type", "agent_registration.revoked", "--type", "agent_registration.claim.completed")
    assert {e["type"] for e in both} == {"agent_registration.revoked", "agent_registration.claim.completed"}
    # Time: relative and absolute, --since included, --until excluded.
    assert events(world, "--since", "1h") == everything
    assert events(world, "--since", "2000-01-01T00:00:00Z") == everything
    assert events(world, "--until", "1h") == []
    first = everything[0]["at"]
    assert events(world, "--until", first) == []
    assert events(world, "--since", first)[0] == everything[0]
    assert events(world, "--since", "2999-01-01T00:00:00+02:00") == []
    # The same for a human: one line per event.
    run = authmd(world.env(), "admin", "events", "--account", revoked_acct)
    assert run.code == 0 and len(run.out.splitlines()) == len(mine), run
    assert "agent_registration.revoked" in run.out and "by=operator" in run.out and ISO.search(run.out), run
    run = authmd(world.env(), "admin", "events", "--since", "soon")
    assert run.code == 2 and "ISO 8601" in run.err and run.out == "", run


class Lines:
    """The stdout lines of a running process, read by a thread so a test can wait for one with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(target=lambda: [*map(self.queue.put, stdout), self.queue.put(None)], daemon=True).start()

    def next(self, timeout: float = 20.0) -> str:
        try:
            line = self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout:g} s") from None
        assert line is not None, "the process closed its output"
        return line


def test_events_follow_prints_new_events_until_interrupted(world: World, http: httpx.Client) -> None:
    first, second = register(http, world.server, "followed-1"), register(http, world.server, "followed-2")
    run = authmd(world.env(), "admin", "revoke", first["account"]["id"], "--yes")
    assert run.code == 0, run
    # Interrupted as from a terminal: a shell starts a background job with SIGINT ignored, and a child
    # inherits "ignored" (never a handler), so under a backgrounded test run it would never stop.
    command = [sys.executable, "-m", "app", "admin", "events", "--follow", "--json"]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [*command, "--type", "agent_registration.revoked"],
            cwd=ROOT,
            env=world.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    with proc:  # closes the pipes at the end
        try:
            lines = Lines(proc)
            # What is already in the trail comes first, one JSON object a line...
            seen = []
            while not seen or seen[-1]["registration_id"] != first["id"]:
                seen.append(json.loads(lines.next()))
            assert {e["type"] for e in seen} == {"agent_registration.revoked"}
            # ...then what happens while it runs.
            run = authmd(world.env(), "admin", "revoke", second["account"]["id"], "--yes")
            assert run.code == 0, run
            event = json.loads(lines.next())
            assert (event["type"], event["registration_id"], event["account_id"]) == (
                "agent_registration.revoked",
                second["id"],
                second["account"]["id"],
            )
            assert ISO.fullmatch(event["at"])
            assert proc.poll() is None  # still following
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0
            assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
        finally:
            signal_and_wait(proc, signal.SIGTERM, 10, 10)
