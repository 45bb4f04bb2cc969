"""The two official MCP SDK clients as test parts (tests/e2e/test_mcp_clients.py).

* The TypeScript SDK (npm ``@modelcontextprotocol/sdk``, the exact version pinned in
  tests/mcp_clients/package.json and its lock file) runs unmodified under Node in
  ``tests/mcp_clients/client.mjs``, a small application around the SDK's ``Client``,
  ``StreamableHTTPClientTransport`` and OAuth code; ``NodeMcpClient`` drives it over stdin/stdout (one
  JSON object per line, see the top of client.mjs) from an anyio test. The npm packages are installed
  on first use into tests/mcp_clients/node_modules (``npm ci``, ~4 s) and reused, as tests/oidc's are.
  Without node/npm the tests skip with the install line (``CI=true``: they fail instead).
* The Python SDK (PyPI ``mcp``, in the venv) runs in the test itself; what it needs around it is here: a
  redirect URI (``LoopbackCallback``, a one-path HTTP listener on 127.0.0.1 whose ``next()`` returns the
  query of the next redirect), a token storage (``MemoryTokenStorage``), and ``Exchanges``, an httpx2
  response hook that records every exchange the SDK's own HTTP client made, its OAuth flow's included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx2
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.client.auth.utils import extract_field_from_www_auth
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from tests.npm import INSTALL_HINT, NPM, NPM_TIMEOUT, NpmFolder
from tests.parts import missing

NODE = shutil.which("node")

CLIENTS_DIR = Path(__file__).resolve().parent / "mcp_clients"
SCRIPT = CLIENTS_DIR / "client.mjs"
NODE_MODULES = CLIENTS_DIR / "node_modules"
SDK = "@modelcontextprotocol/sdk"

HOST = "127.0.0.1"
CALLBACK_PATH = "/callback"
MAX_LINE = 1 << 20  # one event line (a tool result, tokens) is far smaller
STOP_TIMEOUT = 10.0
CALLBACK_PAGE = (
    b"<!doctype html><title>Connected</title><h1>Authorization received</h1>"
    b"<p>You can close this window and return to the application.</p>"
)


# --- the npm packages ------------------------------------------------------------------------------


def pinned_sdk_version() -> str:
    """The SDK version package.json pins (an exact version, never a range)."""
    version: str = json.loads((CLIENTS_DIR / "package.json").read_text())["dependencies"][SDK]
    return version


SDK_NPM = NpmFolder(CLIENTS_DIR, SDK)


def sdk_installed() -> bool:
    """tests/mcp_clients/node_modules holds the SDK at the pinned version."""
    return SDK_NPM.installed() and SDK_NPM.locked_version() == pinned_sdk_version()


def require_sdk_client(env: Mapping[str, str] | None = None) -> None:
    """Skip the test when node (or npm, while the SDK is not installed yet) is missing; fail instead when
    ``CI=true``."""
    env = os.environ if env is None else env
    needed = [("node", NODE)] if sdk_installed() else [("node", NODE), ("npm", NPM)]
    for name, path in needed:
        if path is None or not os.access(path, os.X_OK):
            missing(f"{name} not found; install it with: {INSTALL_HINT}", env)


def ensure_sdk(timeout: float = NPM_TIMEOUT) -> None:
    """``npm ci`` into tests/mcp_clients once (tests/npm.py)."""
    SDK_NPM.ensure(timeout)


# --- the TypeScript client -------------------------------------------------------------------------

Event = dict[str, Any]


class NodeMcpClient:
    """``node tests/mcp_clients/client.mjs CONFIG`` for one test (an async context manager).

    ``events`` is every event printed so far, in order; ``mark()`` and ``since(mark, kind)`` cut out what
    one step printed. ``redirect_uri`` is the loopback listener the script opened (known once entered).
    """

    def __init__(self, config: Mapping[str, Any], log_path: Path) -> None:
        self.config = dict(config)
        self.log_path = log_path
        self.events: list[Event] = []
        self.redirect_uri = ""
        self._process: Process | None = None
        self._stdout: BufferedByteReceiveStream | None = None
        self._read = 0  # events handed out by wait_for so far

    async def __aenter__(self) -> Self:
        ensure_sdk()
        assert NODE is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self._process = await anyio.open_process(
                [NODE, str(SCRIPT), json.dumps(self.config)], cwd=CLIENTS_DIR, env=env, stderr=log
            )
        assert self._process.stdout is not None
        self._stdout = BufferedByteReceiveStream(self._process.stdout)
        try:
            self.redirect_uri = (await self.wait_for("listening", timeout=30))["redirect_uri"]
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.send({"cmd": "exit"})
        await self._stop()

    async def _stop(self) -> None:
        process = self._process
        if process is None:
            return
        try:
            with anyio.move_on_after(STOP_TIMEOUT) as scope:
                await process.wait()
            if scope.cancelled_caught:
                process.kill()
                await process.wait()
        finally:
            await process.aclose()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def send(self, command: Mapping[str, Any]) -> None:
        assert self._process is not None and self._process.stdin is not None
        await self._process.stdin.send(json.dumps(command).encode() + b"\n")

    async def _next(self) -> Event:
        assert self._stdout is not None
        line = await self._stdout.receive_until(b"\n", MAX_LINE)
        event: Event = json.loads(line)
        self.events.append(event)
        return event

    async def wait_for(
        self, kind: str, timeout: float = 60.0, where: Callable[[Event], bool] = lambda _: True
    ) -> Event:
        """The next event of ``kind`` (matching ``where``) not handed out before; reads on as needed."""
        try:
            with anyio.fail_after(timeout):
                while True:
                    while self._read < len(self.events):
                        event = self.events[self._read]
                        self._read += 1
                        if event.get("event") == kind and where(event):
                            return event
                    await self._next()
        except TimeoutError:
            raise AssertionError(f"no {kind!r} event within {timeout:g} s; node log:\n{self.log_tail()}") from None
        except (anyio.EndOfStream, anyio.IncompleteRead):
            raise AssertionError(f"the node client exited before a {kind!r} event:\n{self.log_tail()}") from None

    async def command(self, command: Mapping[str, Any], timeout: float = 60.0) -> Event:
        """Send ``command`` and return its ``done`` event (the events on the way stay in ``events``)."""
        await self.send(command)
        return await self.wait_for("done", timeout, lambda e: e.get("cmd") == command["cmd"])

    def mark(self) -> int:
        return len(self.events)

    def since(self, mark: int, kind: str | None = None) -> list[Event]:
        return [e for e in self.events[mark:] if kind is None or e.get("event") == kind]


# --- the Python client's parts ---------------------------------------------------------------------


class LoopbackCallback:
    """A one-path HTTP listener on 127.0.0.1 (any port: RFC 8252 §7.3) for an async test: each request
    to ``CALLBACK_PATH`` gets a small page and its query is queued for ``next()``; anything else 404."""

    def __init__(self) -> None:
        self._queries: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def redirect_uri(self) -> str:
        return f"http://{HOST}:{self.port}{CALLBACK_PATH}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            fields = request_line.decode("latin-1").split()
            target = urlsplit(fields[1]) if len(fields) == 3 else None
            if target is not None and fields[0] == "GET" and target.path == CALLBACK_PATH:
                self._queries.put_nowait(dict(parse_qsl(target.query, keep_blank_values=True)))
                status, body = b"200 OK", CALLBACK_PAGE
            else:
                status, body = b"404 Not Found", b"not found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n"
                b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def next(self, timeout: float = 60.0) -> dict[str, str]:
        """The query of the next redirect (``code``, ``state``, ``iss``, or ``error``)."""
        try:
            with anyio.fail_after(timeout):
                return await self._queries.get()
        except TimeoutError:
            raise AssertionError(f"no redirect to {self.redirect_uri} within {timeout:g} s") from None


def www_field(header: str | None, name: str) -> str | None:
    """A parameter of a WWW-Authenticate header, read by the function the Python SDK itself uses."""
    return extract_field_from_www_auth(httpx2.Response(401, headers={"www-authenticate": header or ""}), name)


@dataclass
class Seen:
    """One HTTP exchange as the SDK's own httpx2 client saw it."""

    method: str
    url: str
    status: int
    www_authenticate: str | None
    grant_type: str | None  # of a token request
    rpc: str | None  # of an MCP request: its JSON-RPC method, ":tool" for a tools/call
    body: dict[str, Any] | None  # a JSON error body, or the JSON answer to ``sent``
    sent: dict[str, Any] | None  # a JSON body that is not JSON-RPC (a dynamic client registration)

    def field(self, name: str) -> str | None:
        return www_field(self.www_authenticate, name)


class Exchanges:
    """Every response the Python client got (an httpx2 response hook), its OAuth flow's included."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    async def __call__(self, response: httpx2.Response) -> None:
        request = response.request
        try:
            content = request.content
        except httpx2.RequestNotRead:
            content = b""
        grant_type = rpc = sent = None
        if content.startswith(b"{"):
            message = json.loads(content)
            if "jsonrpc" in message:
                params = message.get("params")
                is_call = message.get("method") == "tools/call" and isinstance(params, dict)
                tool = params.get("name") if is_call else None
                rpc = f"tools/call:{tool}" if tool else message.get("method")
            else:
                sent = message
        elif b"grant_type=" in content:
            grant_type = dict(parse_qsl(content.decode())).get("grant_type")
        body = None
        if (response.status_code >= 400 or sent is not None) and "json" in response.headers.get("content-type", ""):
            body = json.loads(await response.aread())
        www_authenticate = response.headers.get("www-authenticate")
        self.seen.append(
            Seen(request.method, str(request.url), response.status_code, www_authenticate, grant_type, rpc, body, sent)
        )

    def mark(self) -> int:
        return len(self.seen)

    def calls(self, mark: int, rpc: str) -> list[Seen]:
        """The MCP requests of one JSON-RPC method since ``mark`` (not the transport's own GET for an event
        stream, which the server answers 405 whenever it comes)."""
        return [s for s in self.seen[mark:] if s.rpc == rpc]

    def grants(self, mark: int) -> list[tuple[str, int]]:
        """The token requests since ``mark``: (grant_type, status)."""
        return [(s.grant_type, s.status) for s in self.seen[mark:] if s.grant_type]


class MemoryTokenStorage:
    """The client's token storage, remembering when each token arrived (to know when it expires)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.received_at = 0.0
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens, self.received_at = tokens, time.time()

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info

    @property
    def access_token(self) -> str:
        assert self.tokens is not None
        return self.tokens.access_token

    def expired(self) -> bool:
        """Past the client's own idea of the expiry (``expires_in`` from when the token arrived, after the
        SDK noted it), so the SDK refreshes before it sends anything."""
        assert self.tokens is not None and self.tokens.expires_in is not None
        return time.time() > self.received_at + self.tokens.expires_in


class AuthorizationAbandoned(Exception):
    """The human did not come back: the test's redirect handler raises it when no consent is planned."""


def raised(error: BaseException, kind: type[BaseException]) -> bool:
    """``error`` is ``kind``, or an exception group holding one (the SDK's task groups wrap what the
    OAuth flow raised)."""
    if isinstance(error, kind):
        return True
    return isinstance(error, BaseExceptionGroup) and any(raised(inner, kind) for inner in error.exceptions)
