"""Plugins the config tests name by import path (tests.config.plugins_for_tests:...)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from interlock import Block, Plugin, hook

STARTED: list[str] = []


class GuardConfig(BaseModel):
    deny: list[str]
    strict: bool = False


class Guard(Plugin):
    """A plugin with a config model."""

    name = "guard"
    config_model = GuardConfig

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        STARTED.append("guard")

    def on_pre_tool_call(self, payload: Any, ctx: Any) -> Block | None:
        command = str(payload.arguments.get("command", ""))
        return Block("denied") if command in self.config.deny else None


class Counter(Plugin):
    """A plugin configured by keyword arguments."""

    name = "counter"

    def __init__(self, start: int = 0) -> None:
        self.count = start

    def on_turn_end(self, payload: Any, ctx: Any) -> None:
        self.count += 1


class Broken(Plugin):
    def __init__(self) -> None:
        raise RuntimeError("cannot reach the policy server")

    def on_turn_end(self, payload: Any, ctx: Any) -> None:
        return None


@hook("message_received")
def shout(payload: Any, ctx: Any) -> None:
    return None


def one_argument(payload: Any) -> None:
    return None


def check_config(payload: Any, ctx: Any) -> None:
    """Reads ctx.config (a plain function's config)."""
    STARTED.append(f"config={dict(ctx.config)}")


class NeedsKey:
    """A plugin whose constructor echoes its (secret) argument in its error."""

    def __init__(self, api_key: str) -> None:
        raise ValueError(f"invalid api key {api_key!r}")


@hook("message_received")
def first(payload: Any, ctx: Any) -> None:
    ORDER.append("first")


@hook("message_received")
def second(payload: Any, ctx: Any) -> None:
    ORDER.append("second")


ORDER: list[str] = []
