"""`interlock run`'s arguments and its one turn: the backend --model names, --tag and --meta
as the session's tags and metadata."""

from __future__ import annotations

from typing import Any

import typer


async def run_once(
    agent: Any, prompt: str, session_id: str | None, tags: list[str], metadata: dict[str, str]
) -> tuple[str, Any]:
    """The session's id and the turn's result."""
    try:
        async with agent.session(session_id, tags=tags, metadata=metadata) as session:
            return session.id, await session.send(prompt)
    finally:
        await agent.aclose()


def model_backend(model: str, base_url: str | None) -> Any:
    """The backend --model names (and --base-url points at)."""
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


def session_tags(given: list[str]) -> list[str]:
    """`--tag`s as the session's tags, each once."""
    for tag in given:
        if not tag.strip():
            raise typer.BadParameter("a tag is empty", param_hint="--tag")
        if not storable(tag):
            raise typer.BadParameter(f"{tag!r} is not valid UTF-8 text", param_hint="--tag")
    return list(dict.fromkeys(given))


def session_metadata(given: list[str]) -> dict[str, str]:
    """`--meta KEY=VALUE`s as the session's metadata (values are text)."""
    metadata = {}
    for item in given:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            message = f"{item!r}: give KEY=VALUE, e.g. user=ada"
            raise typer.BadParameter(message, param_hint="--meta")
        if not storable(item):
            raise typer.BadParameter(f"{item!r} is not valid UTF-8 text", param_hint="--meta")
        metadata[key.strip()] = value
    return metadata


def storable(text: str) -> bool:
    """Whether `text` can be stored: UTF-8 encodable (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
