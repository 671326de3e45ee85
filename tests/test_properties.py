"""Property tests: ordering and chaining invariants of the modify chain, against a model."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from interlock import Block, MessageEvent, Modify, PluginManager, hooks

# "gate" blocks what it sees once something was appended: a gate that ran before an
# appender must be asked again about the final payload (gates judge the final payload).
ACTIONS = ("append", "continue", "block", "gate", "raise", "wrong")


@dataclass(frozen=True)
class Spec:
    action: str
    priority: int
    mode: str


specs = st.lists(
    st.builds(
        Spec,
        action=st.sampled_from(ACTIONS),
        priority=st.integers(-3, 3),
        mode=st.sampled_from(["enforce", "permissive", "disabled"]),
    ),
    max_size=12,
)


def build(handlers: list[Spec]) -> PluginManager:
    manager = PluginManager()
    for index, spec in enumerate(handlers):
        name = f"h{index}"

        def handler(payload: MessageEvent, ctx: Any, spec: Spec = spec, name: str = name) -> Any:
            if spec.action == "append":
                return Modify(payload.replace(content=f"{payload.content}<{name}>"))
            if spec.action == "block" or (spec.action == "gate" and payload.content):
                return Block(name)
            if spec.action == "raise":
                raise RuntimeError(name)
            if spec.action == "wrong":
                return Modify(payload.replace(channel="other"))  # channel is not writable
            return None

        manager.register(handler, hook="message_received", name=name, priority=spec.priority,
                         mode=spec.mode)  # fmt: skip
    return manager


def model(handlers: list[Spec]) -> dict[str, Any]:
    """What the chain must do, computed the obvious way."""
    order = sorted(range(len(handlers)), key=lambda i: (handlers[i].priority, i))
    content, modified, errors, violations, blocked_by = "", [], [], [], None
    unjudged = []  # gates that saw no appended text, in order
    for i in order:
        spec, name = handlers[i], f"h{i}"
        if spec.mode == "disabled":
            continue
        if spec.action == "append":
            content += f"<{name}>"
            modified.append(name)
        elif spec.action in ("raise", "wrong"):
            errors.append(name)
        elif spec.action == "gate" and not content:
            unjudged.append(i)
        elif spec.action in ("block", "gate"):
            if spec.mode == "permissive":
                violations.append(name)
            else:
                blocked_by = name
                break
    if blocked_by is None and modified:
        last = max(order.index(int(name[1:])) for name in modified)
        for i in (i for i in unjudged if order.index(i) < last):
            if handlers[i].mode == "permissive":
                violations.append(f"h{i}")
            else:
                blocked_by = f"h{i}"
                break
    return {
        "content": content,
        "modified_by": tuple(modified),
        "errors": errors,
        "violations": violations,
        "blocked_by": blocked_by,
    }


def observed(result: Any) -> dict[str, Any]:
    return {
        "content": (result.payload or MessageEvent("")).content,
        "modified_by": result.modified_by,
        "errors": [f.plugin for f in result.errors],
        "violations": [v.plugin for v in result.violations],
        "blocked_by": result.blocked_by,
    }


@settings(max_examples=150, deadline=None)
@given(specs)
def test_the_chain_matches_the_model(handlers: list[Spec]) -> None:
    manager = build(handlers)
    expected = model(handlers)
    assert observed(manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent(""))) == expected
    result = asyncio.run(manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("")))
    assert observed(result) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-5, 5), max_size=15))
def test_call_order_is_priority_then_registration_order(priorities: list[int]) -> None:
    manager = PluginManager()
    order: list[int] = []
    for index, priority in enumerate(priorities):
        manager.register(
            lambda p, c, index=index: order.append(index),
            hook="message_received",
            name=f"h{index}",
            priority=priority,
        )
    manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent(""))
    assert order == sorted(range(len(priorities)), key=lambda i: (priorities[i], i))
