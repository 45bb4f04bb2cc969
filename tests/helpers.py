"""An agent that speaks the protocol over any httpx-compatible async client (tests only)."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.config import Settings
from app.protocol import solve

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class Agent:
    def __init__(self, client: Any, issuer: Settings | str) -> None:
        """``issuer``: the service's settings (in-process) or its issuer URL (a real server)."""
        self.client = client
        self.issuer = issuer if isinstance(issuer, str) else issuer.issuer_str

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

    # ---- the claim ceremony (spec/protocol.md § Claim) ---------------------------------------------------
    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        return await self.client.post(f"{self.issuer}{path}", json=body)

    async def start_claim(self, claim_token: str, login_hint: str | None = None, *, expect: int = 200) -> Any:
        body: dict[str, Any] = {"type": "service_auth", "claim_token": claim_token}
        if login_hint is not None:
            body["login_hint"] = login_hint
        r = await self.post_json("/agent/identity/claim", body)
        assert r.status_code == expect, r.text
        return r.json()

    async def claim_status(self, claim_token: str) -> str:
        r = await self.post_json("/agent/identity/claim/status", {"claim_token": claim_token})
        assert r.status_code == 200, r.text
        return str(r.json()["status"])

    async def complete_claim(self, claim_token: str, user_code: str, *, expect: int = 200) -> Any:
        r = await self.post_json("/agent/identity/claim/complete", {"claim_token": claim_token, "user_code": user_code})
        assert r.status_code == expect, r.text
        return r.json()

    async def refresh(self, refresh_token: str, *, expect: int = 200) -> Any:
        return await self.register({"type": "refresh", "refresh_token": refresh_token}, expect=expect)


class Page:
    """One HTML answer of the human pages, with what the tests read from it."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.status: int = response.status_code
        self.text: str = response.text

    @property
    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.text)
        assert found, self.text
        return html.unescape(found.group(1))

    def form(self, action: str) -> dict[str, str]:
        """The hidden fields of the form that posts to ``action`` (under any base path), exactly as a browser
        would send them."""
        pattern = rf'<form method="post" action="[^"]*{re.escape(action)}">(.*?)</form>'
        found = re.search(pattern, self.text, re.DOTALL)
        assert found, self.text
        fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', found.group(1))
        return {html.unescape(k): html.unescape(v) for k, v in fields}

    @property
    def code(self) -> str:
        found = re.search(r'class="code"[^>]*>(\d{3}) (\d{3})<', self.text)
        assert found, self.text
        return found.group(1) + found.group(2)

    @property
    def title(self) -> str:
        found = re.search(r"<h1>(.*?)</h1>", self.text)
        assert found, self.text
        return html.unescape(found.group(1))


class DevHuman:
    """A person in a browser-like client (cookies kept, redirects followed by hand) who signs in with
    the development sign-in form of a dev-mode server."""

    def __init__(self, client: Any, issuer: str) -> None:
        self.client = client
        self.issuer = issuer
        self.cookies = httpx.Cookies()  # this person's own jar, even on a client shared with others

    async def _send(self, method: str, url: str, **kwargs: Any) -> Any:
        saved, self.client.cookies = self.client.cookies, self.cookies
        try:
            return await self.client.request(method, url, follow_redirects=False, **kwargs)
        finally:
            self.cookies, self.client.cookies = self.client.cookies, saved

    async def follow(self, url: str, *, limit: int = 10) -> Page:
        for _ in range(limit):
            r = await self._send("GET", url)
            if r.status_code not in (302, 303):
                return Page(r)
            location = r.headers["location"]
            url = location if location.startswith("http") else _origin(self.issuer) + location
        raise AssertionError("too many redirects")

    async def post(self, path: str, fields: dict[str, str]) -> Page:
        r = await self._send("POST", f"{self.issuer}{path}", data=fields)
        if r.status_code in (302, 303):
            location = r.headers["location"]
            return await self.follow(location if location.startswith("http") else _origin(self.issuer) + location)
        return Page(r)

    async def open_link(self, verification_uri: str, email: str) -> Page:
        """Open the agent's link; sign in with the dev form if asked; land on the claim page."""
        page = await self.follow(verification_uri)
        if page.title == "Development sign-in":
            page = await self.post("/login/dev", {"csrf": page.csrf, "email": email, "return_to": "/claim"})
        return page

    async def authorize(self, page: Page) -> Page:
        """Press Authorize on ``page`` (its form names the attempt it shows)."""
        return await self.post("/claim/confirm", page.form("/claim/confirm"))

    async def deny(self, page: Page) -> Page:
        return await self.post("/claim/deny", page.form("/claim/deny"))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def claimed(agent: Agent, human: DevHuman, email: str = "ada@example.com") -> tuple[dict[str, Any], Any]:
    """The whole ceremony for a fresh anonymous registration: (registration, completion body)."""
    reg = await agent.register()
    attempt = await agent.start_claim(reg["claim"]["token"], email)
    page = await human.open_link(attempt["attempt"]["verification_uri"], email)
    code = (await human.authorize(page)).code
    return reg, await agent.complete_claim(reg["claim"]["token"], code)
