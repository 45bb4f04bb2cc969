"""The bench's load generator (a minimal HTTP/1.1 keep-alive client, closed- or open-loop) and its
scenario steps, apart from the servers and the report (app/tools/bench.py)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from app.protocol import JWT_BEARER, URN_ID_JAG

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
ANONYMOUS = json.dumps({"type": "anonymous"}, separators=(",", ":"))

# ---------------------------------------------------------------------------------------------------
# A minimal HTTP/1.1 keep-alive client: the load generator must cost far less than the server.
# ---------------------------------------------------------------------------------------------------


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, f"{host}:{port}")

    def build(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


@dataclass
class Result:
    name: str
    steps: int = 0
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


# A scenario step sends one or more requests on a connection and returns (requests, errors, latencies).
Step = Callable[[Conn, float], Awaitable[tuple[int, int, list[float]]]]


async def drive(name: str, port: int, step: Step, connections: int, duration: float, rate: float | None) -> Result:
    conns = [await Conn.open("127.0.0.1", port) for _ in range(connections)]
    result = Result(name)
    start = time.perf_counter()
    stop = start + duration

    next_slot = 0

    async def loop(conn: Conn) -> None:
        nonlocal next_slot
        while True:
            if rate is None:
                scheduled = time.perf_counter()
            else:
                # Open loop: arrivals are due at fixed times (slot k at start + k/rate) and any idle
                # connection takes the next one, like a load balancer's pool. Latency counts from the
                # due time, so a stalled server cannot hide its queueing delay.
                scheduled = start + next_slot / rate
                next_slot += 1
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if scheduled >= stop:
                return
            reqs, errs, lats = await step(conn, scheduled)
            result.steps += 1
            result.requests += reqs
            result.errors += errs
            result.latencies.extend(lats)

    await asyncio.gather(*(loop(c) for c in conns))
    result.seconds = time.perf_counter() - start
    for c in conns:
        c.close()
    return result


def get(path: str, headers: dict[str, str] | None = None) -> Step:
    async def step(conn: Conn, scheduled: float) -> tuple[int, int, list[float]]:
        status, _ = await conn.send(conn.build("GET", path, headers=headers))
        return 1, int(status != 200), [time.perf_counter() - scheduled]

    return step


async def register(conn: Conn) -> tuple[int, bytes]:
    return await conn.send(conn.build("POST", "/agent/identity", ANONYMOUS.encode(), {"Content-Type": JSON}))


async def exchange(conn: Conn, body: bytes) -> tuple[int, bytes]:
    form = urlencode({"grant_type": JWT_BEARER, "assertion": json.loads(body)["identity"]["assertion"]}).encode()
    return await conn.send(conn.build("POST", "/oauth2/token", form, {"Content-Type": FORM}))


def register_only() -> Step:
    async def step(conn: Conn, scheduled: float) -> tuple[int, int, list[float]]:
        status, _ = await register(conn)
        return 1, int(status != 200), [time.perf_counter() - scheduled]

    return step


def register_and_exchange() -> Step:
    async def step(conn: Conn, scheduled: float) -> tuple[int, int, list[float]]:
        status, body = await register(conn)
        t1 = time.perf_counter()
        if status != 200:
            return 1, 1, [t1 - scheduled]
        status2, _ = await exchange(conn, body)
        return 2, int(status2 != 200), [t1 - scheduled, time.perf_counter() - t1]

    return step


async def api_token(port: int) -> str:
    conn = await Conn.open("127.0.0.1", port)
    try:
        _, body = await exchange(conn, (await register(conn))[1])
        token = str(json.loads(body)["access_token"])
        note = json.dumps({"text": "benchmark"}).encode()
        headers = {"Content-Type": JSON, "Authorization": f"Bearer {token}"}
        await conn.send(conn.build("POST", "/api/notes", note, headers))
        return token
    finally:
        conn.close()


def claimed_refresh_tokens(port: int, count: int) -> list[str]:
    """Setup of the refresh scenario: ``count`` registrations claimed through the real ceremony with the
    development sign-in (the bench server is a loopback issuer), each giving its first refresh token."""
    import httpx

    def field(pattern: str, text: str) -> str:
        found = re.search(pattern, text)
        if found is None:
            raise RuntimeError(f"the claim pages changed: {pattern!r} not found")
        return "".join(found.groups())

    tokens = []
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10.0, follow_redirects=True, trust_env=False) as client:
        for i in range(count):
            client.cookies.clear()
            claim = client.post("/agent/identity", json={"type": "anonymous"}).json()["claim"]["token"]
            start = {"type": "service_auth", "claim_token": claim}
            link = client.post("/agent/identity/claim", json=start).json()["attempt"]["verification_uri"]
            form = client.get(link).text
            email = f"bench{i}@example.com"
            page = client.post(
                "/login/dev",
                data={"csrf": field(r'name="csrf" value="([^"]+)"', form), "email": email, "return_to": "/claim"},
            ).text
            confirm = {
                "csrf": field(r'name="csrf" value="([^"]+)"', page),
                "attempt": field(r'name="attempt" value="([^"]+)"', page),  # the attempt the page shows
            }
            shown = client.post("/claim/confirm", data=confirm).text
            code = field(r'class="code"[^>]*>(\d{3}) (\d{3})<', shown)
            done = client.post("/agent/identity/claim/complete", json={"claim_token": claim, "user_code": code})
            tokens.append(str(done.json()["identity"]["refresh_token"]["value"]))
    return tokens


def refresh_chain(tokens: list[str]) -> Step:
    """Each step spends one refresh token and keeps its successor for a later step (a rotation chain)."""
    free = list(tokens)

    async def step(conn: Conn, scheduled: float) -> tuple[int, int, list[float]]:
        token = free.pop()
        body = json.dumps({"type": "refresh", "refresh_token": token}).encode()
        status, answer = await conn.send(conn.build("POST", "/agent/identity", body, {"Content-Type": JSON}))
        free.append(json.loads(answer)["identity"]["refresh_token"]["value"] if status == 200 else token)
        return 1, int(status != 200), [time.perf_counter() - scheduled]

    return step


class BenchProvider:
    """A minimal agent identity provider for the idjag scenario: an ES256 key, its JWKS served over
    HTTP on loopback (cacheable for an hour), and ID-JAGs minted for a pool of users."""

    def __init__(self, users: int = 100) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from cryptography.hazmat.primitives.asymmetric import ec

        from app.keys import public_jwk, thumbprint

        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = thumbprint(public_jwk(self.key))
        body = json.dumps({"keys": [{**public_jwk(self.key), "kid": self.kid, "alg": "ES256", "use": "sig"}]})
        jwks = body.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "max-age=3600")
                self.send_header("Content-Length", str(len(jwks)))
                self.end_headers()
                self.wfile.write(jwks)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.users = users
        self._n = 0
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def mint(self, aud: str) -> str:
        import jwt

        self._n += 1
        now = int(time.time())
        user = self._n % self.users
        claims = {
            "iss": self.issuer,
            "sub": f"user-{user}",
            "aud": aud,
            "client_id": "bench",
            "jti": f"b{self._n}",
            "iat": now,
            "auth_time": now,  # a fresh login at the provider (the default max_age is an hour)
            "exp": now + 300,
            "email": f"user{user}@bench.example",
            "email_verified": True,
        }
        return jwt.encode(claims, self.key, "ES256", headers={"typ": "oauth-id-jag+jwt", "kid": self.kid})

    def config(self) -> str:
        return (
            f'[[providers]]\nissuer = "{self.issuer}"\nclient_ids = ["bench"]\nscopes = ["notes:read", "notes:write"]\n'
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


def idjag_register(provider: BenchProvider, issuer: str) -> Step:
    async def step(conn: Conn, scheduled: float) -> tuple[int, int, list[float]]:
        body = json.dumps(
            {
                "type": "identity_assertion",
                "assertion_type": URN_ID_JAG,
                "assertion": provider.mint(issuer),
            }
        ).encode()
        status, _ = await conn.send(conn.build("POST", "/agent/identity", body, {"Content-Type": JSON}))
        return 1, int(status != 200), [time.perf_counter() - scheduled]

    return step
