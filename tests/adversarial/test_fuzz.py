"""Schemathesis against the real server (issue 10): every operation of the published OpenAPI document
is fuzzed (the coverage phase's boundary cases, then generated cases, then stateful sequences along the
document's links) on SQLite and on Redis. Every answer must be no server error and must conform to the
document: status code, content type, headers, body schema.

The run is the `schemathesis` command itself, configured by a file written here: deterministic
generation, a fixed seed, no example database, one worker, bounded examples. Limits are raised so no
answer depends on the order of the cases. The server runs in dev mode with proof of work off, a
trusted ID-JAG provider, an introspection client and an admin key; the notes operations get a real
access token, introspection real client credentials and the admin API a real admin key with both
scopes (through the document's security schemes), so the fuzzer gets past authentication.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.keys import hash_secret
from app.tokens import admin_key_hash, new_admin_key
from tests.adversarial.test_malformed_input import access_token, no_unhandled_errors
from tests.e2e.conftest import ROOT, StartServer, free_port
from tests.provider import TestProvider

pytestmark = pytest.mark.e2e

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
SEED = 20261204
MAX_EXAMPLES = 40  # generated cases per operation; the coverage phase adds its boundary cases
RUN_TIMEOUT = 300.0  # a watchdog only: the run takes seconds
INTROSPECTION_CLIENT = ("fuzzer", "introspection-secret")
HIGH = "1000000"


def test_every_operation_conforms_to_the_document(
    start_server: StartServer, store_env: dict[str, str], provider: TestProvider, tmp_path: Path
) -> None:
    admin_key = new_admin_key()
    config = tmp_path / "authmd.toml"
    config.write_text(
        "[[providers]]\n"
        f'issuer = "{provider.issuer}"\n'
        'client_ids = ["agent-cli"]\n'
        'scopes = ["notes:read", "notes:write"]\n'
        "[[introspection_clients]]\n"
        f'client_id = "{INTROSPECTION_CLIENT[0]}"\n'
        f'client_secret = "{hash_secret(INTROSPECTION_CLIENT[1])}"\n'
        "[[admin_keys]]\n"
        f'name = "fuzzer"\nkey_hash = "{admin_key_hash(admin_key)}"\nscopes = ["admin:read", "admin:write"]\n'
        # An endpoint that refuses connections: the delivery log fills with failing deliveries to read.
        f'[[webhooks]]\nname = "down"\nurl = "http://127.0.0.1:{free_port()}/hooks"\n'
        f'secret = "whsec_{base64.b64encode(bytes(32)).decode()}"\n'
    )
    env = {
        "AUTHMD_CONFIG": str(config),
        "AUTHMD_POW_MODE": "off",
        "AUTHMD_REGISTER_LIMIT_PER_SOURCE": HIGH,
        "AUTHMD_CHALLENGE_LIMIT_PER_SOURCE": HIGH,
        **store_env,
    }
    server = start_server(env)
    with httpx.Client(timeout=10.0) as http:
        bearer = access_token(http, server)
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(
        'hooks = "tests.adversarial.fuzz_hooks"\n'
        f"seed = {SEED}\n"
        "workers = 1\n"
        # Nothing may depend on the machine's speed (CI shares two cores): no timing health check, and a
        # request timeout that is a watchdog only.
        'suppress-health-check = ["too_slow"]\n'
        "request-timeout = 60\n"
        "[cache]\n"
        "enabled = false\n"  # no crash replays from earlier runs: each run stands alone
        "[generation]\n"
        f'deterministic = true\nmax-examples = {MAX_EXAMPLES}\ndatabase = "none"\n'
        "[checks]\n"
        "enabled = false\n" + "".join(f"{name}.enabled = true\n" for name in CHECKS) + "[auth.openapi]\n"
        f'bearer = {{ bearer = "{bearer}" }}\n'
        f'admin = {{ bearer = "{admin_key}" }}\n'
        f'basic = {{ username = "{INTROSPECTION_CLIENT[0]}", password = "{INTROSPECTION_CLIENT[1]}" }}\n'
    )
    # Two runs: the admin API's revocations would kill the access token the notes operations use, so
    # the agents' API is fuzzed first, apart, and then the admin API on the same server.
    for selection in (["--exclude-path-regex", "^/admin/"], ["--include-path-regex", "^/admin/"]):
        run = subprocess.run(
            [
                str(SCHEMATHESIS),
                "--config-file",
                str(config_file),
                "--no-color",
                "run",
                *selection,
                f"{server.issuer}/schema/openapi.json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        report = run.stdout + run.stderr
        print(report)  # the run's summary: operations, phases, cases
        assert run.returncode == 0, report
        assert "Authentication failed" not in report, report
        assert re.search(r"Operations:\s+(\d+) selected", report), report
    assert "14 selected" in report, report  # the admin API's fourteen operations were the second run
    no_unhandled_errors(server)
