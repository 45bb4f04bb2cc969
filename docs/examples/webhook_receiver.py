"""An example webhook receiver for authmd: what an operator's product does with the events.

It keeps one "workspace" per agent account (the resources the product gave the agent), in SQLite:
- ``agent_registration.created``: a workspace for the new account (a sandbox, until a human claims it);
- ``agent_registration.claim.completed``: the workspace is provisioned for good, owned by the user;
- ``agent_registration.deleted`` and ``account.expired``: the workspace and everything in it are deleted.

Every request is verified with the Standard Webhooks package before anything else (a bad signature gets
400 and changes nothing), and de-duplicated on ``webhook-id``: authmd delivers at least once, so the same
event may come twice. Answer 2xx only once the event is handled; anything else makes authmd retry.

    pip install standardwebhooks
    python docs/examples/webhook_receiver.py --port 9000 --secret whsec_... --db receiver.sqlite3

``GET /workspaces/<account id>`` shows what the product holds for an account (404 when nothing).
Standard library only, besides ``standardwebhooks``; one request at a time (SQLite, one connection).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (webhook_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS workspaces (
    account_id TEXT PRIMARY KEY, state TEXT NOT NULL, owner TEXT, agent_name TEXT, events INTEGER NOT NULL
);
"""


def handle(db: sqlite3.Connection, event: dict[str, Any]) -> None:
    """Apply one event to the product's data (called once per webhook-id, inside its transaction)."""
    data, kind = event["data"], event["type"]
    account = data["account_id"]
    if kind == "agent_registration.created":
        db.execute(
            "INSERT OR IGNORE INTO workspaces (account_id, state, agent_name, events) VALUES (?, 'sandbox', ?, 0)",
            (account, data.get("agent_name")),
        )
    elif kind == "agent_registration.claim.completed":
        db.execute(
            "INSERT INTO workspaces (account_id, state, owner, events) VALUES (?, 'provisioned', ?, 0) "
            "ON CONFLICT (account_id) DO UPDATE SET state = 'provisioned', owner = excluded.owner",
            (account, data["user_id"]),
        )
    elif kind in ("agent_registration.deleted", "account.expired"):
        db.execute("DELETE FROM workspaces WHERE account_id = ?", (account,))
        return
    db.execute("UPDATE workspaces SET events = events + 1 WHERE account_id = ?", (account,))


def serve(port: int, secret: str, path: str) -> None:
    verifier = Webhook(secret)
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SCHEMA)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: Any = None) -> None:
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            try:
                event = verifier.verify(body, dict(self.headers.items()))
            except WebhookVerificationError:
                return self._answer(400, {"error": "bad signature"})
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (self.headers["webhook-id"],)).rowcount:
                    handle(db, event)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._answer(204)

        def do_GET(self) -> None:
            account = self.path.removeprefix("/workspaces/")
            row = db.execute(
                "SELECT state, owner, agent_name, events FROM workspaces WHERE account_id = ?", (account,)
            ).fetchone()
            if row is None:
                return self._answer(404, {"error": "no workspace"})
            self._answer(200, dict(zip(("state", "owner", "agent_name", "events"), row, strict=True)))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    HTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", required=True, help="the endpoint's whsec_ secret")
    parser.add_argument("--db", default="receiver.sqlite3")
    args = parser.parse_args()
    serve(args.port, args.secret, args.db)
