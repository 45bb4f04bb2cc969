"""What only the SQLite adapter promises: migrations, WAL, its URL, and safety across processes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from app import events as ev
from app.errors import StoreUnavailable
from app.store.port import Account, Admission, Note, Registration, WindowHit
from app.store.sqlite import SQLiteStore, parse_sqlite_url
from app.store.sqlite.commit import CHECKPOINT_EVERY, Checkpointer, writes

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000
WINDOW = 100.0


def migration_count() -> int:
    folder = resources.files("app.store") / "migrations"
    return sum(1 for entry in folder.iterdir() if entry.name.endswith(".sql"))


def raw_pragma(path: Path, name: str) -> object:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


async def open_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open()
    return store


async def seed(store: SQLiteStore) -> None:
    account = Account(
        id="acct_1", kind="temporary", created_at=T0, expires_at=T0 + 3600, quota_notes=5, quota_note_bytes=100
    )
    registration = Registration(
        id="reg_1", type="anonymous", account_id="acct_1", scopes=("notes:read",), created_at=T0, expires_at=T0 + 3600
    )
    created = ev.new(ev.RegistrationCreated, T0, "acct_1", "reg_1", method="anonymous", scopes=registration.scopes)
    await store.create_registration(account, registration, [created])
    assert await store.add_note(Note(id="n1", account_id="acct_1", text="hello", created_at=T0), T0) == "created"


async def test_open_migrates_to_the_number_of_migration_files(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    store = await open_store(path)
    try:
        assert migration_count() >= 1
        assert store.schema_version() == migration_count()
        assert raw_pragma(path, "user_version") == migration_count()
    finally:
        await store.close()


async def test_reopening_does_not_rerun_migrations(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    store = await open_store(path)
    await seed(store)
    await store.close()
    # Re-running a migration would fail (its tables exist) or wipe data; neither happens.
    for _ in range(2):
        store = await open_store(path)
        try:
            assert store.schema_version() == migration_count()
            assert [n.id for n in await store.list_notes("acct_1", T0)] == ["n1"]
        finally:
            await store.close()
    assert raw_pragma(path, "user_version") == migration_count()


async def test_wal_journal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    store = await open_store(path)
    try:
        assert raw_pragma(path, "journal_mode") == "wal"
    finally:
        await store.close()


async def test_savepoint_journals_and_sorts_stay_in_memory(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "a.sqlite3")
    try:
        # 2 = MEMORY: a group commit's savepoints would otherwise spill to a temporary file per batch
        assert store.conn.execute("PRAGMA temp_store").fetchone()[0] == 2
        await asyncio.gather(*(store.create_registration(*registration_records(n)) for n in range(60)))
        assert len(await store.list_accounts(None, 100, T0)) == 60
    finally:
        await store.close()


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "a.sqlite3"  # parent directories are created
    store = await open_store(path)
    await seed(store)
    assert await store.consume_once("pow", "c1", T0 + 300, T0) is True
    await store.close()

    store = await open_store(path)
    try:
        account = await store.get_account("acct_1", T0)
        assert account is not None
        assert account.note_count == 1
        assert await store.get_registration("acct_1", "reg_1", T0) is not None
        assert await store.consume_once("pow", "c1", T0 + 300, T0) is False
        assert [ev.type_of(e) for e in await store.events()] == ["agent_registration.created"]
    finally:
        await store.close()


async def test_from_url_opens_the_named_file(tmp_path: Path) -> None:
    path = tmp_path / "by-url.sqlite3"
    store = SQLiteStore.from_url(f"sqlite:///{path}")
    await store.open()
    try:
        await seed(store)
    finally:
        await store.close()
    assert path.exists()
    assert raw_pragma(path, "user_version") == migration_count()


async def test_write_while_another_process_holds_the_lock_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    store = SQLiteStore.from_url(f"sqlite:///{path}?busy_timeout_ms=50")
    await store.open()
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreUnavailable):
            await store.consume_once("pow", "c1", T0 + 300, T0)
        blocker.execute("ROLLBACK")
        # Nothing was half-written: the mark is still free.
        assert await store.consume_once("pow", "c1", T0 + 300, T0) is True
    finally:
        blocker.close()
        await store.close()


# ---------------------------------------------------------------------------------------------------
# URLs
# ---------------------------------------------------------------------------------------------------


def test_relative_url() -> None:
    parsed = parse_sqlite_url("sqlite:///rel/x.db")
    assert parsed[0] == Path("rel/x.db")
    assert not parsed[0].is_absolute()
    assert parsed[1] in ("FULL", "NORMAL")


def test_absolute_url() -> None:
    parsed = parse_sqlite_url("sqlite:////abs/x.db")
    assert parsed[0] == Path("/abs/x.db")
    assert parsed[0].is_absolute()


@pytest.mark.parametrize(("value", "mode"), [("full", "FULL"), ("normal", "NORMAL"), ("NORMAL", "NORMAL")])
def test_synchronous_parameter(value: str, mode: str) -> None:
    parsed = parse_sqlite_url(f"sqlite:////abs/x.db?synchronous={value}")
    assert parsed[0] == Path("/abs/x.db")  # the query is not part of the path
    assert parsed[1] == mode


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////abs/x.db?synchronous=off",
        "sqlite:///rel/x.db?synchronous=extra",
        "sqlite:///",
        "sqlite:///?synchronous=full",
        "sqlite://x.db",
        "postgres:///x.db",
        "",
    ],
)
def test_bad_urls_raise_value_error(url: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_sqlite_url(url)


# ---------------------------------------------------------------------------------------------------
# Several processes on one file
# ---------------------------------------------------------------------------------------------------

RACER = """
import asyncio, json, sys
from app.store.sqlite import SQLiteStore

async def main(path, keys, reverse):
    store = SQLiteStore(path)
    await store.open()
    order = list(range(keys))[::-1] if reverse else list(range(keys))
    print(json.dumps({"ready": store.schema_version()}), flush=True)
    sys.stdin.readline()  # the start line: every racer is open before any of them writes
    won = [i for i in order if await store.consume_once("race", f"k{i}", 2.0e9, 1.8e9)]
    await store.close()
    print(json.dumps({"won": won}), flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"))
"""


def run_racers(path: Path, count: int, keys: int) -> list[dict[str, object]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(path), str(keys), str(i % 2)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    try:
        ready = []
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                _out, err = proc.communicate(timeout=60)
                pytest.fail(f"racer exited before it was ready: {err}")
            ready.append(json.loads(line)["ready"])
        assert ready == [migration_count()] * count
        results = []
        for proc in procs:
            out, err = proc.communicate("go\n", timeout=60)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


async def test_processes_racing_on_consume_once_have_one_winner_per_key(tmp_path: Path) -> None:
    path = tmp_path / "race.sqlite3"
    store = await open_store(path)  # migrated up front: the race is on the marks alone
    await store.close()
    results = run_racers(path, count=3, keys=200)
    wins = Counter(i for r in results for i in r["won"])  # type: ignore[attr-defined]
    assert sum(wins.values()) == 200
    assert wins == Counter(range(200))


async def test_processes_opening_a_new_file_together_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite3"
    results = run_racers(path, count=3, keys=20)  # each racer checks it saw the full schema version
    wins = Counter(i for r in results for i in r["won"])  # type: ignore[attr-defined]
    assert wins == Counter(range(20))
    assert raw_pragma(path, "user_version") == migration_count()


def registration_records(n: int) -> tuple[Account, Registration, list[ev.Event]]:
    account = Account(
        id=f"acct_{n}", kind="temporary", created_at=T0, expires_at=T0 + 3600, quota_notes=5, quota_note_bytes=100
    )
    registration = Registration(
        id=f"reg_{n}",
        type="anonymous",
        account_id=account.id,
        scopes=("notes:read",),
        created_at=T0,
        expires_at=T0 + 60,
    )
    created = ev.new(
        ev.RegistrationCreated, T0, account.id, registration.id, method="anonymous", scopes=("notes:read",)
    )
    return account, registration, [created]


def accounts_in(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM accounts").fetchone()[0])
    finally:
        conn.close()


async def test_the_writes_of_one_turn_share_a_commit_and_a_failing_one_rolls_back_alone(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "a.sqlite3")
    try:
        await store.create_registration(*registration_records(0))
        commits = store._group.commits
        results = await asyncio.gather(
            *(store.create_registration(*registration_records(n)) for n in (1, 2, 0, 3)), return_exceptions=True
        )
        assert store._group.commits == commits + 1  # one COMMIT for the four
        assert isinstance(results[2], sqlite3.IntegrityError)  # acct_0 exists: that write alone is undone
        assert [r for i, r in enumerate(results) if i != 2] == [[], [], []]
        assert len(await store.read_outbox("acct_0", 10)) == 1  # its event was not written twice
    finally:
        await store.close()
    store = await open_store(tmp_path / "a.sqlite3")
    try:
        assert [a.id for a in await store.list_accounts(None, 10, T0)] == ["acct_0", "acct_1", "acct_2", "acct_3"]
    finally:
        await store.close()


def window_row(path: Path, key: str) -> tuple[int, int, int] | None:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT bucket, count, prev FROM windows WHERE key = ?", (key,)).fetchone()
        return tuple(row) if row else None
    finally:
        conn.close()


async def test_a_batch_counts_its_windows_once_and_a_failing_step_gives_its_counts_back(tmp_path: Path) -> None:
    """The window counters of a batch are read once and written back before its COMMIT
    (app/store/sqlite/windows.py): the limit holds across the batch's steps, a step that fails after
    counting gives its counts back, and the row on disk is the sum of what was kept."""
    path = tmp_path / "a.sqlite3"
    store = await open_store(path)
    admit = Admission((WindowHit("src", 3), WindowHit("global", None)), T0, WINDOW)
    try:
        await store.create_registration(*registration_records(0))  # acct_0 exists: its twin fails at insert
        commits = store._group.commits
        results = await asyncio.gather(
            *(store.create_registration(*registration_records(n), admit) for n in (1, 0, 2, 3, 4)),
            return_exceptions=True,
        )
        assert store._group.commits == commits + 1
        assert isinstance(results[1], sqlite3.IntegrityError)  # counted, then undone with its savepoint
        assert [r[0].allowed for r in (results[0], *results[2:])] == [True, True, True, False]  # type: ignore[index]
        assert [r[0].count for r in results[2:4]] == pytest.approx([2.0, 3.0])  # type: ignore[index]
        assert [a.id for a in await store.list_accounts(None, 10, T0)] == ["acct_0", "acct_1", "acct_2", "acct_3"]
        bucket = int(T0 // WINDOW)
        assert window_row(path, "src") == (bucket, 3, 0)
        assert window_row(path, "global") == (bucket, 3, 0)
        # The next batch reads what the last one wrote: the source is full.
        [refused, _] = await store.create_registration(*registration_records(5), admit)
        assert refused.allowed is False
    finally:
        await store.close()


async def test_a_failed_commit_keeps_no_window_counts(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    store = await open_store(path)
    try:
        store.conn.execute("CREATE TABLE t (x TEXT REFERENCES accounts (id) DEFERRABLE INITIALLY DEFERRED)")

        def orphan() -> None:
            with store._write() as conn:
                conn.execute("INSERT INTO t VALUES ('no such account')")

        admit = Admission((WindowHit("src", 10),), T0, WINDOW)
        results = await asyncio.gather(
            store.create_registration(*registration_records(1), admit),
            store._run(writes(orphan)),
            return_exceptions=True,
        )
        assert all(isinstance(r, StoreUnavailable) for r in results), results
        assert window_row(path, "src") is None
        [counted] = await store.create_registration(*registration_records(2), admit)
        assert counted.count == pytest.approx(1.0)  # nothing of the failed batch's count carried over
    finally:
        await store.close()


async def test_a_failed_commit_fails_every_write_of_its_turn_and_keeps_none(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "a.sqlite3")
    try:
        # A deferred foreign key is checked at COMMIT: a real way for a commit to fail after its writes ran.
        store.conn.execute("CREATE TABLE t (x TEXT REFERENCES accounts (id) DEFERRABLE INITIALLY DEFERRED)")

        def orphan() -> None:
            with store._write() as conn:
                conn.execute("INSERT INTO t VALUES ('no such account')")

        results = await asyncio.gather(
            store.create_registration(*registration_records(1)), store._run(writes(orphan)), return_exceptions=True
        )
        assert all(isinstance(r, StoreUnavailable) for r in results), results
        assert await store.list_accounts(None, 10, T0) == []
        await store.create_registration(*registration_records(2))  # the next turn starts clean
        assert [a.id for a in await store.list_accounts(None, 10, T0)] == ["acct_2"]
    finally:
        await store.close()


async def test_checkpoints_copy_the_wal_into_the_database_file_as_writes_go_on(tmp_path: Path) -> None:
    """Checkpoints run in a thread, every CHECKPOINT_EVERY commits, while this process's writes wait: the
    database file alone (without its WAL) holds every write before the last checkpoint."""
    path = tmp_path / "a.sqlite3"
    store = await open_store(path)
    try:
        assert raw_pragma(path, "wal_autocheckpoint") == 1000  # a fresh connection's default; ours is 0
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        for n in range(2 * CHECKPOINT_EVERY + 10):
            await store.create_registration(*registration_records(n))
        copy = tmp_path / "copy.sqlite3"
        copy.write_bytes(path.read_bytes())  # the main file only: no -wal beside it
        assert accounts_in(copy) >= 2 * CHECKPOINT_EVERY
    finally:
        await store.close()


async def test_closing_fails_a_write_still_waiting_for_another_process_lock_instead_of_leaving_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.sqlite3"
    store = await open_store(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    try:
        waiting = asyncio.ensure_future(store.create_registration(*registration_records(1)))
        await asyncio.sleep(0)  # the batch runs, finds the lock held and waits to retry
        assert not waiting.done()
        await store.close()
        with pytest.raises(StoreUnavailable, match="closing"):
            await asyncio.wait_for(waiting, timeout=5)  # answered, not left waiting for ever
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert accounts_in(path) == 0


def test_a_checkpointer_that_cannot_open_its_connection_never_leaves_a_request_waiting(tmp_path: Path) -> None:
    checkpointer = Checkpointer(tmp_path / "no such directory" / "a.sqlite3")
    checkpointer.start()
    checkpointer.stop()  # the thread has ended
    answered: list[int] = []
    checkpointer.request(lambda: answered.append(1))
    assert answered == [1]  # answered at once: the writes it would hold go on
