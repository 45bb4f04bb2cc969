"""`authmd bench`: start a bare Litestar app and authmd side by side, drive the agent scenarios over
loopback, and report requests/s, p50 and p99, each as a ratio to the bare app measured in the same
run (this machine is noisy; only ratios within one run compare).

Each scenario runs twice: closed-loop at full speed (peak), then open-loop at 70% of that peak, where
latency is measured from each request's scheduled start (no coordinated omission).
Proof of work is off and rate limits are raised for the run; everything else (the access log, metrics,
the event outbox) is as shipped, and the output says so.

The bare app is measured again after every scenario, and each scenario's ratio divides by the mean of
the two bare measurements around it: this machine's speed drifts by a third within a minute, and a
ratio to a bare run from a minute earlier carried that drift.

``--workers 1,2`` runs the whole thing once per worker count, each with fresh servers, and reports how
each scenario scales. With wrk installed, the constant-request scenarios are also measured by wrk
(app/tools/wrk.py) right after our own peak phase, to catch our generator being the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.protocol import AS_METADATA
from app.tools import load, wrk


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=5.0, help="seconds per phase (default 5)")
    p.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    p.add_argument(
        "--workers",
        type=_worker_counts,
        default="2",
        help="server worker processes (both servers); a comma list (1,2) runs once per count, back to back",
    )
    p.add_argument(
        "--scenarios",
        default="discovery,anonymous,register,idjag,api,refresh",
        help="comma list: discovery, anonymous (registration only), register (registration + exchange), "
        "idjag (ID-JAG registration from a trusted provider), api, refresh (rotating a claimed grant's "
        "refresh token; set up through the dev-mode claim ceremony)",
    )
    p.add_argument("--store-url", default=None, help="authmd store (default: SQLite in a temp dir)")
    p.add_argument(
        "--redis",
        action="store_true",
        help="start a private redis-server (AOF on) as the store, and report Redis memory per temporary account",
    )
    p.add_argument("--appendfsync", choices=["always", "everysec"], default="always", help="AOF policy with --redis")
    p.add_argument("--no-paced", action="store_true", help="skip the 70%%-of-peak latency phase")
    p.add_argument(
        "--wrk",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="cross-check the constant-request scenarios with wrk (default: on when wrk is installed)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _worker_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of worker counts: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"worker counts are positive: {text!r}")
    return list(dict.fromkeys(counts))  # a repeated count would only rerun the same thing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_ready(port: int, path: str) -> Callable[[], bool]:
    def ready() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            return s.recv(12).startswith(b"HTTP/1.1 200")

    return ready


def _redis_ready(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(7) == b"+PONG\r\n"

    return ready


@contextlib.contextmanager
def _server(cmd: list[str], env: dict[str, str], ready: Callable[[], bool], log: Path) -> Iterator[None]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603 (our own argv)
    try:
        end = time.monotonic() + 30.0
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}; see {log}")
            try:
                if ready():
                    break
            except OSError:
                pass
            if time.monotonic() > end:
                raise RuntimeError(f"{cmd[0]} not ready after 30 s; see {log}")
            time.sleep(0.05)  # polling a subprocess we do not control; bounded by the deadline
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _authmd_env(data_dir: str, store_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")}
    env.update(
        {
            "AUTHMD_DATA_DIR": data_dir,
            # Only proof of work and the limits are overridden: the access log, metrics and the event
            # outbox run as shipped, since their cost is part of what the bench measures. (The log level
            # is shipped too: the access log is written at INFO, so a quieter level would turn it off.)
            "AUTHMD_POW_MODE": "off",
            "AUTHMD_REGISTER_LIMIT_PER_SOURCE": "1000000000",
            "AUTHMD_REGISTER_LIMIT_GLOBAL": "1000000000",
            "AUTHMD_CHALLENGE_LIMIT_PER_SOURCE": "1000000000",
            "AUTHMD_CHALLENGE_LIMIT_GLOBAL": "1000000000",
            "AUTHMD_HTTP_MAX_CONNECTIONS_PER_CLIENT": "1000000000",  # every bench connection is one client
        }
    )
    if store_url:
        env["AUTHMD_STORE_URL"] = store_url
    return env


# ---------------------------------------------------------------------------------------------------


def _start_redis(stack: contextlib.ExitStack, tmp: Path, port: int, appendfsync: str) -> str:
    redis_dir = tmp / "redis"
    redis_dir.mkdir()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(redis_dir)]
    cmd += ["--appendonly", "yes", "--appendfsync", appendfsync, "--save", "", "--maxmemory-policy", "noeviction"]
    stack.enter_context(_server(cmd, {}, _redis_ready(port), tmp / "redis.log"))
    return f"redis://127.0.0.1:{port}/0"


def _bare_cmd(port: int, workers: int) -> list[str]:
    from app.server import PROTOCOL

    # The server authmd runs behind, with the same limits (from the same environment).
    cmd = [sys.executable, "-m", "uvicorn", "app.tools.bare:app", "--http", PROTOCOL, "--ws", "none"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return [*cmd, "--no-access-log", "--log-level", "warning"]


def _authmd_cmd(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]


@dataclass
class Servers:
    tmp: Path
    bare_port: int
    authmd_port: int
    redis_port: int
    store: str
    provider: load.BenchProvider


def _start(stack: contextlib.ExitStack, tmp: Path, args: argparse.Namespace, workers: int) -> Servers:
    """Fresh servers for one worker count: Redis (with --redis), the ID-JAG provider, bare app, authmd."""
    bare_port, authmd_port, redis_port = _free_port(), _free_port(), _free_port()
    store_url = _start_redis(stack, tmp, redis_port, args.appendfsync) if args.redis else args.store_url
    env = _authmd_env(str(tmp / "data"), store_url)
    provider = load.BenchProvider()
    stack.callback(provider.close)
    config = tmp / "authmd.toml"
    config.write_text(provider.config())
    env["AUTHMD_CONFIG"] = str(config)
    stack.enter_context(_server(_bare_cmd(bare_port, workers), env, _http_ready(bare_port, "/const"), tmp / "bare.log"))
    authmd_ready = _http_ready(authmd_port, "/readyz")
    stack.enter_context(_server(_authmd_cmd(authmd_port, workers), env, authmd_ready, tmp / "authmd.log"))
    return Servers(tmp, bare_port, authmd_port, redis_port, store_url or "sqlite", provider)


# ---------------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    step: load.Step
    wrk: wrk.Request | None = None  # set when every request is the same, so wrk can send it too


@dataclass
class Run:
    """One worker count on its own fresh servers: each scenario's phases and wrk measurements."""

    workers: int
    store: str
    phases: dict[str, dict[str, load.Result]] = field(default_factory=dict)
    crosscheck: dict[str, wrk.Measurement] = field(default_factory=dict)
    memory: dict[str, float] | None = None
    # The bare app's peak req/s (ours, wrk's or 0.0) before the first scenario and after each one.
    bare: list[tuple[float, float]] = field(default_factory=list)

    def base(self, name: str) -> tuple[float, float]:
        """The bare req/s a scenario's ratios divide by: the mean of the measurements around it (the
        bare row's own: the first)."""
        names = [n for n in self.phases if n != "bare"]
        if name not in names:
            return self.bare[0]
        around = self.bare[names.index(name) : names.index(name) + 2]
        return sum(b[0] for b in around) / len(around), sum(b[1] for b in around) / len(around)


async def _measure_peak(
    name: str, port: int, scenario: Scenario, args: argparse.Namespace, tmp: Path
) -> tuple[load.Result, wrk.Measurement | None]:
    """Our generator's peak, then wrk's where it can send the scenario: right after ours, on the same
    server in the same state, so the two generators differ only in themselves."""
    peak = await load.drive(name, port, scenario.step, args.connections, args.duration, None)
    check = None
    if args.wrk and scenario.wrk is not None:
        check = await wrk.measure(scenario.wrk, port, args.connections, args.duration, tmp)
    return peak, check


async def _phases(name: str, port: int, scenario: Scenario, args: argparse.Namespace, run: Run, tmp: Path) -> None:
    peak, check = await _measure_peak(name, port, scenario, args, tmp)
    run.phases[name] = {"peak": peak}
    if check is not None:
        run.crosscheck[name] = check
    if not args.no_paced and peak.steps:
        # Paced in steps (a register step is two requests) at 70% of the peak step rate.
        rate = 0.7 * peak.steps / peak.seconds
        run.phases[name]["paced"] = await load.drive(name, port, scenario.step, args.connections, args.duration, rate)


def run(args: argparse.Namespace) -> int:
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - {"discovery", "anonymous", "register", "idjag", "api", "refresh"}
    if unknown:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if args.wrk is None:
        args.wrk = wrk.available()
    elif args.wrk and not wrk.available():
        print("--wrk: wrk is not on PATH (apt-get install -y wrk)", file=sys.stderr)
        return 2
    # One worker count after the other, never side by side: they would share the two cores.
    runs = [_run_once(args, scenarios, workers) for workers in args.workers]
    _report(runs, args)
    return 0


def _run_once(args: argparse.Namespace, scenarios: list[str], workers: int) -> Run:
    with tempfile.TemporaryDirectory(prefix="authmd-bench-") as tmp, contextlib.ExitStack() as stack:
        servers = _start(stack, Path(tmp), args, workers)
        result = Run(workers, servers.store)
        asyncio.run(_all(servers, scenarios, args, result))
        if args.redis:
            result.memory = asyncio.run(_memory_per_account(servers.redis_port, servers.authmd_port))
    return result


async def _redis(port: int, *args: str) -> int | str | None:
    """One Redis command over a raw RESP connection (integer and bulk-string replies only)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"".join([f"*{len(args)}\r\n".encode()] + [f"${len(a)}\r\n{a}\r\n".encode() for a in args]))
        line = await reader.readline()
        if line.startswith(b":"):
            return int(line[1:])
        if line.startswith(b"$"):
            n = int(line[1:])
            return None if n < 0 else (await reader.readexactly(n + 2))[:-2].decode()
        raise RuntimeError(f"unexpected Redis reply {line!r}")
    finally:
        writer.close()


async def _memory_per_account(redis_port: int, authmd_port: int, accounts: int = 500) -> dict[str, float]:
    """Redis bytes per temporary account, from MEMORY USAGE of the keys it owns (account, registration
    set and hash, notes with one 100-byte note) plus its share of the expiry index and audit stream."""
    conn = await load.Conn.open("127.0.0.1", authmd_port)
    note = json.dumps({"text": "x" * 100}).encode()
    owned: list[tuple[str, str]] = []
    for _ in range(accounts):
        _, body = await load.register(conn)
        reg = json.loads(body)
        _, tok = await load.exchange(conn, body)
        headers = {"Content-Type": load.JSON, "Authorization": f"Bearer {json.loads(tok)['access_token']}"}
        await conn.send(conn.build("POST", "/api/notes", note, headers))
        owned.append((reg["account"]["id"], reg["id"]))
    conn.close()
    own = 0
    for account_id, reg_id in owned:
        for part in ("acct", "regs", f"reg:{reg_id}", "notes"):
            own += int(
                await _redis(redis_port, "MEMORY", "USAGE", f"authmd:{{a:{account_id}}}:{part}", "SAMPLES", "0") or 0
            )
    index = int(await _redis(redis_port, "MEMORY", "USAGE", "authmd:{exp}:accounts", "SAMPLES", "0") or 0)
    index_n = int(await _redis(redis_port, "ZCARD", "authmd:{exp}:accounts") or 1)
    log = int(await _redis(redis_port, "MEMORY", "USAGE", "authmd:{audit}:log", "SAMPLES", "0") or 0)
    log_n = int(await _redis(redis_port, "XLEN", "authmd:{audit}:log") or 1)
    per_account = own / accounts + index / index_n + log / log_n
    return {
        "accounts": accounts,
        "bytes_per_account": round(per_account),
        "owned_keys_bytes": round(own / accounts),
        "note_text_bytes": 100,
    }


async def _scenario(name: str, port: int, provider: load.BenchProvider, connections: int) -> Scenario:
    if name == "discovery":
        return Scenario(load.get(AS_METADATA), wrk.Request(AS_METADATA))
    if name == "anonymous":
        return Scenario(
            load.register_only(), wrk.Request("/agent/identity", "POST", load.ANONYMOUS, {"Content-Type": load.JSON})
        )
    if name == "register":
        return Scenario(load.register_and_exchange(), wrk.Request("/agent/identity", lua=wrk.REGISTER_AND_EXCHANGE))
    if name == "idjag":
        return Scenario(load.idjag_register(provider, f"http://127.0.0.1:{port}"))
    if name == "refresh":
        tokens = await asyncio.to_thread(load.claimed_refresh_tokens, port, connections)
        return Scenario(load.refresh_chain(tokens))
    auth = {"Authorization": f"Bearer {await load.api_token(port)}"}
    return Scenario(load.get("/api/notes", auth), wrk.Request("/api/notes", headers=auth))


async def _all(servers: Servers, scenarios: list[str], args: argparse.Namespace, run: Run) -> None:
    bare = Scenario(load.get("/const"), wrk.Request("/const"))
    await _phases("bare", servers.bare_port, bare, args, run, servers.tmp)
    run.bare.append(_bare_rps(run.phases["bare"]["peak"], run.crosscheck.get("bare")))
    for name in scenarios:
        scenario = await _scenario(name, servers.authmd_port, servers.provider, args.connections)
        await _phases(name, servers.authmd_port, scenario, args, run, servers.tmp)
        # The bare app again (no paced phase), for the ratios of this scenario and the next.
        run.bare.append(_bare_rps(*await _measure_peak("bare", servers.bare_port, bare, args, servers.tmp)))


def _bare_rps(peak: load.Result, check: wrk.Measurement | None) -> tuple[float, float]:
    return peak.rps, check.requests_per_s if check is not None else 0.0


# ---------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------

NOTE = (
    "proof of work off and rate limits raised for the run; "
    "access log as shipped, metrics as shipped, event outbox as shipped (no other override)"
)


def _rows(run: Run) -> list[dict[str, Any]]:
    rows = []
    for name, phases in run.phases.items():
        peak, paced, check = phases["peak"], phases.get("paced"), run.crosscheck.get(name)
        bare, wrk_bare = run.base(name)
        row = {
            "scenario": name,
            "bare_requests_per_s": round(bare),
            "requests_per_s": round(peak.rps),
            "ratio_to_bare": round(peak.rps / bare, 3) if bare else None,
            "p50_ms": round(peak.pct(0.50), 2),
            "p99_ms": round(peak.pct(0.99), 2),
            "paced_requests_per_s": round(paced.rps) if paced else None,
            "paced_p50_ms": round(paced.pct(0.50), 2) if paced else None,
            "paced_p99_ms": round(paced.pct(0.99), 2) if paced else None,
            "errors": peak.errors + (paced.errors if paced else 0) + (check.errors if check else 0),
        }
        row |= wrk.columns(peak.rps / bare if bare else None, check, wrk_bare)
        # The headline: wrk's ratio where wrk measured the scenario (a C generator steals less of the two
        # cores than ours, which measured up to 38% lower ratios), else our generator's.
        by_wrk = row["wrk_ratio_to_bare"] is not None
        rows.append(
            row | {"ratio": row["wrk_ratio_to_bare" if by_wrk else "ratio_to_bare"], "by": "wrk" if by_wrk else "own"}
        )
    return rows


def _peak(run: Run, name: str) -> float:
    """A scenario's peak req/s by the headline's generator."""
    check = run.crosscheck.get(name)
    return check.requests_per_s if check is not None else run.phases[name]["peak"].rps


def _scaling(low: Run, high: Run) -> list[dict[str, Any]]:
    """Peak req/s at the largest worker count over the smallest, per scenario."""
    out = []
    for name in low.phases:
        base = _peak(low, name)
        out.append({"scenario": name, "ratio": round(_peak(high, name) / base, 3) if base else None})
    return out


def _workers(n: int) -> str:
    return f"{n} worker{'s' if n != 1 else ''}"


def _store(store: str, args: argparse.Namespace) -> str:
    return store.split("?")[0] + (f" (appendfsync {args.appendfsync})" if args.redis else "")


def _report(runs: list[Run], args: argparse.Namespace) -> None:
    low, high = min(runs, key=lambda r: r.workers), max(runs, key=lambda r: r.workers)
    tables = [(run, _rows(run)) for run in runs]
    scaling = _scaling(low, high) if len(runs) > 1 else None
    meta = {
        "workers": runs[0].workers if len(runs) == 1 else [r.workers for r in runs],
        "connections": args.connections,
        "duration_s": args.duration,
        "cpus": os.cpu_count(),
        "note": NOTE,
        "store": _store(runs[0].store, args),
        "redis_memory": runs[0].memory if len(runs) == 1 else None,
        "wrk": f"wrk -t1 -c{args.connections} -d{wrk.seconds(args.duration)}s --latency" if args.wrk else None,
        "scaling": f"{_workers(high.workers)} / {_workers(low.workers)}" if scaling else None,
    }
    if args.json:
        _print_json(meta, tables, scaling, args)
        return
    counts = _workers(runs[0].workers) if len(runs) == 1 else f"{', '.join(str(r.workers) for r in runs)} workers"
    print(
        f"authmd bench: {NOTE}; store {meta['store']}; {counts} per server, {args.connections} "
        f"connections, {args.duration:g} s per phase, {meta['cpus']} CPUs"
        + (f"; cross-checked with {meta['wrk']}" if args.wrk else "")
    )
    for run, rows in tables:
        if len(runs) > 1:
            print(f"\n{_workers(run.workers)} per server:")
        _print_table(rows)
        if run.memory:
            _print_memory(run.memory)
    if scaling:
        print(f"\nscaling, peak req/s at {meta['scaling']} (by the headline's generator):")
        for s in scaling:
            print(f"{s['scenario']:<10} {s['ratio'] if s['ratio'] is not None else '-':>7}")


def _print_json(
    meta: dict[str, Any], tables: list[tuple[Run, list[dict[str, Any]]]], scaling: Any, args: argparse.Namespace
) -> None:
    runs = [
        {
            "workers": run.workers,
            "store": _store(run.store, args),
            "redis_memory": run.memory,
            "bare_measured": [{"own": round(own), "wrk": round(by_wrk) or None} for own, by_wrk in run.bare],
            "results": rows,
        }
        for run, rows in tables
    ]
    if len(runs) == 1:  # the shape from before worker lists, which the README and tests read
        out: dict[str, Any] = {"meta": meta, "results": tables[0][1], "runs": runs}
    else:
        out = {"meta": meta, "runs": runs, "scaling": scaling}
    print(json.dumps(out, indent=2))


def _cell(value: Any) -> Any:
    return "-" if value is None else value


def _print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'scenario':<10} {'bare':>7} {'req/s':>8} {'x bare':>7} {'p50 ms':>8} {'p99 ms':>8} | "
        f"{'70% req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} | {'wrk req/s':>9} {'wrk x bare':>10} | ratio"
    )
    for r in rows:
        print(
            f"{r['scenario']:<10} {r['wrk_bare_requests_per_s'] or r['bare_requests_per_s']:>7} "
            f"{r['requests_per_s']:>8} {r['ratio_to_bare']:>7} {r['p50_ms']:>8} {r['p99_ms']:>8} | "
            f"{r['paced_requests_per_s'] or '-':>9} {r['paced_p50_ms'] or '-':>8} {r['paced_p99_ms'] or '-':>8} "
            f"{r['errors']:>6} | {_cell(r['wrk_requests_per_s']):>9} {_cell(r['wrk_ratio_to_bare']):>10} | "
            f"{_cell(r['ratio'])} ({r['by']})"
        )
    for line in wrk.warnings(rows):
        print(line)


def _print_memory(memory: dict[str, float]) -> None:
    print(
        f"Redis memory: {memory['bytes_per_account']} bytes per temporary account with one "
        f"{memory['note_text_bytes']}-byte note ({memory['owned_keys_bytes']} in its own keys, the rest its share "
        f"of the expiry index and audit stream; MEMORY USAGE over {memory['accounts']} accounts)"
    )
