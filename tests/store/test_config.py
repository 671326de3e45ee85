"""interlock.yaml's `store:` and `deployment:`: which plugins get which store."""

from __future__ import annotations

import pytest

from interlock import ConfigError
from interlock.config import load_config_text
from interlock.plugins.rate_limit import RateLimit
from interlock.plugins.token_budget import TokenBudget
from interlock.store import MemoryStore


def test_the_files_store_goes_to_each_plugin_in_its_own_namespace_unless_overridden() -> None:
    pytest.importorskip("redis", reason="needs pip install 'interlock[redis]'")
    manager = load_config_text("""
store: redis://:${PASSWORD:-s3cret}@cache.internal:6379/0
deployment: prod
plugins:
  - {name: rate-limit, use: rate-limit}
  - {name: budget, use: token-budget, store: memory}
""")
    stores = {type(p).__name__: p.store for p in _objects(manager) if hasattr(p, "store")}
    limit, budget = stores["RateLimit"], stores["TokenBudget"]
    assert limit.prefix == "interlock:prod:rate-limit:"
    assert limit.describe() == "redis://***@cache.internal:6379/0"
    assert isinstance(budget, MemoryStore)


def test_a_store_on_a_plugin_without_shared_state_or_a_bad_url_is_a_problem() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config_text("""
store: http://cache.internal
plugins:
  - {name: guard, use: tool-guard, store: memory}
""")
    text = str(raised.value)
    assert "a store is 'memory' or a URL redis://host:port/db" in text
    assert (
        "'tool-guard' keeps no shared state (its constructor takes no store): remove "
        "store: from this entry" in text
    )


def _objects(manager: object) -> list[object]:
    return [o for h in manager._handles.values() for o in h.objects]  # type: ignore[attr-defined]


def test_without_a_store_the_built_ins_keep_state_in_memory() -> None:
    manager = load_config_text("plugins: [{name: rate-limit, use: rate-limit}]")
    [limit] = [o for o in _objects(manager) if isinstance(o, RateLimit | TokenBudget)]
    assert isinstance(limit.store, MemoryStore)


def test_a_store_on_an_external_entry_or_with_a_bad_port_and_endless_windows_are_problems() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config_text("""
plugins:
  - name: ext
    store: redis://127.0.0.1:6379/0
    external: {command: ["true"], hooks: [pre_tool_call]}
  - {name: off, use: rate-limit, enabled: false, store: "redis://:s3cret@cache:notaport/0"}
  - name: limits
    use: rate-limit
    config: {tools: {shell: {calls: 1, per: .inf}}}
""")
    text = str(raised.value)
    assert (
        "an external plugin keeps its own state (interlock hands it no store): remove "
        "store: from this entry" in text
    )
    assert "the store URL 'redis://***@cache:notaport/0' has a port that is not a number" in text
    assert "a duration must be a finite number of seconds more than zero, got inf" in text
    assert "s3cret" not in text
