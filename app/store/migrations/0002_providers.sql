-- authmd SQLite schema, version 2: provider-attested registration (ID-JAG), users, security events.

-- Tokens issued at or before a registration's not_before are dead (RFC 8417 SET revocation).
ALTER TABLE registrations ADD COLUMN not_before INTEGER;
-- A pending registration waits for a human to confirm (account-linking gate): it issues nothing.
ALTER TABLE registrations ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE registrations ADD COLUMN claim_attempt_hash TEXT;
ALTER TABLE registrations ADD COLUMN claim_attempt_expires_at INTEGER;
CREATE UNIQUE INDEX registrations_by_attempt ON registrations (claim_attempt_hash);

-- People. The operator's OpenID Connect provider is authoritative for them; an ID-JAG with a verified
-- email creates one just in time. Emails are stored lower-cased.
CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    email      TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- A provider subject (iss, sub) delegated to a user's account through one registration.
CREATE TABLE delegations (
    issuer          TEXT NOT NULL,
    subject         TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    registration_id TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'pending')),
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
) WITHOUT ROWID;
