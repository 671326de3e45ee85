"""The plugin contract: `@hook`, `Plugin`, `PluginSet`, and finding a plugin's handlers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, overload

from ._exceptions import IncompatiblePluginError, RegistrationError, UnknownHookError
from ._registry import Options, Overflow
from ._spec import HookSpec, Mode, OnError

API_VERSION = 1
"""The plugin contract version this interlock implements; `Plugin.api_version` must match."""

_MARKER = "__interlock_hook__"

F = TypeVar("F", bound=Callable[..., Any])
HookRef = str | HookSpec[Any]


@dataclass(frozen=True, slots=True)
class HookMarker:
    """What `@hook` attached to a function (private)."""

    hooks: tuple[HookRef, ...]
    options: Options
    name: str | None


@overload
def hook(fn: F, /) -> F: ...


@overload
def hook(
    *hooks: HookRef,
    name: str | None = None,
    priority: int | None = None,
    mode: Mode | None = None,
    on_error: OnError | None = None,
    timeout: float | None = None,
    when: Mapping[str, str | Sequence[str]] | None = None,
    background: bool | None = None,
    thread: bool | None = None,
    overflow: Overflow | None = None,
) -> Callable[[F], F]: ...


def hook(*args: Any, **kwargs: Any) -> Any:
    """Mark a function or method as a handler for one or more hooks.

        @hook("pre_tool_call", priority=10, when={"tool_name": "shell"})
        def no_rm(payload, ctx):
            if "rm -rf" in payload.arguments.get("command", ""):
                return Block("destructive shell command")

    Used bare (`@hook`), the hook is taken from the function's name (`pre_tool_call` or
    `on_pre_tool_call`). Options set here are the plugin author's defaults; options given
    to `register` (the operator's) override them. `name` names the plugin when the
    function is registered on its own.
    """
    if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], HookSpec):
        return _mark(args[0], HookMarker((), Options(), None))
    for ref in args:
        if not isinstance(ref, str | HookSpec):
            raise TypeError(f"@hook takes hook names or HookSpecs, got {ref!r}")
    name = kwargs.pop("name", None)
    marker = HookMarker(tuple(args), Options(**kwargs), name)
    return lambda fn: _mark(fn, marker)


def _mark(fn: F, marker: HookMarker) -> F:
    setattr(fn, _MARKER, marker)
    return fn


class Plugin:
    """Base class for plugins with several handlers and state.

        class TokenBudget(interlock.Plugin):
            name = "token-budget"
            version = "1.0.0"

            def __init__(self, max_tokens: int = 50_000) -> None:
                self.max_tokens = max_tokens

            def on_post_llm_call(self, payload, ctx):   # convention: on_<hook>
                ctx.state["used"] = ctx.state.get("used", 0) + payload.usage.total_tokens

            @hook("pre_llm_call")
            def check(self, payload, ctx):
                if ctx.state.get("used", 0) >= self.max_tokens:
                    return Block("token budget exhausted")

    Methods named `on_<hook>` (aliases included) and methods marked with `@hook` are
    handlers. Any other `on_` method is an error, so a typo never goes silently unused.
    """

    name: ClassVar[str] = ""
    """The plugin's name; defaults to the class name."""
    version: ClassVar[str] = "0"
    """The plugin's own version, for listings and logs."""
    api_version: ClassVar[int] = API_VERSION
    """The plugin contract version the plugin was built for."""
    config_model: ClassVar[type[Any] | None] = None
    """A pydantic model for the plugin's configuration; when set, a config file's
    `config:` is validated against it and the model instance is passed to `__init__`."""

    async def aclose(self) -> None:
        """Release what the plugin holds: processes, connections, open files.

        `PluginManager.aclose()` / `close()` call it once for each plugin registered
        outside a session scope (session plugins are the host's to close). The default
        does nothing; an error here is logged, never raised into the host.
        """

    def background_dropped(self, hook: str, count: int) -> None:
        """Told that `count` of this plugin's background calls at `hook` were dropped.

        Called when the background queue was full (`overflow="drop"`, or `"wait"` past
        its bound), in the thread that invoked the hook, before the invocation returns:
        keep it short and never block. A plugin that keeps a record can write the gap
        down (the audit log writes a gap record). The default does nothing; an error
        here is logged, never raised into the host.
        """


class PluginSet:
    """A named group of plugins that registers and unregisters as one; sets nest.

        safety = PluginSet("safety", [no_rm, Member(Redactor(), priority=-5)])
        handle = manager.register(safety, mode="permissive")

    Options given when registering the set apply to every member; a `Member` carries
    options of its own, which take precedence.
    """

    def __init__(self, name: str, plugins: Iterable[object] = ()) -> None:
        self.name = name
        self.plugins = tuple(plugins)

    def __repr__(self) -> str:
        return f"PluginSet({self.name!r}, {len(self.plugins)} plugins)"


@dataclass(frozen=True, slots=True)
class Member:
    """A plugin in a `PluginSet` with registration options of its own.

    The fields are `PluginManager.register`'s options; those left `None` come from the
    options the set is registered with.
    """

    plugin: object
    name: str | None = None
    hook: HookRef | None = None
    priority: int | None = None
    mode: Mode | None = None
    on_error: OnError | None = None
    timeout: float | None = None
    when: Mapping[str, str | Sequence[str]] | None = None
    background: bool | None = None
    thread: bool | None = None
    overflow: Overflow | None = None
    capabilities: tuple[str, ...] | None = None
    writable: tuple[str, ...] | None = None
    config: Mapping[str, Any] | None = None

    def options(self) -> Options:
        """The member's own options (unset ones are `None`)."""
        return Options(
            self.priority,
            self.mode,
            self.on_error,
            self.timeout,
            self.when,
            self.background,
            self.thread,
            self.overflow,
        )


@dataclass(frozen=True, slots=True)
class Handler:
    """One handler found on a plugin, before registration (private)."""

    spec: HookSpec[Any]
    fn: Callable[..., Any]
    options: Options


Resolve = Callable[[HookRef], HookSpec[Any]]


TOOLS_ONLY = "__interlock_tools_only__"
"""Set on what a drop-in plugin that only gives the agent tools loads as (`discovery`):
it registers with no handlers, rather than being refused for having none."""


def plugin_name(obj: object) -> str:
    """The name a plugin object registers under unless the caller gives one."""
    marker = getattr(obj, _MARKER, None)
    if isinstance(marker, HookMarker) and marker.name:
        return marker.name
    if isinstance(obj, Plugin):
        return type(obj).name or type(obj).__name__
    if inspect.isclass(obj):
        return obj.__name__
    if inspect.ismodule(obj):
        return obj.__name__
    if inspect.isroutine(obj):
        return str(getattr(obj, "__name__", repr(obj)))
    return type(obj).__name__


def collect(obj: object, resolve: Resolve, *, name: str, hook: HookRef | None) -> list[Handler]:
    """Find the handlers of a function, `Plugin`, module or object marked with `@hook`."""
    if inspect.isclass(obj):
        raise RegistrationError(
            f"plugin {name!r}: register an instance, e.g. register({obj.__name__}()), "
            "not the class",
            plugin=name,
        )
    _check_api_version(obj, name)
    if hook is not None:
        if not callable(obj):
            raise RegistrationError(
                f"plugin {name!r}: hook= needs a callable handler, got {obj!r}", plugin=name
            )
        return [Handler(resolve(hook), obj, _marker(obj).options)]
    if inspect.isroutine(obj) or (callable(obj) and hasattr(obj, _MARKER)):
        return _function_handlers(obj, resolve, name)
    handlers = [h for attr, value in _members(obj) for h in _member(obj, attr, value, resolve)]
    if not handlers and not getattr(obj, TOOLS_ONLY, False):
        raise RegistrationError(
            f"plugin {name!r} has no handlers: define on_<hook> methods on a Plugin subclass "
            "or mark functions with @hook(...)",
            plugin=name,
        )
    return handlers


def _function_handlers(fn: Callable[..., Any], resolve: Resolve, name: str) -> list[Handler]:
    marker = _marker(fn)
    refs = marker.hooks or (_hook_name(fn.__name__),)
    try:
        return [Handler(resolve(ref), fn, marker.options) for ref in refs]
    except UnknownHookError as exc:
        if marker.hooks:
            raise
        raise RegistrationError(
            f"plugin {name!r}: cannot tell which hook function {fn.__name__!r} handles "
            f"({exc}); decorate it with @hook('<hook name>') or pass hook= to register",
            plugin=name,
        ) from None


def _member(obj: object, attr: str, value: Any, resolve: Resolve) -> list[Handler]:
    marker = getattr(value, _MARKER, None)
    if isinstance(marker, HookMarker):
        bound = getattr(obj, attr)
        refs = marker.hooks or (_hook_name(attr),)
        return [Handler(resolve(ref), bound, marker.options) for ref in refs]
    if not (isinstance(obj, Plugin) and attr.startswith("on_") and callable(value)):
        return []
    try:
        spec = resolve(attr[3:])
    except UnknownHookError as exc:
        name = plugin_name(obj)
        raise RegistrationError(
            f"plugin {name!r}: method {attr!r} looks like a handler but {exc}; rename it "
            "(methods starting with on_ are hook handlers)",
            plugin=name,
            hook=attr[3:],
        ) from None
    return [Handler(spec, getattr(obj, attr), Options())]


def _members(obj: object) -> list[tuple[str, Any]]:
    """Attributes in definition order (base classes first), as stored on the class/module."""
    if inspect.ismodule(obj):
        return [(k, v) for k, v in vars(obj).items() if inspect.isfunction(v)]
    seen: dict[str, Any] = {}
    for klass in reversed(type(obj).__mro__):
        for attr, value in vars(klass).items():
            if not attr.startswith("__"):
                seen.pop(attr, None)
                seen[attr] = value
    return list(seen.items())


def _marker(fn: object) -> HookMarker:
    marker = getattr(fn, _MARKER, None)
    return marker if isinstance(marker, HookMarker) else HookMarker((), Options(), None)


def _hook_name(attr: str) -> str:
    return attr.removeprefix("on_")


def _check_api_version(obj: object, name: str) -> None:
    version = getattr(obj, "api_version", API_VERSION)
    if version != API_VERSION:
        raise IncompatiblePluginError(
            f"plugin {name!r} was built for plugin API version {version!r}, but this interlock "
            f"implements version {API_VERSION}; install a release of the plugin built for "
            f"API {API_VERSION}, or an interlock that supports API {version!r}",
            plugin=name,
        )
