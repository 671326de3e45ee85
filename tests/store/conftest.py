from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from interlock.store import MemoryStore, StateStore, open_store

# The Redis the shared-state tests use; each test keeps its keys under a deployment of its
# own and deletes them afterwards (the server is shared: never flushed).
REDIS = os.environ.get("INTERLOCK_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    """The test Redis; skips without redis-py or a server (a failure where
    INTERLOCK_REQUIRE_ALL is set)."""
    redis = pytest.importorskip("redis", reason="needs pip install 'interlock[redis]'")
    client = redis.Redis.from_url(REDIS, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as error:
        pytest.skip(f"no Redis at {REDIS}: {error}")
    finally:
        client.close()
    return REDIS


@pytest.fixture
def deployment() -> str:
    """A deployment name of this test's own."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def shared(redis_url: str, deployment: str) -> Iterator[tuple[str, str]]:
    """The test Redis and this test's deployment, whose keys are deleted afterwards."""
    yield redis_url, deployment
    drop_keys(redis_url, deployment)


def drop_keys(url: str, deployment: str) -> None:
    """Delete every key of `deployment` on the Redis at `url`."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"interlock:{deployment}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, deployment: str) -> AsyncIterator[StateStore]:
    """A store of each kind, under this test's deployment."""
    if request.param == "memory":
        made: StateStore = MemoryStore(deployment=deployment, plugin="test")
    else:
        url, _ = request.getfixturevalue("shared")
        made = open_store(url, deployment=deployment, plugin="test")
    yield made
    await made.aclose()
