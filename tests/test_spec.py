from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from interlock import (
    Ask,
    Block,
    HookSpec,
    Modify,
    PluginManager,
    Respond,
    SpecError,
    UnknownHookError,
    hooks,
)

# The catalog as DESIGN.md's table states it: kind, accepted actions, capabilities, aliases.
TABLE = {
    "session_start": ("observe", set(), {"system_items", "notify", "stats"}, ("on_session_start",)),
    # + stats: a read-only capability added for reports and profilers (not in DESIGN.md)
    "session_end": ("observe", set(), {"notify", "stats"}, ("on_session_end",)),
    "message_received": ("modify", {Modify, Block}, {"system_items", "notify"}, ()),
    "message_sending": ("modify", {Modify, Block}, {"notify"}, ()),
    "pre_llm_call": (
        "modify",
        {Modify, Block, Respond},
        {"system_items", "notify"},
        ("llm_input",),
    ),
    "post_llm_call": ("modify", {Modify, Block}, {"system_items", "notify"}, ("llm_output",)),
    "llm_stream_chunk": ("modify", {Modify, Block}, set(), ()),
    "pre_tool_call": (
        "modify",
        {Modify, Block, Ask},
        {"system_items", "notify"},
        ("before_tool_call",),
    ),
    "post_tool_call": ("modify", {Modify, Block}, {"system_items", "notify"}, ("after_tool_call",)),
    "turn_end": ("observe", set(), {"system_items", "notify", "stats"}, ()),
    "error": ("observe", set(), {"notify"}, ()),
}


def test_catalog_matches_the_design_table() -> None:
    assert [spec.name for spec in hooks.CATALOG] == list(TABLE)
    for spec in hooks.CATALOG:
        kind, accepts, capabilities, aliases = TABLE[spec.name]
        assert (spec.kind, set(spec.accepts), set(spec.capabilities), spec.aliases) == (
            kind,
            accepts,
            capabilities,
            aliases,
        ), spec.name


def test_only_the_stream_filter_and_the_tool_gate_fail_closed_by_default() -> None:
    # A failing stream filter stops the display rather than show what it would hide.
    closed = [spec.name for spec in hooks.CATALOG if spec.on_error == "block"]
    assert closed == ["llm_stream_chunk", "pre_tool_call"]


def test_get_resolves_names_and_aliases() -> None:
    assert hooks.get("before_tool_call") is hooks.PRE_TOOL_CALL
    assert hooks.get("llm_output") is hooks.POST_LLM_CALL
    with pytest.raises(UnknownHookError, match="did you mean 'pre_tool_call'"):
        hooks.get("pre_tool_cal")


@dataclass(frozen=True)
class Compiled:
    source: str
    target: str = "py"


def test_spec_validation() -> None:
    with pytest.raises(SpecError, match="identifier"):
        HookSpec("not a name", Compiled)
    with pytest.raises(SpecError, match="kind must be"):
        HookSpec("x", Compiled, kind="sometimes")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="observe hooks accept no actions"):
        HookSpec("x", Compiled, accepts={Block})
    with pytest.raises(SpecError, match="needs a response_type"):
        HookSpec("x", Compiled, kind="modify", accepts={Respond})
    with pytest.raises(SpecError, match="are not actions"):
        HookSpec("x", Compiled, kind="modify", accepts={int})
    with pytest.raises(SpecError, match="writable fields nope are not fields of Compiled"):
        HookSpec("x", Compiled, kind="modify", accepts={Modify}, writable={"nope"})
    with pytest.raises(SpecError, match="need a dataclass payload"):
        HookSpec("x", dict, kind="modify", accepts={Modify}, writable={"a"})


def test_declare_refuses_name_clashes() -> None:
    manager = PluginManager()
    with pytest.raises(SpecError, match="already declared by hook 'pre_tool_call'"):
        manager.declare(HookSpec("pre_tool_call", Compiled))
    with pytest.raises(SpecError, match="already declared"):
        manager.declare(HookSpec("fresh", Compiled, aliases=("llm_input",)))


async def test_a_host_declares_and_uses_its_own_hook_point() -> None:
    on_compile: HookSpec[Compiled] = HookSpec(
        "on_compile",
        Compiled,
        kind="modify",
        accepts={Modify, Block},
        writable={"source"},
        aliases=("compile",),
    )
    manager = PluginManager(specs=[on_compile])

    def strip(payload: Compiled, ctx: Any) -> Modify[Compiled]:
        return Modify(Compiled(payload.source.strip(), payload.target))

    def retarget(payload: Compiled, ctx: Any) -> Modify[Compiled]:
        return Modify(Compiled(payload.source, "js"))

    manager.register(strip, hook="compile")
    manager.register(retarget, hook=on_compile)
    assert manager.has(on_compile) and manager.has("on_compile") and manager.has("compile")

    result = await manager.invoke(on_compile, Compiled("  x = 1  "))
    assert result.payload == Compiled("x = 1")
    assert result.modified_by == ("strip",)
    [failure] = result.errors
    assert failure.plugin == "retarget"
    assert failure.kind == "invalid_action"
    assert "changed field 'target'" in failure.message
    assert manager.spec("compile") is on_compile
    assert on_compile in manager.specs()


def test_unknown_hook_at_invoke_is_an_error() -> None:
    manager = PluginManager()
    with pytest.raises(UnknownHookError, match="did you mean 'turn_end'"):
        manager.invoke_sync("turn_ends", object())
