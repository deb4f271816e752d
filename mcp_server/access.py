"""Who is calling, what their role allows, and what a client may be told.

Over HTTP every request carries a bearer token that :class:`UserTokenVerifier`
maps to a TrialLens user; without one the transport answers 401. Over stdio
(and in memory) the server acts as the configured user
(``TRIALLENS_MCP_USER``), looked up on every request so a changed role or a
deactivated account takes effect at once.

Errors: a :class:`~triallens.errors.TrialLensError` reaches the client with
its message (:func:`reported`; those messages carry de-identified context
only); bad arguments become one readable line naming the argument
(:class:`ErrorTranslation`); anything else is masked by the server
(``mask_error_details``) and logged for the operator.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import anyio.to_thread
from fastmcp.exceptions import FastMCPError, ToolError
from fastmcp.exceptions import ValidationError as ArgumentError
from fastmcp.server.auth import TokenVerifier
from fastmcp.server.auth.auth import AccessToken
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.middleware import Middleware, MiddlewareContext
from pydantic import ValidationError

from mcp_server.backend import Backend, Identity
from triallens.errors import TrialLensError
from triallens.users import PERMISSIONS, Permission

if TYPE_CHECKING:
    from fastmcp.server.middleware import CallNext

__all__ = [
    "Access",
    "ErrorTranslation",
    "UserTokenVerifier",
    "reported",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class UserTokenVerifier(TokenVerifier):
    """Accepts a bearer token when it is the API token of an active user."""

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self._backend = backend

    async def verify_token(self, token: str) -> AccessToken | None:
        identity = await anyio.to_thread.run_sync(
            self._backend.identity_for_token, token
        )
        if identity is None:
            logger.info("MCP request with an unknown or revoked token refused")
            return None
        return AccessToken(
            token=token,
            client_id=identity.user_name,
            scopes=[identity.role],
            claims={
                "user_name": identity.user_name,
                "role": identity.role,
                "printed_name": identity.printed_name,
            },
        )


class Access:
    """Resolves the caller of a request and checks their role.

    Parameters
    ----------
    backend
        The stores (users and the audit trail).
    default_user
        The user a stdio or in-memory server acts as; None on a server that
        accepts only bearer tokens.
    """

    def __init__(self, backend: Backend, default_user: str | None) -> None:
        self.backend = backend
        self.default_user = default_user

    def identity(self) -> Identity:
        """The caller of the current request.

        Raises
        ------
        ToolError
            When the request carries no token and no user is configured.
        """
        token = get_access_token()
        if token is not None and "user_name" in token.claims:
            claims = token.claims
            return Identity(
                user_name=str(claims["user_name"]),
                role=str(claims["role"]),
                printed_name=str(claims.get("printed_name") or ""),
                client="http",
            )
        if self.default_user is None:
            raise ToolError("authentication required: send a TrialLens API token")
        try:
            return self.backend.identity_for_user(self.default_user, client="stdio")
        except TrialLensError as exc:
            raise ToolError(str(exc)) from None

    def require(self, action: str, permission: Permission) -> Identity:
        """The caller, when their role holds ``permission`` (see
        :data:`triallens.users.PERMISSIONS`).

        A refusal is written to the audit trail with the caller's identity.

        Raises
        ------
        ToolError
            When the role does not allow the action.
        """
        identity = self.identity()
        allowed = {
            role.value for role, granted in PERMISSIONS.items() if permission in granted
        }
        if identity.role in allowed:
            return identity
        self.backend.audit_call(
            identity,
            "mcp.denied",
            f"mcp_tool:{action}",
            new={"permission": permission.value, "allowed_roles": sorted(allowed)},
            reason=f"role {identity.role} may not call {action}",
        )
        logger.info("MCP call %s refused for role %s", action, identity.role)
        raise ToolError(
            f"permission denied: the {identity.role} role may not use {action} "
            f"(allowed: {', '.join(sorted(allowed))}); the attempt was audited"
        )


class ErrorTranslation(Middleware):
    """Turns bad tool arguments into one clear message for the client."""

    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        name = context.message.name
        _reject_json_documents(name, context.message.arguments or {})
        try:
            return await call_next(context)
        except ArgumentError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                raise ToolError(argument_message(name, cause)) from None
            raise ToolError(f"invalid arguments for {name}") from None


def reported(
    error_type: type[FastMCPError],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Report TrialLens errors (and role refusals) to the client as
    ``error_type`` with their message; everything else stays masked."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except error_type:
                raise
            except (TrialLensError, ToolError) as exc:
                raise error_type(str(exc)) from None

        return wrapper

    return decorate


def argument_message(tool: str, error: ValidationError) -> str:
    """One readable line per bad argument, without echoing the values sent."""
    problems = []
    for detail in error.errors(include_url=False, include_context=False):
        where = ".".join(str(part) for part in detail["loc"]) or "arguments"
        value = detail.get("input")
        if detail["type"] == "unexpected_keyword_argument":
            problems.append(f"{where}: not an argument of {tool}")
        elif detail["type"] == "missing_argument" or detail["type"] == "missing":
            problems.append(f"{where}: required")
        elif isinstance(value, str) and _json_container(value) is not None:
            problems.append(
                f"{where}: was sent as a JSON string; send the value itself, "
                f"not text ({detail['msg'].lower()})"
            )
        else:
            problems.append(f"{where}: {detail['msg']}")
    return (
        f"invalid arguments for {tool}: " + "; ".join(problems) + ". The tool's "
        "input schema (tools/list) gives each argument's type."
    )


def _json_container(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, dict | list) else None


def _reject_json_documents(tool: str, arguments: dict[str, Any]) -> None:
    # A model sometimes packs all arguments into one string field. TrialLens
    # identifiers and texts never are JSON documents, so say so plainly rather
    # than look up a study named '{"study_uid": ...}'.
    for name, value in arguments.items():
        if isinstance(value, str) and isinstance(_json_container(value), dict):
            raise ToolError(
                f"invalid arguments for {tool}: {name}: holds a JSON document; "
                "send each argument as its own field with a plain value"
            )
