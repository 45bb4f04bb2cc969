-- authmd SQLite schema, version 3: the human claim ceremony, sign-in, sessions and refresh tokens.
-- The claim_* and claim_attempt_* columns of registrations (versions 1 and 2) are no longer written:
-- a claim has its own row below.

ALTER TABLE registrations ADD COLUMN refresh_family TEXT;
ALTER TABLE registrations ADD COLUMN refresh_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE registrations ADD COLUMN refresh_rotated_at INTEGER;
ALTER TABLE registrations ADD COLUMN refresh_expires_at INTEGER;
ALTER TABLE registrations ADD COLUMN source TEXT;

-- One claim ceremony per registration, written by compare-and-set on version; dies with its account.
CREATE TABLE claims (
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    registration_id TEXT NOT NULL,
    version         INTEGER NOT NULL,
    expires_at      INTEGER,
    data            TEXT NOT NULL,
    PRIMARY KEY (account_id, registration_id)
) WITHOUT ROWID;

-- OpenID Connect subjects signed in as a user: (provider issuer, sub) -> user.
CREATE TABLE logins (
    issuer  TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
) WITHOUT ROWID;

-- Browser sessions, keyed by the SHA-256 of the cookie value.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    data       BLOB NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE INDEX accounts_by_owner ON accounts (owner) WHERE owner IS NOT NULL;
