"""The MCP server under an issuer with a path, in-process (the real app, store and keys): the endpoint
moves under the issuer's path, its RFC 9728 document is path-inserted at the origin (§3.1), and the
challenges point there."""

from __future__ import annotations

import pytest

from tests.conftest import HarnessFactory
from tests.helpers import Agent

pytestmark = pytest.mark.anyio

ORIGIN = "http://127.0.0.1:8000"
ISSUER = f"{ORIGIN}/tenant"
METADATA = f"{ORIGIN}/.well-known/oauth-protected-resource/tenant/api/mcp"
ACCEPT = {"Accept": "application/json, text/event-stream"}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


async def test_under_an_issuer_path_the_metadata_is_path_inserted(harness_factory: HarnessFactory) -> None:
    async with harness_factory(issuer=ISSUER) as h:
        r = await h.client.post(f"{ISSUER}/api/mcp", json=LIST, headers=ACCEPT)
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == f'Bearer resource_metadata="{METADATA}", scope="notes:read"'

        prm = await h.client.get(METADATA)
        assert prm.status_code == 200, prm.text
        assert prm.json()["resource"] == f"{ISSUER}/api"
        assert prm.json()["authorization_servers"] == [ISSUER]
        assert prm.content == (await h.client.get(f"{ORIGIN}/.well-known/oauth-protected-resource/tenant/api")).content

        _, token = await Agent(h.client, h.settings).start()
        r = await h.client.post(f"{ISSUER}/api/mcp", json=LIST, headers={**ACCEPT, "Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        assert {t["name"] for t in r.json()["result"]["tools"]} == {"list_notes", "add_note", "delete_note"}
        assert (await h.client.post(f"{ORIGIN}/api/mcp", json=LIST, headers=ACCEPT)).status_code == 404

        r = await h.client.options(f"{ISSUER}/api/mcp")
        assert r.status_code == 204 and r.headers["allow"] == "POST, OPTIONS"
