"""What the one running `authmd agent` reads: the exit codes, the refusal a run ends with (`Exit`), the
text or the one JSON object (`Output`), and the commands its hints name, written to work as given."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.agent.client import CredentialStore, ServiceError
from app.agent.client.state import default_home

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_NOT_CONFIRMED, EXIT_NOTHING = 1, 2, 3, 4, 5


class Exit(Exception):
    def __init__(self, code: int, message: str, hint: str = "", data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.hint, self.data = code, message, hint, data or {}


class GrantRefused(Exit):
    """The service refused the stored grant: it is forgotten (as after a revoked claim), and registering
    again is the way on."""


class Output:
    """Human text on stdout (notes and progress on stderr), or exactly one JSON object with --json.

    Progress redraws one line in place on a terminal, and is taken off before anything else is
    written; on a pipe (an agent reading it) only its first line of each kind is written."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.terminal = sys.stderr.isatty()
        self.drawn = False
        self.written: set[str] = set()

    def progress(self, line: str, *, once: str) -> None:
        if self.terminal:
            sys.stderr.write(f"\r{line}\x1b[K")
            sys.stderr.flush()
            self.drawn = True
        elif once not in self.written:
            self.written.add(once)
            print(once, file=sys.stderr, flush=True)

    def clear(self) -> None:
        if self.drawn:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.drawn = False

    def say(self, text: str = "") -> None:
        self.clear()
        if not self.as_json:
            print(text, flush=True)

    def note(self, text: str) -> None:
        self.clear()
        print(text, file=sys.stderr, flush=True)

    def done(self, data: dict[str, Any]) -> None:
        self.clear()
        if self.as_json:
            print(json.dumps(data), flush=True)

    def fail(self, code: int, message: str, hint: str = "", data: dict[str, Any] | None = None) -> None:
        self.clear()
        if self.as_json:
            print(json.dumps({"ok": False, "exit": code, "message": message, "hint": hint or None, **(data or {})}))
        print(f"authmd agent: {message}", file=sys.stderr)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)


def command(store: CredentialStore, verb: str, *words: str, issuer: str | None = None) -> str:
    """A command for a hint, written so that it works when followed literally: with this run's --home,
    and with --issuer when several services are stored."""
    argv = ["authmd", "agent", *(["--home", str(store.home)] if store.home != default_home() else []), verb, *words]
    if issuer is not None and len(store.issuers()) > 1:
        argv += ["--issuer", issuer]
    return f"`{shlex.join(argv)}`"


def http_url(value: str) -> str:
    """An http(s) URL, or a usage error (nothing is sent anywhere)."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.netloc)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        ok = False
    if not ok:
        raise Exit(
            EXIT_USAGE,
            f"{value!r} is not an http(s) URL",
            "Give the API's URL or the service's issuer, e.g. https://api.example.com/v1/notes.",
        )
    return value


def read_arg(path: str, option: str) -> bytes:
    """A file named on the command line (- is stdin); one that cannot be read is a usage error."""
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise Exit(EXIT_USAGE, f"{option}: cannot read {path}: {exc.strerror or exc}") from exc


def exit_for(exc: ServiceError) -> Exit:
    """What a refusal means for the one running the command (revision 1 names understood too)."""
    data: dict[str, Any] = {"error": exc.code, "status": exc.status}
    said = f": {exc.description}" if exc.description else ""
    if exc.kind == "rate_limit_exceeded":
        data["retry_after"] = exc.retry_after
        when = f"retry in {exc.retry_after:g} s" if exc.retry_after is not None else "retry later"
        return Exit(
            EXIT_REFUSED,
            f"the service is rate limiting this client ({exc.code}): {when}",
            exc.hint or "Wait that long, then run the same command again.",
            data,
        )
    if exc.code == "auth_method_disabled":
        return Exit(
            EXIT_REFUSED,
            f"the service has turned this claim method off ({exc.code}){said}",
            exc.hint or "Nothing to retry: see the service's /auth.md for the ways it still offers.",
            data,
        )
    if exc.kind in ("anonymous_registration_disabled", "service_auth_registration_disabled"):
        kind = "anonymous" if exc.kind.startswith("anonymous") else "service_auth"
        return Exit(
            EXIT_REFUSED,
            f"the service does not offer {kind} registration ({exc.code}){said}",
            exc.hint or "See the service's /auth.md for the ways it offers.",
            data,
        )
    max_age = exc.body.get("max_age")
    if exc.code == "login_required" and isinstance(max_age, int | float) and not isinstance(max_age, bool):
        data["max_age"] = max_age
        return Exit(
            EXIT_REFUSED,
            f"the service refused: {exc} (it takes sign-ins at most {max_age:g} s old)",
            exc.hint or "Have your user sign in again at their provider, then send a fresh ID-JAG.",
            data,
        )
    return Exit(EXIT_REFUSED, f"the service refused: {exc}", exc.hint, data)


def iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts is not None else None


def due(ts: float | None) -> str:
    if ts is None:
        return "never"
    left = int(ts - time.time())
    if left <= 0:
        return "expired"
    return f"in {left // 3600} h {left % 3600 // 60} min" if left >= 3600 else f"in {left // 60} min {left % 60} s"
