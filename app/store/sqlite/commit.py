"""How the SQLite adapter commits: the writes of one event-loop turn run together, in one transaction, at
the turn's end (group commit), and a thread of its own copies the WAL back into the database
(checkpoints off the event loop).

Both were measured on the registration path (docs/performance.md): a checkpoint run by the committing
connection (SQLite's default, every 1,000 WAL pages) cost ~85 µs per registration on the event loop,
and ``BEGIN IMMEDIATE``/``COMMIT`` per write another ~30 µs that a shared transaction spreads over the
writes of a turn.

A write step (a method marked ``@writes``) is queued, not run: at the turn's end one callback takes the
write lock, runs every queued step in a savepoint of its own (a step that fails rolls back alone and
raises to its caller alone), commits, and only then answers the callers. The lock is held for the
writes alone, never across the rest of a turn (other processes wait on it), and no read ever sees a
write that is not committed. If ``COMMIT`` fails, every step of the batch fails with StoreUnavailable
and none is kept. Durability is SQLite's own for the ``synchronous`` setting. When another process
holds the lock, the batch waits (a short pause on the loop, as before) and the writes queued meanwhile
join it; a step waits at most ``busy_timeout_ms`` in all, then fails as StoreUnavailable.

A checkpoint completes, and the WAL starts over, only when no write lands while it runs; so while the
thread checkpoints, this process's writes stay queued (the loop goes on serving everything else) and
go through together when it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from app.errors import StoreUnavailable
from app.store.sqlite.windows import WindowRows

F = TypeVar("F", bound=Callable[..., Any])

# Commits between checkpoints: with a few WAL pages a commit this keeps the WAL near SQLite's own
# default of 1,000 pages.
CHECKPOINT_EVERY = 100
# A WAL file that grew in a burst is cut back to this size when it starts over.
WAL_SIZE_LIMIT = 32 * 1024 * 1024
# Past this many WAL pages (other processes kept writing through the passive checkpoints), the thread
# takes the write lock for a checkpoint that completes; their writes wait meanwhile, as on any lock.
FORCE_AFTER_PAGES = 8_000


def writes(fn: F) -> F:
    """Mark a store step as a write: ``_run`` queues it for the turn's transaction."""
    fn.writes = True  # type: ignore[attr-defined]
    return fn


def is_write(fn: Callable[..., Any]) -> bool:
    return getattr(fn, "writes", False) is True


def is_busy(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


@dataclass
class _Step:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    done: asyncio.Future[Any]
    deadline: float  # monotonic: past it, a lock still held by another process fails the step


class GroupCommit:
    """The write steps queued in this loop turn, run and committed together at its end."""

    def __init__(
        self,
        conn: Callable[[], sqlite3.Connection],
        busy_timeout: float,
        checkpointer: Checkpointer | None,
        windows: WindowRows,
    ):
        self._conn = conn
        self.windows = windows  # the rate-limit counters the batch moved, written once before COMMIT
        self._busy_timeout = busy_timeout
        self.checkpointer = checkpointer
        self.running = False  # inside a batch: a step's _write() is its savepoint's
        self.commits = 0
        self._queue: list[_Step] = []
        self._scheduled = False
        self._held = False

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        step = _Step(fn, args, loop.create_future(), time.monotonic() + self._busy_timeout)
        self._queue.append(step)
        self._schedule(loop, 0.0)
        return step.done

    def _schedule(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        if self._scheduled or self._held or not self._queue:
            return
        self._scheduled = True
        if delay:
            loop.call_later(delay, self._run)
        else:
            loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        if self._held or not self._queue:
            return
        loop = asyncio.get_running_loop()
        try:
            conn = self._conn()
        except StoreUnavailable as exc:  # closed under a batch waiting for another process's lock
            self._fail(self._take(), exc)
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                self._fail(self._take(), exc)
                return
            # Another process holds the lock: nothing ran. Steps past their wait fail; the rest wait a
            # short, jittered pause (lock holds last tens of microseconds) with whatever joins meanwhile.
            now = time.monotonic()
            late = [s for s in self._queue if s.deadline <= now]
            self._queue = [s for s in self._queue if s.deadline > now]
            self._fail(late, exc)
            self._schedule(loop, random.uniform(0.0001, 0.0004))
            return
        except sqlite3.DatabaseError as exc:
            self._fail(self._take(), exc)
            return
        steps = self._take()
        self.windows.clear()  # nothing carried over from a batch that ended some other way
        outcomes = self._steps(conn, steps)
        try:
            self.windows.flush(conn)
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(sqlite3.DatabaseError):
                conn.execute("ROLLBACK")
            self._fail(steps, exc)
            return
        finally:
            self.windows.clear()
        for step, (error, value) in zip(steps, outcomes, strict=True):
            if step.done.done():
                continue
            if error is not None:
                step.done.set_exception(error)
            else:
                step.done.set_result(value)
        self.commits += 1
        if self.checkpointer is not None and self.commits % CHECKPOINT_EVERY == 0:
            self._held = True
            self.checkpointer.request(lambda: loop.call_soon_threadsafe(self._release, loop))

    def _steps(self, conn: sqlite3.Connection, steps: list[_Step]) -> list[tuple[BaseException | None, Any]]:
        outcomes: list[tuple[BaseException | None, Any]] = []
        self.running = True
        try:
            for step in steps:
                conn.execute("SAVEPOINT step")
                self.windows.begin_step()
                try:
                    value = step.fn(*step.args)
                except Exception as exc:
                    conn.execute("ROLLBACK TO step")
                    conn.execute("RELEASE step")
                    self.windows.undo_step()
                    outcomes.append((_mapped(exc), None))
                else:
                    conn.execute("RELEASE step")
                    outcomes.append((None, value))
        finally:
            self.running = False
        return outcomes

    def _take(self) -> list[_Step]:
        steps, self._queue = self._queue, []
        return steps

    @staticmethod
    def _fail(steps: list[_Step], exc: Exception) -> None:
        error = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(f"sqlite: {exc}")
        for step in steps:
            if not step.done.done():
                step.done.set_exception(error)
                step.done.exception()  # retrieved: a caller that went away leaves no warning

    def _release(self, loop: asyncio.AbstractEventLoop) -> None:
        self._held = False
        self._schedule(loop, 0.0)

    def drain(self) -> None:
        """Closing the store: run what is queued now; what cannot run now (another process holds the
        lock) fails at once rather than waiting on a connection about to close."""
        self._held = False
        if self._queue:
            self._run()
        self._fail(self._take(), StoreUnavailable("the store is closing"))


def _mapped(exc: Exception) -> Exception:
    """A step's error as the caller sees it: a constraint as itself, any other database error as 503."""
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.IntegrityError):
        return StoreUnavailable(f"sqlite: {exc}")
    return exc


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
        self._alive = True
        self._thread = threading.Thread(target=self._loop, name="authmd-sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self, done: Callable[[], object]) -> None:
        with self._lock:
            if self._alive:
                self._done.append(done)
                self._wake.set()
                return
        done()  # no thread to run it (it failed to open its connection): nothing to wait for

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join()

    def _loop(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=2000")  # used only by the forced checkpoint
        except sqlite3.DatabaseError:
            conn = None  # SQLite's own checkpoints are off: the WAL grows until the next start
        try:
            while conn is not None and not self._stop:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                self._checkpoint(conn)
            if conn is not None:
                self._checkpoint(conn)
        finally:
            with self._lock:  # whoever still waits is answered, and no one waits from now on
                self._alive = False
                done, self._done = self._done, []
            _answer(done)
            if conn is not None:
                conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            done, self._done = self._done, []
        try:
            # PASSIVE waits for no one: the WAL pages written so far are copied back.
            _, pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.DatabaseError:
            return  # busy or failing: the next round retries, and writes go on meanwhile
        finally:
            _answer(done)  # this process's writes go on before any forced checkpoint waits on others
        if pages > FORCE_AFTER_PAGES and copied < pages:
            with contextlib.suppress(sqlite3.DatabaseError):
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()


def _answer(callbacks: list[Callable[[], object]]) -> None:
    for callback in callbacks:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            callback()
