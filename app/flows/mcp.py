"""The demo notes as MCP tools (the server behind ``/api/mcp``, app/routes/mcp.py).

A low-level ``mcp`` SDK server: three tools, each calling the notes flow the REST API calls, as the
principal of the request's access token. Which scopes a tool needs is said once here (``TOOLS``); the
endpoint checks them before the SDK sees the request, so that a call without them is an HTTP 403 an MCP
client steps up on, never a tool result. A refusal of the flow itself (a quota, an unknown note) is a
tool error the model reads (MCP tools: "errors that originate from the tool").
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from app import __version__
from app.context import Context
from app.errors import AuthError
from app.flows import notes
from app.flows.use import Principal, require_scopes

if TYPE_CHECKING:  # the SDK is imported when the first MCP request comes (app/routes/mcp.py): ~0.5 s
    from mcp.server import Server
    from mcp_types import CallToolResult

# What any request but a tool call needs a token for: reading the account's notes, the server's basic use
# (the MCP authorization spec's scope selection: the least a client should ask for first).
BASIC_SCOPES = ("notes:read",)


class _AddNote(msgspec.Struct, forbid_unknown_fields=True):
    text: str


class _DeleteNote(msgspec.Struct, forbid_unknown_fields=True):
    note_id: str


class _NoArguments(msgspec.Struct, forbid_unknown_fields=True):
    pass


Run = Callable[[Context, Principal, Any], Awaitable[Any]]


class ToolSpec(NamedTuple):
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    annotations: dict[str, bool]  # the SDK's ToolAnnotations, by field
    scopes: tuple[str, ...]
    arguments: type[msgspec.Struct]
    run: Run
    reads_notes: bool = False  # the token check reads the account's notes in the same round trip


async def _list(ctx: Context, principal: Principal, _: _NoArguments) -> Any:
    return await notes.list_all(ctx, principal)


async def _add(ctx: Context, principal: Principal, args: _AddNote) -> Any:
    return await notes.create(ctx, principal, args.text)


async def _delete(ctx: Context, principal: Principal, args: _DeleteNote) -> Any:
    await notes.delete(ctx, principal, args.note_id)
    return {"deleted": args.note_id}


def _schema(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "list_notes",
            "List notes",
            "List the notes of the account behind your access token (needs the scope notes:read).",
            _schema({}),
            {"read_only_hint": True},
            ("notes:read",),
            _NoArguments,
            _list,
            reads_notes=True,
        ),
        ToolSpec(
            "add_note",
            "Add a note",
            "Add a note to the account, within its quotas (needs the scope notes:write).",
            _schema({"text": {"type": "string", "description": "The note's text."}}),
            {"read_only_hint": False, "destructive_hint": False, "idempotent_hint": False},
            ("notes:write",),
            _AddNote,
            _add,
        ),
        ToolSpec(
            "delete_note",
            "Delete a note",
            (
                "Delete one note of the account by its id (needs the scope notes:delete, which only an "
                "account a human has claimed gets)."
            ),
            _schema({"note_id": {"type": "string", "description": "The note's id (note_…)."}}),
            {"read_only_hint": False, "destructive_hint": True, "idempotent_hint": True},
            ("notes:delete",),
            _DeleteNote,
            _delete,
        ),
    )
}


def tool_called(message: Any) -> ToolSpec | None:
    """The tool a decoded JSON-RPC message calls, if it is a ``tools/call`` of one of ours; anything else
    (another method, an unknown tool, a malformed message) is the SDK's to answer."""
    if not isinstance(message, dict) or message.get("method") != "tools/call":
        return None
    params = message.get("params")
    name = params.get("name") if isinstance(params, dict) else None
    return TOOLS.get(name) if isinstance(name, str) else None


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def server(ctx: Context, principal_of: Callable[[Any], Principal]) -> Server[Any]:
    """The MCP server; ``principal_of(request)`` is the principal the endpoint authenticated for the HTTP
    request a message came in (the SDK hands handlers that request)."""
    from mcp.server import Server, ServerRequestContext
    from mcp.shared.exceptions import MCPError
    from mcp_types import (
        INVALID_PARAMS,
        CallToolRequestParams,
        CallToolResult,
        ListToolsResult,
        PaginatedRequestParams,
        TextContent,
        Tool,
        ToolAnnotations,
    )

    tools = [
        Tool(
            name=spec.name,
            title=spec.title,
            description=spec.description,
            input_schema=spec.input_schema,
            annotations=ToolAnnotations.model_validate(spec.annotations),
        )
        for spec in TOOLS.values()
    ]

    def _failed(text: str) -> CallToolResult:
        return CallToolResult(content=[TextContent(text=text)], is_error=True)

    async def list_tools(_: ServerRequestContext[Any], __: PaginatedRequestParams | None) -> ListToolsResult:
        return ListToolsResult(tools=tools)

    async def call_tool(request: ServerRequestContext[Any], params: CallToolRequestParams) -> CallToolResult:
        spec = TOOLS.get(params.name)
        if spec is None:
            raise MCPError(INVALID_PARAMS, f"no tool named {params.name!r}; tools/list names the tools")
        try:
            arguments = msgspec.convert(params.arguments or {}, spec.arguments)
        except msgspec.ValidationError as exc:
            return _failed(f"invalid arguments for {spec.name}: {exc}")
        principal = principal_of(request.request)
        try:
            require_scopes(principal, spec.scopes)  # the endpoint answered 403 already; never trust one check
            value = await spec.run(ctx, principal, arguments)
        except AuthError as err:
            return _failed(f"{err.code}: {err.description}. {err.hint}")
        structured = msgspec.to_builtins(value)
        return CallToolResult(content=[TextContent(text=_text(structured))], structured_content=structured)

    return Server(
        ctx.settings.service_name,
        version=__version__,
        instructions=(
            "The notes of the account behind your access token. list_notes needs the scope notes:read, "
            "add_note notes:write, delete_note notes:delete (a claimed account's)."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
