"""What a store refuses before it writes anything, what it lets expire, what it forgets:
hostile amounts, a ledger named twice, late settles, stale entries, credentials in URLs."""

from __future__ import annotations

import json
import logging
import math

import pytest

from interlock.store import (
    Balance,
    Claim,
    MemoryStore,
    StateStore,
    StoreError,
    StoreUnavailable,
    Window,
    check_url,
    key,
    open_store,
    redacted,
)

BAD_AMOUNTS = [math.nan, math.inf, -math.inf, -1.0, 1e300]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
async def test_a_bad_amount_is_refused_before_anything_is_written(
    store: StateStore, amount: float
) -> None:
    fine = Claim("first", {"tokens": 5.0}, {"tokens": 100.0})
    assert (await store.reserve([fine], "h1", ttl=60)).granted
    before = await store.balance("first")
    bad = Claim("second", {"tokens": 1.0, "cost": amount}, {"tokens": 100.0})
    with pytest.raises(ValueError, match="'cost' must be a finite number from 0"):
        await store.reserve([fine, bad], "h2", ttl=60)
    with pytest.raises(ValueError, match="'cost' must be a finite number from 0"):
        await store.settle(["first", "second"], "h1", {"tokens": 1.0, "cost": amount}, ttl=60)
    assert await store.balance("first") == before  # h1 still held, nothing spent
    assert await store.balance("second") == Balance()
    if not math.isfinite(amount):
        with pytest.raises(ValueError, match="limit of 'tokens' on ledger 'x' must be a finite"):
            await store.reserve([Claim("x", {}, {"tokens": amount})], "h3", ttl=60)


async def test_a_ledger_named_twice_is_refused(store: StateStore) -> None:
    claim = Claim("tag:team-a", {"tokens": 10.0}, {"tokens": 100.0})
    with pytest.raises(ValueError, match="ledger 'tag:team-a' is named twice"):
        await store.reserve([claim, claim], "h", ttl=60)
    with pytest.raises(ValueError, match="ledger 'tag:team-a' is named twice"):
        await store.settle(["tag:team-a", "tag:team-a"], "h", {"tokens": 1.0}, ttl=60)
    assert await store.balance("tag:team-a") == Balance()


async def test_settling_no_amounts_releases_a_hold(store: StateStore) -> None:
    claim = Claim("budget", {"tokens": 10.0}, {"tokens": 10.0})
    assert (await store.reserve([claim], "blocked-later", ttl=60)).granted
    [balance] = await store.settle(["budget"], "blocked-later", {}, ttl=60)
    assert balance.held == {"tokens": 0.0} and not balance.spent
    assert (await store.reserve([claim], "next", ttl=60)).granted


async def test_the_redis_scripts_check_every_argument_before_writing(
    shared: tuple[str, str],
) -> None:
    """The scripts guard the ledgers from any client, not only from this one's checks:
    Lua errors do not undo earlier writes, so nothing may be written before they check."""
    from interlock.store import _redis

    url, deployment = shared
    store = open_store(url, deployment=deployment, plugin="test")
    assert isinstance(store, _redis.RedisStore)
    await store.settle(["a"], "earlier", {"tokens": 5.0}, ttl=60)
    keys = [k for name in ("a", "b") for k in store._ledger_keys(name)]
    for usage in ('{"tokens": -5}', '{"tokens": 1e300}'):
        with pytest.raises(StoreError, match="amount out of range"):
            await store._script("settle", _redis._SETTLE, keys,
                                ["h", "60", usage, "[null, null]"])  # fmt: skip
    claims = json.dumps([[{"tokens": 1}, {"tokens": 100}, None], [{"tokens": -1}, {}, None]])
    with pytest.raises(StoreError, match="amount out of range"):
        await store._script("reserve", _redis._RESERVE, keys, ["h", "60", claims])
    assert (await store.balance("a")).spent == {"tokens": 5.0}
    assert (await store.balance("a")).held == {}
    await store.aclose()


async def test_every_key_a_settle_touches_expires(shared: tuple[str, str]) -> None:
    """A settle landing after its session's ledger was dropped starts one that expires;
    the retry marks of a ledger kept for ever go once no retry can come."""
    import redis

    url, deployment = shared
    store = open_store(url, deployment=deployment, plugin="test")
    claim = Claim("session:s", {"tokens": 10.0}, {"tokens": 100.0}, ttl=3600)
    assert (await store.reserve([claim], "late", ttl=60)).granted
    await store.drop_ledgers("session:s")
    await store.settle(["session:s", "tag:t"], "late", {"tokens": 3.0}, ttl=60,
                       expire=[3600, None])  # fmt: skip
    await store.aclose()
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        ttls = {k.rpartition(":test:")[2]: client.pttl(k)
                for k in client.scan_iter(match=f"interlock:{deployment}:*")}  # fmt: skip
    finally:
        client.close()
    assert set(ttls) == {"ledger:session%3As", "ledger:session%3As:settled", "ledger:tag%3At",
                         "ledger:tag%3At:settled"}  # fmt: skip
    assert 0 < ttls["ledger:session%3As"] <= 3_600_000
    assert 0 < ttls["ledger:session%3As:settled"] <= 3_600_000
    assert ttls["ledger:tag%3At"] == -1  # a tag's budget is kept
    assert 0 < ttls["ledger:tag%3At:settled"] <= 60_000


async def test_a_settle_after_the_ledger_went_expires_in_memory_too() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    await store.settle(["session:s"], "late", {"tokens": 3.0}, ttl=60, expire=[100.0])
    clock.now += 101
    assert await store.balance("session:s") == Balance()


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_memory_store_forgets_what_went_stale() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    for i in range(5000):  # a long-lived worker: every user once, then never again
        await store.admit([Window(key("w", "user", i), 5, 1.0)], f"e{i}")
        await store.set(key("v", i), "x", ttl=1.0)
        claim = Claim(key("session", i), {"tokens": 1.0}, {"tokens": 10.0}, ttl=1.0)
        await store.reserve([claim], f"h{i}", ttl=1.0)
        clock.now += 0.01
    clock.now += 10
    for _ in range(16_000):  # sweeps come at least once per as many operations as entries
        await store.get("nothing")
    assert len(store._windows) + len(store._values) + len(store._ledgers) < 100
    kept = Claim("tag:kept", {}, {"tokens": 10.0})  # spent, with no TTL: kept for ever
    await store.settle(["tag:kept"], "h", {"tokens": 4.0}, ttl=1.0)
    for _ in range(16_000):
        await store.get("nothing")
        clock.now += 0.01
    assert (await store.balance("tag:kept")).spent == {"tokens": 4.0}
    assert not (await store.reserve([Claim("tag:kept", {"tokens": 7.0}, kept.limits)], "x",
                                    ttl=1.0)).granted  # fmt: skip


def test_a_value_that_is_not_text_keeps_its_type_in_a_key() -> None:
    assert key("metadata", "user", 1) != key("metadata", "user", "1")
    assert key("metadata", "user", "%j1") != key("metadata", "user", 1)
    assert key("m", {"a": "50:"}) != key("m", {"a": "50%3A"})
    assert key("w", "s-1", "web_*") == "w:s-1:web_*"


SECRET = "s3cretPW"


async def test_credentials_in_a_url_query_never_show(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("redis", reason="needs pip install 'interlock[redis]'")
    assert (
        redacted("redis://h/0?x_api_key=k2&Token=t&db=1")
        == "redis://h/0?x_api_key=***&Token=***&db=1"
    )
    url = f"rediss://127.0.0.1:1/0?ssl_password={SECRET}&db=0&password={SECRET}"
    assert redacted(url) == "rediss://127.0.0.1:1/0?ssl_password=***&db=0&password=***"
    store = open_store(url, deployment="d", plugin="p")  # port 1: nothing listens
    assert SECRET not in repr(store)
    with (
        caplog.at_level(logging.WARNING, logger="interlock"),
        pytest.raises(StoreUnavailable) as raised,
    ):
        await store.get("k")
    await store.aclose()
    assert "is unreachable" in str(raised.value) and SECRET not in str(raised.value)
    warned = [r.getMessage() for r in caplog.records if "is unreachable" in r.getMessage()]
    assert warned and not any(SECRET in w for w in warned)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"redis://:{SECRET}@cache:notaport/0", "has a port that is not a number"),
        (f"redis://:{SECRET}@cache:99999/0", "has a port that is not a number"),
        (f"redis//:{SECRET}@cache/0", "a store is 'memory' or a URL"),
        (f"redis:/:{SECRET}@cache/0", "names no host"),
    ],
)
def test_a_malformed_url_is_reported_without_its_credentials(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        check_url(url)
    assert SECRET not in str(raised.value) and SECRET not in redacted(url)
