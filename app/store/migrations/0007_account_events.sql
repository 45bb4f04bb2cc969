-- authmd SQLite schema, version 7: an account's events, newest first, without walking the others'
-- (the console's timeline; app/store/port.py Events.account_events).
CREATE INDEX events_by_account ON events (account_id, seq);
