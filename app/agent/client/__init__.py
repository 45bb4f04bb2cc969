"""A small client for any auth.md service, usable from an agent's own code (`authmd agent` wraps it).

    from app.agent.client import Client, CredentialStore
    client = Client()
    service = client.discover("https://api.example.com/v1/things")   # an API URL or an issuer
    reg = client.register(service)                                    # anonymous (solves proof of work)
    token = client.exchange(service, reg["identity"]["assertion"])

Only the wire protocol of spec/protocol.md is assumed (revision 2, and revision 1's error names); authmd's
extensions (proof of work, claim status) are used when the service advertises them. A short rate limit
(``retry_after`` of at most 10 s) is waited out once; ``ServiceError.retry_after`` says a longer one.
"""

from app.agent.client.core import (
    MAX_RETRY_WAIT,
    Client,
    ClientError,
    Service,
    ServiceError,
    rate_limited,
    retry_after,
    solve_proof_of_work,
    transport_reason,
)
from app.agent.client.state import Credentials, CredentialStore

__all__ = [
    "MAX_RETRY_WAIT",
    "Client",
    "ClientError",
    "CredentialStore",
    "Credentials",
    "Service",
    "ServiceError",
    "rate_limited",
    "retry_after",
    "solve_proof_of_work",
    "transport_reason",
]
