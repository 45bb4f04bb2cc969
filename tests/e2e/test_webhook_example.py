"""The example receiver (docs/examples/webhook_receiver.py), run as an operator would, behind a real
`authmd serve`: an agent registers and writes, its workspace appears in the product; the temporary
account expires unclaimed, and the product deletes the workspace; a claimed account is provisioned."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.common import IDENTITY, NOTES, bearer
from tests.e2e.conftest import HOST, ROOT, StartServer, free_port, wait_until
from tests.e2e.test_admin import access_token, claim_as
from tests.e2e.test_webhooks import FAST, new_secret

pytestmark = pytest.mark.e2e
EXAMPLE = ROOT / "docs" / "examples" / "webhook_receiver.py"


class Product:
    def __init__(self, tmp_path: Path, secret: str) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLE),
                "--port",
                str(self.port),
                "--secret",
                secret,
                "--db",
                str(tmp_path / "p.db"),
            ],
            stdin=subprocess.DEVNULL,
        )
        wait_until(self._up, 30, "the example receiver listening")

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/workspaces/none").status_code == 404
        except httpx.TransportError:
            return False

    def workspace(self, account_id: str) -> dict[str, Any] | None:
        r = httpx.get(f"{self.url}/workspaces/{account_id}")
        return r.json() if r.status_code == 200 else None


@pytest.fixture
def product_secret() -> str:
    return new_secret()


@pytest.fixture
def product(tmp_path: Path, product_secret: str) -> Iterator[Product]:
    running = Product(tmp_path, product_secret)
    yield running
    running.proc.terminate()
    running.proc.wait(10)


def test_the_product_follows_the_accounts(
    start_server: StartServer, tmp_path: Path, product: Product, product_secret: str, http: httpx.Client
) -> None:
    config = tmp_path / "authmd.toml"
    timing = "\n".join(f"{k} = {v}" for k, v in FAST.items())
    config.write_text(
        f'{timing}\n[[webhooks]]\nname = "product"\nurl = "{product.url}/hooks"\nsecret = "{product_secret}"\n'
    )
    server = start_server(
        {
            "AUTHMD_CONFIG": str(config),
            "AUTHMD_POW_MODE": "off",
            "AUTHMD_ANONYMOUS_TTL_SECONDS": "3",
            "AUTHMD_SWEEP_INTERVAL_SECONDS": "0.2",
        }
    )
    r = http.post(f"{server.origin}{IDENTITY}", json={"type": "anonymous", "agent": {"name": "scout"}})
    assert r.status_code == 200, r.text
    account = r.json()["account"]["id"]
    token = access_token(http, server, r.json()["identity"]["assertion"])
    assert http.post(f"{server.origin}{NOTES}", json={"text": "a"}, headers=bearer(token)).status_code == 201
    # A request not signed with the endpoint's secret changes nothing.
    forged = {"webhook-id": "evt_forged", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"}
    deletion = {"type": "account.expired", "data": {"account_id": account}}
    assert httpx.post(f"{product.url}/hooks", json=deletion, headers=forged).status_code == 400
    made = wait_until(lambda: product.workspace(account), 30, "the workspace made for the agent")
    assert made["state"] == "sandbox" and made["agent_name"] == "scout"
    # Unclaimed, the account expires: authmd deletes it, and so does the product.
    wait_until(lambda: product.workspace(account) is None, 30, "the workspace deleted with the account")
    assert http.get(f"{server.origin}{NOTES}", headers=bearer(token)).status_code == 401


@pytest.mark.anyio
async def test_a_claimed_account_is_provisioned_for_its_owner(
    start_server: StartServer, tmp_path: Path, product: Product, product_secret: str
) -> None:
    config = tmp_path / "authmd.toml"
    timing = "\n".join(f"{k} = {v}" for k, v in FAST.items())
    config.write_text(
        f'{timing}\n[[webhooks]]\nname = "product"\nurl = "{product.url}/hooks"\nsecret = "{product_secret}"\n'
    )
    server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
    account, _registration, _assertion = await claim_as(server, "ada@example.com")
    owned = wait_until(
        lambda: (w := product.workspace(account)) and w["state"] == "provisioned" and w, 30, "the provisioning"
    )
    assert owned["owner"].startswith("usr_")
