"""``triallens mcp`` over stdio as the configured user, and a light start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from fastmcp.exceptions import ToolError

from triallens.audit import AuditTrail
from triallens.settings import get_settings

if TYPE_CHECKING:
    from tests._mcp_fixtures import McpWorld

pytest_plugins = ["tests._mcp_fixtures"]

HEAVY = ("torch", "monai", "mlflow", "langgraph", "chromadb", "highdicom")


def _stdio(user: str) -> StdioTransport:
    env = dict(os.environ, TRIALLENS_MCP_USER=user)
    return StdioTransport(
        command=sys.executable,
        args=["-c", "from triallens.cli import main; main()", "mcp"],
        env=env,
    )


@pytest.mark.anyio
@pytest.mark.slow
async def test_stdio_server_acts_as_the_configured_user(mcp_world: McpWorld) -> None:
    uid = mcp_world.followup_uid
    async with Client(_stdio("mona")) as client:
        tools = await client.list_tools()
        rows = (
            await client.call_tool("list_worklist", {"trial_id": mcp_world.trial})
        ).data
        with pytest.raises(ToolError, match="permission denied"):
            await client.call_tool(
                "review_finding",
                {
                    "study_uid": uid,
                    "decision": "accept",
                    "password": mcp_world.passwords["mona"],
                },
            )
    assert len(tools) == 9
    assert [row["study_uid"] for row in rows][1] == uid
    denied = AuditTrail(get_settings().resolved_edc_url).show("mcp_tool:review_finding")
    assert [(e.actor, e.role, e.new["client"]) for e in denied] == [
        ("mona", "medical_monitor", "stdio")
    ]


def test_server_start_up_loads_no_heavy_library(mcp_world: McpWorld) -> None:
    code = (
        "import sys\n"
        "from triallens.cli import _register_commands\n"
        "_register_commands()\n"
        "from mcp_server import build_server\n"
        "from triallens.settings import get_settings\n"
        "server = build_server(get_settings(), user='rita')\n"
        "import asyncio\n"
        "from fastmcp import Client\n"
        "async def main():\n"
        "    async with Client(server) as client:\n"
        "        await client.call_tool('list_worklist', {})\n"
        "asyncio.run(main())\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert completed.stdout.strip().splitlines()[-1] == "[]"
