"""`RedisStore`: state shared by every process that uses the same Redis (redis-py's asyncio
client, imported on first use). Windows and ledgers are Lua scripts, so each operation is
one atomic step on the server, timed by the server's clock (`TIME`), never by the
processes' clocks, which disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar

from .._extras import install_command
from ._base import (
    AMOUNT_MAX,
    Admission,
    Balance,
    Claim,
    Reservation,
    StateStore,
    StoreError,
    StoreUnavailable,
    Window,
    check_claims,
    check_settle,
    key,
    namespace,
)
from ._url import redacted

logger = logging.getLogger("interlock.store")

T = TypeVar("T")

# Unless the URL says otherwise (?socket_timeout=...): an unreachable store is reported
# within about a second, well inside a registration's default 5 s timeout.
_TIMEOUTS = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}

POOL_CONNECTIONS = 64
"""Connections one event loop's client opens at most (`?max_connections=` in the URL
changes it). Each operation holds one for a round trip only, so many more calls than this
share them: past it, an operation waits for a free one rather than failing."""

POOL_WAIT = 5.0
"""Seconds an operation waits for a free connection (`?timeout=` in the URL) before it
fails as `StoreUnavailable`: the registration's default 5 s timeout ends a call no later."""

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
"""

# KEYS: the windows. ARGV[1]: the member; ARGV[2i], ARGV[2i+1]: limit and period (s) of
# KEYS[i]. Returns {0, '0'} when admitted, else {i, seconds until KEYS[i] has room}.
_ADMIT = (
    _NOW
    + """
local member = ARGV[1]
local take = {}
for i, k in ipairs(KEYS) do
  local limit, per = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', k, '-inf', string.format('%.6f', now - per))
  if not redis.call('ZSCORE', k, member) then
    if redis.call('ZCARD', k) >= limit then
      local oldest = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
      return {i, string.format('%.6f', tonumber(oldest[2]) + per - now)}
    end
    take[#take + 1] = i
  end
end
for _, i in ipairs(take) do
  redis.call('ZADD', KEYS[i], string.format('%.6f', now), member)
  redis.call('PEXPIRE', KEYS[i], math.ceil(tonumber(ARGV[2 * i + 1]) * 1000))
end
return {0, '0'}
"""
)

# A ledger is four keys: totals (hash: spent:NAME, held:NAME), holds (hash: id -> JSON
# amounts), lapse (zset: id -> when the hold lapses), settled (zset: id -> until when a
# second settle of it is a retry).
_SWEEP = """
local function sweep(b)
  local lapsed = redis.call('ZRANGEBYSCORE', KEYS[b + 2], '-inf', string.format('%.6f', now))
  for _, id in ipairs(lapsed) do
    local amounts = redis.call('HGET', KEYS[b + 1], id)
    if amounts then
      for name, amount in pairs(cjson.decode(amounts)) do
        redis.call('HINCRBYFLOAT', KEYS[b], 'held:' .. name, -amount)
      end
      redis.call('HDEL', KEYS[b + 1], id)
    end
    redis.call('ZREM', KEYS[b + 2], id)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[b + 3], '-inf', string.format('%.6f', now))
end
local function used(b, name)
  return tonumber(redis.call('HGET', KEYS[b], 'spent:' .. name) or '0')
    + tonumber(redis.call('HGET', KEYS[b], 'held:' .. name) or '0')
end
"""

# Lua errors do not undo the writes before them: every argument is checked before the
# first write (the callers check too; this guards the ledgers from any other client).
_CHECK = f"""
local function finite(x)
  if type(x) ~= 'number' or x ~= x or x == math.huge or x == -math.huge then
    error('not a finite number: ' .. tostring(x))
  end
end
local function seconds(x)
  finite(x)
  if x < 0 then error('negative seconds: ' .. tostring(x)) end
end
local function amounts(a)
  for _, x in pairs(a) do
    finite(x)
    if x < 0 or x > {AMOUNT_MAX!r} then error('amount out of range: ' .. tostring(x)) end
  end
end
"""

# ARGV: hold id, hold ttl (s), JSON [[amounts, limits, ledger ttl or null], ...] (one per
# ledger). Returns {0} when held, else {i, name, HGETALL of the refusing ledger's totals}.
_RESERVE = (
    _NOW
    + _CHECK
    + _SWEEP
    + """
local hold, ttl = ARGV[1], tonumber(ARGV[2])
local claims = cjson.decode(ARGV[3])
seconds(ttl)
for _, claim in ipairs(claims) do
  amounts(claim[1])
  for _, limit in pairs(claim[2]) do finite(limit) end
  if claim[3] ~= cjson.null then seconds(claim[3]) end
end
if redis.call('HEXISTS', KEYS[2], hold) == 1 then return {0} end  -- a retry: held already
for i, claim in ipairs(claims) do
  local b = 4 * i - 3
  sweep(b)
  for name, limit in pairs(claim[2]) do
    local u = used(b, name)
    if u >= limit or u + (claim[1][name] or 0) > limit then
      return {i, name, redis.call('HGETALL', KEYS[b])}
    end
  end
end
for i, claim in ipairs(claims) do
  local b = 4 * i - 3
  redis.call('HSET', KEYS[b + 1], hold, cjson.encode(claim[1]))
  for name, amount in pairs(claim[1]) do
    redis.call('HINCRBYFLOAT', KEYS[b], 'held:' .. name, amount)
  end
  redis.call('ZADD', KEYS[b + 2], string.format('%.6f', now + ttl), hold)
  if claim[3] ~= cjson.null then
    for k = 0, 3 do redis.call('PEXPIRE', KEYS[b + k], math.ceil(claim[3] * 1000)) end
  end
end
return {0}
"""
)

# ARGV: hold id, retry window (s), JSON amounts, JSON [ledger ttl or null, ...] (one per
# ledger). Returns each ledger's totals (HGETALL).
_SETTLE = (
    _NOW
    + _CHECK
    + _SWEEP
    + """
local hold, ttl = ARGV[1], tonumber(ARGV[2])
local usage = cjson.decode(ARGV[3])
local expire = cjson.decode(ARGV[4])
seconds(ttl)
amounts(usage)
for _, t in ipairs(expire) do if t ~= cjson.null then seconds(t) end end
local out = {}
for b = 1, #KEYS, 4 do
  sweep(b)
  if not redis.call('ZSCORE', KEYS[b + 3], hold) then
    local held = redis.call('HGET', KEYS[b + 1], hold)
    if held then
      for name, amount in pairs(cjson.decode(held)) do
        redis.call('HINCRBYFLOAT', KEYS[b], 'held:' .. name, -amount)
      end
      redis.call('HDEL', KEYS[b + 1], hold)
      redis.call('ZREM', KEYS[b + 2], hold)
    end
    for name, amount in pairs(usage) do
      redis.call('HINCRBYFLOAT', KEYS[b], 'spent:' .. name, amount)
    end
    redis.call('ZADD', KEYS[b + 3], string.format('%.6f', now + ttl), hold)
  end
  -- Every key touched expires: with its ledger's TTL when it has one (a settle landing
  -- after the ledger was dropped starts one that goes too); the retry marks at the
  -- latest when the last of them is no longer needed.
  local idle = expire[(b + 3) / 4]
  if idle ~= nil and idle ~= cjson.null then
    for k = 0, 3 do redis.call('PEXPIRE', KEYS[b + k], math.max(1, math.ceil(idle * 1000))) end
  end
  local pttl = redis.call('PTTL', KEYS[b])
  redis.call('PEXPIRE', KEYS[b + 3], math.max(pttl, math.ceil(ttl * 1000), 1))
  out[#out + 1] = redis.call('HGETALL', KEYS[b])
end
return out
"""
)

# KEYS[1]; ARGV: expected ('' with ARGV[3] == '1': absent), new, absent flag, ttl ms (0: none)
_CAS = """
local current = redis.call('GET', KEYS[1])
if ARGV[3] == '1' then
  if current then return 0 end
elseif current ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
"""

# KEYS[1]; ARGV: by, ttl ms (0: none) applied when the increment creates the key
_INCR = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if value == tonumber(ARGV[1]) and tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""


class RedisStore(StateStore):
    """State in Redis, shared by every process that names the same URL and namespace.

    `url`: `redis://[[user]:password@]host[:port][/db]`, `rediss://` for TLS (with
    `?ssl_ca_certs=...` and the other redis-py URL options), or `unix://path`. Connections
    open on first use and reopen by themselves after a fault: while the server cannot be
    reached, every operation raises `StoreUnavailable` (within about a second, unless the
    URL sets `socket_connect_timeout` / `socket_timeout`).

    Needs the `redis` extra: `pip install -e '<interlock checkout>[redis]'`.
    """

    def __init__(self, url: str, *, deployment: str = "default", plugin: str = "") -> None:
        self.prefix = namespace(deployment, plugin)
        self._url = url
        self._shown = redacted(url)
        self._redis = _import_redis()
        # redis-py's asyncio connections belong to the event loop that opened them; a
        # plugin called from several loops (a sync host's helper thread and the main
        # loop) gets a client per loop.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Client] = (
            weakref.WeakKeyDictionary()
        )
        self._down = False

    def describe(self) -> str:
        return self._shown

    async def get(self, key: str) -> str | None:
        value = await self._run(lambda r: r.get(self.prefix + key))
        return None if value is None else str(value)

    async def set(self, key: str, value: str, *, ttl: float | None = None) -> None:
        await self._run(lambda r: r.set(self.prefix + key, value, px=_ms(ttl) or None))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._run(lambda r: r.delete(*(self.prefix + k for k in keys)))

    async def incr(self, key: str, by: int = 1, *, ttl: float | None = None) -> int:
        value = await self._script("incr", _INCR, [self.prefix + key], [by, _ms(ttl)])
        return int(value)

    async def compare_and_set(
        self, key: str, expected: str | None, new: str, *, ttl: float | None = None
    ) -> bool:
        args = [expected or "", new, "1" if expected is None else "0", _ms(ttl)]
        return bool(await self._script("cas", _CAS, [self.prefix + key], args))

    async def admit(self, windows: Sequence[Window], member: str) -> Admission:
        keys = [self.prefix + w.key for w in windows]
        args: list[Any] = [member]
        for window in windows:
            args += [window.limit, repr(window.per)]
        index, wait = await self._script("admit", _ADMIT, keys, args)
        if int(index) == 0:
            return Admission(True)
        return Admission(False, max(float(wait), 0.0), int(index) - 1)

    async def reserve(self, claims: Sequence[Claim], hold: str, *, ttl: float) -> Reservation:
        check_claims(claims, ttl)
        keys = [k for c in claims for k in self._ledger_keys(c.ledger)]
        encoded = json.dumps([[dict(c.amounts), dict(c.limits), c.ttl] for c in claims])
        answer = await self._script("reserve", _RESERVE, keys, [hold, repr(ttl), encoded])
        if int(answer[0]) == 0:
            return Reservation(True)
        return Reservation(False, int(answer[0]) - 1, str(answer[1]), _balance(answer[2]))

    async def settle(
        self,
        ledgers: Sequence[str],
        hold: str,
        amounts: Mapping[str, float],
        *,
        ttl: float,
        expire: Sequence[float | None] | None = None,
    ) -> list[Balance]:
        check_settle(ledgers, amounts, ttl, expire)
        keys = [k for name in ledgers for k in self._ledger_keys(name)]
        idle = list(expire) if expire is not None else [None] * len(ledgers)
        args = [hold, repr(ttl), json.dumps(dict(amounts)), json.dumps(idle)]
        return [_balance(t) for t in await self._script("settle", _SETTLE, keys, args)]

    async def balance(self, ledger: str) -> Balance:
        totals = await self._run(lambda r: r.hgetall(self._ledger_keys(ledger)[0]))
        return _balance([x for pair in totals.items() for x in pair])

    async def drop_ledgers(self, *ledgers: str) -> None:
        if ledgers:
            await self._run(lambda r: r.delete(*(k for n in ledgers for k in self._ledger_keys(n))))

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), weakref.WeakKeyDictionary()
        for client in clients:
            # A client of a loop that is gone, or of a server that is: nothing to free.
            with contextlib.suppress(RuntimeError, OSError, self._redis.RedisError):
                await client.redis.aclose()

    def _ledger_keys(self, name: str) -> list[str]:
        base = self.prefix + key("ledger", name)
        return [base, f"{base}:holds", f"{base}:lapse", f"{base}:settled"]

    def _client(self) -> _Client:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            r = self._redis
            # One quick retry on a broken connection (a pooled one the server closed on
            # restart), then report: the gates decide what an outage means, not a backoff
            # loop here. Never on a timeout: the command may have run (a stalled server
            # answers late), and running a compare-and-set or an increment twice is wrong.
            retry = r.Retry(r.NoBackoff(), 1, supported_errors=(r.ConnectionError,))
            # Blocking: calls past the pool's size wait for a connection, not fail at once.
            pool = r.BlockingConnectionPool.from_url(
                self._url, decode_responses=True, retry=retry, max_connections=POOL_CONNECTIONS,
                timeout=POOL_WAIT, **_TIMEOUTS,
            )  # fmt: skip
            client = self._clients[loop] = _Client(r.Redis.from_pool(pool))
        return client

    async def _script(self, name: str, source: str, keys: list[str], args: list[Any]) -> Any:
        client = self._client()
        script = client.scripts.get(name)
        if script is None:  # EVALSHA, loading the script again after a server restart
            script = client.scripts[name] = client.redis.register_script(source)
        return await self._run(lambda _: script(keys=keys, args=args), client)

    async def _run(
        self, operation: Callable[[Any], Awaitable[T]], client: _Client | None = None
    ) -> T:
        redis = self._redis
        client = client or self._client()
        try:
            result = await operation(client.redis)
        except (redis.ConnectionError, redis.TimeoutError, OSError, TimeoutError) as error:
            if _busy(error):
                pool = client.redis.connection_pool
                raise StoreUnavailable(
                    f"state store {self._shown} is busy: no connection came free within "
                    f"{pool.timeout:g} s (all {pool.max_connections} in use); allow more with "
                    "?max_connections= in the store URL, or check that the store answers "
                    "quickly"
                ) from None
            if not self._down:
                self._down = True
                logger.warning("state store %s is unreachable (%s); retrying on each call",
                               self._shown, _say(error))  # fmt: skip
            raise StoreUnavailable(
                f"state store {self._shown} is unreachable ({_say(error)}); check that it "
                "runs and that the store URL and its credentials are right"
            ) from None
        except redis.RedisError as error:
            raise StoreError(f"state store {self._shown} failed: {_say(error)}") from None
        if self._down:
            self._down = False
            logger.warning("state store %s is reachable again", self._shown)
        return result


class _Client:
    """One event loop's redis-py client and the scripts registered on it."""

    __slots__ = ("redis", "scripts")

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.scripts: dict[str, Any] = {}


class _Redis:
    """The parts of redis-py the store uses, imported when a Redis store is first made."""

    def __init__(self) -> None:
        import redis.asyncio
        import redis.backoff
        import redis.exceptions

        self.Redis: Any = redis.asyncio.Redis
        self.BlockingConnectionPool: Any = redis.asyncio.BlockingConnectionPool
        self.Retry: Any = redis.asyncio.retry.Retry
        self.NoBackoff: Any = redis.backoff.NoBackoff
        self.RedisError: type[Exception] = redis.exceptions.RedisError
        self.ConnectionError: type[Exception] = redis.exceptions.ConnectionError
        self.TimeoutError: type[Exception] = redis.exceptions.TimeoutError


def _import_redis() -> _Redis:
    try:
        return _Redis()
    except ImportError:
        raise StoreError(
            f"a Redis state store needs redis-py: {install_command('redis')}"
        ) from None


def _busy(error: BaseException) -> bool:
    """Whether `error` is the pool's wait for a free connection running out."""
    return "No connection available" in str(error) and isinstance(error.__cause__, TimeoutError)


def _ms(seconds: float | None) -> int:
    return 0 if seconds is None else max(1, round(seconds * 1000))


def _say(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _balance(flat: Sequence[str]) -> Balance:
    spent: dict[str, float] = {}
    held: dict[str, float] = {}
    for field, value in zip(flat[::2], flat[1::2], strict=True):
        kind, _, name = field.partition(":")
        (spent if kind == "spent" else held)[name] = float(value)
    return Balance(MappingProxyType(spent), MappingProxyType(held))
