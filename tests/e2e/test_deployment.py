"""Deployment behaviour of the real server: several workers, proxies, key rotation by the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import jwt
import pytest

from tests.e2e.conftest import ROOT, StartServer, wait_until

pytestmark = pytest.mark.e2e

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _start(issuer: str) -> tuple[str, str]:
    """Register and exchange on fresh connections; (assertion, access token)."""
    reg = httpx.post(f"{issuer}/agent/identity", json={"type": "anonymous"})
    assert reg.status_code == 200, reg.text
    assertion = reg.json()["identity"]["assertion"]
    tok = httpx.post(f"{issuer}/oauth2/token", data={"grant_type": JWT_BEARER, "assertion": assertion})
    assert tok.status_code == 200, tok.text
    return assertion, tok.json()["access_token"]


def test_two_workers_share_keys_and_state(start_server: StartServer) -> None:
    server = start_server({"AUTHMD_WORKERS": "2", "AUTHMD_POW_MODE": "off"})
    wait_until(
        lambda: len(set(re.findall(r"Started server process \[(\d+)\]", server.read_log()))) == 2,
        30,
        "two worker processes",
    )
    tokens = [_start(server.issuer)[1] for _ in range(6)]
    # Every request on a fresh connection: whichever worker answers accepts what the other issued.
    for _ in range(3):
        for token in tokens:
            r = httpx.post(
                f"{server.issuer}/api/notes", json={"text": "x"}, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 201, r.text
    for token in tokens:
        r = httpx.get(f"{server.issuer}/api/notes", headers={"Authorization": f"Bearer {token}"})
        assert r.json()["count"] == 3
    # One revocation is seen by both workers at once.
    httpx.post(f"{server.issuer}/oauth2/revoke", data={"token": tokens[0]})
    for _ in range(4):
        r = httpx.get(f"{server.issuer}/api/notes", headers={"Authorization": f"Bearer {tokens[0]}"})
        assert r.status_code == 401


def test_forwarded_for_counts_only_behind_a_trusted_proxy(start_server: StartServer) -> None:
    limits = {"AUTHMD_POW_MODE": "off", "AUTHMD_REGISTER_LIMIT_PER_SOURCE": "1"}
    trusting = start_server({**limits, "AUTHMD_TRUSTED_PROXIES": "127.0.0.1/32"})

    def register(issuer: str, forwarded: str) -> int:
        return httpx.post(
            f"{issuer}/agent/identity", json={"type": "anonymous"}, headers={"X-Forwarded-For": forwarded}
        ).status_code

    assert register(trusting.issuer, "203.0.113.1") == 200
    assert register(trusting.issuer, "203.0.113.1") == 429
    assert register(trusting.issuer, "198.51.100.7, 203.0.113.2") == 200  # the rightmost untrusted hop counts
    assert register(trusting.issuer, "2001:db8:1:2::1") == 200
    assert register(trusting.issuer, "2001:db8:1:2::ffff") == 429  # same /64
    untrusting = start_server(limits)
    assert register(untrusting.issuer, "203.0.113.1") == 200
    assert register(untrusting.issuer, "203.0.113.99") == 429  # the header is ignored: one source


def test_key_rotation_by_the_cli_reaches_a_running_server(start_server: StartServer) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off", "AUTHMD_KEY_CHECK_INTERVAL_SECONDS": "0.2"})
    old_assertion, old_token = _start(server.issuer)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")}
    env["AUTHMD_DATA_DIR"] = str(server.data_dir)

    def authmd_keys(verb: str) -> str:
        cmd = [sys.executable, "-m", "app", "keys", verb]
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True).stdout

    new_kid = re.search(r"new current key (\S+);", authmd_keys("rotate")).group(1)  # type: ignore[union-attr]
    assert new_kid != old_kid

    def published() -> set[str]:
        return {k["kid"] for k in httpx.get(f"{server.issuer}/.well-known/jwks.json").json()["keys"]}

    wait_until(lambda: published() == {old_kid, new_kid}, 20, "the rotated key in the JWKS")
    _, new_token = _start(server.issuer)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    for token in (old_token, new_token):
        assert httpx.get(f"{server.issuer}/api/notes", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    r = httpx.post(f"{server.issuer}/oauth2/token", data={"grant_type": JWT_BEARER, "assertion": old_assertion})
    assert r.status_code == 200
    listing = authmd_keys("list")
    assert new_kid in listing and "PRIVATE" not in listing


def test_the_documented_sqlite_backup_restores_a_working_service(start_server: StartServer, tmp_path) -> None:
    """docs/deployment.md's backup command, verbatim, against a running server; a server started on
    the copy (database and keys) honours what the original issued."""
    guide = (ROOT / "docs" / "deployment.md").read_text()
    command = re.search(r"<!-- backup-sqlite -->\n```sh\n(.+?)\n```", guide, flags=re.DOTALL)
    assert command is not None, "the backup command is marked in docs/deployment.md"
    original = start_server({"AUTHMD_POW_MODE": "off"})
    assertion, token = _start(original.issuer)
    note = httpx.post(
        f"{original.issuer}/api/notes", json={"text": "kept"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert note.status_code == 201, note.text
    here = tmp_path / "ops"
    here.mkdir()
    (here / "authmd-data").symlink_to(original.data_dir)
    subprocess.run(["sh", "-c", command.group(1)], cwd=here, check=True, timeout=60)
    backup = here / "authmd-backup.sqlite3"
    assert backup.stat().st_mode & 0o077 == 0, oct(backup.stat().st_mode)  # the copy is as private as the original
    original.stop()
    restored_dir = tmp_path / "restored"
    restored_dir.mkdir()
    os.replace(backup, restored_dir / "authmd.sqlite3")
    os.replace(here / "authmd-backup-keys", restored_dir / "keys")
    # The issuer is in every token: the restored service keeps it (here: the original's loopback URL).
    same_issuer = start_server(
        {"AUTHMD_POW_MODE": "off", "AUTHMD_DATA_DIR": str(restored_dir), "AUTHMD_ISSUER": original.issuer}
    )
    exchanged = httpx.post(
        f"{same_issuer.origin}/oauth2/token", data={"grant_type": JWT_BEARER, "assertion": assertion}
    )
    assert exchanged.status_code == 200, exchanged.text
    notes = httpx.get(
        f"{same_issuer.origin}/api/notes", headers={"Authorization": f"Bearer {exchanged.json()['access_token']}"}
    )
    assert [n["text"] for n in notes.json()["notes"]] == ["kept"], notes.text
