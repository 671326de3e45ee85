"""An MCP gateway: any MCP server's tools, governed by interlock plugins.

`gateway(manager, upstream=...)` returns an MCP server (the official `mcp` SDK's
`mcp.server.Server`) that offers the upstream server's tools and calls them on its behalf,
firing `pre_tool_call` before each call and `post_tool_call` after it:

    from interlock import load_config
    from interlock.adapters.mcp import gateway

    server = gateway(load_config("interlock.yaml"), upstream=["python", "my_server.py"])

`upstream` is anything `mcp.Client` connects to (an in-process `Server` or `MCPServer`, a
`StdioServerParameters`, a streamable-HTTP URL, a `Transport`) or a command as a list of
strings, started over stdio. The upstream is opened when a client connects (in the
server's lifespan), one upstream connection per client connection, and each client
connection is one interlock session. From a shell: `interlock mcp-gateway --config
interlock.yaml -- python my_server.py`.

What the MCP client sees: a blocked call is an `isError` result carrying the reason; an
argument `Modify` is what the upstream tool runs with; an output `Modify` is what the client
receives, with `structuredContent` rebuilt from it when it still fits the tool's output
schema (otherwise the result is given as text only, marked `isError`, so nothing a plugin
removed survives in the structured copy).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import Level, PluginManager, ToolCall, ToolResult, hooks
from ._bridge import Approver, Bridge, Session, missing_extra, plain, tool_call

if TYPE_CHECKING:
    import mcp_types
    from mcp import Client
    from mcp.server import Server
    from mcp.server.context import ServerRequestContext

__all__ = ["gateway"]

_SERVER_INFO = "io.modelcontextprotocol/serverInfo"


def gateway(
    manager: PluginManager,
    upstream: Any,
    *,
    name: str = "interlock-mcp-gateway",
    tags: tuple[str, ...] = ("mcp",),
    idle_ttl: float | None = 3600.0,
    approver: Approver | None = None,
    notify: Callable[[str, str, Level, str], None] | None = None,
) -> Server[Any]:
    """An MCP server proxying `upstream`'s tools through `manager`'s tool hooks.

    Sync and cheap: nothing connects until a client does; the server can then serve
    several connections (each with its own upstream connection and interlock session).
    `approver` decides an `Ask` (without one an `Ask` is refused, as a block); `notify`
    receives the plugins' notifications (session key, text, level, plugin), otherwise
    they are logged.

        server = gateway(manager, upstream=["python", "server.py"])
        async with mcp.Client(server) as client:         # or server.run(...) on stdio
            await client.call_tool("shell", {"command": "ls"})
    """
    try:
        from mcp import Client
        from mcp.server import Server
    except ImportError as error:
        raise missing_extra("the MCP gateway", "the mcp SDK", "mcp") from error
    target = _target(upstream)
    bridge = Bridge(
        manager, host="mcp", tags=tags, idle_ttl=idle_ttl, approver=approver, notify=notify
    )

    @contextlib.asynccontextmanager
    async def lifespan(_server: Server[_Link]) -> AsyncIterator[_Link]:
        # Entered once per client connection (stdio, in-memory): the upstream connection
        # and the interlock session live exactly as long as the client's.
        async with Client(target) as client:
            link = _Link(bridge, client)
            try:
                yield link
            finally:
                await link.close()

    async def list_tools(
        ctx: ServerRequestContext[_Link], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        cursor = None if params is None else params.cursor
        return await ctx.lifespan_context.client.list_tools(cursor=cursor)

    async def call_tool(
        ctx: ServerRequestContext[_Link], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        return await ctx.lifespan_context.call(ctx, params)

    import interlock

    return Server(
        name,
        version=interlock.__version__,
        lifespan=lifespan,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


class _Link:
    """One client connection: its upstream client and its interlock session(s)."""

    def __init__(self, bridge: Bridge, client: Client) -> None:
        self.bridge = bridge
        self.client = client
        self.key = bridge.key(None)  # fresh: a connection has no id of its own on stdio
        self.sessions: dict[str, Session] = {}

    async def session(self, ctx: ServerRequestContext[_Link]) -> Session:
        """This connection's session; over streamable HTTP (one lifespan for the whole
        server) each MCP session id is a session of its own."""
        sub = _transport_session_id(ctx)
        key = self.key if sub is None else f"{self.key}/{sub}"
        session = self.sessions[key] = await self.bridge.session(key)
        return session

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            await self.bridge.end(session, "closed")  # a no-op for one already ended
        self.sessions.clear()

    async def call(
        self, ctx: ServerRequestContext[_Link], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        """Gate, run and judge one tool call; never raises into the client's connection.

        What plugins appended with `ctx.system_items` meanwhile rides on this result, as
        text blocks after the tool's own (the only way an MCP server reaches the model).
        """
        session = await self.session(ctx)
        result = await self._judged_call(ctx, params, session)
        items = session.take_system_items()
        if not items:
            return result
        import mcp_types

        notes = [mcp_types.TextContent(text=f"[{kind}] {text}") for kind, text, _ in items]
        return result.model_copy(update={"content": [*result.content, *notes]})

    async def _judged_call(
        self,
        ctx: ServerRequestContext[_Link],
        params: mcp_types.CallToolRequestParams,
        session: Session,
    ) -> mcp_types.CallToolResult:
        bridge = self.bridge
        call_id = str(ctx.request_id) if ctx.request_id is not None else uuid.uuid4().hex
        pre = await bridge.fire(
            hooks.PRE_TOOL_CALL, tool_call(params.name, params.arguments, call_id), session
        )
        call = pre.payload
        if pre.blocked:
            return _error(pre.reason or _default_reason(call, pre.blocked_by))
        if pre.question is not None and not bridge.approve(call, pre.question):
            return _error(f"not approved: {pre.question}")
        try:
            result = await self.client.call_tool(params.name, plain(call.arguments))
        except Exception as error:  # the upstream failed: the client is told, as a result
            failed = f"the upstream MCP server failed on {call.tool_name!r}: {error}"
            outcome = ToolResult(call.tool_name, call.arguments, call.call_id, failed, True)
            post = await bridge.fire(hooks.POST_TOOL_CALL, outcome, session)
            return _error(post.reason if post.blocked and post.reason else post.payload.output)
        output, appended = _output(result)
        outcome = ToolResult(
            call.tool_name, call.arguments, call.call_id, output, bool(result.is_error)
        )
        post = await bridge.fire(hooks.POST_TOOL_CALL, outcome, session)
        if post.blocked:
            return _error(post.reason or _default_reason(call, post.blocked_by))
        if post.payload == outcome:
            return _restamped(result)
        return await self._rebuilt(call.tool_name, result, post.payload, appended)

    async def _rebuilt(
        self, name: str, original: mcp_types.CallToolResult, changed: ToolResult, appended: bool
    ) -> mcp_types.CallToolResult:
        """`original` carrying the plugins' output, its structured copy made from it."""
        import mcp_types

        if original.structured_content is None:
            text, structured = changed.output, None
        else:
            text, structured = _split(changed.output, appended)
        content = _with_text(original.content, text)
        if changed.is_error:  # an error result carries no structured content to check
            return mcp_types.CallToolResult(content=content, is_error=True)
        result = mcp_types.CallToolResult(
            content=content, structured_content=structured, is_error=False
        )
        try:  # the client checks it against the tool's output schema: so do we, first
            await self.client.session.validate_tool_result(name, result)
        except Exception:
            note = (
                f"(interlock: a plugin changed the output of tool {name!r} so that it no "
                "longer fits the tool's output schema; it is given as text only)"
            )
            return mcp_types.CallToolResult(
                content=[*content, mcp_types.TextContent(text=note)], is_error=True
            )
        return result


def _target(upstream: Any) -> Any:
    """What `mcp.Client` connects to; a command (list of strings) runs over stdio."""
    if isinstance(upstream, Sequence) and not isinstance(upstream, str):
        command = [str(part) for part in upstream]
        if not command:
            raise ValueError("gateway(upstream=[]): give the upstream server's command")
        import os

        from mcp import StdioServerParameters

        # The gateway stands in for the server: the upstream gets the environment the
        # MCP client gave the gateway (its API keys and the like), not the SDK's subset.
        return StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    return upstream


def _transport_session_id(ctx: ServerRequestContext[_Link]) -> str | None:
    request = ctx.request
    headers = getattr(request, "headers", None)
    if headers is None:
        return None
    value = headers.get("mcp-session-id")
    return str(value) if value else None


def _output(result: mcp_types.CallToolResult) -> tuple[str, bool]:
    """What plugins judge, and whether the structured content was appended to it.

    The text blocks, joined; the structured content's JSON when there is no text, or on
    a last line of its own when the text is not already its serialization (a tool
    returning a plain value has text "4" and structured `{"result": 4}`), so nothing the
    client receives goes unjudged.
    """
    texts = [block.text for block in result.content if block.type == "text"]
    joined = "\n".join(texts)
    structured = result.structured_content
    if structured is None:
        return joined, False
    serialized = json.dumps(structured, ensure_ascii=False)  # one line: newlines escaped
    if not texts:
        return serialized, False
    try:
        if json.loads(joined) == structured:
            return joined, False
    except ValueError:
        pass
    return f"{joined}\n{serialized}", True


def _split(output: str, appended: bool) -> tuple[str, dict[str, Any] | None]:
    """A changed output back into the text the client sees and its structured copy."""
    if appended:
        text, _, last = output.rpartition("\n")
        structured = _json_object(last)
        if structured is not None:
            return text, structured
        return output, None
    return output, _json_object(output)


def _with_text(content: Sequence[Any], output: str) -> list[Any]:
    """`content` with its text blocks replaced by one block holding `output` (where the
    first was); images, audio and resources are kept."""
    import mcp_types

    block = mcp_types.TextContent(text=output)
    kept: list[Any] = []
    placed = False
    for item in content:
        if item.type != "text":
            kept.append(item)
        elif not placed:
            kept.append(block)
            placed = True
    return kept if placed else [block, *kept]


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _restamped(result: mcp_types.CallToolResult) -> mcp_types.CallToolResult:
    """`result` without the upstream's server stamp, so the gateway's own is given."""
    meta = result.meta
    if not meta or _SERVER_INFO not in meta:
        return result
    rest = {key: value for key, value in meta.items() if key != _SERVER_INFO}
    return result.model_copy(update={"meta": rest or None})


def _error(reason: str) -> mcp_types.CallToolResult:
    import mcp_types

    return mcp_types.CallToolResult(content=[mcp_types.TextContent(text=reason)], is_error=True)


def _default_reason(call: ToolCall, plugin: str | None) -> str:
    return f"tool {call.tool_name!r} was blocked by plugin {plugin or 'unknown'!r}"
