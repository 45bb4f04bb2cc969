-- authmd SQLite schema, version 4: domain events (app/events.py), written in the transaction of the change.
-- seq is the commit order (AUTOINCREMENT: never reused, even after rows go); an account's outbox is its
-- rows in seq order, delivered ones marked. No foreign key: events outlive their account.
-- (audit_events, the free-form trail of earlier versions, is kept as it was and no longer written.)
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    body       BLOB NOT NULL,
    delivered  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_pending ON events (account_id, seq) WHERE delivered = 0;
