"""A drop-in plugin that contributes tools to the agent and uses a capability."""

from pathlib import Path

from interlock import Plugin


def list_dir(path: str = ".") -> list[str]:
    """List the entries of a directory."""
    return sorted(p.name for p in Path(path).iterdir())


def read_file(path: str, max_bytes: int = 4000) -> str:
    """Read the start of a text file."""
    return Path(path).read_text(errors="replace")[:max_bytes]


class Workspace(Plugin):
    name = "workspace"

    def on_post_tool_call(self, payload, ctx):
        if payload.is_error and ctx.system_items is not None:
            ctx.system_items.append("reminder", f"{payload.tool_name} failed: explain why")
