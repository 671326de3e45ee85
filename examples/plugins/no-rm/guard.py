"""A drop-in plugin: glob patterns on a file tool's command text.

A demonstration of the drop-in mechanism, not a shell guard: text patterns are easy to
spell around. Shell commands are for the built-in tool-guard, which parses them.
"""

from fnmatch import fnmatch

from pydantic import BaseModel

from interlock import Block, Plugin


class Config(BaseModel):
    deny: list[str] = ["rm -rf *"]


class NoRm(Plugin):
    name = "no-rm"
    config_model = Config

    def __init__(self, config: Config) -> None:
        self.deny = config.deny

    def on_pre_tool_call(self, payload, ctx):
        command = str(payload.arguments.get("command", ""))
        for pattern in self.deny:
            if fnmatch(command, pattern):
                return Block(f"the command matches the deny pattern {pattern!r}")
        return None
