"""Shared helpers for the runtime tests."""

from __future__ import annotations

from typing import Any

from interlock import HookContext, Plugin, hooks


class Recorder(Plugin):
    """Records every hook it sees, in order, with the payload."""

    name = "recorder"

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def _recording(hook_name: str) -> Any:
    def handler(self: Recorder, payload: Any, ctx: HookContext) -> None:
        self.events.append((hook_name, payload))

    handler.__name__ = f"on_{hook_name}"
    return handler


for _spec in hooks.CATALOG:
    setattr(Recorder, f"on_{_spec.name}", _recording(_spec.name))
