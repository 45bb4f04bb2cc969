"""The bearer guard protects an operator's own Litestar route, with the same semantics as the demo API."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Request, get
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.clock import ManualClock
from app.routes.guard import principal_of, requires
from tests.conftest import make_settings
from tests.helpers import Agent

pytestmark = pytest.mark.anyio


@get("/reports/mine", guards=[requires("notes:read")])
async def my_report(request: Request[Any, Any, Any]) -> dict[str, Any]:
    p = principal_of(request)
    return {"account": p.account.id, "kind": p.account.kind, "scopes": sorted(p.scopes)}


@get("/reports/admin", guards=[requires("reports:admin")])
async def admin_report() -> dict[str, str]:
    return {"secret": "only with reports:admin"}


async def test_operator_route_gets_the_principal_and_the_scope_rules(tmp_path):
    settings = make_settings(tmp_path)
    app = create_app(settings, clock=ManualClock(), background=False, route_handlers=[my_report, admin_report])
    async with AsyncTestClient(app=app, base_url=settings.issuer_str) as client:
        agent = Agent(client, settings)
        reg, token = await agent.start()
        r = await client.get("/reports/mine", headers={"Authorization": f"Bearer {token}"})
        assert r.json() == {
            "account": reg["account"]["id"],
            "kind": "temporary",
            "scopes": ["notes:read", "notes:write"],
        }
        r = await client.get("/reports/mine")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer resource_metadata=")
        r = await client.get("/reports/admin", headers={"Authorization": f"Bearer {token}"})
        assert (r.status_code, r.json()["error"], r.json()["scope"]) == (403, "insufficient_scope", "reports:admin")
        assert "secret" not in r.text
        await client.post("/oauth2/revoke", data={"token": token})
        r = await client.get("/reports/mine", headers={"Authorization": f"Bearer {token}"})
        assert (r.status_code, r.json()["error"]) == (401, "invalid_token")
