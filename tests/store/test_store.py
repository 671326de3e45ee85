"""The store interface, run against each implementation: memory and Redis."""

from __future__ import annotations

import asyncio

import pytest

from interlock.store import (
    Claim,
    MemoryStore,
    StateStore,
    StoreError,
    Window,
    check_url,
    key,
    open_store,
    redacted,
)


async def test_values_set_get_delete_and_increment(store: StateStore) -> None:
    assert await store.get("a") is None
    await store.set("a", "one", ttl=60)
    assert await store.get("a") == "one"
    assert [await store.incr("n", 5, ttl=60), await store.incr("n"), await store.incr("n", -2)] == [
        5,
        6,
        4,
    ]
    await store.delete("a", "n", "never-set")
    assert (await store.get("a"), await store.get("n")) == (None, None)


async def test_increments_and_compare_and_set_are_atomic_under_concurrency(
    store: StateStore,
) -> None:
    values = await asyncio.gather(*(store.incr("n") for _ in range(50)))
    assert sorted(values) == list(range(1, 51))
    won = await asyncio.gather(*(store.compare_and_set("owner", None, str(i)) for i in range(20)))
    assert won.count(True) == 1
    owner = await store.get("owner")
    assert owner == str(won.index(True))
    assert not await store.compare_and_set("owner", "someone else", "x")
    assert await store.compare_and_set("owner", owner, "next")
    assert await store.get("owner") == "next"


async def test_admit_takes_a_slot_in_every_window_or_none(store: StateStore) -> None:
    small, large = Window("small", 2, 60.0), Window("large", 3, 60.0)
    answers = [await store.admit([small, large], f"e{i}") for i in range(3)]
    assert [a.admitted for a in answers] == [True, True, False]
    assert answers[2].full == 0 and 0 < answers[2].retry_after <= 60
    # the refused event took no slot in the larger window: it still has room for one
    assert (await store.admit([large], "e3")).admitted
    refused = await store.admit([large], "e4")
    assert (refused.admitted, refused.full) == (False, 0)


async def test_an_event_admitted_again_takes_no_second_slot(store: StateStore) -> None:
    window = Window("w", 2, 60.0)
    assert (await store.admit([window], "same")).admitted
    assert (await store.admit([window], "same")).admitted  # a retry after a lost reply
    assert (await store.admit([window], "other")).admitted
    assert not (await store.admit([window], "third")).admitted


async def test_concurrent_admissions_never_pass_the_limit(store: StateStore) -> None:
    window = Window("w", 7, 60.0)
    answers = await asyncio.gather(*(store.admit([window], f"e{i}") for i in range(40)))
    assert sum(a.admitted for a in answers) == 7


async def test_reserve_holds_against_limits_and_settle_counts_usage_once(
    store: StateStore,
) -> None:
    claim = Claim("budget", {"tokens": 10.0}, {"tokens": 25.0})
    assert (await store.reserve([claim], "h1", ttl=60)).granted
    assert (await store.reserve([claim], "h2", ttl=60)).granted
    refused = await store.reserve([claim], "h3", ttl=60)
    assert (refused.granted, refused.refused, refused.name) == (False, 0, "tokens")
    assert refused.balance.held == {"tokens": 20.0}

    [after] = await store.settle(["budget"], "h1", {"tokens": 3.0}, ttl=60)
    assert (after.spent, after.held) == ({"tokens": 3.0}, {"tokens": 10.0})
    [again] = await store.settle(["budget"], "h1", {"tokens": 3.0}, ttl=60)  # a retry
    assert again == after
    assert (await store.reserve([claim], "h3", ttl=60)).granted  # 3 + 10 + 10 <= 25
    balance = await store.balance("budget")
    assert (balance.spent, balance.held) == ({"tokens": 3.0}, {"tokens": 20.0})


async def test_a_reservation_is_all_or_none_and_a_spent_budget_refuses(store: StateStore) -> None:
    roomy = Claim("roomy", {"tokens": 1.0, "cost": 0.5}, {"tokens": 100.0})
    tight = Claim("tight", {"tokens": 1.0, "cost": 0.5}, {"cost": 1.0})
    await store.settle(["tight"], "earlier", {"tokens": 0.0, "cost": 1.0}, ttl=60)
    refused = await store.reserve([roomy, tight], "h", ttl=60)
    assert (refused.granted, refused.refused, refused.name) == (False, 1, "cost")
    assert refused.balance.spent == {"tokens": 0.0, "cost": 1.0}
    assert (await store.balance("roomy")).held == {}  # nothing held on the first either


async def test_concurrent_reservations_never_pass_the_limit(store: StateStore) -> None:
    claim = Claim("budget", {"tokens": 4.0}, {"tokens": 30.0})
    answers = await asyncio.gather(*(store.reserve([claim], f"h{i}", ttl=60) for i in range(20)))
    assert sum(a.granted for a in answers) == 7


async def test_a_hold_never_settled_lapses(store: StateStore) -> None:
    claim = Claim("budget", {"tokens": 10.0}, {"tokens": 10.0})
    assert (await store.reserve([claim], "died", ttl=0)).granted  # lapses at once
    assert (await store.reserve([claim], "next", ttl=60)).granted
    [balance] = await store.settle(["budget"], "died", {"tokens": 2.0}, ttl=60)
    assert balance.spent == {"tokens": 2.0}  # late usage still counts
    await store.drop_ledgers("budget")
    assert await store.balance("budget") == (await store.balance("never"))


async def test_keys_live_in_the_plugins_own_namespace(store: StateStore, deployment: str) -> None:
    assert store.prefix == f"interlock:{deployment}:test:"
    await store.set("k", "mine")
    other = type(store)  # a store of the same kind for another plugin sees nothing of it
    if isinstance(store, MemoryStore):
        neighbour: StateStore = other(deployment=deployment, plugin="other")  # type: ignore[call-arg]
    else:
        neighbour = open_store(store._url, deployment=deployment, plugin="other")  # type: ignore[attr-defined]
    assert await neighbour.get("k") is None
    await neighbour.aclose()


def test_key_parts_cannot_collide() -> None:
    assert key("w", "a:b", "c") != key("w", "a", "b:c")
    assert key("w", "s-1", "web_*") == "w:s-1:web_*"
    assert key("a%3Ab") != key("a:b")


def test_urls_are_checked_and_shown_without_credentials() -> None:
    url = "rediss://worker:s3cret@cache.internal:6380/2?ssl_cert_reqs=required"
    assert check_url(url) == url
    assert "s3cret" not in redacted(url) and "worker" not in redacted(url)
    assert redacted(url).startswith("rediss://***@cache.internal:6380/2")
    with pytest.raises(ValueError, match="a store is 'memory' or a URL redis://"):
        check_url("http://cache.internal:6379")
    with pytest.raises(ValueError, match="names no host"):
        check_url("redis://")


def test_a_redis_store_needs_redis_py(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(StoreError, match=r"pip install -e '<interlock checkout>\[redis\]'"):
        open_store("redis://127.0.0.1:6379/0")
