"""State that plugins share across processes: budgets, rate-limit windows, plugin state.

One small interface, `StateStore`, with two implementations: `MemoryStore` (this process
only; the default) and a Redis store for a fleet (`open_store("redis://...")`, the
`redis` extra). A plugin gets a store only when it is given one (by the host, or by the
config loader from interlock.yaml's `store:`), bound to the plugin's own namespace.

    store = open_store("redis://127.0.0.1:6379/0", deployment="prod", plugin="rate-limit")
    admission = await store.admit([Window("calls", limit=10, per=60.0)], member=call_id)

Importing this package loads no client library.
"""

from ._base import (
    Admission,
    Balance,
    Claim,
    Reservation,
    StateStore,
    StoreError,
    StoreUnavailable,
    Window,
    key,
    namespace,
)
from ._memory import MemoryStore
from ._open import open_store
from ._url import check_url, redacted

__all__ = [
    "Admission",
    "Balance",
    "Claim",
    "MemoryStore",
    "Reservation",
    "StateStore",
    "StoreError",
    "StoreUnavailable",
    "Window",
    "check_url",
    "key",
    "namespace",
    "open_store",
    "redacted",
]
