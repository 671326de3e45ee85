"""Helpers for out-of-process plugin tests: every process started here is ended here."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from ..store.conftest import REDIS, drop_keys

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = Path(__file__).parent / "plugins"
ENV = {"PYTHONPATH": str(ROOT)}  # so `interlock serve` can import tests.external.served
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="needs Node.js on PATH")


def serve_command(target: str, *args: str) -> list[str]:
    """argv of `interlock serve` for a plugin of tests/external/served.py."""
    return [sys.executable, "-m", "interlock", "serve", f"tests.external.served:{target}", *args]


class Served:
    """An `interlock serve --http` process: its URL, and its stderr lines as they come."""

    _seen = threading.Condition()  # shared: a test can wait for whichever server speaks

    def __init__(self, target: str, *args: str) -> None:
        command = serve_command(target, "--http", "127.0.0.1:0", *args)
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **ENV},
            cwd=ROOT,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        first = self.process.stdout.readline().decode()  # printed once it listens
        if not first.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"the server did not start: {first!r}")
        self.url = first.removeprefix("listening on ").strip()
        self.pid = self.process.pid
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in iter(self.process.stderr.readline, b""):
            with self._seen:
                self.lines.append(raw.decode(errors="replace"))
                self._seen.notify_all()
        self.process.stderr.close()

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    @classmethod
    def first_saying(cls, text: str, servers: Sequence[Served], timeout: float = 30.0) -> Served:
        """Block until one of `servers` writes a stderr line containing `text`."""
        with cls._seen:
            if not cls._seen.wait_for(lambda: any(s.said(text) for s in servers), timeout):
                raise TimeoutError(f"no server said {text!r} within {timeout}s")
            return next(s for s in servers if s.said(text))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def serve_http() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(target: str, *args: str) -> Served:
        served = Served(target, *args)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


class LogWatch(logging.Handler):
    """Events set when a log record containing a marker arrives (from any thread)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.markers: dict[str, threading.Event] = {}
        self.messages: list[str] = []

    def expect(self, marker: str) -> threading.Event:
        event = self.markers[marker] = threading.Event()
        return event

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        for marker, event in list(self.markers.items()):
            if marker in message:
                event.set()


@pytest.fixture
def log_watch() -> Iterator[LogWatch]:
    watch = LogWatch()
    logger = logging.getLogger("interlock")
    level = logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.DEBUG)
    yield watch
    logger.removeHandler(watch)
    logger.setLevel(level)


@pytest.fixture
def shared_redis() -> Iterator[tuple[str, str]]:
    """The test Redis (as tests/store use it: skipped when absent) and a deployment of this
    test's own, whose keys are deleted afterwards."""
    redis = pytest.importorskip("redis", reason="needs pip install 'interlock[redis]'")
    with redis.Redis.from_url(REDIS, socket_connect_timeout=2) as client:
        try:
            client.ping()
        except redis.ConnectionError as error:
            pytest.skip(f"no Redis at {REDIS}: {error}")
    deployment = f"test-{uuid.uuid4().hex}"
    yield REDIS, deployment
    drop_keys(REDIS, deployment)
