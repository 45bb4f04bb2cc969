-- authmd SQLite schema, version 7: an account's events, newest first, without walking the others'
-- (the console's timeline; app/store/port.py Events.account_events); and the temporary accounts' expiry
-- index covers `kind`, so counting the live ones (Counters.count_temporary) reads the index alone
-- (measured with 2,800 live among 500,000: 7 ms with a row read per entry, 0.1 ms covered).
CREATE INDEX events_by_account ON events (account_id, seq);
DROP INDEX accounts_by_expiry;
CREATE INDEX accounts_by_expiry ON accounts (expires_at, kind) WHERE kind = 'temporary';
