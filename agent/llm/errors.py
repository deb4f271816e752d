"""Errors of the LLM layer, all subclasses of :class:`triallens.errors.LlmError`.

::

    LlmError                    (triallens.errors)
    ├── LlmUnavailableError     the server refused, dropped or timed out the call
    ├── LlmContextLengthError   the request is longer than the model's context
    └── LlmOutputError          the reply does not parse or fit the schema asked for
"""

from __future__ import annotations

from triallens.errors import LlmError

__all__ = [
    "LlmContextLengthError",
    "LlmError",
    "LlmOutputError",
    "LlmUnavailableError",
]


class LlmUnavailableError(LlmError):
    """The LLM server could not be reached or stopped answering.

    ``attempts`` is how many times the call was tried before giving up.
    """

    def __init__(self, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class LlmContextLengthError(LlmError):
    """The request does not fit into the model's context window."""


class LlmOutputError(LlmError):
    """The reply is not valid for the structured output that was asked for."""
