"""The `interlock` command line: the outermost layer, built on the public API only."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

import interlock

app = typer.Typer(
    help="interlock: typed, capability-safe hooks and plugins for LLM agents.",
    no_args_is_help=True,
    add_completion=False,
)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="INTERLOCK_DATA_DIR",
        help="Where session logs live [default: ~/.local/share/interlock].",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead.")]


def _data_dir(value: Path | None) -> Path:
    from interlock.runtime import default_data_dir

    return value if value is not None else default_data_dir()


@app.command()
def demo(data_dir: DataDir = None) -> None:
    """Run a short offline agent session with example plugins, tracing every hook."""
    from ._demo import run

    console = Console()
    console.print("[bold]interlock demo[/]: a scripted agent, four plugins, every hook traced")
    directory = _data_dir(data_dir)
    session_id = asyncio.run(run(console, directory))
    console.print(
        f"\nSession log: {escape(str(directory / 'sessions.db'))}\n"
        f"Show it with: [bold]interlock log {session_id}[/]",
        highlight=False,
    )


@app.command()
def run(
    prompt: Annotated[str, typer.Argument(help="The user message.")],
    model: Annotated[
        str,
        typer.Option(help="scripted | scripted:SCRIPT.json | openai:MODEL", show_default=True),
    ] = "scripted",
    base_url: Annotated[
        str | None, typer.Option(help="An OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1")
    ] = None,
    session: Annotated[str | None, typer.Option(help="Continue this session id.")] = None,
    system: Annotated[str, typer.Option(help="The system prompt.")] = "",
    stream: Annotated[bool, typer.Option(help="Stream the model's answer.")] = False,
    trace: Annotated[bool, typer.Option(help="Trace every hook as it fires.")] = True,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Run the agent on one message and print its reply."""
    from interlock.runtime import Agent, SessionStore

    from ._trace import Trace

    console = Console(stderr=as_json)
    store = SessionStore(_data_dir(data_dir) / "sessions.db")
    agent = Agent(
        _backend(model, base_url),
        system_prompt=system,
        store=store,
        stream=stream,
        on_event=Trace(console) if trace else None,
    )
    result = asyncio.run(agent.run(prompt, session_id=session))
    store.close()
    if as_json:
        typer.echo(json.dumps({
            "turn": result.turn, "reply": result.reply, "delivered": result.delivered,
            "stopped": result.stopped, "reason": result.reason, "tool_calls": result.tool_calls,
            "usage": {"input_tokens": result.usage.input_tokens,
                      "output_tokens": result.usage.output_tokens},
        }))  # fmt: skip
    elif result.delivered:
        typer.echo(result.reply)
    else:
        console.print(f"[red]not delivered[/]: {escape(str(result.reason))}")
    if result.stopped in ("failed", "blocked") or not result.delivered:
        raise typer.Exit(1)


@app.command()
def log(
    session_id: Annotated[str | None, typer.Argument(help="Show this session's records.")] = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """List sessions, or show one session's log (system items marked)."""
    from interlock.runtime import SessionStore

    path = _data_dir(data_dir) / "sessions.db"
    if not path.exists():
        typer.echo(f"no session log at {path} yet; run `interlock demo` or `interlock run`")
        raise typer.Exit(1 if session_id else 0)
    store = SessionStore(path)
    try:
        if session_id is None:
            _list_sessions(store, as_json)
        elif not store.has_session(session_id):
            typer.echo(f"no session {session_id!r} in {path}; `interlock log` lists them", err=True)
            raise typer.Exit(1)
        else:
            _show_session(store, session_id, as_json)
    finally:
        store.close()


@app.command()
def version() -> None:
    """Print the interlock version."""
    typer.echo(interlock.__version__)


def main() -> None:
    """Entry point of the `interlock` console script."""
    app()


def _backend(model: str, base_url: str | None) -> Any:
    from interlock.runtime import OpenAIBackend, ScriptedBackend

    kind, _, name = model.partition(":")
    try:
        if kind == "scripted":
            return ScriptedBackend.from_file(name) if name else ScriptedBackend()
        if kind == "openai" and name:
            return OpenAIBackend(name, base_url=base_url)
    except (ValueError, ImportError) as error:
        raise typer.BadParameter(str(error), param_hint="--model") from None
    raise typer.BadParameter(
        f"{model!r}: use scripted, scripted:SCRIPT.json or openai:MODEL", param_hint="--model"
    )


def _list_sessions(store: Any, as_json: bool) -> None:
    from rich.table import Table

    sessions = store.sessions()
    if as_json:
        typer.echo(json.dumps([s.__dict__ | {"tags": list(s.tags)} for s in sessions]))
        return
    table = Table("session", "started", "turns", "records", "tags", "ended")
    for s in sessions:
        ended = s.end_reason or ("open" if s.ended is None else "")
        table.add_row(
            s.id, _when(s.created), str(s.turns), str(s.records), ", ".join(s.tags), ended
        )
    Console().print(table)


def _show_session(store: Any, session_id: str, as_json: bool) -> None:
    records = store.records(session_id)
    if as_json:
        for r in records:
            typer.echo(json.dumps({"seq": r.seq, "turn": r.turn, "kind": r.kind,
                                   "created": r.created, "data": r.data}))  # fmt: skip
        return
    console = Console()
    for r in records:
        console.print(_describe(r), highlight=False)


def _describe(record: Any) -> str:
    data, kind = record.data, record.kind
    head = f"[dim]{record.seq:>4} t{record.turn or 0}[/] "
    return head + _DESCRIBE.get(kind, _describe_other)(data, kind)


def _describe_system_item(data: Any, kind: str) -> str:
    label, plugin = escape(f"[{data['kind']}]"), escape(data["plugin"])
    return f"[magenta bold]SYSTEM ITEM[/] {label} from {plugin}: {escape(data['text'])}"


def _describe_message(data: Any, kind: str) -> str:
    text = data.get("content")
    if text is None:
        return f"[bold]{kind}[/] [red](blocked by {escape(str(data.get('blocked_by')))})[/]"
    label = {"user": "user", "delivered": "reply"}[kind]
    return f"[bold]{label}[/] {escape(text)}"


def _describe_assistant(data: Any, kind: str) -> str:
    calls = [f"{c['tool_name']}({_arguments(c['arguments'])})" for c in data["tool_calls"]]
    said = escape(data["content"]) if data["content"] else ""
    asks = f"[blue]asks for[/] {escape(', '.join(calls))}" if calls else ""
    return f"[bold]assistant[/] {said}{' ' if said and asks else ''}{asks}"


def _describe_tool(data: Any, kind: str) -> str:
    if kind == "tool_call":
        refused = f" [red]refused: {escape(data['refused'])}[/]" if data["refused"] else ""
        call = escape(f"{data['tool_name']}({_arguments(data['arguments'])})")
        return f"[bold]tool call[/] {call}{refused}"
    colour = "red" if data["is_error"] else "green"
    return f"[{colour}]tool result[/] {escape(data['tool_name'])}: {escape(data['output'])}"


def _describe_hook(data: Any, kind: str) -> str:
    return f"[yellow]hook {escape(data['hook'])}[/] {escape(_hook_summary(data))}"


def _describe_other(data: Any, kind: str) -> str:
    return f"[bold]{kind}[/] {escape(json.dumps(data, ensure_ascii=False))}"


_DESCRIBE = {
    "system_item": _describe_system_item,
    "user": _describe_message,
    "delivered": _describe_message,
    "assistant": _describe_assistant,
    "tool_call": _describe_tool,
    "tool_result": _describe_tool,
    "hook": _describe_hook,
}


def _arguments(arguments: Any) -> str:
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())


def _hook_summary(data: Any) -> str:
    parts = []
    if data.get("modified_by"):
        parts.append(f"modified by {', '.join(data['modified_by'])}")
    if data.get("blocked_by"):
        parts.append(f"blocked by {data['blocked_by']}: {data['reason']}")
    parts.extend(
        f"{e['plugin']} failed ({e['kind']}): {e['message']}" for e in data.get("errors", ())
    )
    parts.extend(
        f"{v['plugin']} would {v['action']}: {v['reason']}" for v in data.get("violations", ())
    )
    if data.get("responded_by"):
        parts.append(f"answered by {data['responded_by']}")
    parts.extend(f"{plugin} asks: {question}" for plugin, question in data.get("asks", ()))
    return "; ".join(parts)


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
