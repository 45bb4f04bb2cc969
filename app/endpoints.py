"""Every URL the service publishes, derived from the issuer and the resource (one exact issuer string)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

# The two metadata paths and origin() are the agent side's too: app.protocol holds them, re-exported
# here because routes read them as ep.*.
from app.protocol import AS_METADATA as AS_METADATA
from app.protocol import PROTECTED_RESOURCE as PROTECTED_RESOURCE
from app.protocol import origin as origin

# Paths relative to the issuer (the app is mounted under the issuer's path, if it has one).
JWKS = "/.well-known/jwks.json"
AUTH_MD = "/auth.md"
IDENTITY = "/agent/identity"
CHALLENGE = "/agent/identity/challenge"
CLAIM = "/agent/identity/claim"
CLAIM_COMPLETE = "/agent/identity/claim/complete"
CLAIM_STATUS = "/agent/identity/claim/status"
# The human pages
LOGIN = "/login"
DEV_LOGIN = "/login/dev"
OIDC_CALLBACK = "/oidc/callback"
LOGOUT = "/logout"
CLAIM_PAGE = "/claim"
CLAIM_CONFIRM = "/claim/confirm"
CLAIM_DENY = "/claim/deny"
ACCOUNT = "/account"
ACCOUNT_REVOKE = "/account/revoke"  # asks to confirm; revokes nothing
ACCOUNT_REVOKE_CONFIRM = "/account/revoke/confirm"
# The operator console
CONSOLE = "/console"
CONSOLE_SEARCH = "/console/search"
CONSOLE_ACCOUNT = "/console/account"
CONSOLE_REVOKE = "/console/revoke"  # asks to confirm; revokes nothing
CONSOLE_REVOKE_CONFIRM = "/console/revoke/confirm"
CONSOLE_PROVIDERS = "/console/providers"
TOKEN = "/oauth2/token"
AUTHORIZE = "/oauth2/authorize"  # an OAuth client's human (app/routes/authorize.py)
CONSENT = "/oauth2/consent"  # the consent page of a checked authorization request
REGISTER = "/oauth2/register"  # RFC 7591 dynamic client registration (dcr_enabled)
REVOKE = "/oauth2/revoke"
INTROSPECT = "/oauth2/introspect"
NOTES = "/api/notes"
MCP = "/api/mcp"  # the MCP server (app/routes/mcp.py)
EVENTS = "/agent/events"


def well_known(url: str, suffix: str) -> str:
    """RFC 8414 §3.1 / RFC 9728 §3.1: insert the well-known segment between host and path."""
    return origin(url) + suffix + urlsplit(url).path


@dataclass(frozen=True, slots=True)
class Endpoints:
    issuer: str
    resource: str

    @property
    def base_path(self) -> str:
        return urlsplit(self.issuer).path

    def url(self, path: str) -> str:
        return self.issuer + path

    @property
    def resource_metadata(self) -> str:
        """Where the protected resource's RFC 9728 metadata lives (path-inserted)."""
        return well_known(self.resource, PROTECTED_RESOURCE)

    @property
    def resource_metadata_path(self) -> str:
        return urlsplit(self.resource_metadata).path

    @property
    def mcp_resource_metadata(self) -> str:
        """The MCP server's RFC 9728 metadata, path-inserted from its URL (§3.1)."""
        return well_known(self.url(MCP), PROTECTED_RESOURCE)

    @property
    def mcp_resource_metadata_path(self) -> str:
        return urlsplit(self.mcp_resource_metadata).path

    @property
    def resource_is_local(self) -> bool:
        return origin(self.resource) == origin(self.issuer)

    @property
    def issuer_resource_metadata_path(self) -> str:
        """RFC 9728 metadata describing the issuer itself as a resource (the root document)."""
        return urlsplit(well_known(self.issuer, PROTECTED_RESOURCE)).path

    @property
    def as_metadata_inserted_path(self) -> str:
        """RFC 8414 §3.1 path-inserted form; equals the appended form when the issuer has no path."""
        return urlsplit(well_known(self.issuer, AS_METADATA)).path
