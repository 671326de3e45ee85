"""Model backends for the reference runtime: offline scripted, and OpenAI-compatible."""

from ._base import ModelBackend, ModelProvider
from ._openai import OpenAIBackend
from ._scripted import ScriptedBackend, Step

__all__ = ["ModelBackend", "ModelProvider", "OpenAIBackend", "ScriptedBackend", "Step"]
