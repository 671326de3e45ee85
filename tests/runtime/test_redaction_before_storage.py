"""What content-policy redacts is never stored, shown or sent first: tool results, user
messages, system items and model errors are redacted before the runtime logs them, traces
them, returns them or puts them in the model's context."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from interlock import (
    ErrorEvent,
    HookContext,
    LLMRequest,
    LLMResponse,
    MessageEvent,
    Plugin,
    PluginManager,
    StreamChunk,
    ToolResult,
    hook,
)
from interlock.plugins.content_policy import ContentPolicy, ContentPolicyConfig
from interlock.runtime import (
    Agent,
    Record,
    SessionStore,
    Step,
    TraceEvent,
    TurnResult,
)

from ..plugins.helpers import Model

EMAIL = "alice.secret@example.com"
CARD = "4111 1111 1111 1111"
HIDDEN_EMAIL = "carol\u200b.jones\uff20example.org"  # a zero-width space inside, a full-width @
HIDDEN_CARD = "5555\u00a05555\u00a05555\u00a04444"  # no-break spaces
GITHUB_TOKEN = "ghp_" + "R8mZk2Qw7Lx4Tb9Vn3Yc6Hd1Jf5Gs0Ka7Ue2"  # built from pieces
SECRETS = ("alice", "carol", "4111", "5555", "R8mZk2Qw")  # no part of them may show


def lookup(name: str) -> str:
    """Look up a customer."""
    return f"customer {name}: {EMAIL}, card {CARD}; partner {HIDDEN_EMAIL}, {HIDDEN_CARD}"


def env(name: str) -> str:
    """Read an environment variable."""
    return f"{name}={GITHUB_TOKEN}"


class Rejecting(Model):
    """A model server that rejects every request, quoting it (as servers do)."""

    def __init__(self, quote: str) -> None:
        super().__init__([])
        self.quote = quote

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        raise RuntimeError(f"400: content {self.quote!r} rejected")

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk | LLMResponse]:
        self.requests.append(request)
        yield StreamChunk(self.model, 0, "partial ")
        raise RuntimeError(f"400: content {self.quote!r} rejected")


class ErrorWatcher(Plugin):
    """A plugin on `error`, keeping the payloads it is given."""

    name = "error-watcher"

    def __init__(self) -> None:
        self.seen: list[ErrorEvent] = []

    def on_error(self, event: ErrorEvent, ctx: HookContext) -> None:
        self.seen.append(event)


@dataclass
class Seen:
    """Everything a session let out: committed records, trace events, model requests."""

    records: list[Record]
    events: list[TraceEvent]
    requests: list[LLMRequest]
    results: list[TurnResult] = field(default_factory=list)
    errors: list[ErrorEvent] = field(default_factory=list)  # what `error` plugins got

    def texts(self) -> dict[str, str]:
        """Each place, as text a reader (or a search) would see."""
        return {
            "log": "\n".join(json.dumps(r.data, ensure_ascii=False) for r in self.records),
            "trace": "\n".join(f"{e.kind} {e.name} {e.detail!r}" for e in self.events),
            "model": "\n".join(m.content for r in self.requests for m in r.messages),
            "result": "\n".join(repr(r) for r in self.results),
            "error hook": "\n".join(repr(e) for e in self.errors),
        }

    def tool_results(self) -> list[dict[str, Any]]:
        return [dict(r.data) for r in self.records if r.kind == "tool_result"]


async def session(
    script: Sequence[Step | str],
    prompt: str,
    *,
    tools: Sequence[Callable[..., str]] = (lookup, env),
    config: ContentPolicyConfig | None = None,
    stream: bool = False,
    model: Model | None = None,
    plugins: Sequence[tuple[Any, dict[str, Any]]] = (),
) -> Seen:
    records: list[Record] = []
    events: list[TraceEvent] = []
    manager = PluginManager()
    manager.register(ContentPolicy(config))
    watcher = ErrorWatcher()
    manager.register(watcher)
    for plugin, options in plugins:
        manager.register(plugin, **options)
    model = Model(script) if model is None else model
    store = SessionStore(on_commit=records.append)  # every record, as it is committed
    agent = Agent(
        model, tools=list(tools), manager=manager, store=store, on_event=events.append,
        stream=stream,
    )  # fmt: skip
    async with agent.session("s-redact") as opened:
        result = await opened.send(prompt)
    return Seen(records, events, model.requests, [result], watcher.seen)


def assert_nothing_shows(seen: Seen) -> None:
    for place, text in seen.texts().items():
        # Timings in the log are floats whose digits may spell anything ("0.000204111").
        text = re.sub(r"\d+\.\d+(?:e[-+]?\d+)?", "<number>", text)
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} in the {place}"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_result_is_redacted_before_it_is_logged_traced_or_sent(stream: bool) -> None:
    script = [Step(tool_calls=(("lookup", {"name": "x"}),)), "done"]
    seen = await session(script, "find x", stream=stream)

    assert_nothing_shows(seen)
    [result] = seen.tool_results()
    assert result["output"] == "customer x: [email], card [card]; partner [email], [card]"
    assert result["is_error"] is False
    # the model saw the redacted result, and the tool did run
    [_, second] = seen.requests
    assert second.messages[-1].content == result["output"]
    tool_events = [e for e in seen.events if e.kind == "tool" and "result" in e.detail]
    assert [e.detail["result"].output for e in tool_events] == [result["output"]]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_result_holding_a_secret_is_withheld_naming_the_plugin(stream: bool) -> None:
    script = [Step(tool_calls=(("env", {"name": "TOKEN"}),)), "done"]
    seen = await session(script, "token?", stream=stream)

    assert_nothing_shows(seen)
    [result] = seen.tool_results()
    assert result["is_error"] is True
    assert result["output"] == (
        "the result of tool 'env' was withheld by plugin 'content-policy': "
        "content policy: it contains api_key x1"
    )
    assert seen.requests[-1].messages[-1].content == result["output"]


async def test_a_user_message_is_redacted_before_it_is_logged_traced_or_sent() -> None:
    seen = await session(["ok"], f"I am {HIDDEN_EMAIL}, card {CARD}", tools=())

    assert_nothing_shows(seen)
    [user] = [r.data for r in seen.records if r.kind == "user"]
    assert user["content"] == "I am [email], card [card]"
    assert seen.requests[0].messages[-1].content == "I am [email], card [card]"


async def test_without_post_tool_call_in_where_only_the_model_request_is_redacted() -> None:
    # The operator's choice, documented: the log then keeps the tool's output as it was.
    config = ContentPolicyConfig(where=["pre_llm_call"])
    script = [Step(tool_calls=(("lookup", {"name": "x"}),)), "done"]
    seen = await session(script, "find x", config=config)

    [result] = seen.tool_results()
    assert EMAIL in result["output"]
    assert "alice" not in seen.texts()["model"]


# -- model errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_a_model_error_quoting_the_request_is_redacted_everywhere(stream: bool) -> None:
    seen = await session([], "hi", model=Rejecting(f"mail {EMAIL}"), tools=(), stream=stream)

    assert_nothing_shows(seen)  # log, trace, model, the result's fields, `error` plugins
    [result] = seen.results
    assert result.stopped == "failed"
    assert result.reason == "model call failed: RuntimeError: 400: content 'mail [email]' rejected"
    assert result.reply == f"[error] {result.reason}"
    [error] = [r.data for r in seen.records if r.kind == "error"]
    assert error["message"] == "400: content 'mail [email]' rejected"
    assert [e.message for e in seen.errors] == [error["message"]]
    [reply] = [e for e in seen.events if e.kind == "reply"]
    assert reply.detail == {"text": result.reply, "reason": result.reason}


async def test_a_model_error_holding_a_secret_is_withheld_naming_the_plugin() -> None:
    seen = await session([], "hi", model=Rejecting(f"token {GITHUB_TOKEN}"), tools=())

    assert_nothing_shows(seen)
    [result] = seen.results
    assert (result.stopped, result.delivered, result.reply) == ("failed", False, "")
    assert result.reason == "content policy: it contains api_key x1"
    [error] = [r.data for r in seen.records if r.kind == "error"]
    assert error["message"] == (
        "[withheld by plugin 'content-policy': content policy: it contains api_key x1]"
    )
    assert [e.message for e in seen.errors] == [error["message"]]


# -- system items ----------------------------------------------------------------------------


@hook("post_tool_call")
def copy_to_context(result: ToolResult, ctx: HookContext) -> None:
    """Copies every tool output into a system item, as reminders copy todo lists."""
    assert ctx.system_items is not None
    ctx.system_items.append("seen", result.output)


def todo(items: list[str]) -> str:
    """Keep a todo list."""
    return "ok"


@hook("pre_tool_call")
def remind_todo(call: Any, ctx: HookContext) -> None:
    """Copies the model's todo list (tool arguments, which are never redacted) into an item."""
    assert ctx.system_items is not None
    ctx.system_items.append("todo", "; ".join(call.arguments["items"]))


@pytest.mark.parametrize("stream", [False, True])
async def test_a_system_item_is_redacted_before_it_is_logged_traced_or_sent(stream: bool) -> None:
    script = [Step(tool_calls=(("todo", {"items": [f"mail {HIDDEN_EMAIL}", CARD]}),)), "done"]
    granted = {"capabilities": ["system_items"]}
    seen = await session(
        script, "plan", tools=(todo,), stream=stream, plugins=[(remind_todo, granted)]
    )

    # The model's own tool call keeps its arguments (they are what the tool runs); only the
    # tool-call records and events hold them, so the search skips those.
    items = [dict(r.data) for r in seen.records if r.kind == "system_item"]
    assert items == [{"kind": "todo", "text": "mail [email]; [card]", "plugin": "remind_todo"}]
    assert ("system", "todo: mail [email]; [card]") in [
        (m.role, m.content) for m in seen.requests[-1].messages
    ]
    shown = [e.detail["text"] for e in seen.events if e.kind == "system_item"]
    assert shown == ["mail [email]; [card]"]
    judged = [r.data for r in seen.records if r.kind == "hook" and r.data["hook"] ==
              "message_received" and r.data["modified_by"] == ("content-policy",)]  # fmt: skip
    assert len(judged) == 1


async def test_a_system_item_holding_a_secret_is_withheld() -> None:
    script = [Step(tool_calls=(("env", {"name": "TOKEN"}),)), "done"]
    # Without post_tool_call in `where` the tool result keeps the token, and the plugin
    # copies it into an item: message_received judges the item and blocks it.
    config = ContentPolicyConfig(where=["message_received", "message_sending"])
    granted = {"capabilities": ["system_items"]}
    seen = await session(script, "token?", config=config, plugins=[(copy_to_context, granted)])

    [item] = [dict(r.data) for r in seen.records if r.kind == "system_item"]
    reason = "content policy: it contains api_key x1"
    assert item == {"kind": "seen", "plugin": "copy_to_context", "withheld": reason,
                    "text": f"[withheld by plugin 'content-policy': {reason}]"}  # fmt: skip
    assert all(m.role != "system" for r in seen.requests for m in r.messages)
    shown = [e.detail for e in seen.events if e.kind == "system_item"]
    assert shown == [{"text": item["text"], "plugin": "copy_to_context", "withheld": reason}]


async def test_an_item_appended_while_an_item_is_judged_is_refused_naming_the_plugin() -> None:
    @hook("message_received")
    def echo(event: MessageEvent, ctx: HookContext) -> None:  # would answer its own items
        assert ctx.system_items is not None
        ctx.system_items.append("echo", f"you said: {event.content}")

    granted = {"capabilities": ["system_items"]}
    seen = await session(["ok"], "hello", tools=(), plugins=[(echo, granted)])
    items = [r.data["text"] for r in seen.records if r.kind == "system_item"]
    assert items == ["you said: hello"]  # one item, no chain of echoes of echoes
    [refused] = [r.data for r in seen.records if r.kind == "error"]
    assert refused["plugin"] == "echo" and refused["stage"] == "message_received"
    assert "when={'role': 'user'}" in refused["message"]
