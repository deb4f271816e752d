"""Item values as the EDC stores them, and the server clock."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["decode_value", "encode_value", "now_iso", "parse_time", "typed_text"]


def now_iso() -> str:
    """The server's UTC time, ISO 8601 with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def encode_value(value: float | int | str | None) -> str | None:
    """An item value as stored (and as written in ODM ``Value``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("boolean item values are not supported; use text")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def decode_value(text: str | None, data_type: str) -> float | int | str | None:
    """The typed value of a stored item."""
    if text is None:
        return None
    if data_type == "float":
        return float(text)
    if data_type == "integer":
        return int(float(text))
    return text


def typed_text(text: str | None) -> float | str | None:
    """A number when the text is one, else the text (query values)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text
