"""A committed event is found after the writer dies (spec/events.md § Guarantees), on every backend.

A child process holding the store creates accounts one after another, each with its event, and says
so after each commit; the test kills it with SIGKILL (no cleanup, no flush beyond what the commit
did) right after some commits, while it is in the middle of more. A fresh reader then finds the event
of every acknowledged change, and for every change the child may have been making, the change and its
event both or neither.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from app.store import open_store
from tests.store.conftest import BACKENDS

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000
ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, sys
from app import events as ev
from app.store import open_store
from app.store.port import Account, Registration

T0 = 1_800_000_000

async def main(url: str) -> None:
    store = open_store(url)
    await store.open()
    for i in range(100_000):
        acct = Account(id=f"acct_crash_{i}", kind="temporary", created_at=T0, expires_at=T0 + 3600,
                       quota_notes=5, quota_note_bytes=100)
        reg = Registration(id=f"reg_crash_{i}", type="anonymous", account_id=acct.id, scopes=("notes:read",),
                           created_at=T0, expires_at=T0 + 3600)
        created = ev.new(ev.RegistrationCreated, T0, acct.id, reg.id, method="anonymous", scopes=reg.scopes)
        await store.create_registration(acct, reg, [created])
        print(i, flush=True)

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return "sqlite:///" + str(tmp_path / "crash.sqlite3")
    server = request.getfixturevalue("shared_redis" if request.param == "redis" else "redis_cluster")
    return f"{server.url}?prefix=c{uuid.uuid4().hex[:12]}:"


def _read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            line = proc.stdout.readline()
            assert line, f"the writer exited early: {proc.stderr.read() if proc.stderr else ''}"
            return line
    raise AssertionError("the writer acknowledged nothing before the deadline")


async def test_kill_9_right_after_commits_loses_no_committed_event(store_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, store_url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        acknowledged = -1
        while acknowledged < 20:
            acknowledged = int(_read_line(proc, deadline))
        proc.send_signal(signal.SIGKILL)  # right after a commit, in the middle of the next ones
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    reader = open_store(store_url)
    await reader.open()
    try:
        pending = set(await reader.outboxes_with_pending(100_000))
        found = 0
        for i in range(acknowledged + 1000):
            account_id = f"acct_crash_{i}"
            account = await reader.get_account(account_id, T0)
            outbox = await reader.read_outbox(account_id)
            if i <= acknowledged:
                assert account is not None, account_id
            # Both or neither, for the acknowledged changes and for any the child was making.
            assert (account is not None) == (len(outbox) == 1), (account_id, account, outbox)
            assert (account_id in pending) == (account is not None), account_id
            found += account is not None
        assert found >= acknowledged + 1
        assert len(await reader.events("", 100_000)) == found
    finally:
        await reader.close()
