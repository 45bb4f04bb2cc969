"""One doctor run's state and plumbing: the report being written, the documents found on the way (read
by later groups), the error responses met, and `guarded`, which turns anything a group did not expect
into its FAIL `{group}.error` so garbage in never crashes the doctor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.agent.doctor.http import Fetched, Http, Problem, describe, is_loopback
from app.agent.doctor.report import Report, Status


@dataclass(frozen=True, slots=True)
class Document:
    """A metadata document that parsed as a JSON object, with the response that carried it."""

    fetched: Fetched
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SeenError:
    """An error response the doctor met (errors.*): ``strict`` when the protocol's JSON error body is
    required (the authorization server's endpoints), not for a resource server's 401 (RFC 6750 puts the
    error in the header)."""

    label: str
    fetched: Fetched
    strict: bool


class Doctor:
    """One run's state: what the checks found so far, shared by every check group (checks/*)."""

    def __init__(self, http: Http, url: str, *, probe: bool = False) -> None:
        self.http = http
        self.url = url
        self.probe = probe
        self.report = Report(url)
        self.cached: list[tuple[str, Fetched]] = []  # (cache check name, response) for cache.*
        self.prm: Document | None = None
        self.as_meta: Document | None = None
        self.seen_errors: list[SeenError] = []
        self.max_live_attempts: int | None = None  # agent_auth.claim.max_live_attempts, when well formed

    def add(self, id: str, status: Status, message: str, reference: str) -> None:
        self.report.add(id, status, message, reference)

    def saw(self, label: str, got: Fetched, *, strict: bool = True) -> None:
        """An error response, for errors.* (a 2xx or 3xx is not recorded)."""
        if got.status >= 400:
            self.seen_errors.append(SeenError(label, got, strict))

    def guarded(self, group: str, fn: Callable[[], None]) -> None:
        """Run one check group; anything it did not expect becomes a FAIL `{group}.error`, never a crash."""
        try:
            fn()
        except Problem as exc:
            self.add(f"{group}.error", "fail", str(exc), "")
        except Exception as exc:  # garbage in must not crash the doctor
            self.add(f"{group}.error", "fail", f"unexpected {describe(exc)}", "")

    @property
    def dev(self) -> bool:
        """spec/protocol.md "dev mode": the issuer is http:// on a loopback address."""
        issuer = self.report.issuer
        if not issuer:
            return False
        parts = urlsplit(issuer)
        return parts.scheme == "http" and is_loopback(parts.hostname)
