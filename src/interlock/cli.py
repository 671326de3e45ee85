"""The `interlock` command line (the outermost layer: it only uses the public API)."""

from __future__ import annotations

import typer

import interlock

app = typer.Typer(
    help="interlock: typed, capability-safe hooks and plugins for LLM agents.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def demo() -> None:
    """Run a short offline demo: plugins on every hook of one scripted agent turn."""
    from ._demo import main as run_demo

    run_demo()


@app.command()
def version() -> None:
    """Print the interlock version."""
    typer.echo(interlock.__version__)


def main() -> None:
    """Entry point of the `interlock` console script."""
    app()
