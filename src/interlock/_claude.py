"""Claude Code's hook shapes, both ways: shared by command hooks (interlock running Claude
Code hook scripts, `interlock.external.command`) and the Claude adapters (Claude Code and
the Claude Agent SDK running interlock plugins, `interlock.adapters.claude_code`).

Only names and shapes live here; nothing is imported but the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

CLAUDE_EVENTS = {
    "pre_tool_call": "PreToolUse",
    "post_tool_call": "PostToolUse",
    "message_received": "UserPromptSubmit",
    "session_start": "SessionStart",
    "session_end": "SessionEnd",
    "turn_end": "Stop",
}
"""The Claude Code event name each interlock hook is announced as."""

HOOKS_BY_EVENT = {
    **{event: hook for hook, event in CLAUDE_EVENTS.items()},
    "PostToolUseFailure": "post_tool_call",  # a failed tool: its result, `is_error`
}
"""The interlock hook each Claude Code event fires."""

CONTEXT_KIND = "context"
"""The system item kind of what a command adds to the model's context: Claude Code's
`additionalContext`, and the plain output of the hooks in `CONTEXT_HOOKS`."""

CONTEXT_HOOKS = frozenset({"message_received", "session_start"})
"""Hooks whose commands' plain output (exit 0) is model context, as Claude Code treats the
plain stdout of UserPromptSubmit and SessionStart hooks."""


def tool_response(output: str, *, is_error: bool = False) -> dict[str, Any]:
    """A tool's output in the shape of Claude Code's Bash tool response, the one hook
    scripts read (`tool_response.stdout`): a failed tool's output is its `stderr`."""
    return {
        "stdout": "" if is_error else output,
        "stderr": output if is_error else "",
        "interrupted": False,
        "isImage": False,
    }


def response_text(response: object) -> str:
    """A Claude Code `tool_response` as the text interlock's `ToolResult.output` holds:
    a Bash response's stdout (and stderr after it), text as it is, anything else as JSON."""
    if isinstance(response, str):
        return response
    if isinstance(response, Mapping) and isinstance(response.get("stdout"), str):
        out, err = response["stdout"], response.get("stderr") or ""
        return f"{out}\n{err}" if out and err else out or str(err)
    if response is None:
        return ""
    return json.dumps(response, ensure_ascii=False, default=str)


def updated_response(original: object, output: str) -> Any:
    """The `tool_response` carrying `output` in place of `original`, in the original's
    shape (Claude Code rejects a replacement whose shape does not match the tool's): a
    Bash response with `output` as its stdout, text as text, JSON as the JSON it holds."""
    if isinstance(original, Mapping) and isinstance(original.get("stdout"), str):
        return {**original, "stdout": output, "stderr": ""}
    if isinstance(original, str) or original is None:
        return output
    try:
        return json.loads(output)
    except ValueError:
        return output
