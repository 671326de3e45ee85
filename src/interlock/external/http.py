"""A plugin served over HTTP: JSON-RPC in a POST body, by one or several replicas.

Calls are spread over the URLs in turn. A replica that cannot be reached (refused
connection, DNS failure) or turns the call away unrun (503) is skipped for a moment and
the call goes to the next one; a call that may have reached a replica and then failed
(a dropped connection, a timeout, a proxy's 502 or 504) is not repeated, since the plugin
may have acted on it. Needs `pip install 'interlock[http]'`.

A server whose `initialize` result says `"batch": true` gets the `invoke` requests made
in one turn of the event loop as one JSON-RPC batch (one POST, an array), and is asked to
stream the replies (`Accept: application/x-ndjson`): each call is settled as its own
reply arrives, never held back by a slower one; a server answering with an array settles
them all at once. A call given up on leaves the others of its batch waiting. Other
servers get one POST per request.

The client is aiohttp, pooled per event loop: measured side by side on one machine it
carried about seven times the calls per second of httpx's async client with many calls
in flight (benchmarks/bench_external.py), and the replica target is thousands per second.
The handshake, made before any loop runs, uses the standard library.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .. import ProtocolError
from .protocol import MAX_BATCH, MAX_MESSAGE_BYTES, NDJSON, decode, encode_request, parse, result_of

if TYPE_CHECKING:
    import aiohttp

T = TypeVar("T")

_UNRUN = 503  # turned away before it ran (our server's connection limit): try the next one
# A proxy's answer once it passed the call on: it may have run (a 504 after the plugin
# acted), so only a call that may run twice (not `invoke`) goes to the next replica.
_PROXY_GAVE_UP = {502, 504}
# No proxy from the environment, as for calls (aiohttp with trust_env=False): plugin
# servers are reached directly, the same way for the handshake and every call.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HttpTransport:
    """Calls to a plugin behind one or several URLs (replicas), with an optional token.

    A replica that refuses or does not accept a connection within `connect_timeout`
    seconds, or answers 502/503/504, is tried last for `cooldown` seconds; an `invoke`
    goes to the next one only when it never ran there (no connection, 503). `timeout`
    bounds a whole call (the registration's timeout usually ends it first).

    transport = HttpTransport(["http://10.0.0.5:8700/", "http://10.0.0.6:8700/"],
                              token=os.environ["GUARD_TOKEN"])
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        name: str = "",
        token: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 1.0,
        limit: int = MAX_MESSAGE_BYTES,
        cooldown: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("an HTTP plugin needs at least one URL")
        _aiohttp()  # fail now, with the install hint, rather than on the first call
        self.urls = tuple(urls)
        self.name = name or self.urls[0]
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.limit = limit
        self.cooldown = cooldown
        self._clock = clock
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._streamed = {**self._headers, "Accept": f"{NDJSON}, application/json"}
        self._turn = itertools.count()
        self._ids = itertools.count(1)
        self._down: dict[str, float] = {}
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession]
        self._sessions = weakref.WeakKeyDictionary()
        self.batch = False
        """Whether `invoke` requests go out in batches: set when the server's `initialize`
        result says it answers them (`"batch": true`)."""
        self._batches: dict[asyncio.AbstractEventLoop, _Batch] = {}

    takes_encoded = True
    """`call` takes `invoke` params `Encoded` already (see `Transport`)."""

    async def call(self, method: str, params: Any) -> Any:
        """One request, to the next replica that can be reached (in a batch with the
        other `invoke` requests of this turn of the loop, where the server takes them)."""
        if self.batch and method == "invoke":
            return await self._batched(*self._body(method, params))
        body = self._body(method, params)[1]
        url, status, content = await self._post(body, self._whole, again=method != "invoke")
        result = self._result(url, status, content)
        if method == "initialize":
            self._agreed(result)
        return result

    def call_sync(self, method: str, params: Any, timeout: float = 10.0) -> Any:
        """`call` without an event loop: for the handshake while a config loads."""
        body = self._body(method, params)[1]
        problems = []
        for url in self._order():
            post = urllib.request.Request(url, data=body, headers=self._headers, method="POST")
            try:
                with _DIRECT.open(post, timeout=timeout) as response:
                    result = self._result(url, response.status, response.read(self.limit + 1))
                    if method == "initialize":
                        self._agreed(result)
                    return result
            except urllib.error.HTTPError as error:
                if error.code == _UNRUN or (error.code in _PROXY_GAVE_UP and method != "invoke"):
                    problems.append(f"{url}: HTTP {error.code}")
                    continue
                if error.code in _PROXY_GAVE_UP:
                    raise self._lost(url, f"HTTP {error.code} from a proxy") from None
                return self._result(url, error.code, error.read(self.limit + 1))
            except (urllib.error.URLError, OSError, ValueError) as error:
                problems.append(f"{url}: {_reason(error)}")
        raise ProtocolError(
            f"plugin {self.name!r}: no replica could be reached ({'; '.join(problems)})"
        )

    async def _post(
        self,
        body: bytes,
        read: Callable[[str, aiohttp.ClientResponse], Awaitable[T]],
        *,
        again: bool = False,
        headers: dict[str, str] | None = None,
    ) -> T:
        """POST `body` to the next replica that takes it; `read(url, response)`.

        The next replica is tried only when this one never ran the call (no connection,
        503) or, with `again` (a request that may run twice), a proxy gave up on it.
        """
        aiohttp = _aiohttp()
        session = self._session()
        problems = []
        for url in self._order():
            try:
                async with session.post(
                    url, data=body, headers=headers or self._headers
                ) as response:
                    status = response.status
                    if status == _UNRUN or status in _PROXY_GAVE_UP:
                        self._mark_down(url)
                        if status in _PROXY_GAVE_UP and not again:
                            raise self._lost(url, f"HTTP {status} from a proxy")
                        problems.append(f"{url}: HTTP {status}")
                        continue
                    return await read(url, response)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
                self._mark_down(url)  # never reached it (refused, unreachable, silent)
                problems.append(f"{url}: {_reason(error)}")
            except (aiohttp.ClientError, TimeoutError) as error:
                raise self._lost(url, _reason(error)) from None
        raise ProtocolError(
            f"plugin {self.name!r}: no replica could be reached ({'; '.join(problems)})"
        )

    def _lost(self, url: str, why: str) -> ProtocolError:
        return ProtocolError(f"plugin {self.name!r} at {url}: the call was lost ({why}); not "
                             "sent again, since the plugin may have acted on it")  # fmt: skip

    async def _whole(self, url: str, response: aiohttp.ClientResponse) -> tuple[str, int, bytes]:
        return url, response.status, await self._read(response, self.limit)

    def _agreed(self, hello: Any) -> None:
        """Take up batches if the server's `initialize` result says it answers them."""
        self.batch = isinstance(hello, dict) and hello.get("batch") is True

    async def _batched(self, id: int, body: bytes) -> Any:
        """Wait for one request's reply, sent along with this turn's other requests."""
        loop = asyncio.get_running_loop()
        batch = self._batches.get(loop)
        if batch is None or len(batch.bodies) >= MAX_BATCH or batch.size + len(body) > self.limit:
            batch = self._batches[loop] = _Batch()
            loop.call_soon(self._send, loop, batch)
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        batch.add(id, body, future)
        try:
            return result_of(await future)
        except asyncio.CancelledError:
            batch.left()  # the others of its batch still wait; if none do, it is dropped
            raise

    def _send(self, loop: asyncio.AbstractEventLoop, batch: _Batch) -> None:
        if self._batches.get(loop) is batch:
            del self._batches[loop]
        if batch.waiting:
            batch.task = loop.create_task(self._post_batch(batch))

    async def _post_batch(self, batch: _Batch) -> None:
        """One POST for the batch (a plain request when it holds one), each reply handed
        to its caller as it arrives; a batch that fails fails each call not answered yet."""
        try:
            if len(batch.bodies) == 1:
                url, status, content = await self._post(batch.bodies[0], self._whole)
                batch.settle(self._replies(url, status, content, self.limit), self._at(url))
            else:
                body = b"[" + b",".join(batch.bodies) + b"]"
                await self._post(
                    body, functools.partial(self._stream, batch), headers=self._streamed
                )
        except ProtocolError as error:
            batch.fail(error)
        except Exception as error:  # whatever went wrong, each caller hears of it now
            batch.fail(ProtocolError(f"plugin {self.name!r}: a batch failed ({_reason(error)})"))

    async def _stream(self, batch: _Batch, url: str, response: aiohttp.ClientResponse) -> None:
        """Settle each call of `batch` as its reply line arrives (a server that answers
        with an array settles them together)."""
        where = self._at(url)
        if response.status != 200 or response.content_type != NDJSON:
            limit = self.limit * len(batch.bodies)
            content = await self._read(response, limit)
            batch.settle(self._replies(url, response.status, content, limit), where)
            return
        self._down.pop(url, None)
        pending = bytearray()
        async for chunk in response.content.iter_any():
            pending += chunk
            end = pending.rfind(b"\n") + 1
            if end:
                for reply in self._lines(where, bytes(pending[:end])):
                    batch.answer(reply)
                del pending[:end]
            if len(pending) > self.limit:
                raise ProtocolError(f"{where} sent a reply over {self.limit} bytes")
        for reply in self._lines(where, bytes(pending)):
            batch.answer(reply)
        batch.settle({}, where)  # a call whose reply never came hears so

    def _lines(self, where: str, text: bytes) -> Iterator[dict[str, Any]]:
        """The streamed replies in `text` (whole lines), in order, up to one that is not
        a reply to a request of the batch, which raises."""
        lines = [line for line in text.split(b"\n") if line.strip()]
        try:  # the lines that came together, read in one go
            replies = parse(b"[" + b",".join(lines) + b"]")
        except (ValueError, RecursionError):
            replies = None
        if not isinstance(replies, list) or not all(isinstance(r, dict) for r in replies):
            replies = (self._decoded(where, line) for line in lines)  # names the culprit
        elif any(len(line) > self.limit for line in lines):
            raise ProtocolError(f"{where} sent a reply over {self.limit} bytes")
        for reply in replies:
            if reply.get("id") is None:
                try:
                    result_of(reply)
                except ProtocolError as error:
                    raise ProtocolError(f"{where}: {error}") from None
                raise ProtocolError(f"{where}: a reply to no request in a streamed batch")
            yield reply

    def _decoded(self, where: str, line: bytes) -> dict[str, Any]:
        try:
            return decode(line, self.limit)
        except ProtocolError as error:
            raise ProtocolError(f"{where}: {error}") from None

    def _at(self, url: str) -> str:
        return f"plugin {self.name!r} at {url}"

    def _replies(
        self, url: str, status: int, content: bytes, limit: int
    ) -> dict[Any, dict[str, Any]]:
        """The replies in a response, by id."""
        where = f"plugin {self.name!r} at {url}"
        if status == 401:
            raise ProtocolError(f"{where} refused the token (HTTP 401)")
        if len(content) > limit:
            raise ProtocolError(f"{where} (HTTP {status}) sent a reply over {limit} bytes")
        try:
            data = parse(content)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict):
            if data.get("id") is None:  # the whole batch refused (a parse error, a limit)
                try:
                    result_of(data)
                except ProtocolError as error:
                    raise ProtocolError(f"{where} (HTTP {status}): {error}") from None
                raise ProtocolError(f"{where} (HTTP {status}) answered a batch with one reply")
            data = [data]
        if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
            raise ProtocolError(f"{where} (HTTP {status}) sent a reply that is not JSON-RPC: "
                                f"{content[:80]!r}")  # fmt: skip
        self._down.pop(url, None)
        return {message.get("id"): message for message in data}

    async def aclose(self) -> None:
        """Close the connection pools (this loop's now; other loops' on their loop)."""
        current = asyncio.get_running_loop()
        for loop, session in list(self._sessions.items()):
            if loop is current:
                await session.close()
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(session.close(), loop)
        self._sessions.clear()

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            aiohttp = _aiohttp()
            # A replica that drops connections silently (a dead machine, a firewall) is
            # given up on after `connect_timeout`, well within a call's own timeout.
            timeout = aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.connect_timeout)
            session = aiohttp.ClientSession(timeout=timeout, trust_env=False)
            self._sessions[loop] = session
        return session

    async def _read(self, response: aiohttp.ClientResponse, limit: int) -> bytes:
        """The body, or as much of it as shows it is over `limit`."""
        data = bytearray()
        async for chunk in response.content.iter_chunked(65536):
            data += chunk
            if len(data) > limit:
                break
        return bytes(data)

    def _body(self, method: str, params: Any) -> tuple[int, bytes]:
        id = next(self._ids)
        body = encode_request(method, params, id)
        if len(body) > self.limit:
            raise ProtocolError(f"plugin {self.name!r}: a {method} request of {len(body)} bytes "
                                f"is over the {self.limit}-byte limit")  # fmt: skip
        return id, body

    def _order(self) -> list[str]:
        """The replicas from the next one in turn, those recently unreachable last."""
        start = next(self._turn) % len(self.urls)
        turn = [*self.urls[start:], *self.urls[:start]]
        now = self._clock()
        return [u for u in turn if self._down.get(u, 0) <= now] + [
            u for u in turn if self._down.get(u, 0) > now
        ]

    def _mark_down(self, url: str) -> None:
        self._down[url] = self._clock() + self.cooldown

    def _result(self, url: str, status: int, content: bytes) -> Any:
        if status == 401:
            raise ProtocolError(f"plugin {self.name!r} at {url} refused the token (HTTP 401)")
        try:
            message = decode(content, self.limit)
        except ProtocolError as error:
            raise ProtocolError(f"plugin {self.name!r} at {url} (HTTP {status}): {error}") from None
        self._down.pop(url, None)
        return result_of(message)


class _Batch:
    """The requests of one turn of one loop, posted together, and who waits for them."""

    __slots__ = ("bodies", "futures", "size", "task", "waiting")

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.futures: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.size = 2
        self.waiting = 0
        self.task: asyncio.Task[None] | None = None

    def add(self, id: int, body: bytes, future: asyncio.Future[dict[str, Any]]) -> None:
        body = body.rstrip(b"\n")
        self.bodies.append(body)
        self.futures[id] = future
        self.size += len(body) + 1
        self.waiting += 1

    def left(self) -> None:
        """A caller gave up; the POST is cancelled once nobody waits for it."""
        self.waiting -= 1
        if not self.waiting and self.task is not None:
            self.task.cancel()

    def answer(self, reply: dict[str, Any] | None) -> None:
        """Hand one reply to its caller (one to no request of the batch is dropped)."""
        if reply is None:
            return
        id = reply.get("id")
        future = self.futures.get(id) if isinstance(id, int) else None
        if future is not None and not future.done():
            future.set_result(reply)

    def settle(self, replies: dict[Any, dict[str, Any]], where: str) -> None:
        """Hand out `replies`; each call still without one fails, saying so."""
        for id, future in self.futures.items():
            if future.done():
                continue
            reply = replies.get(id)
            if reply is None:
                future.set_exception(ProtocolError(f"{where} sent no reply to request {id}"))
            else:
                future.set_result(reply)

    def fail(self, error: ProtocolError) -> None:
        for future in self.futures.values():
            if not future.done():
                future.set_exception(error)


def _reason(error: BaseException) -> str:
    text = str(getattr(error, "reason", "") or error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _aiohttp() -> Any:
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("HTTP plugins need aiohttp: pip install 'interlock[http]'") from None
    return aiohttp
