"""`interlock log`: the sessions in a log, or one session's records, readable or as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from interlock.runtime import Record, SessionStore

from ._inspect import stats_table, table


def list_sessions(store: SessionStore, console: Console, as_json: bool) -> None:
    """Every session, newest first."""
    sessions = store.sessions()
    if as_json:
        typer.echo(json.dumps([s.__dict__ | {"tags": list(s.tags)} for s in sessions]))
        return
    rows = [
        {"session": s.id, "started": _when(s.created), "turns": s.turns, "records": s.records,
         "tags": ", ".join(s.tags) or "-",
         "ended": s.end_reason or ("open" if s.ended is None else "-")}
        for s in sessions
    ]  # fmt: skip
    columns = ("session", "started", "turns", "records", "tags", "ended")
    # The ids are keys: never cut, as they are what `interlock log ID` is given.
    console.print(table(console, "sessions, newest first", columns, rows, keys={"session"},
                        flow=True))  # fmt: skip


def show_session(store: SessionStore, session_id: str, console: Console, as_json: bool) -> None:
    """One session's records, in order; system items stand out, the plugin statistics
    logged at the end are a table."""
    for record in store.records(session_id):
        if as_json:
            typer.echo(json.dumps({"seq": record.seq, "turn": record.turn, "kind": record.kind,
                                   "created": record.created, "data": record.data}))  # fmt: skip
            continue
        console.print(describe(record))
        registrations = record.data.get("registrations") if record.kind == "stats" else None
        if isinstance(registrations, Sequence) and not isinstance(registrations, str):
            title = "plugin statistics of the session"
            console.print(stats_table(console, title, registrations))


def describe(record: Record) -> Text:
    """One record as a line (built from Text parts, so no user text is read as markup)."""
    head = Text(f"{record.seq:>4} t{record.turn or 0} ", style="dim")
    render = _DESCRIBE.get(record.kind, _other)
    return Text.assemble(head, *render(record.data, record.kind))


Part = str | tuple[str, str]


def _system_item(data: Any, kind: str) -> list[Part]:
    return [("SYSTEM ITEM", "bold magenta"), f" [{data['kind']}] from {data['plugin']}: ",
            data["text"]]  # fmt: skip


def _message(data: Any, kind: str) -> list[Part]:
    label = {"user": "user", "delivered": "reply"}[kind]
    if data.get("content") is None:
        return [(label, "bold"), " ", (f"(blocked by {data.get('blocked_by')})", "red")]
    return [(label, "bold"), " ", data["content"]]


def _assistant(data: Any, kind: str) -> list[Part]:
    parts: list[Part] = [("assistant", "bold"), " "]
    if data.get("content") is None:
        return [*parts, (f"(reply withheld: {data.get('withheld')})", "red")]
    parts.append(data["content"])
    calls = [f"{c['tool_name']}({_arguments(c['arguments'])})" for c in data["tool_calls"]]
    if calls:
        parts += [" " if data["content"] else "", ("asks for ", "blue"), ", ".join(calls)]
    return parts


def _tool(data: Any, kind: str) -> list[Part]:
    if kind == "tool_call":
        parts: list[Part] = [("tool call", "bold"), " ",
                             f"{data['tool_name']}({_arguments(data['arguments'])})"]  # fmt: skip
        if data["refused"]:
            parts.append((f" refused: {data['refused']}", "red"))
        return parts
    colour = "red" if data["is_error"] else "green"
    return [("tool result", colour), f" {data['tool_name']}: ", data["output"]]


def _hook(data: Any, kind: str) -> list[Part]:
    return [(f"hook {data['hook']}", "yellow"), " ", hook_summary(data)]


def _notification(data: Any, kind: str) -> list[Part]:
    text = data["text"]  # a table (the profiler's) starts on a line of its own
    return [(f"notice ({data['level']})", "cyan"), f" from {data['plugin']}:",
            "\n" if "\n" in text else " ", text]  # fmt: skip


def _stats(data: Any, kind: str) -> list[Part]:
    """The plugin counters logged at session end, in one line; dropped background calls
    (a full queue: records an audit log wrote down as gaps) stand out."""
    regs = data.get("registrations", ())
    calls = sum(r.get("calls", 0) for r in regs)
    errors = sum(r.get("errors", 0) for r in regs)
    parts: list[Part] = [("plugin stats", "bold"),
                         f" {len(regs)} registrations, {calls} calls, {errors} errors"]  # fmt: skip
    dropped = [r for r in regs if r.get("dropped")]
    if dropped:
        lost = ", ".join(f"{r['plugin']} at {r['hook']}: {r['dropped']}" for r in dropped)
        parts += ["; ", (f"background calls dropped: {lost}", "red")]
    return parts


def _other(data: Any, kind: str) -> list[Part]:
    return [(kind, "bold"), " ", json.dumps(data, ensure_ascii=False)]


_DESCRIBE: dict[str, Callable[[Any, str], list[Part]]] = {
    "system_item": _system_item,
    "user": _message,
    "delivered": _message,
    "assistant": _assistant,
    "tool_call": _tool,
    "tool_result": _tool,
    "hook": _hook,
    "notification": _notification,
    "stats": _stats,
}


def hook_summary(data: Any) -> str:
    """What plugins did at one hook, from a `hook` record."""
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


def _arguments(arguments: Any) -> str:
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
