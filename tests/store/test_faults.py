"""A Redis that dies and comes back mid-run: gates fail closed with a reason (or open, when
told), nothing crashes, usage counted while it was away is counted once it is back."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from interlock import LLMRequest, LLMResponse, PluginManager, ToolCall, Usage, hooks
from interlock.config import load_config_text
from interlock.store import open_store

CONFIG = """
store: {url}
deployment: faults
plugins:
  - name: rate-limit
    use: rate-limit
    config: {{tools: {{shell: {{calls: 100, per: 1h, scope: global}}}},
              on_store_error: {policy}}}
  - name: token-budget
    use: token-budget
    config: {{tags: {{team: {{tokens: 1000}}}}, reserve: 10, on_store_error: {policy}}}
"""


class Server:
    """A throwaway redis-server of this test's own, on a free loopback port, keeping
    nothing on disk; killed by its pid."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [str(shutil.which("redis-server")), "--port", str(self.port), "--bind",
                "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        for line in self.process.stdout:  # ready when it says so; it logs nothing after
            if "Ready to accept connections" in line:
                return
        pytest.fail(f"redis-server on port {self.port} exited: {self.process.wait()}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            assert self.process.stdout is not None
            self.process.stdout.close()
            self.process = None


@pytest.fixture
def server() -> Iterator[Server]:
    pytest.importorskip("redis", reason="needs pip install 'interlock[redis]'")
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server program")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Server(port)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def calls(manager: PluginManager) -> tuple[Any, Any]:
    """One tool call and one model call (with its answer, when admitted), in a session."""
    async with manager.session("s-1", tags=["team"]):
        tool = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
        model = await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("model"))
        if not model.blocked:
            usage = Usage(input_tokens=3, output_tokens=4)
            await manager.invoke(hooks.POST_LLM_CALL, LLMResponse("model", usage=usage))
    return tool, model


async def test_gates_fail_closed_while_redis_is_down_and_recover_after(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    manager = load_config_text(CONFIG.format(url=server.url, policy="block"))
    tool, model = await calls(manager)
    assert not tool.blocked and not model.blocked

    server.kill()
    with caplog.at_level(logging.WARNING, logger="interlock"):
        tool, model = await calls(manager)
        again, _ = await calls(manager)
    assert tool.blocked and again.blocked and model.blocked
    assert not tool.errors and not model.errors  # a decision, not a crash
    assert tool.reason.startswith("rate limit: tool 'shell' cannot be checked, so it is "
                                  "blocked (on_store_error: block): state store "
                                  f"{server.url} is unreachable (")  # fmt: skip
    assert model.reason.startswith("token budget cannot be checked, so the model call is "
                                   "blocked (on_store_error: block): state store ")  # fmt: skip
    down = [r for r in caplog.records if "is unreachable" in r.getMessage()]
    assert len(down) == 2  # once per plugin's store, not once per call

    server.start()  # the same port, empty: Redis kept nothing
    tool, model = await calls(manager)
    assert not tool.blocked and not model.blocked  # reconnected by itself
    store = open_store(server.url, deployment="faults", plugin="token-budget")
    balance = await store.balance("tag:team")
    await store.aclose()
    assert balance.spent["tokens"] == 7.0 and balance.held["tokens"] == 0.0
    await manager.aclose()


async def test_usage_answered_while_redis_is_down_is_counted_once_it_is_back(
    server: Server,
) -> None:
    manager = load_config_text(CONFIG.format(url=server.url, policy="block"))
    async with manager.session("s-1", tags=["team"]):
        admitted = await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("model"))
        assert not admitted.blocked
        server.kill()  # while the model works
        usage = Usage(input_tokens=30, output_tokens=20)
        answered = await manager.invoke(hooks.POST_LLM_CALL, LLMResponse("model", usage=usage))
        assert not answered.errors
        server.start()
        again = await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("model"))
        assert not again.blocked
    store = open_store(server.url, deployment="faults", plugin="token-budget")
    balance = await store.balance("tag:team")
    await store.aclose()
    assert balance.spent["tokens"] == 50.0  # counted once, after the restart
    assert balance.held["tokens"] == 10.0  # the call just admitted holds its reserve
    await manager.aclose()


async def test_on_store_error_allow_lets_calls_through_while_redis_is_down(
    server: Server,
) -> None:
    manager = load_config_text(CONFIG.format(url=server.url, policy="allow"))
    server.kill()
    tool, model = await calls(manager)
    assert not tool.blocked and not model.blocked
    await manager.aclose()
