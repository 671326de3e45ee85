"""The `interlock` script's entry point.

Claude Code starts `interlock claude-hook` for every hook event, so that command is
answered without loading the rest of the command line (typer, rich: tens of milliseconds
per tool call); every other command goes to `interlock.cli`.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the `interlock` command line."""
    if sys.argv[1:2] == ["claude-hook"]:
        from interlock.adapters.claude_code import main as claude_hook

        sys.exit(claude_hook(sys.argv[2:]))
    from interlock.cli import main as cli

    cli()
