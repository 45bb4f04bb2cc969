-- authmd SQLite schema, version 1. Forward-only: later versions add files 0002_*.sql, never edit this.
-- Every row carries an absolute expiry (NULL = never); reads compare it with the caller's clock.

CREATE TABLE accounts (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('temporary', 'persistent')),
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER,
    quota_notes      INTEGER NOT NULL,
    quota_note_bytes INTEGER NOT NULL,
    note_count       INTEGER NOT NULL DEFAULT 0,
    owner            TEXT
) WITHOUT ROWID;
-- The sweeper walks this index: cost proportional to what expired, not to all accounts.
CREATE INDEX accounts_by_expiry ON accounts (expires_at) WHERE kind = 'temporary';

CREATE TABLE registrations (
    id               TEXT PRIMARY KEY,
    type             TEXT NOT NULL,
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    scopes           TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER,
    generation       INTEGER NOT NULL DEFAULT 0,
    revoked_at       INTEGER,
    claim_token_hash TEXT UNIQUE,
    claim_expires_at INTEGER,
    agent_name       TEXT,
    agent_platform   TEXT
) WITHOUT ROWID;
CREATE INDEX registrations_by_account ON registrations (account_id);

CREATE TABLE notes (
    seq        INTEGER PRIMARY KEY,  -- creation order, for listing
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (account_id, id)
);

-- One-time marks: redeemed challenges, replay caches, revoked token ids.
CREATE TABLE marks (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE INDEX marks_by_expiry ON marks (expires_at);

-- Sliding-window counters (two fixed buckets).
CREATE TABLE windows (
    key        TEXT PRIMARY KEY,
    bucket     INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    prev       INTEGER NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX windows_by_expiry ON windows (expires_at);

-- Append-only audit trail (rows are never deleted, so rowids never repeat without AUTOINCREMENT).
CREATE TABLE audit_events (
    id              INTEGER PRIMARY KEY,
    at              REAL NOT NULL,
    type            TEXT NOT NULL,
    account_id      TEXT,
    registration_id TEXT,
    data            TEXT NOT NULL
);
