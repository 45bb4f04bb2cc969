"""The doctor's check groups, one module each: functions of the run's `Doctor`, writing to its report.

Groups share state only through the `Doctor` (the documents earlier groups found); a few small readers
serve two groups (auth_md_url, PRIVATE_MEMBERS, REVISION_1_CODES) and are imported from their owner."""
