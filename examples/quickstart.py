"""The README's quickstart: three small plugins on a tool-call gate and a chat message."""

import re

from interlock import Block, MessageEvent, Modify, PluginManager, ToolCall, hook, hooks


@hook("pre_tool_call", when={"tool_name": "shell"})
def no_rm(payload, ctx):
    if "rm -rf" in payload.arguments.get("command", ""):
        return Block("destructive shell command")


@hook("message_received")
def redact_email(payload, ctx):
    text = re.sub(r"[\w.+-]+@[\w-]+\.[\w.]+", "[email]", payload.content)
    if text != payload.content:
        return Modify(payload.replace(content=text))


@hook("pre_tool_call", priority=-10)
def audit(payload, ctx):
    print(f"  audit: {payload.tool_name} {dict(payload.arguments)}")


manager = PluginManager()
for plugin in (no_rm, redact_email, audit):
    manager.register(plugin)

for call in (ToolCall("shell", {"command": "ls"}), ToolCall("shell", {"command": "rm -rf /"})):
    result = manager.invoke_sync(hooks.PRE_TOOL_CALL, call)
    print(f"{call.arguments['command']!r}: blocked={result.blocked} reason={result.reason}")

result = manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("mail me at ada@example.com"))
print(f"message: {result.payload.content!r} (modified by {', '.join(result.modified_by)})")
