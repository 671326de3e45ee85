"""`open_store`: a store from its URL."""

from __future__ import annotations

from ._base import StateStore
from ._memory import MemoryStore
from ._url import MEMORY, check_url


def open_store(url: str, *, deployment: str = "default", plugin: str = "") -> StateStore:
    """The store `url` names, its keys under `interlock:{deployment}:{plugin}:`.

    `memory` is this process's own; `redis://`, `rediss://` (TLS) and `unix://` URLs
    name a Redis (the `redis` extra). Nothing connects until the store is used.

        store = open_store("redis://127.0.0.1:6379/0", deployment="prod", plugin="rate-limit")

    Raises `ValueError` for a URL that names no store, `StoreError` when the client for it
    is not installed.
    """
    check_url(url)
    if url == MEMORY:
        return MemoryStore(deployment=deployment, plugin=plugin)
    from ._redis import RedisStore

    return RedisStore(url, deployment=deployment, plugin=plugin)
