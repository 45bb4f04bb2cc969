"""The SQLite adapter's plumbing and upkeep: the URL, the connection, migrations, one short transaction per
port method (``_run``, ``_write``), the row codecs, the steps several concerns share, and the sweep.

Every port method is one transaction: a concern's module composes these steps inside ``_write``, so a
change and its events (``_append``) commit together or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

import msgspec

from app import events as ev
from app import metrics
from app.errors import StoreUnavailable
from app.events import Event
from app.store.port import Account, Delegation, Deleted, Registration, User, expired_event
from app.store.sqlite.commit import WAL_SIZE_LIMIT, Checkpointer, GroupCommit, is_busy, is_write, writes
from app.store.sqlite.windows import WindowRows

T = TypeVar("T")

_SYNC_MODES = {"full": "FULL", "normal": "NORMAL"}


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("app.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def parse_sqlite_url(url: str) -> tuple[Path, str, int]:
    """``sqlite:///relative/path`` or ``sqlite:////absolute/path``, with optional query parameters
    ``synchronous=full|normal`` and ``busy_timeout_ms=N`` (how long a write waits for another process)."""
    if not url.startswith("sqlite:///"):
        raise ValueError("not a sqlite:/// URL")
    parts = urlsplit(url)
    raw_path = url[len("sqlite:///") :].split("?", 1)[0]
    if not raw_path:
        raise ValueError("sqlite URL has no path")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"synchronous", "busy_timeout_ms"}
    if unknown:
        raise ValueError(f"unknown sqlite URL parameter(s): {', '.join(sorted(unknown))}")
    sync = query.get("synchronous", ["normal"])[0].lower()
    if sync not in _SYNC_MODES:
        raise ValueError("synchronous must be full or normal")
    busy = query.get("busy_timeout_ms", ["5000"])[0]
    if not busy.isdigit():
        raise ValueError("busy_timeout_ms must be a whole number of milliseconds")
    return Path(raw_path), _SYNC_MODES[sync], int(busy)


# Columns are named after the record fields, in the same order (tests/store checks every field survives).
_REG_FIELDS = Registration.__struct_fields__
_ACCT_FIELDS = Account.__struct_fields__
_REG_COLS = ", ".join(_REG_FIELDS)
_ACCT_COLS = ", ".join(_ACCT_FIELDS)
_REG_MARKS = ", ".join("?" * len(_REG_FIELDS))
_ACCT_MARKS = ", ".join("?" * len(_ACCT_FIELDS))


def _registration_row(reg: Registration) -> tuple[Any, ...]:
    values = msgspec.structs.asdict(reg)
    values["scopes"] = " ".join(reg.scopes)
    values["pending"] = int(reg.pending)
    return tuple(values[f] for f in _REG_FIELDS)


def _registration(row: Sequence[Any]) -> Registration:
    values = dict(zip(_REG_FIELDS, row, strict=True))
    values["scopes"] = tuple(values["scopes"].split())
    values["pending"] = bool(values["pending"])
    return Registration(**values)


def _account_row(account: Account) -> tuple[Any, ...]:
    return tuple(getattr(account, f) for f in _ACCT_FIELDS)


def _account(row: Sequence[Any]) -> Account:
    return Account(**dict(zip(_ACCT_FIELDS, row, strict=True)))


def _user(row: Sequence[Any]) -> User:
    return User(id=row[0], email=row[1], account_id=row[2], created_at=row[3])


def _delegation(row: Sequence[Any]) -> Delegation:
    return Delegation(
        issuer=row[0],
        subject=row[1],
        user_id=row[2],
        account_id=row[3],
        registration_id=row[4],
        status=row[5],
        created_at=row[6],
    )


_CLAIM_JSON = msgspec.json.Encoder()
_DELEGATION_COLS = "issuer, subject, user_id, account_id, registration_id, status, created_at"


# A row is live when it has no expiry or its expiry is after now.
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


class SQLiteBase:
    """One connection to the file and the steps several ports share; each port's mixin builds on it."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL", busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None
        self._group = GroupCommit(lambda: self.conn, busy_timeout_ms / 1000, None, WindowRows())

    @classmethod
    def from_url(cls, url: str) -> Self:
        return cls(*parse_sqlite_url(url))

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        # Every port method comes through here: timed by its step's name (code's, so a bounded label).
        operation = fn.__name__.lstrip("_")
        started = time.perf_counter()
        try:
            if is_write(fn) and self._conn is not None:
                # Queued for the turn's transaction (app/store/sqlite/commit.py); answered once committed.
                result: T = await asyncio.shield(self._group.submit(fn, args))
                return result
            return await self._attempt(fn, args)
        except StoreUnavailable:
            metrics.store_failed(operation)
            raise
        finally:
            metrics.store_timed(operation, time.perf_counter() - started)

    async def _attempt(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        while True:
            try:
                return fn(*args)
            except sqlite3.OperationalError as exc:
                # Another process holds the write lock: the transaction did not start, so retrying
                # is safe. Yield to the loop meanwhile instead of sleeping inside SQLite.
                if is_busy(exc) and time.monotonic() < deadline:
                    # Lock holds last tens of microseconds: a short jittered pause, not an exponential
                    # backoff (which measured as idle workers and a long p99 under write load).
                    await asyncio.sleep(random.uniform(0.0001, 0.0004))
                    continue
                # "database is locked" past the deadline, I/O errors, a vanished file: a 503.
                raise StoreUnavailable(f"sqlite: {exc}") from exc
            except sqlite3.IntegrityError:
                raise
            except sqlite3.DatabaseError as exc:
                raise StoreUnavailable(f"sqlite: {exc}") from exc

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("store is not open")
        return self._conn

    def _batch_windows(self) -> WindowRows | None:
        """The window counters of the batch this write step runs in; None outside a batch."""
        return self._group.windows if self._group.running else None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write, all or nothing: a queued step's savepoint in the turn's transaction, or else (a
        step not marked ``@writes``, a call outside the loop) a transaction of its own."""
        conn = self.conn
        if self._group.running:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The file holds every account and grant: create it 0600 before SQLite does (with 0644). SQLite
        # gives the -wal and -shm files, which it creates later, the mode of the database file.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        # At start-up blocking is fine: let SQLite wait for other processes while we migrate.
        # check_same_thread=False: the owner is the event loop, which may differ from the opening thread.
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=max(self._busy_timeout_ms / 1000, 5.0), check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn
            self._migrate_sync()
        except BaseException:
            self._conn = None
            conn.close()
            raise
        conn.execute("PRAGMA busy_timeout=0")  # from now on waits happen in _run, off the loop's back
        # Checkpoints move to a thread of their own; a WAL grown in a burst is cut back after one.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        # Each write step of a group commit runs in a savepoint (commit.py), and SQLite keeps the pages a
        # savepoint may have to restore in a sub-journal: a temporary file once it passes 64 KiB, i.e. a
        # file created, written page by page and deleted for nearly every batch (measured: 37 pwrite
        # calls per registration, and a file opened and unlinked per batch). In memory it is a copy,
        # freed at COMMIT (about 6 pwrite calls per registration remain: the WAL's frames). Temporary
        # B-trees of sorts and groupings move to memory as well: the largest groups the undelivered events
        # by account (the outbox), bounded by what is pending, not by the database.
        conn.execute("PRAGMA temp_store=MEMORY")
        self._checkpointer = Checkpointer(self.path)
        self._checkpointer.start()
        self._group.checkpointer = self._checkpointer

    def _migrate_sync(self) -> None:
        # An flock serialises processes that start together; BEGIN IMMEDIATE makes each step atomic.
        lock_path = self.path.with_name(self.path.name + ".migrate-lock")
        with os.fdopen(os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                for version, sql in _migrations():
                    current = self.conn.execute("PRAGMA user_version").fetchone()[0]
                    if version <= current:
                        continue
                    if version != current + 1:
                        raise RuntimeError(f"migration {version} skips a version after {current}")
                    # executescript commits first, so the script carries its own transaction.
                    self.conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    async def open(self) -> None:
        try:
            self._open_sync()
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    async def close(self) -> None:
        def _close() -> None:
            self._group.drain()
            if self._checkpointer is not None:
                self._checkpointer.stop()
                self._checkpointer = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(_close)

    async def ping(self) -> None:
        def ping() -> None:
            self.conn.execute("SELECT 1").fetchone()

        await self._run(ping)

    def _append(self, conn: sqlite3.Connection, events: Sequence[Event]) -> None:
        conn.executemany(
            "INSERT INTO events (id, account_id, body) VALUES (?, ?, ?)",
            [(e.id, e.account_id, ev.encode(e)) for e in events],
        )

    def _insert_account(self, conn: sqlite3.Connection, account: Account, reg: Registration) -> None:
        conn.execute(f"INSERT INTO accounts ({_ACCT_COLS}) VALUES ({_ACCT_MARKS})", _account_row(account))
        conn.execute(f"INSERT INTO registrations ({_REG_COLS}) VALUES ({_REG_MARKS})", _registration_row(reg))

    def _insert_delegation(self, conn: sqlite3.Connection, d: Delegation) -> None:
        conn.execute(
            f"INSERT INTO delegations ({_DELEGATION_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (d.issuer, d.subject, d.user_id, d.account_id, d.registration_id, d.status, d.created_at),
        )

    def _get_delegation(self, issuer: str, subject: str) -> Delegation | None:
        row = self.conn.execute(
            f"SELECT {_DELEGATION_COLS} FROM delegations WHERE issuer = ? AND subject = ?", (issuer, subject)
        ).fetchone()
        return _delegation(row) if row else None

    def _delete_accounts(self, conn: sqlite3.Connection, ids: list[str]) -> list[Deleted]:
        out = []
        for account_id in ids:
            regs = conn.execute("SELECT count(*) FROM registrations WHERE account_id = ?", (account_id,)).fetchone()
            row = conn.execute("DELETE FROM accounts WHERE id = ? RETURNING note_count", (account_id,)).fetchone()
            if row is not None:  # ON DELETE CASCADE removes registrations and notes
                out.append(Deleted(account_id=account_id, registrations=regs[0], notes=row[0]))
        return out

    @writes
    def _sweep(self, now: float, limit: int) -> list[Deleted]:
        with self._write() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM accounts WHERE kind = 'temporary' AND expires_at <= ? ORDER BY expires_at LIMIT ?",
                    (now, limit),
                )
            ]
            deleted = self._delete_accounts(conn, ids)
            for d in deleted:
                counts = {"registrations": d.registrations, "notes": d.notes}
                self._append(conn, [msgspec.structs.replace(expired_event(d.account_id, now), **counts)])
            # Space reclamation only: expired marks and counters are already absent to every read.
            conn.execute(
                "DELETE FROM marks WHERE (namespace, key) IN "
                "(SELECT namespace, key FROM marks WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
                (now, limit),
            )
            conn.execute(
                "DELETE FROM windows WHERE key IN "
                "(SELECT key FROM windows WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
                (now, limit),
            )
            conn.execute(
                "DELETE FROM sessions WHERE id_hash IN "
                "(SELECT id_hash FROM sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
                (now, limit),
            )
            conn.execute(
                "DELETE FROM clients WHERE id IN "
                "(SELECT id FROM clients WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
                (now, limit),
            )
            return deleted

    async def sweep(self, now: float, limit: int) -> list[Deleted]:
        return await self._run(self._sweep, now, limit)
