"""`log_format = "json"`: a real `authmd serve` writes one JSON object per line, and every line written
while a request is handled carries the request id its response sends back in `X-Request-Id`."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.e2e.common import IDENTITY
from tests.e2e.conftest import StartServer, wait_until

pytestmark = pytest.mark.e2e


def test_json_lines_carry_the_request_id(start_server: StartServer, http: httpx.Client) -> None:
    server = start_server({"AUTHMD_LOG_FORMAT": "json", "AUTHMD_POW_MODE": "off", "AUTHMD_ACCESS_LOG": "true"})
    ours = http.post(f"{server.origin}{IDENTITY}", json={"type": "anonymous"})
    given = http.get(f"{server.origin}/api/notes", headers={"X-Request-Id": "edge-7f3a9c21"})
    bad = http.get(f"{server.origin}/nowhere", headers={"X-Request-Id": "no spaces allowed\tplease"})
    assert (ours.status_code, given.status_code, bad.status_code) == (200, 401, 404)
    assert given.headers["x-request-id"] == "edge-7f3a9c21"  # a proxy's own id goes through
    # Documents sent from one prepared start message: one id each, never the ids of the requests before.
    for path in ("/.well-known/oauth-authorization-server",) * 3 + ("/.well-known/jwks.json",) * 2:
        r = http.get(f"{server.origin}{path}")
        assert len(r.headers.get_list("x-request-id")) == 1, r.headers
    long = http.get(f"{server.origin}/healthz", headers={"X-Request-Id": "a" * 65})  # one over the bound
    short = http.get(f"{server.origin}/healthz", headers={"X-Request-Id": "a" * 7})  # one under it
    for replaced in (long, short):
        assert re.fullmatch(r"[0-9a-f]{16}", replaced.headers["x-request-id"]), replaced.headers
    assert http.get(f"{server.origin}/healthz", headers={"X-Request-Id": "a" * 64}).headers["x-request-id"] == "a" * 64
    assert len(ours.headers["x-request-id"]) == 16 and len(bad.headers["x-request-id"]) == 16
    assert ours.headers["x-request-id"] != bad.headers["x-request-id"]

    def access_lines() -> list[dict[str, object]] | None:
        lines = [
            json.loads(line)
            for line in server.read_log().splitlines()
            if not line.startswith("----- start")  # the test harness's own marker
        ]
        access = [line for line in lines if line["logger"] == "authmd.access"]
        return lines if len(access) >= 4 else None  # /healthz (start-up) and the three above

    lines = wait_until(access_lines, 10, "the access lines")  # every line parsed as JSON on the way
    assert all({"time", "level", "logger", "process", "request_id", "message"} <= set(line) for line in lines)
    by_id = {line["request_id"]: line["message"] for line in lines if line["logger"] == "authmd.access"}
    assert "POST /agent/identity 200" in str(by_id[ours.headers["x-request-id"]])
    assert "GET /api/notes 401" in str(by_id["edge-7f3a9c21"])
    assert "GET /nowhere 404" in str(by_id[bad.headers["x-request-id"]])
    assert any(line["request_id"] == "-" for line in lines)  # start-up lines belong to no request
