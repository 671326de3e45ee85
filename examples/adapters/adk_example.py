"""interlock plugins governing a Google ADK agent, offline (a scripted `BaseLlm`).

    python examples/adapters/adk_example.py

The model asks to run `rm -rf /tmp/cache`; tool-guard refuses it and the model reads why
(the tool's result is `{"error": reason}`). content-policy redacts the e-mail address in
the user's message before the model, or the ADK session, ever holds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from google.adk.agents import LlmAgent
from google.adk.apps import App
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

from interlock import PluginManager
from interlock.adapters.adk import InterlockPlugin
from interlock.plugins.content_policy import ContentPolicy
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig


class Scripted(BaseLlm):
    """Asks for the shell once, then reports what the tool said (offline, no API key)."""

    model: str = "scripted"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        last = llm_request.contents[-1].parts or []
        answered = [p.function_response for p in last if p.function_response is not None]
        if not answered:
            print("model read:", last[0].text)
            call = types.FunctionCall(name="shell", args={"command": "rm -rf /tmp/cache"})
            parts = [types.Part(function_call=call)]
        else:
            said = (answered[0].response or {}).get("error")
            parts = [types.Part(text=f"the tool said: {said}")]
        usage = types.GenerateContentResponseUsageMetadata(
            prompt_token_count=10, candidates_token_count=5
        )
        yield LlmResponse(content=types.Content(role="model", parts=parts), usage_metadata=usage)


def shell(command: str) -> str:
    """Run a shell command."""
    raise AssertionError("tool-guard lets no destructive command through")


manager = PluginManager()
manager.register(ToolGuard(ToolGuardConfig(destructive="deny")))
manager.register(ContentPolicy())

agent = LlmAgent(name="assistant", model=Scripted(), tools=[shell], instruction="Be brief.")
app = App(name="example", root_agent=agent, plugins=[InterlockPlugin(manager)])


async def main() -> None:
    runner = Runner(app=app, session_service=InMemorySessionService(), auto_create_session=True)
    message = types.Content(
        role="user",
        parts=[types.Part(text="clear the cache, then mail me at jane.doe@example.com")],
    )
    async for event in runner.run_async(user_id="me", session_id="s1", new_message=message):
        if event.is_final_response() and event.content and event.content.parts:
            print("answer:", event.content.parts[0].text)
    await runner.close()  # ends the interlock sessions too
    await manager.aclose()


if __name__ == "__main__":
    asyncio.run(main())
