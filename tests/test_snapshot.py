"""Copy-on-write registration: an invocation runs the snapshot it started with."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from interlock import MessageEvent, PluginManager, hooks


async def test_registration_during_an_invocation_is_not_seen_by_it(
    manager: PluginManager,
) -> None:
    entered = asyncio.Event()
    proceed = asyncio.Event()
    calls: list[str] = []

    async def first(payload: Any, ctx: Any) -> None:
        calls.append("first")
        entered.set()
        await proceed.wait()

    def late(payload: Any, ctx: Any) -> None:
        calls.append("late")

    def doomed(payload: Any, ctx: Any) -> None:
        calls.append("doomed")

    manager.register(first, hook="message_received", priority=0)
    manager.register(doomed, hook="message_received", priority=2)
    running = asyncio.ensure_future(manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x")))
    await entered.wait()
    manager.register(late, hook="message_received", priority=1)
    manager.unregister("doomed")
    proceed.set()
    await running
    assert calls == ["first", "doomed"]  # the snapshot from when the invocation began

    calls.clear()
    entered.clear()
    await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert calls == ["first", "late"]


def test_registering_from_threads_while_invoking(manager: PluginManager) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def registrar(index: int) -> None:
        try:
            barrier.wait()
            for i in range(50):
                manager.register(lambda p, c: None, hook="message_received", name=f"t{index}-{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def invoker() -> None:
        try:
            barrier.wait()
            for _ in range(200):
                manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=registrar, args=(i,)) for i in range(3)]
    threads.append(threading.Thread(target=invoker))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(manager.registrations()) == 150
    assert len({r.plugin for r in manager.registrations()}) == 150
