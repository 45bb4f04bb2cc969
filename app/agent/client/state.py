"""Credentials kept between runs, one file per issuer, readable by their owner only.

``$AUTHMD_HOME`` or ``~/.config/authmd`` (directory 0700, files 0600, written atomically). A file holds
what is still worth holding: the access token until it expires, the identity assertion until it
expires, the refresh token, and the claim token only until the claim expires or lands (spec/protocol.md:
it is a secret that lets a human take the account over; nobody needs it afterwards). The last claim
link handed out is kept while it lives (revision 2: it stays usable when a newer one is started, so it
can be shown again when the service refuses more live attempts). A claim the human denied, or a
registration revoked, leaves no secret behind: only ``claim_outcome`` says what happened.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from app.protocol import parse_rfc3339


@dataclass
class Credentials:
    issuer: str
    registration_id: str | None = None
    type: str | None = None
    assertion: str | None = None
    assertion_expires_at: float | None = None
    access_token: str | None = None
    access_expires_at: float | None = None
    scope: str | None = None
    refresh_token: str | None = None
    refresh_expires_at: float | None = None
    claim_token: str | None = None
    claim_url: str | None = None
    claim_expires_at: float | None = None
    claim_attempt_uri: str | None = None  # the last verification_uri shown (a secret for the human)
    claim_attempt_expires_at: float | None = None
    claim_attempt_login_hint: str | None = None
    claim_outcome: str | None = None  # "denied" or "revoked" once the service said so
    account: dict[str, Any] = field(default_factory=dict)
    claimed: bool = False
    # The service's RFC 8414 metadata, so a token or a call needs no discovery round trips.
    metadata: dict[str, Any] = field(default_factory=dict)
    metadata_fetched_at: float | None = None

    def live(self, value: str | None, expires_at: float | None, *, margin: float = 30.0) -> str | None:
        return value if value and (expires_at is None or expires_at - margin > time.time()) else None

    @property
    def usable(self) -> bool:
        """Something here can still become an access token without registering again."""
        return bool(
            self.live(self.access_token, self.access_expires_at)
            or self.live(self.assertion, self.assertion_expires_at)
            or self.live(self.refresh_token, self.refresh_expires_at, margin=0)
        )

    def prune(self) -> None:
        """Drop what has expired, and the claim token once it can no longer be used."""
        if not self.live(self.access_token, self.access_expires_at, margin=0):
            self.access_token = self.access_expires_at = None
        if not self.live(self.assertion, self.assertion_expires_at, margin=0):
            self.assertion = self.assertion_expires_at = None
        if not self.live(self.refresh_token, self.refresh_expires_at, margin=0):
            self.refresh_token = self.refresh_expires_at = None
        if self.claimed or not self.live(self.claim_token, self.claim_expires_at, margin=0):
            self.claim_token = self.claim_url = self.claim_expires_at = None
        if self.claim_token is None or not self.live(self.claim_attempt_uri, self.claim_attempt_expires_at, margin=0):
            self.claim_attempt_uri = self.claim_attempt_expires_at = self.claim_attempt_login_hint = None

    def take_attempt(self, attempt: dict[str, Any], login_hint: str | None) -> None:
        uri = attempt.get("verification_uri")
        self.claim_attempt_uri = uri if isinstance(uri, str) else None
        self.claim_attempt_expires_at = _when(attempt.get("expires_at"))
        self.claim_attempt_login_hint = login_hint

    def end_claim(self, outcome: str) -> None:
        """The claim is over without landing: ``expired`` forgets the claim token; ``denied`` (the human
        said "This wasn't me") and ``revoked`` also forget every credential, which died with the
        registration."""
        self.claim_token = self.claim_url = self.claim_expires_at = None
        self.claim_attempt_uri = self.claim_attempt_expires_at = self.claim_attempt_login_hint = None
        if outcome in ("denied", "revoked"):
            self.claim_outcome = outcome
            self.assertion = self.assertion_expires_at = None
            self.access_token = self.access_expires_at = None
            self.refresh_token = self.refresh_expires_at = None

    def take_identity(self, identity: dict[str, Any]) -> None:
        self.assertion = identity.get("assertion")
        self.assertion_expires_at = _when(identity.get("expires_at"))
        refresh = identity.get("refresh_token")
        if isinstance(refresh, dict):
            self.refresh_token = refresh.get("value")
            self.refresh_expires_at = _when(refresh.get("expires_at"))
        self.access_token = self.access_expires_at = None  # minted for the previous assertion


def _when(value: Any) -> float | None:
    return parse_rfc3339(value) if isinstance(value, str) else None


def default_home() -> Path:
    home = os.environ.get("AUTHMD_HOME")
    if home:
        return Path(home)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "authmd"


class CredentialStore:
    def __init__(self, home: Path | None = None) -> None:
        self.home = home or default_home()

    def path(self, issuer: str) -> Path:
        return self.home / f"{hashlib.sha256(issuer.encode()).hexdigest()[:20]}.json"

    def load(self, issuer: str) -> Credentials | None:
        try:
            data = json.loads(self.path(issuer).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        known = {f.name for f in fields(Credentials)}
        creds = Credentials(**{k: v for k, v in data.items() if k in known})
        creds.prune()
        return creds

    def issuers(self) -> list[str]:
        found = []
        for path in sorted(self.home.glob("*.json")) if self.home.is_dir() else []:
            with contextlib.suppress(OSError, ValueError, KeyError):
                found.append(str(json.loads(path.read_text(encoding="utf-8"))["issuer"]))
        return found

    def save(self, creds: Credentials) -> Path:
        creds.prune()
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        target = self.path(creds.issuer)
        fd, tmp = tempfile.mkstemp(dir=self.home, prefix=".tmp-", suffix=".json")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(asdict(creds), fh, indent=2)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return target

    def save_contract(self, issuer: str, markdown: str) -> Path | None:
        """The service's /auth.md beside its credentials, for an agent (or its model) to read."""
        if not markdown:
            return None
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        target = self.path(issuer).with_suffix(".auth.md")
        target.write_text(markdown, encoding="utf-8")
        return target

    def delete(self, issuer: str) -> bool:
        with contextlib.suppress(FileNotFoundError):
            self.path(issuer).with_suffix(".auth.md").unlink()
        try:
            self.path(issuer).unlink()
        except FileNotFoundError:
            return False
        return True
