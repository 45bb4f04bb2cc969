"""The shared store: Redis or Redis Cluster, for several stateless authmd instances.

Key layout (``P`` is the prefix, default ``authmd:``). Everything an account owns shares one hash
slot, so every transition on it is one single-slot Lua script that Redis Cluster accepts:

  P{a:ID}:acct            hash: the account (kind, expiry, quotas, note_count, note_seq)
  P{a:ID}:regs            set: its registration ids
  P{a:ID}:reg:RID         hash: one registration (absent field = None)
  P{a:ID}:notes           hash: note id -> "seq:[created_at, text]"
  P{a:ID}:rv:JTI          string: a revoked access token id -> the token's exp
  P{a:ID}:claim:RID       hash: the claim of one registration (version, data: the Claim as JSON)
  P{exp}:accounts         sorted set: temporary account id by expiry (the sweeper's index)
  P{ids}:accounts         sorted set: every account id, all with score 0 (the operator's listing, paged
                          by ZRANGEBYLEX in id order); added right before the account's own write (never
                          an unlisted account; reads skip entries of missing accounts), removed right
                          after its deletion
  P{ids}:indexed          string: set once P{ids}:accounts lists every account (see ``list_accounts``)
  P{lim}:w:KEY            hash: one sliding-window counter (all counters share a slot: limits are
                          checked all-or-nothing across a source's and the global counter)
  Pm:NS:KEY               string: a one-time mark -> its expiry (single key: any slot)
  P{a:ID}:events          stream: the account's outbox, its domain events in commit order (fields id, e:
                          the event as JSON), written by the same script as the change; outlives the
                          account (see ``_outbox.lua``)
  P{a:ID}:events:sent     string: the stream id of the last delivered event (the outbox's cursor)
  P{T}:outboxes           sorted set: ids of accounts with an outbox -> their newest event's ms
  P{T}:pending            sorted set: ids of accounts with undelivered events -> ms
                          ``T`` is a tag in the account's own hash slot (``slot_tag``): one index of each
                          kind per slot, written by the account's scripts, which Cluster accepts since
                          the keys share the slot. A reader walks the 16384 slot indexes (one on a single
                          Redis, where ``T`` is ``o``). An entry whose outbox was reclaimed is dropped
                          by a script in that slot (``drop_outbox``)
  P{audit}:seq, :log      the free-form audit trail of earlier versions (kept, no longer written)
  P{u:ID}:user            hash: a user (email, account id)
  P{u:ID}:owned           set: ids of accounts the user owns, added once the account exists (reads check
                          each account's ``owner`` and drop the ids of deleted accounts)
  Pemail:SHA256           string: lower-cased email -> user id (claimed with SET NX: one owner)
  Plogin:SHA256           string: an OpenID Connect subject (iss, sub) -> user id
  Pdlg:SHA256             hash: the delegation of one provider subject (iss, sub)
  Psess:HASH              string: a browser session -> "expires_at base64(data)" (its TTL counts from the
                          wall clock: ``put_session`` has no ``now``)

Correctness comes from the absolute expiry stored in each record and compared with the caller's
``now``; backend TTLs (relative to that ``now``, plus a grace period) only reclaim space.
Writes that span slots (the expiry, listing and owner indexes, the delegation a claim activates) are
issued in order right around the account's own script; a crash between them can at worst leave an
index entry that reads or the sweeper skip or drop, or leave a claimed link's delegation pending. Domain
events never span slots: they are written by the account's own script, with the change. People
(users, emails, logins) are written across slots in an order whose every crash point is safe: first
writer wins on the email and the login, and orphans are unreachable.
Redis must run with ``maxmemory-policy noeviction`` (eviction would silently drop replay marks and
revocations): ``open`` refuses anything else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
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
from app.config import ConfigError
from app.errors import StoreUnavailable
from app.events import AccountDeleted, Event
from app.store.port import (
    OUTBOX_MAXLEN,
    OUTBOX_RETENTION_SECONDS,
    AccessState,
    Account,
    AccountKind,
    AddNoteOutcome,
    Claim,
    CodeBudget,
    CodeCheck,
    Delegation,
    Deleted,
    Note,
    Registration,
    User,
    WindowHit,
    WindowResult,
    expired,
    expired_event,
)

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
    "add_note",
    "check_code",
    "complete_claim",
    "consume_once",
    "create_registration",
    "delete_account",
    "delete_note",
    "drop_outbox",
    "hit_windows",
    "link_login",
    "mark_delivered",
    "put_delegation",
    "put_registration",
    "read_claim",
    "read_notes",
    "read_outbox",
    "read_registrations",
    "revoke_registration",
    "rotate_refresh",
    "save_claim",
    "set_not_before",
)
# Scripts that change an account write its events: the outbox prelude comes first (``_outbox.lua``).
_EMITTING = {
    "check_code",
    "complete_claim",
    "create_registration",
    "delete_account",
    "put_registration",
    "revoke_registration",
    "rotate_refresh",
    "save_claim",
    "set_not_before",
}
SIGN_IN_ROUNDS = 8  # a sign-in that loses a race reads the winner's records in the next round


def _lua(name: str) -> tuple[str, str]:
    """(sha1, source) of one script; scripts run by EVALSHA and are loaded on NOSCRIPT."""
    folder = resources.files("app.store") / "lua"
    source = (folder / f"{name}.lua").read_text(encoding="utf-8")
    if name in _EMITTING:
        source = (folder / "_outbox.lua").read_text(encoding="utf-8") + source
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest(), source


SCRIPTS = {name: _lua(name) for name in _SCRIPTS}


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


class RedisStore:
    def __init__(self, url: str, *, socket_timeout: float = 2.0) -> None:
        try:
            self._url, self._cluster, self.prefix, self._size, self._pool_timeout = parse_redis_url(url)
        except ValueError as exc:
            raise ConfigError(f"store_url: {exc}") from exc
        self._socket_timeout = socket_timeout
        self._client: Any = None
        self._gate: asyncio.Semaphore | None = None

    # ---- keys --------------------------------------------------------------------------------
    def _a(self, account_id: str, part: str) -> str:
        return f"{self.prefix}{{a:{account_id}}}:{part}"

    def _outbox_keys(self, account_id: str) -> list[str]:
        """The account's outbox and its slot's two indexes (see the module docstring)."""
        tag = slot_tag(key_slot(f"a:{account_id}".encode())) if self._cluster else "o"
        return [self._a(account_id, "events"), f"{self.prefix}{{{tag}}}:outboxes", f"{self.prefix}{{{tag}}}:pending"]

    def _outbox_arg(self, account_id: str, events: Sequence[Event], *, counted: bool = False) -> str:
        """The events as the outbox prelude's ARGV[1]. ``counted``: a deletion's counts are left out, for
        the script to append (only it knows them)."""
        rows = []
        for event in events:
            if counted:
                fields = msgspec.to_builtins(event)
                body = json.dumps({k: v for k, v in fields.items() if k not in ("registrations", "notes")})
            else:
                body = ev.encode(event).decode()
            # The attempt an event is about, for scripts that write only those of attempts they end.
            rows.append([str(ev.ms_of(event.id)), event.id, body, getattr(event, "attempt_id", None) or ""])
        return json.dumps(
            {
                "a": account_id,
                "k": self._a(account_id, "acct"),
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

    # ---- plumbing ----------------------------------------------------------------------------
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
        async with self._connection():
            try:
                try:
                    return await self._client.evalsha(sha, len(keys), *keys, *args)
                except rx.NoScriptError:
                    await self._load_scripts()  # NOSCRIPT: nothing ran, so running again is safe
                    return await self._client.evalsha(sha, len(keys), *keys, *args)
            except UNAVAILABLE as exc:
                raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc

    async def _do(self, method: str, *args: Any, **kwargs: Any) -> Any:
        async with self._connection():
            try:
                return await getattr(self._client, method)(*args, **kwargs)
            except UNAVAILABLE as exc:
                raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc

    async def open(self) -> None:
        self._client = self._connect()
        self._gate = asyncio.Semaphore(self._size)
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
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def ping(self) -> None:
        await self._do("ping")

    # ---- limits ------------------------------------------------------------------------------
    async def hit_windows(self, hits: Sequence[WindowHit], now: float, window: float) -> list[WindowResult]:
        keys = [f"{self.prefix}{{lim}}:w:{h.key}" for h in hits]
        args: list[Any] = [repr(float(now)), repr(float(window)), GRACE_MS]
        for h in hits:
            args += ["" if h.limit is None else h.limit, 1 if h.increment else 0]
        rows = msgspec.json.decode(await self._call("hit_windows", keys, args))
        return [WindowResult(count=float(c), allowed=a == "1", retry_after=float(r)) for a, c, r in rows]

    # ---- one-time marks ----------------------------------------------------------------------
    async def consume_once(self, namespace: str, key: str, expires_at: float, now: float) -> bool:
        mark = f"{self.prefix}m:{namespace}:{key}"  # one key, no tag: marks spread over the cluster
        ttl = _ms(expires_at - now) + GRACE_MS
        return bool(await self._call("consume_once", [mark], [repr(float(expires_at)), repr(float(now)), ttl]))

    # ---- accounts and registrations ----------------------------------------------------------
    async def create_registration(self, account: Account, registration: Registration, events: Sequence[Event]) -> None:
        acct_fields = _fields(account)
        ttl = "" if account.expires_at is None else str(_ms(account.expires_at - account.created_at) + GRACE_MS)
        keys = [self._a(account.id, "acct"), self._a(account.id, "regs"), self._a(account.id, f"reg:{registration.id}")]
        keys += self._outbox_keys(account.id)
        args = [self._outbox_arg(account.id, events), ttl, registration.id, len(acct_fields) // 2]
        args += [*acct_fields, *_fields(registration)]
        if self._cluster:
            # redis-py refuses scripts in cluster pipelines: the same steps, in the same order, one by one.
            if account.expires_at is not None:
                await self._do("zadd", self._index, {account.id: account.expires_at})
            await self._do("zadd", self._ids, {account.id: 0})
            await self._call("create_registration", keys, args)
            if account.owner is not None:
                await self._do("sadd", self._owned_key(account.owner), account.id)
            return
        # One round trip, in order: the index entries first (an account is never unreachable to the
        # sweeper nor missing from the listing), then the account's own atomic script (with its events),
        # then its owner's index (only once the account exists: reads drop entries of missing accounts).
        for attempt in (1, 2):
            pipe = self._client.pipeline(transaction=False)
            if account.expires_at is not None:
                pipe.zadd(self._index, {account.id: account.expires_at})
            pipe.zadd(self._ids, {account.id: 0})
            pipe.evalsha(SCRIPTS["create_registration"][0], len(keys), *keys, *args)
            if account.owner is not None:
                pipe.sadd(self._owned_key(account.owner), account.id)
            try:
                results = await pipe.execute(raise_on_error=False)
            except UNAVAILABLE as exc:
                raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
            errors = [r for r in results if isinstance(r, Exception)]
            if attempt == 1 and any(isinstance(e, rx.NoScriptError) for e in errors):
                await self._load_scripts()  # NOSCRIPT: that script did not run; the rest is idempotent
                continue
            for error in errors:
                if isinstance(error, UNAVAILABLE):
                    raise StoreUnavailable(f"redis: {type(error).__name__}") from error
                raise error
            return

    async def get_registration(self, account_id: str, registration_id: str, now: float) -> Registration | None:
        state = await self._state(account_id, registration_id, None)
        if state is None or expired(state[0].expires_at, now):
            return None
        return state[0]

    async def get_account(self, account_id: str, now: float) -> Account | None:
        fields = await self._do("hgetall", self._a(account_id, "acct"))
        if not fields:
            return None
        account = _account(account_id, fields)
        return None if expired(account.expires_at, now) else account

    async def list_accounts(
        self, after: str | None, limit: int, now: float, kind: AccountKind | None = None
    ) -> list[Account]:
        # An index rather than SCAN: SCAN walks every key of every primary (registrations, notes, marks,
        # counters) for each page, in no order, so paging by id would mean reading everything each time.
        # The index is one sorted set: one slot, ordered by id, a page costs O(log N + page).
        # Entries of accounts that are gone (a crash between a deletion and its ZREM) or expired (until
        # the sweeper deletes them) are skipped. A read never removes an entry: one can be written just
        # before its account exists (a pipeline retried after NOSCRIPT), so a reader cannot tell it stale.
        await self._complete_ids_index()
        found: list[Account] = []
        cursor = after
        while len(found) < limit:
            batch = min(max(limit - len(found), 100), 1000)
            low = "-" if cursor is None else f"({cursor}"
            ids = await self._do("zrangebylex", self._ids, low, "+", start=0, num=batch)
            if not ids:
                break
            for account_id, fields in zip(ids, await self._read_accounts(ids), strict=True):
                if not fields:
                    continue
                account = _account(account_id, fields)
                if not expired(account.expires_at, now) and kind in (None, account.kind):
                    found.append(account)
                    if len(found) == limit:
                        break
            if len(ids) < batch:
                break
            cursor = ids[-1]
        return found

    async def _read_accounts(self, ids: list[str]) -> list[dict[str, str]]:
        """HGETALL of each account hash in one pipelined round trip (per node on a cluster)."""
        pipe = self._client.pipeline(transaction=False) if not self._cluster else self._client.pipeline()
        for account_id in ids:
            pipe.hgetall(self._a(account_id, "acct"))
        try:
            rows: list[dict[str, str]] = await pipe.execute()
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        return rows

    async def _complete_ids_index(self) -> None:
        """Accounts written by a version of authmd before the listing index existed are added once, by
        one SCAN over every primary; ``P{ids}:indexed`` then records that the index is complete. Racing
        writers and deleters are harmless: ZADD is idempotent and reads skip entries of deleted accounts.
        (During a rolling upgrade, accounts that older instances create after this walk stay unlisted.)"""
        if await self._do("exists", self._ids_complete):
            return
        # Keys of account hashes: P{a:ID}:acct (the prefix has no { }; glob characters are escaped).
        head = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix) + "{a:"
        pattern, tail = head + "*}:acct", "}:acct"
        start = len(self.prefix) + len("{a:")
        try:
            batch: list[str] = []
            async for key in self._client.scan_iter(match=pattern, count=1000, _type="hash"):
                batch.append(key[start : -len(tail)])
                if len(batch) >= 500:
                    await self._client.zadd(self._ids, dict.fromkeys(batch, 0))
                    batch = []
            if batch:
                await self._client.zadd(self._ids, dict.fromkeys(batch, 0))
            await self._client.set(self._ids_complete, "1")
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc

    async def _state(
        self, account_id: str, registration_id: str, token_id: str | None
    ) -> tuple[Registration, Account, str | None] | None:
        keys = [
            self._a(account_id, "acct"),
            self._a(account_id, f"reg:{registration_id}"),
            self._a(account_id, f"rv:{token_id or ''}"),
        ]
        reply = await self._call("access_state", keys, [token_id or ""])
        if reply is None:
            return None
        row = msgspec.json.decode(reply)
        return _registration(row["r"]), _account(account_id, row["a"]), row.get("m")

    async def access_state(
        self, account_id: str, registration_id: str, token_id: str | None, now: float
    ) -> AccessState | None:
        state = await self._state(account_id, registration_id, token_id)
        if state is None:
            return None
        registration, account, mark = state
        if expired(registration.expires_at, now) or expired(account.expires_at, now):
            return None
        revoked = mark is not None and float(mark) > now
        return AccessState(registration=registration, account=account, token_revoked=revoked)

    async def revoke_token(self, account_id: str, token_id: str, expires_at: float, now: float) -> bool:
        mark = self._a(account_id, f"rv:{token_id}")
        ttl = _ms(expires_at - now) + GRACE_MS
        return bool(await self._call("consume_once", [mark], [repr(float(expires_at)), repr(float(now)), ttl]))

    async def revoke_registration(
        self, account_id: str, registration_id: str, now: float, events: Sequence[Event]
    ) -> bool:
        key = self._a(account_id, f"reg:{registration_id}")
        return bool(await self._emit("revoke_registration", account_id, events, [key], [repr(float(now)), int(now)]))

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

    async def delete_account(self, account_id: str, now: float, event: AccountDeleted) -> Deleted | None:
        deleted = await self._delete(account_id, now, "live", event)
        if not isinstance(deleted, Deleted):
            return None
        await self._do("zrem", self._index, account_id)
        return deleted

    # ---- people and provider delegations -----------------------------------------------------
    def _email_key(self, email: str) -> str:
        return f"{self.prefix}email:{hashlib.sha256(email.encode()).hexdigest()}"

    def _delegation_key(self, issuer: str, subject: str) -> str:
        digest = hashlib.sha256((issuer + "\n" + subject).encode()).hexdigest()
        return f"{self.prefix}dlg:{digest}"

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}{{u:{user_id}}}:user"

    def _owned_key(self, user_id: str) -> str:
        return f"{self.prefix}{{u:{user_id}}}:owned"

    def _login_key(self, issuer: str, subject: str) -> str:
        digest = hashlib.sha256((issuer + "\n" + subject).encode()).hexdigest()
        return f"{self.prefix}login:{digest}"

    async def find_user_by_email(self, email: str) -> User | None:
        user_id = await self._do("get", self._email_key(email))
        if user_id is None:
            return None
        return await self.get_user(user_id)  # None: an email whose user was rolled back meanwhile

    async def get_delegation(self, issuer: str, subject: str) -> Delegation | None:
        fields = await self._do("hgetall", self._delegation_key(issuer, subject))
        if not fields:
            return None
        return Delegation(
            issuer=fields["issuer"],
            subject=fields["subject"],
            user_id=fields["user_id"],
            account_id=fields["account_id"],
            registration_id=fields["registration_id"],
            status=fields["status"],
            created_at=int(fields["created_at"]),
        )

    async def _put_delegation(self, delegation: Delegation, mode: str) -> bool:
        key = self._delegation_key(delegation.issuer, delegation.subject)
        return bool(await self._call("put_delegation", [key], [mode, *_fields(delegation)]))

    async def create_user(
        self, user: User, account: Account, registration: Registration, delegation: Delegation, events: Sequence[Event]
    ) -> bool:
        # Across slots, in an order whose every crash point is safe: orphans (an account, a user) are
        # unreachable; the email and then the delegation are claimed first-writer-wins; the delegation,
        # which makes the account reachable by the provider subject, comes last. The events are written
        # with the account (its slot); a loser's rollback discards them with it (spec/events.md).
        acct_fields = _fields(account)
        keys = [self._a(account.id, "acct"), self._a(account.id, "regs"), self._a(account.id, f"reg:{registration.id}")]
        await self._do("zadd", self._ids, {account.id: 0})
        args = ["", registration.id, len(acct_fields) // 2, *acct_fields, *_fields(registration)]
        await self._emit("create_registration", account.id, events, keys, args)
        await self._do("hset", self._user_key(user.id), mapping=_mapping(user))
        if account.owner is not None:
            await self._do("sadd", self._owned_key(account.owner), account.id)
        email_key = self._email_key(user.email)
        claimed = await self._do("set", email_key, user.id, nx=True)
        if claimed and await self._put_delegation(delegation, "create"):
            return True
        if claimed:
            await self._do("delete", email_key)
        await self._do("delete", self._user_key(user.id))
        if account.owner is not None:
            await self._do("srem", self._owned_key(account.owner), account.id)
        await self._delete(account.id, float(account.created_at), "discard")
        return False

    async def save_pending_link(
        self,
        delegation: Delegation,
        registration: Registration,
        claim: Claim,
        events: Sequence[Event],
        *,
        replace_active: bool = False,
    ) -> bool:
        if not await self._put_delegation(delegation, "force" if replace_active else "pending"):
            return False
        keys = [
            self._a(registration.account_id, "acct"),
            self._a(registration.account_id, "regs"),
            self._a(registration.account_id, f"reg:{registration.id}"),
            self._claim_key(claim.account_id, claim.registration_id),
        ]
        args = [registration.id, claim.version, _CLAIM_JSON.encode(claim).decode(), *_fields(registration)]
        return bool(await self._emit("put_registration", registration.account_id, events, keys, args))

    # ---- humans: sign-in, sessions, what they own --------------------------------------------
    async def get_user(self, user_id: str) -> User | None:
        fields = await self._do("hgetall", self._user_key(user_id))
        return _user(user_id, fields) if fields else None

    async def sign_in_user(self, issuer: str, subject: str, email: str, new_user: User, new_account: Account) -> User:
        # Across slots, first writer wins at each step: the email names one user for good (SET NX), and
        # the subject is linked only to the user its email named, so racing sign-ins converge on it. A
        # loser removes what it wrote and reads the winner's records in the next round.
        login = self._login_key(issuer, subject)
        for _ in range(SIGN_IN_ROUNDS):
            stale = ""
            linked = await self._do("get", login)
            if linked is not None:
                user = await self.get_user(linked)
                if user is not None:
                    return user
                stale = linked  # a user that was rolled back: the link may be replaced
            user = await self.find_user_by_email(email)
            created = False
            if user is None:
                created = await self._create_person(new_user, new_account)
                if not created:
                    continue
                user = new_user
            if await self._call("link_login", [login], [user.id, stale]) == user.id:
                return user
            if created:  # the subject went to another user (another email) meanwhile
                await self._drop_person(new_user, new_account, release_email=True)
        raise StoreUnavailable("redis: sign-in did not settle")

    async def _create_person(self, user: User, account: Account) -> bool:
        # Unreachable orphans first, the email (which makes them reachable) last; its loser rolls back.
        await self._do("zadd", self._ids, {account.id: 0})
        await self._do("hset", self._a(account.id, "acct"), mapping=_mapping(account))
        await self._do("hset", self._user_key(user.id), mapping=_mapping(user))
        await self._do("sadd", self._owned_key(user.id), account.id)
        if await self._do("set", self._email_key(user.email), user.id, nx=True):
            return True
        await self._drop_person(user, account, release_email=False)
        return False

    async def _drop_person(self, user: User, account: Account, *, release_email: bool) -> None:
        if release_email:
            await self._do("delete", self._email_key(user.email))  # first: never an email naming no user
        await self._do("delete", self._user_key(user.id), self._owned_key(user.id))
        await self._delete(account.id, float(account.created_at), "live")

    async def owned_accounts(self, user_id: str, now: float) -> list[Account]:
        index = self._owned_key(user_id)
        ids = sorted(await self._do("smembers", index))
        rows = await asyncio.gather(*(self._do("hgetall", self._a(account_id, "acct")) for account_id in ids))
        accounts = []
        for account_id, fields in zip(ids, rows, strict=True):
            if not fields:
                # Deleted: an entry is only added once its account exists, and ids are never reused.
                await self._do("srem", index, account_id)
                continue
            account = _account(account_id, fields)
            if account.owner == user_id and not expired(account.expires_at, now):
                accounts.append(account)
        return sorted(accounts, key=lambda a: (a.created_at, a.id))

    async def registrations_of(self, account_id: str, now: float) -> list[Registration]:
        keys = [self._a(account_id, "acct"), self._a(account_id, "regs")]
        reply = await self._call("read_registrations", keys, [self._a(account_id, "reg:")])
        if reply is None:
            return []
        row = msgspec.json.decode(reply)
        if row["e"] != "" and float(row["e"]) <= now:
            return []
        # cjson writes an empty table as {}, a list as [...]
        regs = [_registration(fields) for fields in (row["r"] or [])]
        return sorted((r for r in regs if not expired(r.expires_at, now)), key=lambda r: (r.created_at, r.id))

    def _session_key(self, session_hash: str) -> str:
        return f"{self.prefix}sess:{session_hash}"

    async def put_session(self, session_hash: str, data: bytes, expires_at: float) -> None:
        # No ``now`` here: the space-only TTL counts from the wall clock and never drops below the grace
        # period, so a caller's clock that runs a little behind cannot lose a live session early.
        ttl = _ms(max(0.0, expires_at - time.time())) + GRACE_MS
        value = f"{float(expires_at)!r} {base64.b64encode(data).decode()}"  # the client decodes replies as text
        await self._do("set", self._session_key(session_hash), value, px=ttl)

    async def get_session(self, session_hash: str, now: float) -> bytes | None:
        value = await self._do("get", self._session_key(session_hash))
        if value is None:
            return None
        expires_at, _, data = value.partition(" ")
        return None if expired(float(expires_at), now) else base64.b64decode(data)

    async def delete_session(self, session_hash: str) -> None:
        await self._do("delete", self._session_key(session_hash))

    # ---- the claim ceremony ------------------------------------------------------------------
    def _claim_key(self, account_id: str, registration_id: str) -> str:
        return self._a(account_id, f"claim:{registration_id}")

    async def get_claim(self, account_id: str, registration_id: str, now: float) -> Claim | None:
        keys = [self._a(account_id, "acct"), self._claim_key(account_id, registration_id)]
        reply = await self._call("read_claim", keys, [])
        if reply is None:
            return None
        account_expires_at, data = reply
        if account_expires_at != "" and float(account_expires_at) <= now:
            return None
        claim = msgspec.json.decode(data, type=Claim)
        return None if expired(claim.expires_at, now) else claim

    async def save_claim(self, claim: Claim, expected_version: int | None, events: Sequence[Event]) -> bool:
        keys = [self._a(claim.account_id, "acct"), self._claim_key(claim.account_id, claim.registration_id)]
        expected = "" if expected_version is None else expected_version
        args = [expected, claim.version, _CLAIM_JSON.encode(claim).decode()]
        return bool(await self._emit("save_claim", claim.account_id, events, keys, args))

    async def check_code(
        self,
        account_id: str,
        registration_id: str,
        digests: Mapping[str, str],
        now: float,
        budget: CodeBudget,
        ended: Sequence[Event] = (),
    ) -> CodeCheck:
        keys = [self._a(account_id, "acct"), self._claim_key(account_id, registration_id)]
        args: list[Any] = [repr(float(now)), budget.per_window, budget.per_claim]
        for attempt_id, digest in digests.items():
            args += [attempt_id, digest]
        reply = await self._emit("check_code", account_id, ended, keys, args)
        if reply is None:
            return CodeCheck(claim=None)
        outcome, data, matched = reply
        claim = msgspec.json.decode(data, type=Claim)
        return CodeCheck(claim=claim, compared=outcome != "none", matched=matched or None)

    async def complete_claim(
        self,
        claim: Claim,
        expected_version: int,
        account: Account,
        registration: Registration,
        delegation: Delegation | None,
        events: Sequence[Event],
    ) -> bool:
        keys = [
            self._a(account.id, "acct"),
            self._a(account.id, "regs"),
            self._a(account.id, "notes"),
            self._a(account.id, f"reg:{registration.id}"),
            self._claim_key(account.id, registration.id),
        ]
        # A claim normally makes the account persistent (no TTL on anything it owns); one that keeps an
        # expiry gets a space-only TTL counted from the event's time, the caller's ``now``.
        at = events[0].at if events else time.time()
        ttl = "" if account.expires_at is None else _ms(account.expires_at - at) + GRACE_MS
        args = [
            expected_version,
            claim.version,
            _CLAIM_JSON.encode(claim).decode(),
            ttl,
            account.kind,
            "" if account.expires_at is None else account.expires_at,
            account.quota_notes,
            account.quota_note_bytes,
            account.owner or "",
            self._a(account.id, "reg:"),
            self._a(account.id, "claim:"),
            registration.id,
            *_fields(registration),
        ]
        # The owner index first (the account exists already): a crash never hides a claimed account from
        # its owner, and the entry of a racer whose claim did not land is ignored by reads (another owner).
        if account.owner is not None:
            await self._do("sadd", self._owned_key(account.owner), account.id)
        if not await self._emit("complete_claim", account.id, events, keys, args):
            return False
        # Across slots, in order right after the account's own script (see the module docstring).
        if account.kind == "temporary" and account.expires_at is not None:
            await self._do("zadd", self._index, {account.id: account.expires_at})
        else:
            await self._do("zrem", self._index, account.id)
        if delegation is not None:
            await self._put_delegation(delegation, "force")
        return True

    async def rotate_refresh(
        self,
        account_id: str,
        registration_id: str,
        family: str,
        seq: int,
        expires_at: int,
        now: float,
        events: Sequence[Event],
    ) -> bool:
        key = self._a(account_id, f"reg:{registration_id}")
        args = [family, seq, expires_at, repr(float(now)), int(now)]
        return bool(await self._emit("rotate_refresh", account_id, events, [key], args))

    async def set_not_before(
        self, account_id: str, registration_id: str, not_before: int, events: Sequence[Event]
    ) -> bool:
        key = self._a(account_id, f"reg:{registration_id}")
        return bool(await self._emit("set_not_before", account_id, events, [key], [not_before]))

    # ---- notes -------------------------------------------------------------------------------
    async def add_note(self, note: Note, now: float) -> AddNoteOutcome:
        keys = [self._a(note.account_id, "acct"), self._a(note.account_id, "notes")]
        payload = json.dumps([note.created_at, note.text])
        outcome: AddNoteOutcome = await self._call("add_note", keys, [repr(float(now)), note.id, payload])
        return outcome

    async def _read_notes(self, account_id: str, note_id: str, now: float) -> list[Note]:
        keys = [self._a(account_id, "acct"), self._a(account_id, "notes")]
        reply = await self._call("read_notes", keys, [note_id])
        if reply is None:
            return []
        row = msgspec.json.decode(reply)
        if row["e"] != "" and float(row["e"]) <= now:
            return []
        notes = []
        # cjson writes an empty table as {}; a table of notes as {id: value}
        for nid, value in (row["n"] or {}).items():
            seq, _, payload = value.partition(":")
            created_at, text = json.loads(payload)
            notes.append((int(seq), Note(id=nid, account_id=account_id, text=text, created_at=created_at)))
        return [n for _, n in sorted(notes, key=lambda pair: pair[0])]

    async def list_notes(self, account_id: str, now: float) -> list[Note]:
        return await self._read_notes(account_id, "", now)

    async def get_note(self, account_id: str, note_id: str, now: float) -> Note | None:
        if not note_id:
            return None
        found = await self._read_notes(account_id, note_id, now)
        return found[0] if found else None

    async def delete_note(self, account_id: str, note_id: str, now: float) -> bool:
        keys = [self._a(account_id, "acct"), self._a(account_id, "notes")]
        return bool(await self._call("delete_note", keys, [repr(float(now)), note_id]))

    # ---- expiry and audit --------------------------------------------------------------------
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

    def _index_keys(self, kind: str) -> list[str]:
        """Every slot's index of outboxes (``kind``: outboxes or pending); one key on a single Redis."""
        if not self._cluster:
            return [f"{self.prefix}{{o}}:{kind}"]
        return [f"{self.prefix}{{{slot_tag(slot)}}}:{kind}" for slot in range(16384)]

    async def _walk_index(self, kind: str, low: float, limit: int | None) -> list[tuple[str, float]]:
        """(account id, score) of every index entry scored at least ``low``, lowest first: one pipelined
        round trip per node (16384 small reads on a cluster: a poller's cost, not a request's)."""
        keys = self._index_keys(kind)
        pipe = self._client.pipeline(transaction=False) if not self._cluster else self._client.pipeline()
        for key in keys:
            pipe.zrangebyscore(key, low, "+inf", start=0, num=limit or -1, withscores=True)
        async with self._connection():
            try:
                pages: list[list[tuple[str, float]]] = await pipe.execute()
            except UNAVAILABLE as exc:
                raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        found = sorted((score, account_id) for page in pages for account_id, score in page)
        return [(account_id, score) for score, account_id in found[:limit]]

    async def _outbox(self, account_id: str) -> list[Event]:
        rows = await self._do("xrange", self._a(account_id, "events"), "-", "+")
        if not rows:
            await self._call("drop_outbox", self._outbox_keys(account_id), [account_id])
        return [ev.decode(fields["e"]) for _, fields in rows]

    async def events(self, after: str = "", limit: int = 100) -> list[Event]:
        # Each outbox is indexed by its newest event's time: only those with an event at or after the
        # cursor's millisecond are read; their events after the cursor are merged by id.
        low = ev.ms_of(after) if after else 0
        found: list[Event] = []
        for account_id, _ in await self._walk_index("outboxes", low, None):
            found += [e for e in await self._outbox(account_id) if e.id > after]
        return sorted(found, key=lambda e: e.id)[:limit]

    async def outboxes_with_pending(self, limit: int = 100) -> list[str]:
        return [account_id for account_id, _ in await self._walk_index("pending", 0, limit)]

    async def read_outbox(self, account_id: str, limit: int = 100) -> list[Event]:
        rows = await self._call("read_outbox", [self._a(account_id, "events")], [limit])
        return [ev.decode(body) for body in rows]

    async def mark_delivered(self, account_id: str, through: str) -> bool:
        stream, _, pending = self._outbox_keys(account_id)
        return bool(await self._call("mark_delivered", [stream, pending], [account_id, through, OUTBOX_MAXLEN]))
