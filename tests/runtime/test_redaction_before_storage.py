"""What content-policy redacts is never stored, shown or sent first: tool results and user
messages are redacted before the runtime logs them, traces them or puts them in the
model's context."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from interlock import LLMRequest, LLMResponse, PluginManager
from interlock.plugins.content_policy import ContentPolicy, ContentPolicyConfig
from interlock.runtime import Agent, Record, ScriptedBackend, SessionStore, Step, TraceEvent

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


class Model(ScriptedBackend):
    """The scripted model, remembering every request it was sent."""

    def __init__(self, script: Iterable[Step | str]) -> None:
        super().__init__(script)
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        return await super().complete(request)


@dataclass
class Seen:
    """Everything a session let out: committed records, trace events, model requests."""

    records: list[Record]
    events: list[TraceEvent]
    requests: list[LLMRequest]

    def texts(self) -> dict[str, str]:
        """Each place, as text a reader (or a search) would see."""
        return {
            "log": "\n".join(json.dumps(r.data, ensure_ascii=False) for r in self.records),
            "trace": "\n".join(f"{e.kind} {e.name} {e.detail!r}" for e in self.events),
            "model": "\n".join(m.content for r in self.requests for m in r.messages),
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
) -> Seen:
    records: list[Record] = []
    events: list[TraceEvent] = []
    manager = PluginManager()
    manager.register(ContentPolicy(config))
    model = Model(script)
    store = SessionStore(on_commit=records.append)  # every record, as it is committed
    agent = Agent(
        model, tools=list(tools), manager=manager, store=store, on_event=events.append,
        stream=stream,
    )  # fmt: skip
    async with agent.session("s-redact") as opened:
        await opened.send(prompt)
    return Seen(records, events, model.requests)


def assert_nothing_shows(seen: Seen) -> None:
    for place, text in seen.texts().items():
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
