-- authmd SQLite schema, version 6: the per-minute and per-hour totals the operator console charts
-- (app/observe.py names the series). A flush adds to both tables; the sweeper trims each by its age.
CREATE TABLE count_minutes (
    name   TEXT NOT NULL,
    minute INTEGER NOT NULL,  -- minutes since the epoch
    n      INTEGER NOT NULL,
    PRIMARY KEY (name, minute)
) WITHOUT ROWID;
-- Trimming walks these: its cost is the rows it drops, not the table.
CREATE INDEX count_minutes_by_age ON count_minutes (minute);
CREATE TABLE count_hours (
    name TEXT NOT NULL,
    hour INTEGER NOT NULL,  -- hours since the epoch (minute // 60)
    n    INTEGER NOT NULL,
    PRIMARY KEY (name, hour)
) WITHOUT ROWID;
CREATE INDEX count_hours_by_age ON count_hours (hour);
