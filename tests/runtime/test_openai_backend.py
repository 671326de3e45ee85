"""The OpenAI-compatible backend against a local server speaking the wire format."""

from __future__ import annotations

from typing import Any

import pytest

from interlock import LLMRequest, Message, PluginManager, StreamChunk, ToolCall, ToolSchema
from interlock.runtime import Agent, OpenAIBackend

from .chat_server import ChatServer, Reply
from .helpers import Recorder

TOOLS = (ToolSchema("shell", "Run it.", {"type": "object", "properties": {}}),)
REQUEST = LLMRequest(
    "local-model",
    (
        Message("system", "be brief"),
        Message("user", "hi"),
        Message("assistant", "", tool_calls=(ToolCall("shell", {"command": "ls"}, "c0"),)),
        Message("tool", "a.txt", name="shell", tool_call_id="c0"),
    ),
    TOOLS,
    {"temperature": 0, "stop": ["END"]},
)


async def test_complete_sends_the_request_and_reads_text_tool_calls_and_usage() -> None:
    reply = Reply("looking", [("shell", {"command": "cat a.txt"})], usage=(11, 4))
    with ChatServer([reply]) as server:
        response = await OpenAIBackend("local-model", base_url=server.url).complete(REQUEST)
    assert response.content == "looking"
    assert response.tool_calls == (ToolCall("shell", {"command": "cat a.txt"}, "call_0"),)
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 4)
    assert response.finish_reason == "tool_calls"
    [sent] = server.requests
    assert sent["model"] == "local-model" and sent["temperature"] == 0 and sent["stop"] == ["END"]
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "tool"]
    assert sent["messages"][2]["tool_calls"][0]["function"] == {
        "name": "shell",
        "arguments": '{"command": "ls"}',
    }
    assert sent["messages"][3]["tool_call_id"] == "c0"
    assert sent["tools"][0]["function"]["name"] == "shell"


async def test_stream_yields_chunks_then_the_assembled_response() -> None:
    reply = Reply("one two", [("shell", {"command": "ls -la"})], usage=(7, 2))
    with ChatServer([reply]) as server:
        items = [item async for item in OpenAIBackend("m", base_url=server.url).stream(REQUEST)]
    chunks = [i for i in items if isinstance(i, StreamChunk)]
    assert "".join(c.delta for c in chunks) == "one two "
    response = items[-1]
    assert response.tool_calls == (ToolCall("shell", {"command": "ls -la"}, "call_0"),)
    assert (response.usage.input_tokens, response.usage.output_tokens) == (7, 2)
    assert server.requests[0]["stream"] is True


@pytest.mark.parametrize("stream", [False, True])
async def test_an_agent_runs_on_it_end_to_end(stream: bool) -> None:
    ran: list[str] = []

    def shell(command: str) -> str:
        """Run a shell command."""
        ran.append(command)
        return "a.txt"

    replies = [Reply(tool_calls=[("shell", {"command": "ls"})]), Reply("There is a.txt.")]
    manager = PluginManager()
    recorder = Recorder()
    manager.register(recorder)
    with ChatServer(replies) as server:
        agent = Agent(OpenAIBackend("m", base_url=server.url), tools=[shell],
                      manager=manager, stream=stream)  # fmt: skip
        result = await agent.run("what is here?")
    assert ran == ["ls"]
    assert result.reply.strip() == "There is a.txt."
    assert ("llm_stream_chunk" in recorder.names()) is stream
    second = server.requests[1]["messages"]
    assert second[-1] == {
        "role": "tool",
        "content": "a.txt",
        "name": "shell",
        "tool_call_id": "call_0",
    }


def test_a_key_or_a_local_url_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="no API key: set OPENAI_API_KEY"):
        OpenAIBackend("gpt-4o-mini")
    assert OpenAIBackend("m", base_url="http://127.0.0.1:9/v1").model == "m"


def test_unparseable_tool_arguments_are_kept_for_the_tool_to_refuse() -> None:
    from interlock.runtime.backends._openai import _tool_call

    call: Any = _tool_call("c1", "shell", "{not json")
    assert call.arguments == {"_unparsed_arguments": "{not json"}
