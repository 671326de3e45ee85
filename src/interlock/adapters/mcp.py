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

Over HTTP (`server.streamable_http_app()`) the lifespan, and so the upstream connection,
is the whole server's: there a session is keyed on the connection object the SDK's
transport allocated itself (one per MCP session the session manager issued and checks,
one per request in stateless mode and for the 2026-07-28 protocol, which has no
sessions), never on a header the client chose. Such sessions end with their connection
and are at most `max_sessions`: beyond it the least recently used idle one is evicted.

What the MCP client sees: a blocked call is an `isError` result carrying the reason; an
argument `Modify` is what the upstream tool runs with; an output `Modify` is what the client
receives, with `structuredContent` rebuilt from it when it still fits the tool's output
schema (otherwise the result is given as text only, marked `isError`, so nothing a plugin
removed survives in the structured copy).
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import Level, PluginManager, ToolCall, ToolResult, hooks
from ._bridge import Approver, Bridge, Session, missing_extra, plain, tool_call

if TYPE_CHECKING:
    import mcp_types
    from mcp import Client
    from mcp.server import Server
    from mcp.server.connection import Connection
    from mcp.server.context import ServerRequestContext

__all__ = ["gateway"]

logger = logging.getLogger(__name__)

_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
_STATE_KEY = "interlock.session"  # the session key, in the SDK connection's own state


def gateway(
    manager: PluginManager,
    upstream: Any,
    *,
    name: str = "interlock-mcp-gateway",
    tags: tuple[str, ...] = ("mcp",),
    idle_ttl: float | None = 3600.0,
    max_sessions: int = 10_000,
    approver: Approver | None = None,
    notify: Callable[[str, str, Level, str], None] | None = None,
) -> Server[Any]:
    """An MCP server proxying `upstream`'s tools through `manager`'s tool hooks.

    Sync and cheap: nothing connects until a client does; the server can then serve
    several connections (each with its own upstream connection and interlock session).
    `approver` decides an `Ask` (without one an `Ask` is refused, as a block); `notify`
    receives the plugins' notifications (session key, text, level, plugin), otherwise
    they are logged. `max_sessions` bounds the sessions open at once over HTTP (the
    least recently used idle one is ended, `session_end` reason `"evicted"`, and counted).

        server = gateway(manager, upstream=["python", "server.py"])
        async with mcp.Client(server) as client:         # or server.run(...) on stdio
            await client.call_tool("shell", {"command": "ls"})
    """
    try:
        from mcp import Client
        from mcp.server import Server
    except ImportError as error:
        raise missing_extra("the MCP gateway", "the mcp SDK", "mcp") from error
    if max_sessions < 1:
        raise ValueError(f"gateway(max_sessions={max_sessions!r}): give a positive number")
    target = _target(upstream)
    bridge = Bridge(
        manager, host="mcp", tags=tags, idle_ttl=idle_ttl, approver=approver, notify=notify
    )
    shared = _Sessions(bridge, max_sessions)

    @contextlib.asynccontextmanager
    async def lifespan(_server: Server[_Link]) -> AsyncIterator[_Link]:
        # Entered once per client connection (stdio, in-memory): the upstream connection
        # and the interlock session live exactly as long as the client's. Over HTTP it
        # is entered once for the whole server; sessions then come from `shared`.
        async with Client(target) as client:
            link = _Link(bridge, client, shared)
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
    """One lifespan: its upstream client, and the interlock session of the client
    connection it serves (stdio, in-memory); over HTTP, sessions come from `shared`."""

    def __init__(self, bridge: Bridge, client: Client, shared: _Sessions) -> None:
        self.bridge = bridge
        self.client = client
        self.shared = shared
        self.key = bridge.key(None)  # fresh: a connection has no id of its own on stdio

    async def close(self) -> None:
        session = self.bridge.find(self.key)
        if session is not None:
            await self.bridge.end(session, "closed")

    async def call(
        self, ctx: ServerRequestContext[_Link], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        """Gate, run and judge one tool call; never raises into the client's connection.

        What plugins appended with `ctx.system_items` meanwhile rides on this result, as
        text blocks after the tool's own (the only way an MCP server reaches the model).
        """
        if ctx.request is None:  # no HTTP: this lifespan is the one client's connection
            return await self._in(ctx, params, await self.bridge.session(self.key))
        key = self.shared.key(ctx)
        session = await self.shared.acquire(key)
        if session is None:
            return _error(self.shared.refusal(params.name))
        try:
            return await self._in(ctx, params, session)
        finally:
            self.shared.release(key)

    async def _in(
        self,
        ctx: ServerRequestContext[_Link],
        params: mcp_types.CallToolRequestParams,
        session: Session,
    ) -> mcp_types.CallToolResult:
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


class _Sessions:
    """The gateway's sessions over HTTP, keyed on the SDK's own connection objects.

    The key is interlock's, kept in the connection's `state`: a client cannot choose or
    forge it (the `mcp-session-id` header only reaches a connection after the SDK's
    session manager found and checked it). A session ends with its connection (the
    connection's `exit_stack`), when idle (`idle_ttl`), or when evicted: at most
    `max_sessions` are open, the least recently used one without a call in flight
    making room for a new one (`evictions` counts them).
    """

    def __init__(self, bridge: Bridge, max_sessions: int) -> None:
        self.bridge = bridge
        self.max_sessions = max_sessions
        self.evictions = 0
        self._open: OrderedDict[str, int] = OrderedDict()  # key -> calls in flight, LRU first
        self._unkeyed_warned = False

    def key(self, ctx: ServerRequestContext[_Link]) -> str:
        """The session key of the connection serving `ctx`, given to it on first use."""
        connection = _connection(ctx)
        if connection is None:  # an SDK without the connection object: no sharing at all
            if not self._unkeyed_warned:
                self._unkeyed_warned = True
                logger.warning(
                    "the installed mcp SDK does not expose the connection a request came "
                    "on: each HTTP tool call through the gateway is an interlock session "
                    "of its own (per-session plugin state does not carry over); install "
                    "the mcp version interlock[mcp] names"
                )
            return self.bridge.key(None)
        key = connection.state.get(_STATE_KEY)
        if isinstance(key, str):
            return key
        sid = connection.session_id  # issued by the SDK's session manager, not the client
        key = self.bridge.key(None) if sid is None else f"{self.bridge.key(None)}/{sid}"
        connection.state[_STATE_KEY] = key
        connection.exit_stack.push_async_callback(self.end, key, "closed")
        return key

    async def acquire(self, key: str) -> Session | None:
        """The open session for `key` with one more call in flight; None when all
        `max_sessions` sessions have calls in flight (nothing can be evicted)."""
        evicted: str | None = None
        if key in self._open:
            self._open.move_to_end(key)
        else:
            if len(self._open) >= self.max_sessions:
                evicted = next((k for k, busy in self._open.items() if not busy), None)
                if evicted is None:
                    return None
                del self._open[evicted]
                self.evictions += 1
            self._open[key] = 0
        self._open[key] += 1
        if evicted is not None:
            logger.warning(
                "MCP gateway: %d interlock sessions open (max_sessions); the least recently "
                "used one, %r, was ended to make room (%d evicted so far); raise "
                "gateway(max_sessions=...) if clients lose their session state",
                self.max_sessions,
                evicted,
                self.evictions,
            )
            await self._end_open(evicted, "evicted")
        try:
            return await self.bridge.session(key)
        except BaseException:
            self.release(key)
            raise

    def release(self, key: str) -> None:
        """One call on `key`'s session is over."""
        if self._open.get(key):
            self._open[key] -= 1

    async def end(self, key: str, reason: str) -> None:
        """End `key`'s session (its connection closed)."""
        self._open.pop(key, None)
        await self._end_open(key, reason)

    def refusal(self, tool: str) -> str:
        return (
            f"tool {tool!r} was not called: the MCP gateway has {self.max_sessions} "
            "interlock sessions with calls in flight (max_sessions); retry later, or raise "
            "gateway(max_sessions=...)"
        )

    async def _end_open(self, key: str, reason: str) -> None:
        session = self.bridge.find(key)
        if session is not None:
            await self.bridge.end(session, reason)


def _connection(ctx: ServerRequestContext[_Link]) -> Connection | None:
    """The SDK's per-connection object behind `ctx` (one per MCP session, or per request
    where the protocol has none); the SDK hands it to handlers only through the session."""
    from mcp.server.connection import Connection

    connection = getattr(ctx.session, "_connection", None)
    return connection if isinstance(connection, Connection) else None


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
