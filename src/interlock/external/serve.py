"""`interlock serve`: any in-process plugin, served out of process over the protocol.

    server = PluginServer(NoRm())
    await server.handle({"jsonrpc": "2.0", "id": 1, "method": "invoke", "params": {...}})

The plugin runs in a `PluginManager` of its own, so it behaves exactly as in process:
conditions, chaining of its handlers, `ctx.state` per session, capability handles (their
use comes back to the host as requests, which the host grants or refuses). Timeouts,
`on_error` and the circuit breaker are the host's business: this side reports a failure
as a JSON-RPC error and lets the host decide.

`serve_stdio` speaks over a pipe to one host; `http_app` is an ASGI app any number of
hosts can share (`interlock serve module:Plugin --http HOST:PORT` runs it with uvicorn).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import sys
from collections import OrderedDict
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from .. import (
    Ask,
    Block,
    HookResult,
    HookSpec,
    InterlockError,
    Modify,
    PluginManager,
    ProtocolError,
    Respond,
    SessionScope,
    hooks,
)
from .protocol import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    decode,
    dump_action,
    encode,
    load_payload,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

logger = logging.getLogger("interlock.external")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
HANDLER_FAILED = -32000
"""The JSON-RPC error code of a plugin whose handler failed (the message says how)."""

_NEVER = 2**62  # failures in a row before the breaker opens: never, the host has its own


class RpcError(Exception):
    """A JSON-RPC error to answer with (private to the server's flow)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PluginServer:
    """One plugin behind the protocol, for any number of hosts and sessions.

    `config` is the plugin's `ctx.config`; `max_sessions` bounds the per-session state
    kept for sessions that have not ended (the oldest is dropped first).
    """

    def __init__(
        self,
        plugin: object,
        *,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        specs: tuple[HookSpec[Any], ...] = (),
        max_sessions: int = 1000,
    ) -> None:
        self.manager = PluginManager(
            specs=specs, default_timeout=math.inf, failure_threshold=_NEVER, cooldown=0
        )
        handle = self.manager.register(plugin, name=name, config=config)
        offered = sorted({c for r in handle.registrations for c in r.hook.capabilities})
        if offered:  # grant what its hooks offer; the host decides what reaches it
            self.manager.unregister(handle)
            handle = self.manager.register(plugin, name=name, config=config, capabilities=offered)
        self.registration = handle
        self.name = handle.name
        self.version = str(getattr(plugin, "version", "0"))
        self.capabilities = tuple(offered)
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, SessionScope] = OrderedDict()

    def hello(self) -> dict[str, Any]:
        """The `initialize` result: who the plugin is and what it handles."""
        first: dict[str, int] = {}
        for reg in self.registration.registrations:
            first[reg.hook.name] = min(first.get(reg.hook.name, reg.priority), reg.priority)
        return {
            "protocol": PROTOCOL_VERSION,
            "name": self.name,
            "version": self.version,
            "hooks": [{"name": n, "priority": p} for n, p in first.items()],
            "capabilities": list(self.capabilities),
        }

    async def handle(self, message: Any) -> dict[str, Any] | None:
        """Answer one JSON-RPC message (None for a notification, which has no id)."""
        if not isinstance(message, Mapping):
            return _error(None, INVALID_REQUEST, "a request must be a JSON object")
        id = message.get("id")
        if id is not None and (isinstance(id, bool) or not isinstance(id, int | str)):
            return _error(None, INVALID_REQUEST, "the id must be a number or a string")
        try:
            result = await self._dispatch(message)
        except RpcError as error:
            return _error(id, error.code, error.message)
        except Exception as error:  # a bug here must not end the server
            logger.exception("serving %r failed", self.name)
            return _error(id, -32603, f"internal error: {type(error).__name__}: {error}")
        if id is None:
            return None
        return {"jsonrpc": "2.0", "id": id, "result": result}

    async def handle_bytes(self, data: bytes, limit: int = MAX_MESSAGE_BYTES) -> bytes | None:
        """`handle` for one encoded message; the encoded answer, if any."""
        try:
            message = decode(data, limit)
        except ProtocolError as error:
            return encode(_error(None, PARSE_ERROR, str(error)))
        answer = await self.handle(message)
        return None if answer is None else encode(answer)

    async def aclose(self) -> None:
        """End every session's state and close the plugin (`Plugin.aclose`)."""
        for scope in self._sessions.values():
            scope.close()
        self._sessions.clear()
        await self.manager.aclose()

    async def _dispatch(self, message: Mapping[str, Any]) -> Any:
        if message.get("jsonrpc") != "2.0":
            raise RpcError(INVALID_REQUEST, 'a request must have "jsonrpc": "2.0"')
        method = message.get("method")
        params = message.get("params", {})
        if not isinstance(params, Mapping):
            raise RpcError(INVALID_PARAMS, "params must be an object")
        if method == "invoke":
            return await self._invoke(params)
        if method == "initialize":
            return self._initialize(params)
        if method == "shutdown":
            return None
        raise RpcError(METHOD_NOT_FOUND, f"no method {method!r}; methods: initialize, invoke, "
                                         "shutdown")  # fmt: skip

    def _initialize(self, params: Mapping[str, Any]) -> dict[str, Any]:
        version = params.get("protocol")
        if version != PROTOCOL_VERSION:
            raise RpcError(INVALID_PARAMS, f"this plugin speaks protocol {PROTOCOL_VERSION}, "
                                           f"the host sent {version!r}")  # fmt: skip
        return self.hello()

    async def _invoke(self, params: Mapping[str, Any]) -> dict[str, Any]:
        spec = self._spec(params.get("hook"))
        try:
            payload = load_payload(spec, params.get("payload"))
        except ProtocolError as error:
            raise RpcError(INVALID_PARAMS, str(error)) from None
        context = params.get("context") or {}
        if not isinstance(context, Mapping):
            raise RpcError(INVALID_PARAMS, "context must be an object")
        requests = _Requests()
        granted = context.get("capabilities") or ()
        handles = {c: requests for c in self.capabilities if c in granted}
        scope = self._scope(context.get("session"))
        turn = context.get("turn")
        if turn is not None and (isinstance(turn, bool) or not isinstance(turn, int)):
            raise RpcError(INVALID_PARAMS, "context.turn must be an integer or null")
        try:
            result = await self.manager.invoke(
                spec, payload, turn=turn, capabilities=handles, scope=scope
            )
        finally:
            if scope is not None and spec is hooks.SESSION_END:
                self._end(scope)
        if result.errors:
            failure = result.errors[0]
            raise RpcError(HANDLER_FAILED, failure.message)
        return {"action": dump_action(spec, _action(result)), "requests": requests.items}

    def _spec(self, name: Any) -> HookSpec[Any]:
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "params.hook must be a hook name")
        try:
            spec = self.manager.spec(name)
        except InterlockError as error:
            raise RpcError(INVALID_PARAMS, str(error)) from None
        if not any(r.hook is spec for r in self.registration.registrations):
            raise RpcError(INVALID_PARAMS, f"plugin {self.name!r} does not handle {name!r}")
        return spec

    def _scope(self, session: Any) -> SessionScope | None:
        if session is None:
            return None
        if not isinstance(session, Mapping) or not isinstance(session.get("id"), str):
            raise RpcError(INVALID_PARAMS, "context.session must be null or have a text id")
        scope = self._sessions.get(session["id"])
        if scope is not None:
            self._sessions.move_to_end(session["id"])
            return scope
        try:
            scope = self.manager.session(
                session["id"], tags=session.get("tags") or (), metadata=session.get("metadata")
            ).open()
        except (TypeError, ValueError) as error:
            raise RpcError(INVALID_PARAMS, f"context.session: {error}") from None
        self._sessions[session["id"]] = scope
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)[1].close()
        return scope

    def _end(self, scope: SessionScope) -> None:
        self._sessions.pop(scope.info.id, None)
        scope.close()


class _Requests:
    """The host writers a served plugin sees: each use becomes a request for the host."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def write_system_item(self, kind: str, text: str, *, plugin: str) -> None:
        self.items.append({"capability": "system_items", "kind": kind, "text": text})

    def write_notification(self, text: str, *, level: str, plugin: str) -> None:
        self.items.append({"capability": "notify", "text": text, "level": level})


def _action(result: HookResult[Any]) -> Any:
    """The one action that stands for what the plugin's handlers decided (when several
    of its handlers answer, the strongest: block, respond, ask, modify)."""
    if result.blocked:
        return Block(result.reason)
    if result.responded:
        return Respond(result.response)
    if result.asked:
        return Ask(result.question or "")
    if result.payload is not None:
        return Modify(result.payload)
    return None


def _error(id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}


# -- stdio ----------------------------------------------------------------------------------


async def serve_stdio(
    server: PluginServer,
    input: IO[bytes] | None = None,
    output: IO[bytes] | None = None,
    *,
    limit: int = MAX_MESSAGE_BYTES,
) -> None:
    """Serve one host over a pair of pipes (stdin/stdout by default) until it sends
    `shutdown` or closes its end. Requests are answered concurrently, as they finish."""
    loop = asyncio.get_running_loop()
    source = sys.stdin.buffer if input is None else input
    sink = sys.stdout.buffer if output is None else output
    reader = asyncio.StreamReader(limit=limit + 1)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), source
    )
    tasks: set[asyncio.Task[None]] = set()
    flushing = False

    def flush() -> None:
        nonlocal flushing
        flushing = False
        sink.flush()

    async def answer(line: bytes) -> None:
        nonlocal flushing
        reply = await server.handle_bytes(line, limit)
        if reply is None:
            return
        sink.write(reply)  # whole replies, from the loop's thread only: never interleaved
        if not flushing:  # the replies of one turn of the loop leave in one write
            flushing = True
            loop.call_soon(flush)

    try:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # longer than the limit; the reader dropped it
                problem = f"a message over the {limit}-byte limit"
                sink.write(encode(_error(None, INVALID_REQUEST, problem)))
                sink.flush()
                continue
            if not line:
                break
            if not line.strip():
                continue
            if _is_shutdown(line):
                await asyncio.gather(*tasks)
                await answer(line)
                break
            task = loop.create_task(answer(line))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    finally:
        transport.close()
        await server.aclose()


def _is_shutdown(line: bytes) -> bool:
    if b'"shutdown"' not in line:
        return False
    try:
        return bool(json.loads(line).get("method") == "shutdown")
    except (ValueError, AttributeError):
        return False


# -- HTTP -----------------------------------------------------------------------------------


def http_app(
    server: PluginServer, *, token: str | None = None, limit: int = MAX_MESSAGE_BYTES
) -> Starlette:
    """An ASGI app serving `server`: JSON-RPC on `POST /`, who it is on `GET /`.

    With `token`, every POST must carry `Authorization: Bearer <token>` (else HTTP 401).
    Needs `pip install 'interlock[http]'`.
    """
    try:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError(
            "serving over HTTP needs starlette: pip install 'interlock[http]'"
        ) from None
    expected = f"Bearer {token}".encode() if token else None

    async def rpc(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                error = _error(None, INVALID_REQUEST, "missing or wrong bearer token")
                return JSONResponse(error, status_code=401)
        body = await request.body()
        if len(body) > limit:
            error = _error(None, INVALID_REQUEST, f"a message over the {limit}-byte limit")
            return JSONResponse(error, status_code=413)
        reply = await server.handle_bytes(body, limit)
        if reply is None:
            return Response(status_code=204)
        return Response(reply, media_type="application/json")

    async def about(request: Request) -> Response:
        return JSONResponse(server.hello())

    return Starlette(routes=[Route("/", rpc, methods=["POST"]), Route("/", about, methods=["GET"])])
