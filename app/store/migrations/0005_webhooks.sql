-- authmd SQLite schema, version 5: webhook deliveries and endpoint states (spec/webhooks.md).
-- A delivery is one event for one endpoint; ``data`` is the whole record (app/store/port.py Delivery),
-- the other columns are what the queries select on. The deliveries of one account to one endpoint are a
-- queue in ``ord`` order (``seq`` unless a manual retry put one first); only its oldest pending one is sent.
CREATE TABLE deliveries (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    endpoint     TEXT NOT NULL,
    account_id   TEXT NOT NULL,
    ord          INTEGER NOT NULL,
    status       TEXT NOT NULL,
    next_at      REAL NOT NULL,
    leased_until REAL,
    created_at   REAL NOT NULL,
    data         BLOB NOT NULL
);
CREATE INDEX deliveries_queue ON deliveries (endpoint, account_id, ord) WHERE status = 'pending';
CREATE INDEX deliveries_log ON deliveries (endpoint, status, seq);
CREATE TABLE webhook_endpoints (
    name TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
