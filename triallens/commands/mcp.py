"""``triallens mcp``: TrialLens as an MCP server (stdio or streamable HTTP)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

__all__ = ["register"]


class Transport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"


def register(app: typer.Typer) -> None:
    app.command(name="mcp")(mcp)


def mcp(
    transport: Annotated[
        Transport,
        typer.Option(help="stdio for a local client; http for streamable HTTP."),
    ] = Transport.STDIO,
    host: Annotated[
        str, typer.Option(help="HTTP: interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="HTTP: port to listen on.")
    ] = 8765,
    user: Annotated[
        str | None,
        typer.Option(
            help="stdio: the TrialLens user the server acts as "
            "(default TRIALLENS_MCP_USER)."
        ),
    ] = None,
) -> None:
    """Serve the reviewers' tools over MCP.

    Over stdio the server acts as one configured TrialLens user. Over HTTP
    every request needs a bearer token of an active user (create one with the
    users commands); requests without one get 401.
    """
    from mcp_server import build_server
    from mcp_server.http import http_middleware
    from triallens.settings import apply_offline_switches, get_settings

    apply_offline_switches()
    settings = get_settings()
    settings.ensure_dirs()
    if transport is Transport.STDIO:
        server = build_server(settings, user=user)
        server.run(transport="stdio", show_banner=False)
        return
    if user is not None:
        raise typer.BadParameter("--user applies to stdio; HTTP clients send a token")
    typer.echo(
        f"TrialLens MCP server on http://{host}:{port}/mcp (bearer tokens required; "
        "create one with `triallens users token NAME`)",
        err=True,
    )
    server = build_server(settings, require_token=True)
    server.run(
        transport="http",
        host=host,
        port=port,
        show_banner=False,
        log_level="warning",
        middleware=http_middleware(),
    )
