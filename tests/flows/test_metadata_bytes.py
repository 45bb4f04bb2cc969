"""The discovery documents' exact bytes: the AS metadata (RFC 8414) with its ``agent_auth`` block and
the protected-resource metadata (RFC 9728), for configurations that change their shape. The expected
bytes (tests/flows/golden/metadata.json) were captured from the dict builders before the documents
became Structs; regenerate them only for an intended change of a document:
``python -m tests.flows.test_metadata_bytes``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app import endpoints as ep
from app.asgi import create_app
from app.clock import ManualClock
from app.config import Provider
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio

GOLDEN = Path(__file__).parent / "golden" / "metadata.json"
AGENTS = Provider(
    issuer="https://agents.example", client_ids=["agent-cli"], scopes=["notes:read", "notes:write"], name="Agents"
)
CONFIGS: dict[str, dict[str, Any]] = {
    "dev": {},
    "providers": {
        "providers": [AGENTS, Provider(issuer="https://other.example", client_ids=["x"], scopes=["notes:read"])]
    },
    "oidc": {
        "issuer": "https://auth.example",
        "oidc_issuer": "https://idp.example",
        "oidc_client_id": "authmd",
        "oidc_client_secret": "s3cret",
    },
    "claims-off": {"issuer": "https://auth.example"},
    "issuer-path": {"issuer": "http://127.0.0.1:8000/tenant"},
}
NAMES = ("as", "prm-resource", "prm-issuer", "auth.md")


@contextlib.asynccontextmanager
async def _client(tmp_path: Path, overrides: dict[str, Any]) -> AsyncIterator[tuple[AsyncTestClient[Any], list[str]]]:
    settings = make_settings(tmp_path, **overrides)
    app = create_app(settings, clock=ManualClock(), background=False)
    e = app.state.ctx.endpoints
    urls = [e.url(ep.AS_METADATA), e.resource_metadata, ep.well_known(e.issuer, ep.PROTECTED_RESOURCE)]
    urls.append(e.url(ep.AUTH_MD))  # its examples embed both metadata documents
    async with AsyncTestClient(app=app, base_url=settings.issuer_str) as client:
        yield client, urls


async def documents(tmp_path: Path, overrides: dict[str, Any]) -> dict[str, str]:
    """Each document's body as served, keyed by NAMES (the bytes, as text)."""
    async with _client(tmp_path, overrides) as (client, urls):
        out = {}
        for name, url in zip(NAMES, urls, strict=True):
            r = await client.get(url)
            assert r.status_code == 200, (name, r.text)
            out[name] = r.content.decode()
        return out


@pytest.mark.parametrize("config", list(CONFIGS))
async def test_the_documents_are_byte_for_byte_as_captured(config, tmp_path):
    expected = json.loads(GOLDEN.read_text())[config]
    assert await documents(tmp_path, CONFIGS[config]) == expected


def test_the_captured_configurations_differ_in_shape():
    """Each configuration is there for a shape of its own (guards the golden file against sameness)."""
    captured = json.loads(GOLDEN.read_text())
    assert set(captured) == set(CONFIGS)
    assert len({docs["as"] for docs in captured.values()}) == len(CONFIGS)
    assert '"identity_assertion"' in captured["providers"]["as"]
    assert '"sign_in":"oidc"' in captured["oidc"]["as"] and '"sign_in":null' in captured["claims-off"]["as"]
    assert "/tenant/.well-known/jwks.json" in captured["issuer-path"]["prm-resource"]


async def _capture() -> dict[str, dict[str, str]]:
    out = {}
    for name, overrides in CONFIGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            out[name] = await documents(Path(tmp), overrides)
    return out


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(asyncio.run(_capture()), indent=2, sort_keys=True) + "\n")
    sys.exit(0)
