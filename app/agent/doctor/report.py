"""The doctor's findings: one Check per line (PASS, WARN or FAIL with its reason and reference), grouped
in a fixed order, and the two ways they are printed (a table, or one JSON object)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "warn", "fail"]

GROUPS = ("transport", "resource", "mcp", "prm", "as", "agent_auth", "jwks", "auth_md", "cache", "probe", "errors")


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    status: Status
    message: str
    reference: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "status": self.status, "message": self.message, "reference": self.reference}


@dataclass(slots=True)
class Report:
    url: str
    mode: str = "issuer"
    issuer: str | None = None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, id: str, status: Status, message: str, reference: str) -> None:
        self.checks.append(Check(id, status, message, reference))

    def ordered(self) -> list[Check]:
        def group(c: Check) -> int:
            head = c.id.split(".", 1)[0]
            return GROUPS.index(head) if head in GROUPS else len(GROUPS)

        return sorted(self.checks, key=group)  # stable: each group keeps its own order

    def summary(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in ("pass", "warn", "fail")}

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "mode": self.mode,
            "issuer": self.issuer,
            "checks": [c.as_dict() for c in self.ordered()],
            "summary": self.summary(),
            "notes": self.notes,
        }


def worst(statuses: Iterable[Status]) -> Status:
    found = set(statuses)
    return "fail" if "fail" in found else "warn" if "warn" in found else "pass"


LABEL: dict[Status, str] = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}
MODES = {
    "api": "an API URL (followed its 401 to the resource metadata, then to the issuer)",
    "mcp": "an MCP server URL (followed its 401 as an MCP client does: resource metadata, then the issuer)",
    "issuer": "the issuer",
    "resource-metadata": "a protected-resource metadata URL",
}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def ascii_safe(text: str) -> str:
    """No control characters (a hostile server's values reach the terminal) and ASCII only."""
    return _UNSAFE.sub("?", text).encode("ascii", "backslashreplace").decode("ascii")


def render_table(report: Report) -> str:
    header = ["STATUS", "CHECK", "REFERENCE", "RESULT"]
    rows = [header] + [[LABEL[c.status], c.id, c.reference or "-", c.message] for c in report.ordered()]
    rows = [[ascii_safe(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"authmd doctor {ascii_safe(report.url)}",
        f"started from: {MODES.get(report.mode, report.mode)}",
        f"issuer: {ascii_safe(report.issuer or '(not found)')}",
        "",
    ]
    lines += ["  ".join([*(row[i].ljust(widths[i]) for i in range(3)), row[3]]).rstrip() for row in rows]
    if report.notes:
        lines.append("")
        lines += [f"note: {ascii_safe(n)}" for n in report.notes]
    s = report.summary()
    verdict = "FAILED" if s["fail"] else "OK"
    lines += ["", f"summary: {s['pass']} pass, {s['warn']} warn, {s['fail']} fail -> {verdict}"]
    return "\n".join(lines)
