-- authmd SQLite schema, version 9: OAuth clients that registered themselves (RFC 7591), each gone once
-- its expiry passes without use (app/store/port.py Clients).
CREATE TABLE clients (
    id         TEXT PRIMARY KEY,
    body       TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX clients_by_expiry ON clients (expires_at);
