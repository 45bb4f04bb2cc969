"""The MCP server at /api/mcp against the real server (`authmd serve` as a subprocess), driven by the
official Python `mcp` client. Fixtures: ``start_server`` and ``http`` from the e2e harness."""

from __future__ import annotations

from tests.e2e.conftest import http, pytest_runtest_makereport, start_server  # noqa: F401 (fixtures, hook)
