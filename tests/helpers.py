"""An agent that speaks the protocol over any httpx-compatible async client (tests only)."""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.flows.challenge import solve

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class Agent:
    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.issuer = settings.issuer_str

    async def register(self, body: dict[str, Any] | None = None, *, expect: int = 200) -> dict[str, Any]:
        r = await self.client.post(f"{self.issuer}/agent/identity", json=body or {"type": "anonymous"})
        assert r.status_code == expect, r.text
        return dict(r.json())

    async def register_with_pow(self) -> dict[str, Any]:
        r = await self.client.post(f"{self.issuer}/agent/identity/challenge")
        assert r.status_code == 200, r.text
        ch = r.json()
        nonce = solve(ch["challenge"], ch["difficulty"])
        return await self.register(
            {"type": "anonymous", "proof_of_work": {"challenge": ch["challenge"], "nonce": nonce}}
        )

    async def token(self, assertion: str, *, expect: int = 200, **extra: str) -> dict[str, Any]:
        form = {"grant_type": JWT_BEARER, "assertion": assertion, **extra}
        r = await self.client.post(f"{self.issuer}/oauth2/token", data=form)
        assert r.status_code == expect, r.text
        return dict(r.json())

    async def start(self) -> tuple[dict[str, Any], str]:
        """Register anonymously and exchange: (registration response, access token)."""
        reg = await self.register()
        tok = await self.token(reg["identity"]["assertion"])
        return reg, str(tok["access_token"])

    async def api(self, method: str, path: str, token: str | None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.request(method, f"{self.issuer}/api{path}", headers=headers, **kwargs)
