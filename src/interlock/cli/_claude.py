"""`interlock claude-hook`: a Claude Code command hook that runs interlock plugins.

The command's work is `interlock.adapters.claude_code.run`; the `interlock` script reaches
it without loading the rest of the command line (`interlock._console`), since Claude
Code starts it for every tool call.
"""

from __future__ import annotations

from pathlib import Path


def claude_hook(config: Path | None, state_dir: Path | None, deadline: float | None = None) -> int:
    """Answer one Claude Code hook event (stdin to stdout); the exit code."""
    from interlock.adapters.claude_code import run

    return run(config, state_dir, deadline)
