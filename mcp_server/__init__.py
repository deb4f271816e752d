"""TrialLens: mcp_server."""
