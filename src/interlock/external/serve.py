"""`interlock serve`: any in-process plugin, served out of process over the protocol.

    server = PluginServer(NoRm())
    await server.handle({"jsonrpc": "2.0", "id": 1, "method": "invoke", "params": {...}})

The plugin runs in a `PluginManager` of its own, so it behaves exactly as in process:
conditions, chaining of its handlers, `ctx.state` per session of each caller, capability
handles (their use comes back to the host as requests, which the host grants or refuses).
With a state store (`PluginServer(..., state=store)`, `--state redis://...`), sessions'
`ctx.state` lives in the store, so replicas behind a load balancer serve any call of any
session (see `_served_state`).
Timeouts, `on_error` and the circuit breaker are the host's business: this side reports a
failure as a JSON-RPC error and lets the host decide.

`serve_stdio` speaks over a pipe to one host; `http_app` is an ASGI app any number of
hosts can share, each with a token of its own (`interlock serve module:Plugin --http
HOST:PORT` runs it with uvicorn, closed by default: see docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import stat
import sys
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, cast

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
    SessionInfo,
    SessionScope,
    hooks,
)
from ..store import StateStore, StoreError
from ._served_state import MAX_STATE_BYTES, SharedSession
from .protocol import (
    MAX_BATCH,
    MAX_MESSAGE_BYTES,
    NDJSON,
    PROTOCOL_VERSION,
    decode,
    dump_action,
    encode,
    load_payload,
    parse,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

logger = logging.getLogger("interlock.external")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
HANDLER_FAILED = -32000
"""The JSON-RPC error code of a plugin whose handler failed (the message says how)."""

MAX_CALLS = 256
"""Calls one server runs at once, by default (`PluginServer(max_calls=...)`); more wait
for a turn. As many as a host puts in one batch (`MAX_BATCH`), and with a state store
each call holds one of the store's pooled connections (64 per replica) only for each
round trip, so they share them without waiting long."""

MAX_SESSION_ID = 256
"""Characters a session id may have: each names keys in the state store."""

_NEVER = 2**62  # failures in a row before the breaker opens: never, the host has its own


class RpcError(Exception):
    """A JSON-RPC error to answer with (private to the server's flow)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PluginServer:
    """One plugin behind the protocol, for any number of hosts and sessions.

    `config` is what the plugin runs with (its `ctx.config`); a host that sends another
    one (its entry's `config:`) is refused rather than silently served with this one.
    `max_sessions` bounds the per-session state kept for sessions that have not ended
    (the least recently used idle one is dropped first). See `PluginServer.later` for a
    plugin built from the config the host sends.

    Per-session state belongs to a caller: `handle(message, caller=...)` keeps the
    sessions of each caller apart, so a caller naming another's session id gets a session
    of its own, never the other's state (`http_app` passes the token a request presented,
    or the peer's address when the server has no token).

    `state`: a store to keep sessions' `ctx.state` in, as JSON, opened in the plugin's
    namespace (`open_store(url, deployment=..., plugin=NAME)`): servers sharing it (replicas)
    then serve any call of any session, one call of a session at a time. Calls without a
    session keep their state in each server.

    At most `max_calls` calls run at once (the others wait for a turn), whoever sends
    them and however they are batched. With `state`, a session's state is at most
    `max_state_bytes` as JSON: a call that makes it larger fails and its change is not
    saved.
    """

    def __init__(
        self,
        plugin: object,
        *,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        specs: tuple[HookSpec[Any], ...] = (),
        max_sessions: int = 1000,
        state: StateStore | None = None,
        max_calls: int = MAX_CALLS,
        max_state_bytes: int = MAX_STATE_BYTES,
    ) -> None:
        if max_calls < 1:
            raise ValueError(f"PluginServer: max_calls must be 1 or more, not {max_calls!r}")
        self.max_sessions = max_sessions
        self.state = state
        self.max_state_bytes = max_state_bytes
        self._calls = asyncio.Semaphore(max_calls)
        self._running: set[asyncio.Task[bytes | None]] = set()  # calls of streamed batches
        self._owner = uuid.uuid4().hex  # names this server's leases in the store
        self._name = name
        self._specs = specs
        self._build: Callable[[Mapping[str, Any]], object] | None = None
        self._served: _Served | None = None
        self._sessions: OrderedDict[tuple[str | None, str], _Session] = OrderedDict()
        if plugin is not None:
            self._served = _Served(plugin, name, dict(config or {}), specs)

    @classmethod
    def later(
        cls,
        build: Callable[[Mapping[str, Any]], object],
        *,
        name: str | None = None,
        specs: tuple[HookSpec[Any], ...] = (),
        max_sessions: int = 1000,
    ) -> PluginServer:
        """A server whose plugin is `build(config)`, with the config the host sends first
        (in `initialize`, or with its first call): what `interlock serve --stdio` runs
        when not given `--plugin-config`, so a config entry's `config:` reaches it."""
        server = cls(None, name=name, specs=specs, max_sessions=max_sessions)
        server._build = build
        return server

    @property
    def served(self) -> _Served:
        """The plugin as registered here (built on first use by `later` servers)."""
        if self._served is None:
            raise RpcError(INVALID_REQUEST, "the plugin is not started yet: send initialize")
        return self._served

    def hello(self) -> dict[str, Any]:
        """The `initialize` result: who the plugin is and what it handles."""
        served = self.served
        first: dict[str, int] = {}
        for reg in served.registration.registrations:
            first[reg.hook.name] = min(first.get(reg.hook.name, reg.priority), reg.priority)
        return {
            "protocol": PROTOCOL_VERSION,
            "name": served.name,
            "version": served.version,
            "hooks": [{"name": n, "priority": p} for n, p in first.items()],
            "capabilities": list(served.capabilities),
            "batch": True,  # it answers JSON-RPC batches (`handle_bytes`)
        }

    async def handle(self, message: Any, *, caller: str | None = None) -> dict[str, Any] | None:
        """Answer one JSON-RPC message; None for a notification (a request without an
        id), which gets no answer even when it fails. `caller` names who sent it: the
        sessions it names are its own (None: the one host of a stdio server)."""
        if not isinstance(message, Mapping):
            return _error(None, INVALID_REQUEST, "a request must be a JSON object")
        id = message.get("id")
        if id is not None and (isinstance(id, bool) or not isinstance(id, int | float | str)):
            return _error(None, INVALID_REQUEST, "the id must be a number or a string")
        if message.get("jsonrpc") != "2.0" or not isinstance(message.get("method"), str):
            # Not a request, so not a notification either: answered, id or not.
            return _error(id, INVALID_REQUEST, 'a request must have "jsonrpc": "2.0" and a '
                                               '"method"')  # fmt: skip
        try:
            result = await self._dispatch(message, caller)
        except RpcError as error:
            return None if _notification(message) else _error(id, error.code, error.message)
        except Exception as error:  # a bug here must not end the server
            logger.exception("serving the plugin failed")
            problem = f"internal error: {type(error).__name__}: {error}"
            return None if _notification(message) else _error(id, INTERNAL_ERROR, problem)
        if _notification(message):
            return None
        return {"jsonrpc": "2.0", "id": id, "result": result}

    async def handle_bytes(
        self, data: bytes, limit: int = MAX_MESSAGE_BYTES, *, caller: str | None = None
    ) -> bytes | None:
        """`handle` for one encoded message, or a JSON-RPC batch (an array of at most
        `MAX_BATCH` of them, within `limit` as a whole, run concurrently and answered
        together); the encoded answer, if any."""
        if data.lstrip()[:1] == b"[":
            messages = self.batch(data, limit)
            if isinstance(messages, bytes):
                return messages
            answers = await asyncio.gather(*(self._answer(m, caller) for m in messages))
            sent = [answer[:-1] for answer in answers if answer is not None]
            return b"[" + b",".join(sent) + b"]\n" if sent else None
        try:
            message = decode(data, limit)
        except ProtocolError as error:
            return encode(_error(None, PARSE_ERROR, str(error)))
        return await self._answer(message, caller)

    def batch(self, data: bytes, limit: int = MAX_MESSAGE_BYTES) -> list[Any] | bytes:
        """The messages of an encoded batch, or the encoded error refusing it whole (over
        `limit` bytes, not JSON, not a non-empty array, more than `MAX_BATCH` entries)."""
        if len(data) > limit:
            problem = f"a batch of {len(data)} bytes is over the {limit}-byte limit"
            return encode(_error(None, INVALID_REQUEST, problem))
        try:
            messages = parse(data)
        except (ValueError, RecursionError) as error:
            return encode(_error(None, PARSE_ERROR, f"a batch that is not JSON ({error})"))
        if not isinstance(messages, list) or not messages:
            return encode(_error(None, INVALID_REQUEST, "a batch must be a non-empty array"))
        if len(messages) > MAX_BATCH:
            problem = f"a batch of {len(messages)} requests is over the {MAX_BATCH}-request limit"
            return encode(_error(None, INVALID_REQUEST, problem))
        return messages

    async def stream(
        self, messages: list[Any], *, caller: str | None = None
    ) -> AsyncIterator[bytes]:
        """The encoded answers to a batch's `messages` (from `batch`), each as soon as it is
        ready: one call's answer never waits for another's. Calls run to their end even
        when the iteration stops early (the caller left), as a lone call does."""
        answers: asyncio.Queue[bytes | None] = asyncio.Queue()
        for message in messages:
            task = asyncio.ensure_future(self._answer(message, caller))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda done: answers.put_nowait(_outcome(done)))
        left = len(messages)
        while left:
            ready = [await answers.get()]
            while not answers.empty():  # those done in the same turn leave in one write
                ready.append(answers.get_nowait())
            left -= len(ready)
            if lines := b"".join(answer for answer in ready if answer is not None):
                yield lines

    async def _answer(self, message: Any, caller: str | None) -> bytes | None:
        """`handle`, encoded: a reply that cannot be written as JSON fails its own call
        only, as an internal error (never the batch it came in, never unanswered)."""
        answer = await self.handle(message, caller=caller)
        if answer is None:
            return None
        try:
            return encode(answer)
        except (ValueError, TypeError, RecursionError) as error:
            logger.error("the reply to request %r is not JSON: %s", answer.get("id"), error)
            problem = f"internal error: the plugin's reply cannot be written as JSON ({error})"
            return encode(_error(answer.get("id"), INTERNAL_ERROR, problem))

    async def aclose(self) -> None:
        """End every session's state and close the plugin (`Plugin.aclose`)."""
        for session in self._sessions.values():
            session.scope.close()
        self._sessions.clear()
        if self._served is not None:
            await self._served.manager.aclose()
        if self.state is not None:
            await self.state.aclose()

    async def _dispatch(self, message: Mapping[str, Any], caller: str | None) -> Any:
        method = message["method"]
        params = message.get("params", {})
        if not isinstance(params, Mapping):
            raise RpcError(INVALID_PARAMS, "params must be an object")
        if method == "invoke":
            return await self._invoke(params, caller)
        if method == "initialize":
            return self._initialize(params)
        if method == "shutdown":
            return None
        raise RpcError(METHOD_NOT_FOUND, f"no method {method!r}; methods: initialize, invoke, "
                                         "shutdown")  # fmt: skip

    def _initialize(self, params: Mapping[str, Any]) -> dict[str, Any]:
        version = params.get("protocol")
        if version != PROTOCOL_VERSION:
            sent = ("left it out: initialize's 'protocol' field is missing" if version is None
                    else f"sent {version!r}")  # fmt: skip
            raise RpcError(INVALID_PARAMS, f"this plugin speaks protocol {PROTOCOL_VERSION}, "
                                           f"the host {sent}")  # fmt: skip
        self._take_config(params.get("config"))
        return self.hello()

    def _take_config(self, sent: Any) -> None:
        """Build the plugin with the host's config, or check it is the one we run with."""
        config = sent or {}
        if not isinstance(config, Mapping):
            raise RpcError(INVALID_PARAMS, "config must be an object")
        if self._served is None and self._build is not None:
            try:
                plugin = self._build(config)
                self._served = _Served(plugin, self._name, dict(config), self._specs)
            except Exception as error:
                raise RpcError(INVALID_PARAMS, f"the plugin cannot start with this config: "
                                               f"{error}") from None  # fmt: skip
            return
        served = self.served
        if config and dict(config) != served.config:
            # (values unnamed: a config may hold secrets)
            raise RpcError(INVALID_PARAMS, f"plugin {served.name!r} is served with another "
                           "config than the host's entry gives: start the server with that "
                           "--plugin-config, or leave config: out of the host's entry")  # fmt: skip

    async def _invoke(self, params: Mapping[str, Any], caller: str | None) -> dict[str, Any]:
        context = params.get("context") or {}
        if not isinstance(context, Mapping):
            raise RpcError(INVALID_PARAMS, "context must be an object")
        self._take_config(context.get("config"))
        served = self.served
        spec = served.spec(params.get("hook"))
        try:
            payload = load_payload(spec, params.get("payload"))
        except ProtocolError as error:
            raise RpcError(INVALID_PARAMS, str(error)) from None
        turn = context.get("turn")
        if turn is not None and (isinstance(turn, bool) or not isinstance(turn, int)):
            raise RpcError(INVALID_PARAMS, "context.turn must be an integer or null")
        requests = _Requests()
        granted = context.get("capabilities") or ()
        handles = {c: requests for c in served.capabilities if c in granted}
        info = _session_info(context.get("session"))
        async with self._calls:  # a flood of calls waits here, holding nothing else
            session = None if info is None else self._session(info, caller)

            def invoke() -> Awaitable[HookResult[Any]]:
                return served.manager.invoke(
                    spec, payload, turn=turn, capabilities=handles, session=info,
                    scope=None if session is None else session.scope,
                    recheck=context.get("recheck") is True,
                )  # fmt: skip

            try:
                if session is None or self.state is None:
                    result = await invoke()
                else:
                    result = await session.shared(self._owner).run(
                        self.state, session.scope.states, invoke,
                        plugin=served.name, end=spec is hooks.SESSION_END,
                        limit=self.max_state_bytes,
                    )  # fmt: skip
            except StoreError as error:
                raise RpcError(HANDLER_FAILED, str(error)) from None
            finally:
                if session is not None:
                    session.active -= 1
                    if spec is hooks.SESSION_END:
                        self._end(session)
        if result.errors:
            raise RpcError(HANDLER_FAILED, result.errors[0].message)
        return {"action": dump_action(spec, _action(result)), "requests": requests.items}

    def _session(self, info: SessionInfo, caller: str | None) -> _Session:
        key = (caller, info.id)  # one caller never reaches another's session
        known = self._sessions.get(key)
        if known is None:
            scope = self.served.manager.session(info.id, tags=info.tags, metadata=info.metadata)
            known = self._sessions[key] = _Session(key, scope.open())
        self._sessions.move_to_end(key)
        known.active += 1
        self._evict()
        return known

    def _evict(self) -> None:
        """Drop the least recently used idle sessions over the bound (never a busy one)."""
        idle = [key for key, s in self._sessions.items() if not s.active]
        for key in idle[: max(0, len(self._sessions) - self.max_sessions)]:
            self._sessions.pop(key).scope.close()

    def _end(self, session: _Session) -> None:
        if self._sessions.get(session.key) is session:
            del self._sessions[session.key]
        session.scope.close()


class _Served:
    """A plugin registered in a manager of its own, granted what its hooks offer."""

    def __init__(
        self,
        plugin: object,
        name: str | None,
        config: dict[str, Any],
        specs: tuple[HookSpec[Any], ...],
    ) -> None:
        self.config = config
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
        self._handled = {key: r.hook for r in handle.registrations for key in r.hook.keys}

    def spec(self, name: Any) -> HookSpec[Any]:
        spec = self._handled.get(name) if isinstance(name, str) else None
        if spec is not None:
            return spec
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "params.hook must be a hook name")
        try:
            self.manager.spec(name)
        except InterlockError as error:
            raise RpcError(INVALID_PARAMS, str(error)) from None
        raise RpcError(INVALID_PARAMS, f"plugin {self.name!r} does not handle {name!r}")


class _Session:
    """A session's scope on the server, and how many of its calls are running."""

    def __init__(self, key: tuple[str | None, str], scope: SessionScope) -> None:
        self.key = key
        self.scope = scope
        self.active = 0
        self._shared: SharedSession | None = None

    def shared(self, owner: str) -> SharedSession:
        """The session's state in the store, as this server last saw it."""
        if self._shared is None:
            self._shared = SharedSession(*self.key, owner)
        return self._shared


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


def _session_info(session: Any) -> SessionInfo | None:
    """The session facts a call brings (`context.session`): every call's own, so a host
    that changes a session's tags or metadata is heard at once, on every replica."""
    if session is None:
        return None
    if not isinstance(session, Mapping) or not isinstance(session.get("id"), str):
        raise RpcError(INVALID_PARAMS, "context.session must be null or have a text id")
    if len(session["id"]) > MAX_SESSION_ID:
        raise RpcError(INVALID_PARAMS, f"context.session.id has {len(session['id'])} "
                                       f"characters, over the {MAX_SESSION_ID}-character "
                                       "limit: name sessions with shorter ids")  # fmt: skip
    try:
        return SessionInfo(session["id"], session.get("tags") or (), session.get("metadata") or {})
    except (TypeError, ValueError) as error:
        raise RpcError(INVALID_PARAMS, f"context.session: {error}") from None


def _outcome(task: asyncio.Task[bytes | None]) -> bytes | None:
    """A finished call's encoded answer (None when it had none, or was cancelled)."""
    try:
        return task.result()
    except asyncio.CancelledError:  # the server is stopping
        return None
    except Exception:  # pragma: no cover - `_answer` answers every failure itself
        logger.exception("answering a request failed")
        return None


def _notification(message: Any) -> bool:
    """Whether `message` is a request that gets no answer (one without an id)."""
    if not isinstance(message, Mapping) or "id" in message:
        return False
    return message.get("jsonrpc") == "2.0" and isinstance(message.get("method"), str)


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
    transport = await _read_into(reader, source)
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

    skipping = False  # inside a line over the limit: dropped up to its end
    try:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as end:  # the input ended
                line = b"" if skipping else end.partial
                if not line:
                    break
            except asyncio.LimitOverrunError as over:
                await reader.read(over.consumed)  # drop what is buffered of the long line
                if not skipping:
                    skipping = True
                    problem = f"a message over the {limit}-byte limit"
                    sink.write(encode(_error(None, INVALID_REQUEST, problem)))
                    sink.flush()
                continue
            if skipping:  # the end of the long line
                skipping = False
                continue
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


async def _read_into(reader: asyncio.StreamReader, source: IO[bytes]) -> asyncio.BaseTransport:
    """Feed `reader` from `source`: through the event loop where it can watch the file (a
    pipe, a socket, a terminal), else (a regular file, /dev/null, which epoll refuses)
    from a thread, since reads of those never wait."""
    try:
        fd = source.fileno()
        mode = os.fstat(fd).st_mode
        watchable = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)
    except (OSError, ValueError):  # no file descriptor (an in-memory file)
        watchable = False
    if watchable:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), source
        )
        return transport
    return _FileFeed(reader, source)


class _FileFeed(asyncio.ReadTransport):
    """Reads a file the event loop cannot watch into a `StreamReader`, in a thread, paused
    while the reader holds more than it may (the reader pauses its transport)."""

    def __init__(self, reader: asyncio.StreamReader, source: IO[bytes]) -> None:
        super().__init__()
        self._flowing = asyncio.Event()
        self._flowing.set()
        read = getattr(source, "read1", source.read)
        reader.set_transport(self)
        self._task = asyncio.ensure_future(self._pump(reader, cast(Callable[[int], bytes], read)))

    async def _pump(self, reader: asyncio.StreamReader, read: Callable[[int], bytes]) -> None:
        try:
            while data := await asyncio.to_thread(read, 1 << 16):
                reader.feed_data(data)
                await self._flowing.wait()
        except (OSError, ValueError) as error:  # the input failed: it ended, for us
            logger.warning("reading the input failed: %s", error)
        reader.feed_eof()

    def pause_reading(self) -> None:
        self._flowing.clear()

    def resume_reading(self) -> None:
        self._flowing.set()

    def is_reading(self) -> bool:
        return self._flowing.is_set()

    def close(self) -> None:
        self._task.cancel()

    def is_closing(self) -> bool:
        return self._task.done()


def _is_shutdown(line: bytes) -> bool:
    if b'"shutdown"' not in line:
        return False
    try:
        return bool(json.loads(line).get("method") == "shutdown")
    except (ValueError, AttributeError, RecursionError):
        return False


# -- HTTP -----------------------------------------------------------------------------------


BODY_TIMEOUT = 10.0
"""Seconds a caller has, by default, to send a whole request body to `http_app`."""


def http_app(
    server: PluginServer,
    *,
    token: str | Sequence[str] | None = None,
    limit: int = MAX_MESSAGE_BYTES,
    body_timeout: float = BODY_TIMEOUT,
) -> Starlette:
    """An ASGI app serving `server`: JSON-RPC on `POST /`, who it is on `GET /`.

    With `token` (one, or several: one per host), every request must carry
    `Authorization: Bearer <token>` (else 401), and the sessions a request names are
    those of the token it presented; without a token, those of the peer's address. So
    one caller never reads, advances or ends another's session state, even under the
    same session id. A body not received whole within `body_timeout` seconds is answered
    408 and its connection closed: a caller trickling bytes holds nothing for long.
    The app's shutdown (ASGI lifespan) closes `server`.

        app = http_app(PluginServer(NoRm()), token=["token-of-host-a", "token-of-host-b"])

    Needs `pip install 'interlock[http]'`.
    """
    try:
        from starlette.applications import Starlette
        from starlette.requests import ClientDisconnect, Request
        from starlette.responses import JSONResponse, Response, StreamingResponse
        from starlette.routing import Route
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError(
            "serving over HTTP needs starlette: pip install 'interlock[http]'"
        ) from None
    tokens = [token] if isinstance(token, str) else list(token or ())
    if not all(tokens):
        raise ValueError("http_app: a token is empty; give each host a non-empty token")
    if not body_timeout > 0:
        raise ValueError(f"http_app: body_timeout must be more than 0 s, not {body_timeout!r}")
    expected = [(f"Bearer {t}".encode(), _identity(t)) for t in tokens]
    refused = _error(None, INVALID_REQUEST, "missing or wrong bearer token")

    def caller(request: Request) -> str | None:
        """Who sent `request` (None: refused, a token was due and not given)."""
        if not expected:
            return f"peer {request.client.host if request.client else '?'}"
        given = request.headers.get("authorization", "").encode()
        found = None
        for header, identity in expected:  # every one compared: the time tells nothing
            if hmac.compare_digest(given, header):
                found = identity
        return found

    async def rpc(request: Request) -> Response:
        who = caller(request)
        if who is None:
            return JSONResponse(refused, status_code=401)
        body = bytearray()
        try:
            async with asyncio.timeout(body_timeout):
                async for chunk in request.stream():  # bounded: never over the limit in memory
                    body += chunk
                    if len(body) > limit:
                        problem = f"a message over the {limit}-byte limit"
                        return JSONResponse(_error(None, INVALID_REQUEST, problem),
                                            status_code=413, headers=_CLOSE)  # fmt: skip
        except TimeoutError:
            problem = f"the request body did not arrive within {body_timeout:g} s"
            return JSONResponse(_error(None, INVALID_REQUEST, problem), status_code=408,
                                headers=_CLOSE)  # fmt: skip
        except ClientDisconnect:  # the caller left (or was cut off): nobody to answer
            return Response(status_code=400, headers=_CLOSE)
        if body.lstrip()[:1] == b"[" and NDJSON in request.headers.get("accept", ""):
            messages = server.batch(bytes(body), limit)
            if isinstance(messages, bytes):  # refused whole
                return Response(messages, media_type="application/json")
            if not all(map(_notification, messages)):
                return StreamingResponse(server.stream(messages, caller=who), media_type=NDJSON)
            await server.handle_bytes(bytes(body), limit, caller=who)
            return Response(status_code=204)
        reply = await server.handle_bytes(bytes(body), limit, caller=who)
        if reply is None:
            return Response(status_code=204)
        return Response(reply, media_type="application/json")

    async def about(request: Request) -> Response:
        if caller(request) is None:
            return JSONResponse(refused, status_code=401)
        return JSONResponse(server.hello())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await server.aclose()

    routes = [Route("/", rpc, methods=["POST"]), Route("/", about, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)


_CLOSE = {"Connection": "close"}  # the rest of the request is not read: end the connection


def _identity(token: str) -> str:
    """The caller a token stands for: a digest, so a caller's name never shows the token."""
    return "token " + hashlib.sha256(token.encode()).hexdigest()[:16]
