"""Bounded resources per client, in the HTTP server itself (issue 10).

Each attack is a raw socket that misbehaves below HTTP, against the real server with one worker and
with two: an oversized request head (431), a client too slow to send its head or body (408), and more
open connections than a client or the process may hold (429, eviction of the longest-idle connection,
503). The settings are small where a test needs them small; the defaults get their own test.
A "legitimate" client binds to 127.0.0.2 (all of 127/8 is loopback; the server listens on 127.0.0.1),
so it is another source for the per-client limit.

No test asserts how long anything takes: a test waits, within a generous deadline, for the server to
do what a 1-second limit makes it do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.common import IDENTITY, JWT_BEARER, NOTES, TOKEN, bearer
from tests.e2e.conftest import HOST, ServerProcess, StartServer, wait_until
from tests.parts import missing
from tests.tls import TlsFiles, tls_files  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

DEADLINE = 20.0  # how long a test waits for what a limit of a second or two must make happen
OTHER = "127.0.0.2"  # a legitimate client's source address
MB = 1 << 20
# The documented defaults (README, configuration table).
DEFAULT_HEAD, DEFAULT_LINE, DEFAULT_PER_CLIENT = 16384, 8192, 100
WORKERS = pytest.mark.parametrize("workers", [1, 2], ids=["1worker", "2workers"])


# ---- the server ------------------------------------------------------------------------------------


def serve(
    start_server: StartServer, workers: int = 1, verify: ssl.SSLContext | None = None, **settings: object
) -> ServerProcess:
    """The real server with ``http_*``-style settings given as keyword arguments (``http_max_connections=4``)."""
    env = {f"AUTHMD_{name.upper()}": str(value) for name, value in settings.items()}
    if workers > 1:
        env["AUTHMD_WORKERS"] = str(workers)
    server = start_server(env, verify=verify)
    # The harness waited for one worker's /healthz; every worker must be up before the attack.
    wait_until(
        lambda: server.read_log().count("Application startup complete") >= workers, DEADLINE, "every worker to start"
    )
    return server


def process_tree(pid: int) -> list[int]:
    pids, found = [pid], True
    while found:
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in pids:
                continue
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/stat") as fh:
                    parent = int(fh.read().rsplit(")", 1)[1].split()[1])
                if parent in pids:
                    pids.append(int(entry))
                    found = True
    return pids


def rss_bytes(pid: int) -> int:
    """Resident memory of the server: its process and every worker."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{p}/status") as fh:
            total += next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))
    return total


@contextlib.contextmanager
def open_files_limit(soft: int) -> Iterator[None]:
    """Start a server under it: a child inherits this process's RLIMIT_NOFILE."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


def need_open_files(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count and (hard == resource.RLIM_INFINITY or hard >= count):
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))
    elif soft < count:
        missing(f"this test holds {count} sockets; the open-file limit here is {hard} (ulimit -n)", os.environ)


# ---- a client below HTTP ---------------------------------------------------------------------------


def connect(server: ServerProcess, source: str = HOST, tls: TlsFiles | None = None) -> socket.socket:
    sock = socket.create_connection((HOST, server.port), timeout=DEADLINE, source_address=(source, 0))
    if tls is not None:
        return tls.client_context().wrap_socket(sock, server_hostname=HOST)
    return sock


def readable(sock: socket.socket, timeout: float) -> bool:
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def read_until_closed(sock: socket.socket, timeout: float = DEADLINE) -> tuple[bytes, bool]:
    """Everything the server sends until it closes the connection, and whether it did within ``timeout``."""
    data = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:  # reset, or a TLS connection cut without close_notify: closed all the same
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def read_responses(sock: socket.socket, count: int) -> list[bytes]:
    """``count`` responses with Content-Length bodies, on a connection that stays open."""
    data, responses = b"", []
    while len(responses) < count:
        head, found, rest = data.partition(b"\r\n\r\n")
        length = next(
            (int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), None
        )
        if found and length is not None and len(rest) >= length:
            responses.append(head + found + rest[:length])
            data = rest[length:]
            continue
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole response: {data!r}"
        data += chunk
    return responses


def read_response(sock: socket.socket) -> bytes:
    return read_responses(sock, 1)[0]


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def error_code(response: bytes) -> str:
    body: dict[str, Any] = json.loads(response.partition(b"\r\n\r\n")[2])
    assert set(body) >= {"error", "error_description", "hint"}, body
    return str(body["error"])


def header(response: bytes, name: str) -> str | None:
    for line in response.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode()
    return None


def early_answer(sock: socket.socket) -> bytes | None:
    """What the server has sent so far without being asked to finish (None: nothing yet)."""
    if not readable(sock, 0):
        return None
    sock.settimeout(0)
    try:
        return sock.recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):  # only TLS session tickets: no answer yet
        return None
    finally:
        sock.settimeout(DEADLINE)


def send_head_of(sock: socket.socket, prefix: bytes, filler: int) -> tuple[bytes, bool]:
    """Send ``prefix`` then ``filler`` bytes of one header value, stopping once the server answers (as
    curl does: an early answer means it reads no more); then read until the server closes."""
    sock.sendall(prefix)
    chunk, sent, early = b"a" * MB, 0, None
    try:
        while sent < filler and (early := early_answer(sock)) is None:
            sock.sendall(chunk[: filler - sent])
            sent += len(chunk)
        if early is None:
            sock.sendall(b"\r\n\r\n")
    except OSError:  # the server closed while we were still sending; its answer may be readable
        pass
    answer, closed = read_until_closed(sock) if early != b"" else (b"", True)
    return (early or b"") + answer, closed


def request_head(target: str = "/healthz", *headers: str, method: str = "GET") -> bytes:
    return "\r\n".join([f"{method} {target} HTTP/1.1", "Host: authmd", *headers, "", ""]).encode()


def padded_head(size: int, line_limit: int) -> bytes:
    """A GET /healthz head of exactly ``size`` bytes, in header lines shorter than ``line_limit``."""
    head = request_head()
    lines, i = [], 0
    while len(head) < size:
        room = size - len(head) - 2  # the new line's CRLF
        name = f"X-Pad-{i}: "
        value = "a" * max(1, min(room - len(name), line_limit - len(name) - 16))
        lines.append(name + value)
        head = request_head("/healthz", *lines)
        i += 1
    assert len(head) == size, (len(head), size)
    return head


def are_closed(socks: list[socket.socket]) -> list[bool]:
    """Which of these connections has the server closed (its data, if any, read and dropped)."""
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN)
    ready = {fd for fd, _ in poller.poll(0)}
    closed = []
    for s in socks:
        if s.fileno() not in ready:
            closed.append(False)
            continue
        try:
            while s.recv(65536, socket.MSG_DONTWAIT):
                pass
            closed.append(True)
        except BlockingIOError:
            closed.append(False)  # an answer, but still open
        except OSError:
            closed.append(True)
    return closed


def legit_client(server: ServerProcess, **kwargs: Any) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=OTHER, verify=server.verify)
    return httpx.Client(base_url=server.origin, transport=transport, timeout=10.0, **kwargs)


# ---- request heads ---------------------------------------------------------------------------------


@WORKERS
def test_ten_50mb_headers_get_431_and_memory_stays_bounded(start_server: StartServer, workers: int) -> None:
    """The default limits against today's attack: ten 50 MB headers at once. Each is answered 431 long
    before its end, the server's memory stays flat, and the log has one line per refusal, no secret."""
    server = serve(start_server, workers)
    before = peak = rss_bytes(server.proc.pid)  # type: ignore[union-attr]
    done = threading.Event()

    def watch_memory() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes(server.proc.pid))  # type: ignore[union-attr]
            time.sleep(0.02)

    def attack(_: int) -> tuple[bytes, bool]:
        with connect(server) as sock:
            prefix = request_head("/healthz", "Authorization: Bearer s3cr3t-token-xyz").removesuffix(b"\r\n")
            return send_head_of(sock, prefix + b"X-Big: ", 50_000_000)

    watcher = threading.Thread(target=watch_memory)
    watcher.start()
    try:
        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(attack, range(10)))
    finally:
        done.set()
        watcher.join()
    for answer, closed in answers:
        assert status(answer) == 431, answer[:300]
        assert error_code(answer) == "request_header_fields_too_large"
        assert header(answer, "connection") == "close" and closed
    assert peak - before < 100 * MB, f"RSS grew by {(peak - before) / MB:.0f} MB"
    with legit_client(server) as client:
        assert client.get("/healthz").status_code == 200
    log = server.read_log()
    assert log.count("http_max_header_bytes") == 10, log[-3000:]
    assert "127.0.0.1" in log and "s3cr3t" not in log


HEAD_LIMITS = pytest.mark.parametrize(
    ("workers", "head", "line", "settings"),
    [
        (1, DEFAULT_HEAD, DEFAULT_LINE, {}),
        (2, 4096, 1024, {"http_max_header_bytes": 4096, "http_max_header_line_bytes": 1024}),
    ],
    ids=["defaults", "configured-2workers"],
)


@HEAD_LIMITS
def test_a_header_line_over_the_line_limit_gets_431(
    start_server: StartServer, workers: int, head: int, line: int, settings: dict[str, int]
) -> None:
    server = serve(start_server, workers, **settings)
    name = "X-Long: "
    fits = request_head("/healthz", name + "a" * (line - len(name)))  # a line is counted without its CRLF
    too_long = request_head("/healthz", name + "a" * (line - len(name) + 1))
    long_target = request_head("/healthz?q=" + "a" * line)
    for raw, expected in ((fits, 200), (too_long, 431), (long_target, 431)):
        with connect(server) as sock:
            sock.sendall(raw)
            answer = read_response(sock) if expected == 200 else read_until_closed(sock)[0]
            assert status(answer) == expected, (len(raw), answer[:300])
    assert "http_max_header_line_bytes" in server.read_log()


@HEAD_LIMITS
def test_many_headers_over_the_total_get_431(
    start_server: StartServer, workers: int, head: int, line: int, settings: dict[str, int]
) -> None:
    """The total counts the whole head, request line to the empty line; every line here is short."""
    server = serve(start_server, workers, **settings)
    for size, expected in ((head, 200), (head + 1, 431), (head * 4, 431)):
        with connect(server) as sock:
            sock.sendall(padded_head(size, line))
            answer = read_response(sock) if expected == 200 else read_until_closed(sock)[0]
            assert status(answer) == expected, (size, answer[:300])
            if expected == 431:
                assert error_code(answer) == "request_header_fields_too_large"


def statuses(answers: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", answers)]


def test_pipelined_requests_are_measured_one_by_one(start_server: StartServer) -> None:
    """Requests sent back to back in one write: each head is held to the limits on its own, and a
    refusal comes after the answers to the requests ahead of it, in order (RFC 9112 §9.3.2)."""
    server = serve(start_server)
    too_long = request_head("/healthz", "X-Long: " + "a" * DEFAULT_LINE)
    for pipelined, expected in (
        (request_head() + padded_head(DEFAULT_HEAD, DEFAULT_LINE), [200, 200]),
        (request_head() + padded_head(DEFAULT_HEAD + 1, DEFAULT_LINE), [200, 431]),
        (request_head() + request_head("/readyz") + too_long + request_head(), [200, 200, 431]),
    ):
        with connect(server) as sock:
            sock.sendall(pipelined)
            if 431 in expected:
                answers, closed = read_until_closed(sock)
                assert closed
            else:
                answers = b"".join(read_responses(sock, len(expected)))
        assert statuses(answers) == expected, answers


def test_realistic_headers_pass(start_server: StartServer, store_env: dict[str, str]) -> None:
    """What real clients send fits the default limits: a browser's headers with a few KB of cookies,
    and an agent's bearer token, on the API and on the pages."""
    server = serve(start_server, **{k[len("AUTHMD_") :].lower(): v for k, v in store_env.items()})
    browser = {
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537",
        "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
        "Accept-Language": "en-GB,en;q=0.9,fr;q=0.8,de;q=0.7",
        "Accept-Encoding": "gzip, deflate, br, zstd",
        "Referer": "https://portal.example.com/agents/settings?tab=access&" + "x" * 400,
        "Sec-Ch-Ua": '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"',
        "Cookie": "; ".join(f"analytics_{i}={'v' * 180}" for i in range(30)),  # ~6 KB on one line
        "X-Forwarded-For": ", ".join(f"203.0.113.{i}" for i in range(20)),
    }
    with legit_client(server) as client:
        assert client.get("/auth.md", headers=browser).status_code == 200  # rendered as a page
        registered = client.post(IDENTITY, json={"type": "anonymous"}).json()
        assertion = registered["identity"]["assertion"]
        token = client.post(TOKEN, data={"grant_type": JWT_BEARER, "assertion": assertion}).json()["access_token"]
        agent = {**bearer(token), "User-Agent": "authmd-agent/0.1", "Accept": "application/json"}
        assert client.post(NOTES, json={"text": "hello"}, headers=agent).status_code in (200, 201)
        assert client.get(NOTES, headers={**agent, **browser}).status_code == 200
        # near the default limits: two 7 KB lines in a 15 KB head
        near = {"Cookie": "c=" + "v" * 7000, "X-Context": "x" * 7000}
        assert client.get(NOTES, headers={**agent, **near}).status_code == 200
    assert token not in server.read_log()


# ---- slow and silent clients -------------------------------------------------------------------


@WORKERS
def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(
    start_server: StartServer, workers: int
) -> None:
    server = serve(start_server, workers, http_header_timeout_seconds=1)
    with connect(server) as sock:
        answer, closed = read_until_closed(sock)
    assert closed and answer == b""  # nothing was asked, nothing is answered
    assert "http_header_timeout_seconds" in server.read_log()


def slowloris(sock: socket.socket, first: bytes, drip: bytes, every: float) -> tuple[bytes, bool]:
    """Send ``first``, then ``drip`` every ``every`` seconds until the server answers or closes."""
    sock.sendall(first)
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            sock.sendall(drip)
        except OSError:
            return read_until_closed(sock, 1.0)
        if readable(sock, every):
            return read_until_closed(sock)
    return b"", False


@WORKERS
def test_a_slowloris_head_is_closed_at_the_header_timeout(start_server: StartServer, workers: int) -> None:
    """A header line every 0.2 s never lets a 1 s head timeout restart."""
    server = serve(start_server, workers, http_header_timeout_seconds=1)
    with connect(server) as sock:
        answer, closed = slowloris(sock, request_head().removesuffix(b"\r\n"), b"X-Slow: 1\r\n", 0.2)
    assert closed, "the slow head was still being read after 20 s"
    assert status(answer) == 408, answer  # RFC 9110 §15.5.9
    assert error_code(answer) == "request_timeout"


def test_a_slow_body_is_closed_at_the_body_timeout(start_server: StartServer) -> None:
    server = serve(start_server, http_body_timeout_seconds=1, http_header_timeout_seconds=60)
    head = request_head(IDENTITY, "Content-Type: application/json", "Content-Length: 1000", method="POST")
    with connect(server) as sock:
        answer, closed = slowloris(sock, head + b"{", b" ", 0.2)
    assert closed, "the slow body was still being read after 20 s"
    assert status(answer) == 408, answer
    assert "http_body_timeout_seconds" in server.read_log()


def test_an_idle_kept_alive_connection_is_closed_at_the_keepalive_timeout(start_server: StartServer) -> None:
    server = serve(start_server, http_keepalive_timeout_seconds=1, http_header_timeout_seconds=60)
    with connect(server) as sock:
        sock.sendall(request_head())
        assert status(read_response(sock)) == 200
        answer, closed = read_until_closed(sock)
    assert closed and answer == b""


# ---- open connections ------------------------------------------------------------------------------


@WORKERS
def test_2000_idle_connections_from_one_source_do_not_lock_out_another(start_server: StartServer, workers: int) -> None:
    """Started with the common soft limit of 1024 open files, the server used to run out of descriptors
    under 2000 idle connections from one source, and reset everyone else's. Now it raises its soft
    limit to the hard one, the per-client cap (default 100) refuses most of them with a 429, and a
    request from another source is served."""
    need_open_files(2100 + 64)
    with open_files_limit(1024):
        server = serve(start_server, workers)
    socks = [connect(server) for _ in range(2000)]
    try:
        with legit_client(server) as client:
            assert client.get("/healthz").status_code == 200
        last, closed = read_until_closed(socks[-1])
        assert closed and status(last) == 429, last
        assert error_code(last) == "rate_limit_exceeded" and header(last, "retry-after")  # RFC 6585 §4
        wait_until(
            lambda: sum(not c for c in are_closed(socks)) <= DEFAULT_PER_CLIENT * workers,
            DEADLINE,
            "the server to refuse the connections over the per-client cap",
        )
    finally:
        for s in socks:
            s.close()
    log = server.read_log()
    assert "http_max_connections_per_client" in log and "raised the open-file limit from 1024" in log


def test_idle_connections_from_many_sources_evict_the_longest_idle(start_server: StartServer) -> None:
    """When the process's cap is reached, a new connection closes the connection that has waited
    longest for a request (not the newest, and never a request in progress)."""
    server = serve(
        start_server,
        http_max_connections=40,
        http_max_connections_per_client=10,
        http_header_timeout_seconds=300,
    )
    sources = [f"127.0.0.{10 + i}" for i in range(8)]
    socks = [connect(server, source) for source in sources for _ in range(10)]  # 80, oldest first
    try:
        with legit_client(server) as client:
            assert client.get("/healthz").status_code == 200
        wait_until(lambda: sum(are_closed(socks)) >= 40, DEADLINE, "the oldest idle connections to be evicted")
        closed = are_closed(socks)  # the already-closed read as closed again
        assert all(closed[:40]), closed  # the four oldest sources
        assert not any(closed[-10:]), closed  # the newest source
    finally:
        for s in socks:
            s.close()
    assert "http_max_connections" in server.read_log()


def test_a_process_full_of_busy_connections_answers_503(start_server: StartServer) -> None:
    """Connections in the middle of a request are never evicted: with all of them busy, a new
    connection gets 503 with Retry-After; once one finishes, new ones are served again."""
    server = serve(
        start_server,
        http_max_connections=10,
        http_max_connections_per_client=50,
        http_header_timeout_seconds=300,
        http_body_timeout_seconds=300,
    )
    head = request_head(
        IDENTITY, "Content-Type: application/json", "Content-Length: 100", "Expect: 100-continue", method="POST"
    )
    busy = []
    try:
        for _ in range(10):
            sock = connect(server)
            sock.sendall(head)
            assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")  # the app is reading the body
            busy.append(sock)
        with connect(server, OTHER) as sock:
            sock.sendall(request_head())
            answer, closed = read_until_closed(sock)
        assert closed and status(answer) == 503, answer
        assert error_code(answer) == "temporarily_unavailable" and header(answer, "retry-after")
        busy.pop().close()

        def served() -> bool:
            with legit_client(server) as client:
                return client.get("/healthz").status_code == 200

        wait_until(served, DEADLINE, "a request to be served once a connection is free")
    finally:
        for s in busy:
            s.close()


def test_a_trusted_proxy_is_not_capped_per_client(start_server: StartServer) -> None:
    server = serve(start_server, http_max_connections_per_client=3, trusted_proxies="127.0.0.1")
    proxied = [connect(server) for _ in range(10)]
    direct = [connect(server, "127.0.0.3") for _ in range(4)]
    try:
        for sock in proxied + direct[:3]:
            sock.sendall(request_head())
            assert status(read_response(sock)) == 200
        direct[3].sendall(request_head())
        answer, closed = read_until_closed(direct[3])
        assert closed and status(answer) == 429, answer
    finally:
        for s in proxied + direct:
            s.close()
    log = server.read_log()
    assert "127.0.0.3" in log and "http_max_connections_per_client" in log


# ---- bodies and TLS ----------------------------------------------------------------------------


def test_an_oversized_body_still_gets_413(start_server: StartServer) -> None:
    server = serve(start_server)
    big = json.dumps({"type": "anonymous", "agent": {"name": "x" * 100_000}}).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    with legit_client(server) as client:
        for content in (big, chunks()):  # with a Content-Length, then chunked
            response = client.post(IDENTITY, content=content, headers={"Content-Type": "application/json"})
            assert response.status_code == 413, response.text
            assert response.json()["error"] == "request_too_large"


def test_limits_hold_over_tls_with_two_workers(
    start_server: StartServer,
    tls_files: TlsFiles,  # noqa: F811 (the fixture)
) -> None:
    server = serve(
        start_server,
        2,
        verify=tls_files.client_context(),
        tls_cert_file=tls_files.cert,
        tls_key_file=tls_files.key,
        http_header_timeout_seconds=1,
    )
    with connect(server, tls=tls_files) as sock:
        answer, closed = send_head_of(sock, request_head().removesuffix(b"\r\n") + b"X-Big: ", 4 * MB)
    assert closed and status(answer) == 431, answer[:300]
    with connect(server, tls=tls_files) as sock:
        answer, closed = read_until_closed(sock)
    assert closed and answer == b""
