"""The public surface: exactly what we mean to export, and a light import."""

from __future__ import annotations

import inspect
import subprocess
import sys

import interlock

EXPECTED = {
    # engine
    "PluginManager", "SessionScope", "PluginHandle", "Registration", "hooks", "HookSpec",
    "WriteRule", "Kind", "Mode", "OnError",
    # plugin contract
    "Plugin", "PluginSet", "Member", "hook", "API_VERSION", "HookContext", "SessionInfo",
    "load_config", "ConfigError", "ConfigProblem",
    "SystemItemSink", "Notifier", "SystemItemWriter", "NotificationWriter", "Level",
    "StatsView", "StatsReader",
    # actions and results
    "Action", "Continue", "Modify", "Block", "Respond", "Ask", "HookResult",
    "HandlerFailure", "FailureKind", "Violation", "ManagerStats", "RegistrationStats",
    # payloads
    "Payload", "Message", "Role", "ToolCall", "ToolSchema", "ToolResult", "Usage",
    "LLMRequest", "LLMResponse", "StreamChunk", "MessageEvent", "SessionStart",
    "SessionEnd", "TurnEnd", "ErrorEvent", "FrozenDict", "JsonValue",
    # errors
    "InterlockError", "SpecError", "UnknownHookError", "UnknownPluginError",
    "PayloadTypeError", "PortalError", "CapabilityError", "ProtocolError", "RegistrationError",
    "HandlerSignatureError",
    "IncompatiblePluginError", "DuplicatePluginError", "ConditionError",
    "HandlerFailureError", "InvalidActionError", "HookTimeoutError", "CircuitOpenError",
    "__version__",
}  # fmt: skip


def test_all_is_sorted_complete_and_intended() -> None:
    assert interlock.__all__ == sorted(interlock.__all__)
    assert set(interlock.__all__) == EXPECTED
    for name in interlock.__all__:
        assert hasattr(interlock, name), name


def test_public_classes_and_functions_have_docstrings() -> None:
    for name in interlock.__all__:
        obj = getattr(interlock, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            # dataclasses invent "Name(field, ...)" when the author wrote nothing
            assert obj.__doc__ and not obj.__doc__.startswith(f"{name}("), name


def test_exceptions_share_one_root() -> None:
    errors = [getattr(interlock, n) for n in interlock.__all__ if n.endswith("Error")]
    errors.remove(interlock.OnError)  # the on_error setting, not an exception
    assert all(issubclass(e, interlock.InterlockError) for e in errors)


def test_import_is_light() -> None:
    code = (
        "import sys, interlock; "
        "heavy = [m for m in ('pydantic', 'typer', 'rich', 'yaml', 'httpx') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_py_typed_ships() -> None:
    from importlib.resources import files

    assert files("interlock").joinpath("py.typed").is_file()
