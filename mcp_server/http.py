"""ASGI middleware for the streamable HTTP transport.

The MCP SDK rejects a ``tools/call`` whose ``arguments`` is a string (a client
that JSON-encoded the argument object twice) with a bare "Invalid request
parameters". This middleware answers such calls, for authenticated requests
only, with a JSON-RPC error that says what to send instead.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["StringArgumentsGuard", "http_middleware"]

logger = logging.getLogger(__name__)

_MAX_INSPECTED_BYTES = 1_000_000
_INVALID_PARAMS = -32602


def http_middleware() -> list[Middleware]:
    """The middleware TrialLens adds to fastmcp's HTTP app."""
    return [Middleware(StringArgumentsGuard)]


class StringArgumentsGuard:
    """Answer a ``tools/call`` with string ``arguments`` with a clear error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user") if scope["type"] == "http" else None
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not getattr(user, "is_authenticated", False)
        ):
            await self.app(scope, receive, send)
            return

        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)

        request_id = _string_arguments_call(body)
        if request_id is not _NOT_FOUND:
            logger.info("tools/call with arguments sent as a JSON string refused")
            await _send_json(send, _error(request_id))
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


_NOT_FOUND = object()


def _string_arguments_call(body: bytes) -> Any:
    """The request id of a tools/call with string arguments, else _NOT_FOUND."""
    if len(body) > _MAX_INSPECTED_BYTES:
        return _NOT_FOUND
    try:
        payload = json.loads(body)
    except ValueError:
        return _NOT_FOUND
    if not isinstance(payload, dict) or payload.get("method") != "tools/call":
        return _NOT_FOUND
    params = payload.get("params")
    if isinstance(params, dict) and isinstance(params.get("arguments"), str):
        return payload.get("id")
    return _NOT_FOUND


def _error(request_id: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": _INVALID_PARAMS,
            "message": "Invalid request parameters: tools/call 'arguments' was "
            "sent as a JSON string; send the arguments object itself, e.g. "
            '{"study_uid": "1.2.3"}',
        },
    }


async def _send_json(send: Send, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
