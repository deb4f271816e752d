"""TrialLens as an MCP server for reviewers' tools (stdio and streamable HTTP).

``build_server(settings, user=..., require_token=...)`` returns the fastmcp
server; ``triallens mcp`` runs it.
"""

from __future__ import annotations

from mcp_server.server import build_server

__all__ = ["build_server"]
