"""Processes racing for one budget or one rate limit in a shared Redis never get more than
it allows, and every refusal says why."""

from __future__ import annotations

import multiprocessing
import queue
from typing import Any

import pytest

from interlock.store import open_store

from .race import CALLS, SESSIONS, TAG, work

PROCESSES = 4


def race(kind: str, url: str, deployment: str) -> list[dict[str, Any]]:
    """Run PROCESSES workers started together; their reports."""
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(PROCESSES), spawn.Queue()
    workers = [spawn.Process(target=work, args=(kind, url, deployment, barrier, results))
               for _ in range(PROCESSES)]  # fmt: skip
    for worker in workers:
        worker.start()
    try:
        return [results.get(timeout=120) for _ in workers]
    except queue.Empty:
        pytest.fail("a race worker did not report within 120 s")
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()


async def test_four_processes_of_eight_sessions_never_overspend_one_budget(
    shared: tuple[str, str],
) -> None:
    url, deployment = shared
    reports = race("budget", url, deployment)
    admitted = sum(r["admitted"] for r in reports)
    reasons = [reason for r in reports for reason in r["reasons"]]
    assert admitted == 100  # 1,000 tokens at 10 a call: all of the budget, not one call more
    assert len(reasons) == PROCESSES * SESSIONS * CALLS - admitted
    assert all(
        reason is not None
        and reason.startswith(f"token budget exhausted: tag {TAG!r} used ")
        and "of 1,000 tokens" in reason
        for reason in reasons
    ), reasons[:3]
    store = open_store(url, deployment=deployment, plugin="token-budget")
    balance = await store.balance(f"tag:{TAG}")
    await store.aclose()
    assert balance.spent == {"tokens": 1000.0, "cost": 0.0}
    assert balance.held == {"tokens": 0.0, "cost": 0.0}  # every hold settled


def test_four_processes_of_eight_sessions_share_one_rate_limit(shared: tuple[str, str]) -> None:
    url, deployment = shared
    reports = race("rate", url, deployment)
    admitted = sum(r["admitted"] for r in reports)
    reasons = [reason for r in reports for reason in r["reasons"]]
    assert admitted == 50
    assert len(reasons) == PROCESSES * SESSIONS * CALLS - 50
    expected = f"rate limit: tool 'shell' may make 50 calls per 3600s for tag {TAG!r} ('shell')"
    assert set(reasons) == {expected}
