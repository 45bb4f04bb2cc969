"""Commands issued in one event-loop turn go to Redis together, as one pipeline (single Redis only).

Each command through redis-py's own path costs ~110 µs of this process's CPU when requests overlap
(a connection from the pool, a timeout scope, packing, a write and a read each; measured with 16 in
flight); in a pipeline, ~30 µs. Under load every request's store call is such a command, so the
commands queued during a turn are sent at its end in one non-transactional pipeline: one connection
slot, one write, one read of all the replies. Each command (a script is one) is still atomic on its
own and answers its own caller; the commands of one request are awaited one after another, so their
order is kept. Nothing waits for a batch to fill: a lone command goes out at the end of its turn, as it
would have, and a batch goes out as soon as it holds ``MAX_BATCH`` commands.

Failures are each caller's own: an error reply (a script's ``redis.error_reply``, a refused write)
goes to its caller alone; NOSCRIPT (a restarted Redis forgot the scripts) reloads them and runs those
calls again, which is safe because nothing of theirs ran; a connection or timeout failure fails the
whole batch as StoreUnavailable, as it would each command. Redis Cluster keeps the one-command path:
its pipelines split by node, and refuse scripts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from redis import exceptions as rx

from app.errors import StoreUnavailable

# A redis-py method's name, its arguments, and the caller's answer.
Call = tuple[str, tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


# A batch goes out as soon as it holds this many commands, without waiting for the turn's end: Redis
# then runs the first commands while this process is still handling the turn's other requests. Sent
# only at the turn's end, a turn's 32 registrations went out together and the two sides took turns
# idling (one worker: 0.16-0.20x bare; in batches of 8: 0.24-0.27x; 4 and 16 measured between).
MAX_BATCH = 8


class AutoPipeline:
    def __init__(
        self,
        client: Any,
        slot: Callable[[], AbstractAsyncContextManager[None]],
        reload: Callable[[], Awaitable[None]],
        unavailable: tuple[type[BaseException], ...],
    ) -> None:
        self._client = client
        self._slot = slot  # one of the store's connection slots (RedisBase._connection)
        self._reload = reload
        self._unavailable = unavailable
        self._queue: list[Call] = []
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    def submit(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """``client.<method>(*args, **kwargs)``'s answer, from the pipeline sent at this turn's end."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        self._queue.append((method, args, kwargs, answer))
        if len(self._queue) >= MAX_BATCH:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._turn_end)
        return answer

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if batch:
            task = asyncio.ensure_future(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    def _turn_end(self) -> None:
        self._scheduled = False
        self._flush()

    async def _send(self, batch: list[Call]) -> None:
        try:
            async with self._slot():
                replies = await self._execute(batch)
                stale = [i for i, reply in enumerate(replies) if isinstance(reply, rx.NoScriptError)]
                if stale:
                    await self._reload()
                    for i, reply in zip(stale, await self._execute([batch[i] for i in stale]), strict=True):
                        replies[i] = reply
        except self._unavailable as exc:
            _fail(batch, StoreUnavailable(f"redis: {type(exc).__name__}"))
            return
        except StoreUnavailable as exc:  # no slot free within pool_timeout
            _fail(batch, exc)
            return
        except BaseException as exc:  # cancelled (the store is closing) or a bug: no caller waits forever
            _fail(batch, StoreUnavailable(f"redis: {type(exc).__name__}"))
            raise
        for (_, _, _, answer), reply in zip(batch, replies, strict=True):
            if answer.done():  # its caller went away
                continue
            if isinstance(reply, self._unavailable):
                answer.set_exception(StoreUnavailable(f"redis: {type(reply).__name__}"))
            elif isinstance(reply, Exception):
                answer.set_exception(reply)
            else:
                answer.set_result(reply)

    async def _execute(self, batch: list[Call]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for method, args, kwargs, _ in batch:
            getattr(pipe, method)(*args, **kwargs)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def close(self) -> None:
        """Let the batches in flight finish (each is bounded by the socket timeout)."""
        self._flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


def _fail(batch: list[Call], error: StoreUnavailable) -> None:
    for _, _, _, answer in batch:
        if not answer.done():
            answer.set_exception(error)
            answer.exception()  # retrieved: a caller that went away leaves no warning
