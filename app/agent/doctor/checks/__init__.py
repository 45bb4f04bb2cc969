"""The doctor's check groups, one module each: functions of the run's `Doctor`, writing to its report.

A group reads what earlier groups found (the documents on `Doctor`), never calls a later one."""
