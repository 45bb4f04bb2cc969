"""The Redis adapter's plumbing and upkeep: the URL, the client and its connection gate, the scripts
(EVALSHA, reloaded on NOSCRIPT), the key layout (app/store/redis/__init__.py), the record codecs, the
steps several concerns share (deleting an account, writing a delegation) and the sweep.

Every change to an account is one single-slot script that writes the change and its events (``_emit``);
a failure to reach Redis is a StoreUnavailable, never a partial success reported as one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import msgspec
import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot

from app import events as ev
from app import metrics
from app.config import ConfigError
from app.errors import StoreUnavailable
from app.events import Event
from app.store.port import (
    OUTBOX_MAXLEN,
    OUTBOX_RETENTION_SECONDS,
    Account,
    Admission,
    Delegation,
    Deleted,
    Registration,
    User,
    WindowHit,
    WindowResult,
    expired_event,
)
from app.store.redis.pipeline import AutoPipeline

GRACE_MS = 86_400_000  # backend TTLs outlive the stored expiry by a day: the sweeper acts first
# Errors that mean "the store cannot answer now": a 503 upstream, never a 500.
UNAVAILABLE = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.BusyLoadingError,
    rx.ReadOnlyError,
    rx.ClusterDownError,
    rx.TryAgainError,
    rx.MasterDownError,
    rx.MaxConnectionsError,
    OSError,
)
_SCRIPTS = (
    "access_state",
    "add_counts",
    "add_deliveries",
    "add_note",
    "check_code",
    "complete_claim",
    "consume_once",
    "create_registration",
    "delete_account",
    "delete_note",
    "drop_outbox",
    "enable_endpoint",
    "endpoint_states",
    "finish_delivery",
    "hit_windows",
    "lease_deliveries",
    "link_login",
    "list_deliveries",
    "mark_delivered",
    "open_endpoints",
    "put_client",
    "put_delegation",
    "put_grant",
    "put_registration",
    "read_claim",
    "read_counts",
    "read_notes",
    "read_outbox",
    "read_registrations",
    "retry_delivery",
    "revoke_registration",
    "rotate_refresh",
    "save_claim",
    "set_not_before",
    "touch_client",
    "trim_deliveries",
)
# Scripts that change an account write its events: the outbox prelude comes first (``_outbox.lua``).
_EMITTING = {
    "check_code",
    "complete_claim",
    "create_registration",
    "delete_account",
    "enable_endpoint",
    "finish_delivery",
    "put_grant",
    "put_registration",
    "retry_delivery",
    "revoke_registration",
    "rotate_refresh",
    "save_claim",
    "set_not_before",
}
# Scripts that move webhook queues or log entries share their helpers (``_webhooks.lua``, after the
# outbox prelude).
_QUEUEING = {
    "add_deliveries",
    "enable_endpoint",
    "finish_delivery",
    "lease_deliveries",
    "retry_delivery",
    "trim_deliveries",
}
# Scripts that count in rate-limit windows share their math (``_windows.lua``).
_WINDOWED = {"create_registration", "hit_windows"}
SIGN_IN_ROUNDS = 8  # a sign-in that loses a race reads the winner's records in the next round


def _lua(name: str) -> tuple[str, str]:
    """(sha1, source) of one script; scripts run by EVALSHA and are loaded on NOSCRIPT."""
    folder = resources.files("app.store") / "lua"
    source = (folder / f"{name}.lua").read_text(encoding="utf-8")
    if name in _QUEUEING:
        source = (folder / "_webhooks.lua").read_text(encoding="utf-8") + source
    if name in _WINDOWED:
        source = (folder / "_windows.lua").read_text(encoding="utf-8") + source
    if name in _EMITTING:
        source = (folder / "_outbox.lua").read_text(encoding="utf-8") + source
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest(), source


SCRIPTS = {name: _lua(name) for name in _SCRIPTS}


def _window_results(answer: bytes | str) -> list[WindowResult]:
    """The windows prelude's rows (an empty Lua table encodes as ``{}``)."""
    rows = msgspec.json.decode(answer)
    return [WindowResult(count=float(c), allowed=a == "1", retry_after=float(r)) for a, c, r in rows or []]


def _reason(exc: BaseException) -> str:
    """What went wrong, in words: the operating system's reason when one caused it (e.g. "Connection
    refused"), then redis-py's own text, on one line and bounded."""
    cause: BaseException | None = exc
    while cause is not None and not (isinstance(cause, OSError) and cause.errno):
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(exc).split())[:300]
    parts = [os.strerror(cause.errno) if isinstance(cause, OSError) and cause.errno else type(exc).__name__]
    return "; ".join([*parts, text] if text else parts)


class RedisURL(NamedTuple):
    url: str  # the connection URL without our parameters
    cluster: bool
    prefix: str
    max_connections: int = 64
    pool_timeout: float = 3.0


def parse_redis_url(url: str) -> RedisURL:
    """``redis://``, ``rediss://`` for one server; ``redis+cluster://h:p,h:p`` and ``rediss+cluster://``
    for a cluster. Our parameters: ``?prefix=`` (key prefix, default ``authmd:``), ``?max_connections=``
    (connections per worker, per node on a cluster, default 64) and ``?pool_timeout=`` (seconds a
    request waits for a free connection before a 503, default 3)."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme not in ("redis", "rediss", "redis+cluster", "rediss+cluster"):
        raise ValueError("not a redis URL")
    query = parse_qs(parts.query, keep_blank_values=True)
    prefix = query.pop("prefix", ["authmd:"])[0]
    if not prefix or "{" in prefix or "}" in prefix:
        raise ValueError("prefix must be non-empty and free of { }")
    size = query.pop("max_connections", ["64"])[0]
    if not size.isdigit() or not 1 <= int(size) <= 10_000:
        raise ValueError("max_connections must be a whole number from 1 to 10000")
    try:
        wait = float(query.pop("pool_timeout", ["3"])[0])
    except ValueError:
        wait = -1.0
    if not 0 < wait <= 60:
        raise ValueError("pool_timeout must be a number of seconds above 0 and at most 60")
    rest = urlencode({k: v[0] for k, v in query.items()})
    cluster = scheme.endswith("+cluster")
    base_scheme = scheme.removesuffix("+cluster")
    return RedisURL(urlunsplit((base_scheme, parts.netloc, parts.path, rest, "")), cluster, prefix, int(size), wait)


_SLOT_TAGS: list[str] = []


def slot_tag(slot: int) -> str:
    """A short hash tag whose slot is ``slot`` (found once, by trying o0, o1, ... : about 155 000 CRCs)."""
    if not _SLOT_TAGS:
        tags: list[str | None] = [None] * 16384
        n, left = 0, 16384
        while left:
            tag = f"o{n}"
            found = key_slot(tag.encode())
            if tags[found] is None:
                tags[found], left = tag, left - 1
            n += 1
        _SLOT_TAGS.extend(t for t in tags if t is not None)
    return _SLOT_TAGS[slot]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)


def _registration(fields: dict[str, str]) -> Registration:
    return Registration(
        id=fields["id"],
        type=fields["type"],
        account_id=fields["account_id"],
        scopes=tuple(fields["scopes"].split()),
        created_at=int(fields["created_at"]),
        expires_at=_int(fields.get("expires_at")),
        generation=int(fields.get("generation", 0)),
        revoked_at=_int(fields.get("revoked_at")),
        agent_name=fields.get("agent_name"),
        agent_platform=fields.get("agent_platform"),
        not_before=_int(fields.get("not_before")),
        pending=fields.get("pending") == "1",
        refresh_family=fields.get("refresh_family"),
        refresh_seq=int(fields.get("refresh_seq", 0)),
        refresh_rotated_at=_int(fields.get("refresh_rotated_at")),
        refresh_expires_at=_int(fields.get("refresh_expires_at")),
        source=fields.get("source"),
        client_id=fields.get("client_id"),
        resource=fields.get("resource"),
        jkt=fields.get("jkt"),
    )


def _account(account_id: str, fields: dict[str, str]) -> Account:
    return Account(
        id=account_id,
        kind=fields["kind"],  # type: ignore[arg-type]
        created_at=int(fields["created_at"]),
        expires_at=_int(fields.get("expires_at")),
        quota_notes=int(fields["quota_notes"]),
        quota_note_bytes=int(fields["quota_note_bytes"]),
        note_count=int(fields.get("note_count", 0)),
        owner=fields.get("owner"),
    )


def _user(user_id: str, fields: dict[str, str]) -> User:
    return User(
        id=user_id, email=fields["email"], account_id=fields["account_id"], created_at=int(fields["created_at"])
    )


_JSON = msgspec.json.Encoder()


def _fields(record: Registration | Account | User | Delegation) -> list[str]:
    """A record as hash field/value pairs; a None field is simply absent, a bool is 1/0."""
    out: list[str] = []
    for name in record.__struct_fields__:
        value = getattr(record, name)
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        out += [name, " ".join(value) if isinstance(value, tuple) else str(value)]
    return out


_CLAIM_JSON = msgspec.json.Encoder()


def _mapping(record: Account | User) -> dict[str, str]:
    flat = _fields(record)
    return dict(zip(flat[::2], flat[1::2], strict=True))


class RedisBase:
    """One client, the key layout and the steps several ports share; each port's mixin builds on it."""

    def __init__(self, url: str, *, socket_timeout: float = 2.0) -> None:
        try:
            self._url, self._cluster, self.prefix, self._size, self._pool_timeout = parse_redis_url(url)
        except ValueError as exc:
            raise ConfigError(f"store_url: {exc}") from exc
        self._socket_timeout = socket_timeout
        self._client: Any = None
        self._gate: asyncio.Semaphore | None = None
        self._pipeline: AutoPipeline | None = None

    def _a(self, account_id: str, part: str) -> str:
        return f"{self.prefix}{{a:{account_id}}}:{part}"

    async def _count_windows(self, hits: Sequence[WindowHit], now: float, window: float) -> list[WindowResult]:
        keys = [self._window_key(h.key) for h in hits]
        return _window_results(await self._call("hit_windows", keys, self._window_args(now, window, hits)))

    def _creation(
        self,
        account: Account,
        registration: Registration,
        events: Sequence[Event],
        admission: Admission | None,
        indexes: bool,
    ) -> tuple[list[str], list[Any]]:
        """create_registration.lua's KEYS and ARGV (see the script)."""
        ttl = "" if account.expires_at is None else str(_ms(account.expires_at - account.created_at) + GRACE_MS)
        keys = [self._a(account.id, "acct"), self._a(account.id, "regs"), self._a(account.id, f"reg:{registration.id}")]
        index_keys = [self._index, self._ids] if indexes else []
        if indexes and account.owner is not None:
            index_keys.append(self._owned_key(account.owner))
        hits = admission.hits if admission is not None else ()
        keys += index_keys + [self._window_key(h.key) for h in hits] + self._outbox_keys(account.id)
        expires = "" if account.expires_at is None else repr(float(account.expires_at))
        args: list[Any] = [self._outbox_arg(account.id, events), ttl, registration.id]
        args += [len(index_keys), expires, account.id, len(hits)]
        args += self._window_args(admission.now, admission.window, hits) if admission else ["0", "1", GRACE_MS]
        args += [_JSON.encode(_fields(account)), _JSON.encode(_fields(registration))]
        return keys, args

    def _window_key(self, key: str) -> str:
        return f"{self.prefix}{{lim}}:w:{key}"

    @staticmethod
    def _window_args(now: float, window: float, hits: Sequence[WindowHit]) -> list[Any]:
        """The windows prelude's arguments (``_windows.lua``)."""
        args: list[Any] = [repr(float(now)), repr(float(window)), GRACE_MS]
        for h in hits:
            args += ["" if h.limit is None else h.limit, 1 if h.increment else 0]
        return args

    def _outbox_keys(self, account_id: str) -> list[str]:
        """The account's outbox and its slot's two indexes (see the module docstring)."""
        tag = slot_tag(key_slot(f"a:{account_id}".encode())) if self._cluster else "o"
        return [self._a(account_id, "events"), f"{self.prefix}{{{tag}}}:outboxes", f"{self.prefix}{{{tag}}}:pending"]

    def _outbox_arg(self, account_id: str, events: Sequence[Event], *, counted: bool = False) -> bytes:
        """The events as the outbox prelude's ARGV[1]. ``counted``: a deletion's counts are left out, for
        the script to append (only it knows them)."""
        rows = []
        for event in events:
            if counted:
                fields = msgspec.to_builtins(event)
                body = json.dumps({k: v for k, v in fields.items() if k not in ("registrations", "notes")})
            else:
                body = ev.encode(event).decode()
            # What a script may pick events by: the attempt an event is about (a script writes only those
            # of the attempts it ends), else the event's type.
            key = getattr(event, "attempt_id", None) or ev.type_of(event)
            rows.append([str(ev.ms_of(event.id)), event.id, body, key])
        return _JSON.encode(
            {
                "a": account_id,
                "k": "" if account_id == ev.SERVICE else self._a(account_id, "acct"),
                "t": OUTBOX_RETENTION_SECONDS * 1000,
                "m": OUTBOX_MAXLEN,
                "e": rows,
            }
        )

    async def _emit(self, name: str, account_id: str, events: Sequence[Event], keys: list[str], args: list[Any]) -> Any:
        """Run an account's script with its events (the prelude takes the extra key and argument)."""
        return await self._call(
            name, keys + self._outbox_keys(account_id), [self._outbox_arg(account_id, events), *args]
        )

    @property
    def _index(self) -> str:
        return f"{self.prefix}{{exp}}:accounts"

    @property
    def _ids(self) -> str:
        return f"{self.prefix}{{ids}}:accounts"

    @property
    def _ids_complete(self) -> str:
        return f"{self.prefix}{{ids}}:indexed"

    def _delegation_key(self, issuer: str, subject: str) -> str:
        digest = hashlib.sha256((issuer + "\n" + subject).encode()).hexdigest()
        return f"{self.prefix}dlg:{digest}"

    def _owned_key(self, user_id: str) -> str:
        return f"{self.prefix}{{u:{user_id}}}:owned"

    def _connect(self) -> Any:
        common: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": self._socket_timeout,
            "socket_connect_timeout": self._socket_timeout,
            # One immediate retry replaces a pooled connection that died with a restarted server;
            # beyond that an outage is a prompt 503, not a request hanging in backoff.
            "retry": Retry(NoBackoff(), 1),
            # The gate below keeps us within this; redis-py would refuse the next connection at once.
            "max_connections": self._size,
        }
        if not self._cluster:
            return aioredis.Redis.from_url(self._url, **common)
        parts = urlsplit(self._url)
        nodes = []
        for hostport in parts.netloc.rsplit("@", 1)[-1].split(","):
            host, _, port = hostport.rpartition(":")
            nodes.append(ClusterNode(host.strip("[]"), int(port or 6379)))
        return RedisCluster(
            startup_nodes=nodes,
            ssl=parts.scheme == "rediss",
            username=parts.username,
            password=parts.password,
            **common,
        )

    async def _load_scripts(self) -> None:
        # SCRIPT LOAD goes to every primary of a cluster; a restarted Redis has forgotten them.
        for _sha, source in SCRIPTS.values():
            await self._client.script_load(source)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[None]:
        """One of ``max_connections`` slots, waited for at most ``pool_timeout``: a burst that outruns the
        pool queues (a 503 only when Redis stays too slow to free one). redis-py's async cluster client
        has no blocking pool, so one gate serves both modes; each slot runs one command at a time."""
        gate = self._gate
        if gate is None:
            raise StoreUnavailable("redis: store is not open")
        if gate.locked():
            try:
                await asyncio.wait_for(gate.acquire(), self._pool_timeout)
            except TimeoutError as exc:
                raise StoreUnavailable("redis: no connection free within pool_timeout") from exc
        else:
            await gate.acquire()
        try:
            yield
        finally:
            gate.release()

    async def _call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        sha = SCRIPTS[name][0]
        # Timed from the wait for a connection on: what the request waits for. Labelled by the script's name.
        started = time.perf_counter()
        try:
            if self._pipeline is not None:  # a single Redis: with the turn's other commands (pipeline.py)
                return await self._pipeline.submit("evalsha", sha, len(keys), *keys, *args)
            async with self._connection():
                try:
                    try:
                        return await self._client.evalsha(sha, len(keys), *keys, *args)
                    except rx.NoScriptError:
                        await self._load_scripts()  # NOSCRIPT: nothing ran, so running again is safe
                        return await self._client.evalsha(sha, len(keys), *keys, *args)
                except UNAVAILABLE as exc:
                    raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        except StoreUnavailable:
            metrics.store_failed(name)
            raise
        finally:
            metrics.store_timed(name, time.perf_counter() - started)

    async def _do(self, method: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            if self._pipeline is not None:
                return await self._pipeline.submit(method, *args, **kwargs)
            async with self._connection():
                try:
                    return await getattr(self._client, method)(*args, **kwargs)
                except UNAVAILABLE as exc:
                    raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        except StoreUnavailable:
            metrics.store_failed(method)  # a redis-py method's name, chosen in code
            raise
        finally:
            metrics.store_timed(method, time.perf_counter() - started)

    async def open(self) -> None:
        self._client = self._connect()
        self._gate = asyncio.Semaphore(self._size)
        if not self._cluster:
            self._pipeline = AutoPipeline(self._client, self._connection, self._load_scripts, UNAVAILABLE)
        try:
            await self._check_eviction_policy()
            await self._load_scripts()
        except UNAVAILABLE as exc:
            # At start-up the operator reads this: say what failed (redis-py's text names the address
            # and the OS error, e.g. "Connection refused"; never the URL, so never its password).
            raise StoreUnavailable(f"redis: {_reason(exc)}") from exc

    async def _check_eviction_policy(self) -> None:
        try:
            if self._cluster:
                infos = await self._client.info("memory", target_nodes=RedisCluster.PRIMARIES)
                policies = {str(v.get("maxmemory_policy")) for v in infos.values()}
            else:
                policies = {str((await self._client.info("memory")).get("maxmemory_policy"))}
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis: {_reason(exc)}") from exc
        if policies != {"noeviction"}:
            raise ConfigError(
                f"Redis maxmemory-policy is {', '.join(sorted(policies))}; authmd needs noeviction "
                "(eviction would silently drop replay marks and revocations)"
            )

    async def close(self) -> None:
        if self._pipeline is not None:
            await self._pipeline.close()
            self._pipeline = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def ping(self) -> None:
        await self._do("ping")

    async def _delete(self, account_id: str, now: float, mode: str, event: Event | None = None) -> Deleted | str:
        keys = [self._a(account_id, "acct"), self._a(account_id, "regs"), self._a(account_id, "notes")]
        keys += self._outbox_keys(account_id)
        prefixes = [self._a(account_id, "reg:"), self._a(account_id, "claim:")]
        outbox = self._outbox_arg(account_id, [event] if event else [], counted=True)
        result = await self._call("delete_account", keys, [outbox, repr(float(now)), mode, *prefixes])
        if isinstance(result, str):
            return result
        await self._do("zrem", self._ids, account_id)  # only the deleter: right after the account's script
        return Deleted(account_id=account_id, registrations=int(result[0]), notes=int(result[1]))

    async def _put_delegation(self, delegation: Delegation, mode: str) -> bool:
        key = self._delegation_key(delegation.issuer, delegation.subject)
        return bool(await self._call("put_delegation", [key], [mode, *_fields(delegation)]))

    async def sweep(self, now: float, limit: int) -> list[Deleted]:
        ids = await self._do("zrangebyscore", self._index, "-inf", now, start=0, num=limit)
        out = []
        for account_id in ids:
            # Only the sweeper whose script deletes the account writes (and reports) its expiry.
            result = await self._delete(account_id, now, "expired", expired_event(account_id, now))
            if isinstance(result, Deleted):
                out.append(result)
            if result != "kept":
                await self._do("zrem", self._index, account_id)
            if result == "gone":  # reclaimed by its backend TTL before any sweeper came: drop the listing too
                await self._do("zrem", self._ids, account_id)
        return out
