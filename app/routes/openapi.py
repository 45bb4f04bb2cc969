"""The public API as an OpenAPI 3.1 document: ``GET {issuer}/schema/openapi.json`` (JSON only; no
documentation pages, which would load scripts from CDNs).

Litestar generates the skeleton from the routes: paths, methods, operation ids, path parameters; the
human pages stay out of it. The handlers decode their own bodies (their error texts are part of the
product), so Litestar sees neither what they read nor what they return: ``OPERATIONS`` says it, once,
with the same msgspec structs the handlers use, and ``build`` completes Litestar's document with it
when the document is first asked for. Schemas come from msgspec's generator, which keeps the tagged
registration union and exact integer types. Request schemas allow unknown fields (spec/protocol.md: request
bodies ignore them). Each error status gets one schema whose ``error`` lists exactly the codes that
``errors.STATUS`` maps to it. The discovery documents are ASGI routes, which Litestar does not
describe, so they are added here by hand.
"""

from __future__ import annotations

import copy
import types
import typing
from typing import Any, NamedTuple

import msgspec
from litestar import Request
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Server

from app import __version__, wire
from app import endpoints as ep
from app.context import Context
from app.errors import STATUS
from app.flows.admin import views as admin
from app.flows.admin import webhooks as hooks
from app.flows.admin.credentials import CredentialCheck, ValidateRequest
from app.flows.claim import external
from app.routes.http import FORM, JSON, Answer, asgi_answers
from app.routes.identity import RFC8935_CODES, SECEVENT_JWT

DOCUMENT_PATH = "/schema"  # + "/openapi.json"; under the issuer's path
REF = "#/components/schemas/{name}"

BODY = (400, 413, 415, 500, 503)  # any operation that reads a body; 503: the store did not answer
STORE = (500, 503)
ADMIN = "/admin/v1"
ADMIN_READ = (400, 401, 403, 429, *STORE)  # 400: a query parameter out of its range
CLAIM_ADMIN = (401, 403, 409, 410, 429)  # 409/410: the claim is done, expired or revoked


class Op(NamedTuple):
    ok: dict[int, Any]  # success status -> msgspec type, or None for no content
    errors: tuple[int, ...]
    body: tuple[str, Any] | None = None  # (media type, msgspec type)
    security: str | None = None
    rfc8935: bool = False  # 400 is RFC 8935 §2.3's {"err","description"}


OPERATIONS: dict[tuple[str, str], Op] = {
    ("POST", ep.CHALLENGE): Op({200: wire.Challenge}, (429, *STORE)),
    ("POST", ep.IDENTITY): Op({200: wire.Registered}, (*BODY, 401, 429), (JSON, wire.Registration)),
    ("POST", ep.CLAIM): Op(
        {200: wire.ClaimAttemptStarted | wire.ClaimCompleted}, (*BODY, 401, 403, 409, 410, 429), (JSON, wire.ClaimStart)
    ),
    ("POST", ep.CLAIM_COMPLETE): Op(
        {200: wire.ClaimCompleted}, (*BODY, 401, 403, 409, 410, 429), (JSON, wire.ClaimComplete)
    ),
    ("POST", ep.CLAIM_STATUS): Op({200: wire.ClaimStatus}, (*BODY, 401, 429), (JSON, wire.ClaimStatusRequest)),
    ("POST", ep.EVENTS): Op({202: None}, (400, 413, *STORE), (SECEVENT_JWT, str), rfc8935=True),
    ("POST", ep.TOKEN): Op({200: wire.TokenIssued}, (*BODY, 401, 429), (FORM, wire.TokenRequest)),
    ("POST", ep.REGISTER): Op({201: wire.ClientRegistered}, (*BODY, 404, 429), (JSON, wire.ClientMetadata)),
    ("POST", ep.REVOKE): Op({200: None}, BODY, (FORM, wire.TokenHint)),
    ("POST", ep.INTROSPECT): Op({200: wire.Introspection}, (*BODY, 401, 429), (FORM, wire.TokenHint), "basic"),
    ("GET", ep.NOTES): Op({200: wire.NoteList}, (401, 403, *STORE), security="bearer"),
    ("POST", ep.NOTES): Op({201: wire.NoteView}, (*BODY, 401, 403), (JSON, wire.NoteCreate), "bearer"),
    ("GET", ep.NOTES + "/{note_id}"): Op({200: wire.NoteView}, (401, 403, 404, *STORE), security="bearer"),
    ("DELETE", ep.NOTES + "/{note_id}"): Op({204: None}, (401, 403, 404, *STORE), security="bearer"),
    # The admin API (app/routes/admin.py): an admin key, never an agent's token.
    ("GET", ADMIN + "/registrations"): Op({200: admin.RegistrationList}, ADMIN_READ, security="admin"),
    ("GET", ADMIN + "/registrations/{registration_id}"): Op(
        {200: admin.RegistrationView}, (*ADMIN_READ, 404), security="admin"
    ),
    ("POST", ADMIN + "/registrations/{registration_id}/revoke"): Op(
        {200: admin.Revocation}, (*ADMIN_READ, 404, 409), security="admin"
    ),
    ("GET", ADMIN + "/accounts/{account_id}"): Op({200: admin.AccountDetail}, (*ADMIN_READ, 404), security="admin"),
    ("POST", ADMIN + "/accounts/{account_id}/revoke"): Op(
        {200: admin.Revocation}, (*ADMIN_READ, 404, 409), security="admin"
    ),
    ("POST", ADMIN + "/credentials/validate"): Op(
        {200: CredentialCheck}, (*BODY, *ADMIN_READ), (JSON, ValidateRequest), "admin"
    ),
    ("GET", ADMIN + "/events"): Op({200: admin.EventList}, ADMIN_READ, security="admin"),
    ("POST", ADMIN + "/claim-attempts/lookup"): Op(
        {200: external.ClaimAttemptFacts}, (*BODY, *CLAIM_ADMIN), (JSON, external.AttemptToken), "admin"
    ),
    ("POST", ADMIN + "/claim-attempts/confirm"): Op(
        {200: external.ClaimDecision}, (*BODY, *CLAIM_ADMIN), (JSON, external.ConfirmRequest), "admin"
    ),
    ("POST", ADMIN + "/claim-attempts/deny"): Op(
        {200: external.ClaimDecision}, (*BODY, *CLAIM_ADMIN), (JSON, external.AttemptToken), "admin"
    ),
    ("GET", ADMIN + "/webhooks"): Op({200: hooks.EndpointList}, ADMIN_READ, security="admin"),
    ("POST", ADMIN + "/webhooks/{name}/enable"): Op({200: hooks.EndpointView}, (*ADMIN_READ, 404), security="admin"),
    ("GET", ADMIN + "/webhooks/deliveries"): Op({200: hooks.DeliveryList}, ADMIN_READ, security="admin"),
    ("POST", ADMIN + "/webhooks/deliveries/{delivery_id}/retry"): Op(
        {200: hooks.DeliveryView}, (*ADMIN_READ, 404), security="admin"
    ),
    ("GET", "/healthz"): Op({200: wire.Health}, (500,)),
    ("GET", "/readyz"): Op({200: wire.Health}, STORE),
}

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (RFC 9068 access token)"},
    "basic": {"type": "http", "scheme": "basic", "description": "an introspection client (RFC 7662 §2.1)"},
    "admin": {"type": "http", "scheme": "bearer", "description": "an admin key (amk_…, `authmd keys admin-key`)"},
}
_OPTIONAL_HEADERS = {
    401: {"WWW-Authenticate": "the challenge: Bearer (RFC 6750 §3, RFC 9728 §5.1), AgentAuth or Basic"},
    403: {"WWW-Authenticate": "Bearer with error=insufficient_scope and the scope (RFC 6750 §3.1)"},
    429: {"Retry-After": "seconds to wait (RFC 9110 §10.2.3)"},
    503: {"Retry-After": "seconds to wait (RFC 9110 §10.2.3)"},
}


def _error_schema(status: int) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "error": {"enum": sorted(code for code, s in STATUS.items() if s == status)},
        "error_description": {"type": "string"},
        "message": {"type": "string", "description": "the same text as error_description (revision 2)"},
        "hint": {"type": "string", "description": "the next step, in one sentence"},
    }
    if status == 400:  # proof_of_work_required and invalid_proof_of_work carry a fresh one (challenge.py)
        properties["challenge"] = {"$ref": REF.format(name=wire.Challenge.__name__)}
    if status == 429:
        properties["retry_after"] = {"type": "integer", "minimum": 1, "description": "seconds, as Retry-After"}
    return {"type": "object", "required": ["error", "error_description", "message", "hint"], "properties": properties}


_SET_ERROR = {
    "type": "object",
    "required": ["err", "description"],
    "properties": {"err": {"enum": sorted(RFC8935_CODES)}, "description": {"type": "string"}},
}


def _headers(status: int) -> dict[str, Any]:
    pattern = {"type": "string", "pattern": "^[0-9]+$"}
    return {
        name: {
            "description": text,
            "required": False,
            "schema": pattern if name == "Retry-After" else {"type": "string"},
        }
        for name, text in _OPTIONAL_HEADERS.get(status, {}).items()
    }


def _members(type_: Any) -> tuple[Any, ...]:
    return typing.get_args(type_) if isinstance(type_, types.UnionType) else (type_,)


def _content(media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {media_type: {"schema": schema}}


def _discovery(ctx: Context) -> dict[str, dict[str, Any]]:
    """The documents discovery serves as pre-encoded bytes (app/routes/discovery.py)."""
    e, base = ctx.endpoints, ctx.endpoints.base_path
    meta = {"type": "object", "required": ["issuer", "token_endpoint", "agent_auth"]}
    prm = {"type": "object", "required": ["resource", "authorization_servers"]}
    jwks = {"type": "object", "required": ["keys"], "properties": {"keys": {"type": "array"}}}
    text = {"type": "string"}

    def get(summary: str, content: dict[str, Any]) -> dict[str, Any]:
        ok = {"description": "the document (ETag, Cache-Control)", "content": content}
        return {"get": {"summary": summary, "responses": {"200": ok, "304": {"description": "If-None-Match matched"}}}}

    paths = {
        base + ep.AS_METADATA: get("RFC 8414 authorization-server metadata", _content(JSON, meta)),
        base + ep.JWKS: get("the signing keys (RFC 7517)", _content("application/jwk-set+json", jwks)),
        base + ep.AUTH_MD: get(
            "the contract for agents", {**_content("text/markdown", text), **_content("text/html", text)}
        ),
        e.issuer_resource_metadata_path: get("RFC 9728 metadata of the issuer", _content(JSON, prm)),
    }
    if e.resource_is_local:
        paths[e.resource_metadata_path] = get("RFC 9728 metadata of the protected resource", _content(JSON, prm))
    if base:
        paths[e.as_metadata_inserted_path] = get("RFC 8414 §3.1 metadata, path-inserted", _content(JSON, meta))
    return paths


def build(ctx: Context, generated: dict[str, Any], answers: dict[tuple[str, str], Answer]) -> dict[str, Any]:
    """Litestar's document, completed from ``OPERATIONS``, each of which must be a route. ``answers``:
    the operations of the app's bare ASGI routes (app/routes/http.py asgi_route) by (method, path),
    which Litestar does not describe: their skeleton is written here as Litestar writes a handler's."""
    doc = copy.deepcopy(generated)
    base = ctx.endpoints.base_path
    # A response union is untagged (msgspec decodes none of them): each member gets its schema, then anyOf.
    shapes = [t for op in OPERATIONS.values() for ok in op.ok.values() if ok is not None for t in _members(ok)]
    shapes += [op.body[1] for op in OPERATIONS.values() if op.body is not None]
    schemas, components = msgspec.json.schema_components(shapes, ref_template=REF)
    schema_of = dict(zip(shapes, schemas, strict=True))
    for status in sorted({s for op in OPERATIONS.values() for s in op.errors}):
        components[f"Error{status}"] = _error_schema(status)
    components["SetError"] = _SET_ERROR

    for (method, path), answer in answers.items():
        name = answer.__name__
        skeleton: dict[str, Any] = {"summary": "".join(w.capitalize() for w in name.split("_")), "operationId": name}
        if answer.__doc__:
            skeleton["description"] = answer.__doc__.strip()
        doc["paths"].setdefault(path, {})[method.lower()] = {**skeleton, "deprecated": False}
    seen = set()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            key = (method.upper(), path.removeprefix(base) if base else path)
            if key not in OPERATIONS:
                continue  # an operator's own route (create_app's route_handlers): as Litestar describes it
            seen.add(key)
            op = OPERATIONS[key]
            responses: dict[str, Any] = {}
            for status, type_ in op.ok.items():
                ok: dict[str, Any] = {"description": "success"}
                if type_ is not None:
                    members = [schema_of[t] for t in _members(type_)]
                    ok["content"] = _content(JSON, members[0] if len(members) == 1 else {"anyOf": members})
                responses[str(status)] = ok
            for status in op.errors:
                name = "SetError" if op.rfc8935 and status == 400 else f"Error{status}"
                responses[str(status)] = {
                    "description": ", ".join(_error_schema(status)["properties"]["error"]["enum"]),
                    "headers": _headers(status),
                    "content": _content(JSON, {"$ref": REF.format(name=name)}),
                }
            operation["responses"] = responses
            if op.body is not None:
                media_type, type_ = op.body
                operation["requestBody"] = {"required": True, "content": _content(media_type, schema_of[type_])}
            if op.security is not None:
                operation["security"] = [{op.security: []}]
    if missing := set(OPERATIONS) - seen:
        raise LookupError(f"OPERATIONS names {sorted(missing)}, which no route serves")
    doc["paths"].update(_discovery(ctx))
    generated_components = doc.setdefault("components", {})  # an operator's routes may have some
    generated_components["schemas"] = {**generated_components.get("schemas", {}), **components}
    generated_components["securitySchemes"] = {**generated_components.get("securitySchemes", {}), **SECURITY_SCHEMES}
    return doc


class Document(JsonRenderPlugin):
    """Serves ``build``'s document, encoded once."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(path="/openapi.json")
        self.ctx = ctx
        self.encoded: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self.encoded is None:
            self.encoded = msgspec.json.encode(build(self.ctx, openapi_schema, asgi_answers(request.app)))
        return self.encoded


def openapi_config(ctx: Context) -> OpenAPIConfig:
    return OpenAPIConfig(
        title=ctx.settings.service_name,
        version=__version__,
        description=f"An auth.md agent-registration service. The contract for agents: {ctx.endpoints.url(ep.AUTH_MD)}",
        servers=[Server(url=ep.origin(ctx.settings.issuer_str))],
        path=ctx.endpoints.base_path + DOCUMENT_PATH,
        render_plugins=[Document(ctx)],
        use_handler_docstrings=True,
        operation_id_creator=lambda handler, _method, _path: handler.handler_name,
    )
