"""How the SQLite adapter commits: the writes of one event-loop turn share one transaction (group commit),
and a thread of its own copies the WAL back into the database (checkpoints off the event loop).

Both were measured on the registration path (docs/performance.md): a checkpoint run by the committing
connection (SQLite's default, every 1,000 WAL pages) cost ~85 µs per registration on the event loop, and
``BEGIN IMMEDIATE``/``COMMIT`` per write another ~30 µs that a shared transaction spreads over the
writes of a turn.

Group commit keeps each write all-or-nothing: every write runs in a savepoint of the shared transaction
and a write that fails rolls back to it alone. No caller hears of a write, or of anything it read while
the shared transaction was open, before ``COMMIT`` returns; if ``COMMIT`` fails, all of them fail with
StoreUnavailable and nothing of the turn is kept. Durability is SQLite's own for the ``synchronous``
setting: the turn's writes are acknowledged after the ``COMMIT`` that holds them.

A checkpoint completes, and the WAL starts over, only when no write lands while it runs; so while the
thread checkpoints, this process holds new writes back (they wait on the loop, which goes on serving
everything else) and lets them through together when it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from app.errors import StoreUnavailable

# Commits between checkpoints: with a few WAL pages a commit this keeps the WAL near SQLite's own
# default of 1,000 pages.
CHECKPOINT_EVERY = 100
# A WAL file that grew in a burst is cut back to this size when it starts over.
WAL_SIZE_LIMIT = 32 * 1024 * 1024
# Past this many WAL pages (other processes kept writing through the passive checkpoints), the thread
# takes the write lock for a checkpoint that completes; their writes wait meanwhile, as on any lock.
FORCE_AFTER_PAGES = 8_000


class Held(Exception):
    """A write asked for while this process's checkpoint runs: nothing ran; retry once it is over."""


class GroupCommit:
    """The open shared transaction of one connection, committed once the current loop turn is over."""

    def __init__(self, checkpointer: Checkpointer | None = None) -> None:
        self.pending: asyncio.Future[None] | None = None
        self.held: asyncio.Future[None] | None = None
        self.checkpointer = checkpointer
        self._commits = 0

    @contextlib.contextmanager
    def write(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """One write: joins the turn's transaction, or opens it (``BEGIN IMMEDIATE`` takes the write lock;
        SQLITE_BUSY there means nothing ran, so the caller may retry), inside a savepoint of its own.
        Without a running loop (start-up, a direct call) the write is its own transaction."""
        opened = not conn.in_transaction
        if opened and self.held is not None:
            raise Held
        if opened:
            conn.execute("BEGIN IMMEDIATE")
        alone = opened and not _loop_running()
        if opened and not alone:
            loop = asyncio.get_running_loop()
            self.pending = loop.create_future()
            loop.call_soon(self._commit, conn, self.pending)
        conn.execute("SAVEPOINT write")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK TO write")
            conn.execute("RELEASE write")
            if alone:
                conn.execute("ROLLBACK")
            raise
        conn.execute("RELEASE write")
        if alone:
            conn.execute("COMMIT")

    def _commit(self, conn: sqlite3.Connection, done: asyncio.Future[None]) -> None:
        self.pending = None
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(sqlite3.DatabaseError):
                conn.execute("ROLLBACK")
            done.set_exception(StoreUnavailable(f"sqlite: {exc}"))
            done.exception()  # its writers raise it; retrieved here so a cancelled one leaves no warning
            return
        done.set_result(None)
        self._commits += 1
        if self.checkpointer is not None and self._commits % CHECKPOINT_EVERY == 0:
            loop = asyncio.get_running_loop()
            held = self.held = loop.create_future()

            def release() -> None:
                self.held = None
                held.set_result(None)

            self.checkpointer.request(lambda: loop.call_soon_threadsafe(release))

    async def settled(self) -> None:
        """Wait until the open shared transaction, if any, has committed (or raise why it did not)."""
        if self.pending is not None:
            await asyncio.shield(self.pending)

    async def resumed(self) -> None:
        """Wait until this process's checkpoint is over."""
        if self.held is not None:
            await asyncio.shield(self.held)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Checkpointer:
    """A thread with its own connection running checkpoints when asked, and once a second for what other
    processes wrote. SQLite releases the GIL while it copies pages and syncs, so the event loop goes on
    serving meanwhile."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wake = threading.Event()
        self._stop = False
        self._done: list[Callable[[], object]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="authmd-sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self, done: Callable[[], object]) -> None:
        with self._lock:
            self._done.append(done)
        self._wake.set()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=2000")  # used only by the forced checkpoint
        try:
            while not self._stop:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                self._checkpoint(conn)
            self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            done, self._done = self._done, []
        try:
            # PASSIVE waits for no one: the WAL pages written so far are copied back.
            _, pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if pages > FORCE_AFTER_PAGES and copied < pages:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.DatabaseError:
            pass  # busy or failing: the next round retries, and writes go on meanwhile
        finally:
            for callback in done:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    callback()
