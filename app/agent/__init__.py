"""The agent side: the client library (client/), the `authmd agent` verbs (verbs/) and `authmd doctor`
(doctor/). Invariant: nothing here imports the server; only app.protocol, which both sides share
(tests/unit/test_layout.py holds it)."""
