"""A small client for any auth.md service, usable from an agent's own code (`authmd agent` wraps it).

    from app.client import Client, CredentialStore
    client = Client()
    service = client.discover("https://api.example.com/v1/things")   # an API URL or an issuer
    reg = client.register(service)                                    # anonymous (solves proof of work)
    token = client.exchange(service, reg["identity"]["assertion"])

Only the wire protocol of PROTOCOL.md is assumed; authmd's extensions (proof of work, claim status)
are used when the service advertises them.
"""

from app.client.core import (
    Client,
    ClientError,
    Service,
    ServiceError,
    solve_proof_of_work,
)
from app.client.state import Credentials, CredentialStore

__all__ = [
    "Client",
    "ClientError",
    "CredentialStore",
    "Credentials",
    "Service",
    "ServiceError",
    "solve_proof_of_work",
]
