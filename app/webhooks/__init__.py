"""Webhooks: every domain event, signed by the Standard Webhooks scheme, delivered at least once to each
configured endpoint that wants it, in order per account (spec/webhooks.md).

The path of an event: the account's outbox (written with the change) → ``worker.fan_out`` turns it into
one delivery per matching endpoint and marks the outbox delivered (idempotent: a delivery's id is made
from the endpoint and the event) → ``worker.send_due`` leases the due head of each (endpoint, account)
queue, posts it (``message``), and records the outcome: delivered, due again later (``schedule``), or
failed, which disables the endpoint. ``verbs`` are the operator's changes (enable, retry).
"""
