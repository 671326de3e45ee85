"""A drop-in plugin: a gate on shell commands, configured with glob patterns."""

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
