"""Shared helpers for the runtime tests."""

from __future__ import annotations

from interlock.testing import RecordingPlugin as Recorder

__all__ = ["Recorder"]
