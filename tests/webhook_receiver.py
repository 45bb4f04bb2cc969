"""A real webhook receiver for the tests: an HTTP server on a loopback port (a thread), which records
every request, answers with a status the test sets, can hold requests open (an endpoint that hangs),
and can be stopped and started again on the same port (an endpoint that is down).

``verify`` is an independent check of the Standard Webhooks signature, written from the scheme's text
(HMAC-SHA256 over ``id.timestamp.body`` with the base64-decoded secret), beside the package's verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.e2e.conftest import HOST, free_port


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    path: str

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops a burst's connections (retried after a second)


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.status = 204
        self.location: str | None = None  # sent with the answer (a redirect, when status is 3xx)
        self.declared_body = 0  # a body this long is announced; a little of it is sent, then it hangs
        self.held = threading.Event()  # cleared: requests wait (at most 30 s) until it is set
        self.held.set()
        self.hang = threading.Event()  # set: a hanging body ends
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._in_flight: Counter[str] = Counter()
        self.overlaps: list[str] = []  # webhook ids received while another request with the same id was open
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hooks"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                record = Received({k.lower(): v for k, v in self.headers.items()}, body, self.path)
                with receiver._lock:
                    receiver._received.append(record)
                    if receiver._in_flight[record.webhook_id]:
                        receiver.overlaps.append(record.webhook_id)
                    receiver._in_flight[record.webhook_id] += 1
                try:
                    receiver.held.wait(30)
                    self.send_response(receiver.status)
                    if receiver.location is not None:
                        self.send_header("location", receiver.location)
                    self.send_header("content-length", str(receiver.declared_body))
                    self.end_headers()
                    if receiver.declared_body:
                        self.wfile.write(b"x" * 1024)
                        self.wfile.flush()
                        receiver.hang.wait(30)
                finally:
                    with receiver._lock:
                        receiver._in_flight[record.webhook_id] -= 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = _Server((HOST, self.port), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until ``start`` (same port)."""
        server, self._server = self._server, None
        if server is not None:
            self.held.set()
            self.hang.set()
            server.shutdown()
            server.server_close()


def verify(secret: str, headers: dict[str, str], body: bytes, *, now: float | None = None) -> bool:
    """True if one ``v1`` signature matches ``secret`` (whsec_…) and the timestamp is within 5 minutes."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs((now or time.time()) - int(stamp)) > 300:
        return False
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    offered = [s.split(",", 1) for s in headers["webhook-signature"].split(" ")]
    return any(v == "v1" and hmac.compare_digest(sig.encode(), expected) for v, sig in offered)
