"""The MCP server over streamable HTTP: bearer tokens, every tool, refusals.

A real ``triallens mcp --transport http`` process on a free loopback port.
"""

from __future__ import annotations

import base64
import io
import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from PIL import Image

from triallens.audit import AuditTrail
from triallens.settings import get_settings

if TYPE_CHECKING:
    from tests._mcp_fixtures import McpWorld

pytest_plugins = ["tests._mcp_fixtures"]
pytestmark = [pytest.mark.anyio, pytest.mark.slow]

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-test", "version": "1"},
    },
}
HEADERS = {"Accept": "application/json, text/event-stream"}


def _messages(response: httpx.Response) -> list[dict[str, Any]]:
    if response.headers.get("content-type", "").startswith("application/json"):
        return [response.json()]
    return [
        json.loads(line.removeprefix("data:").strip())
        for line in response.text.splitlines()
        if line.startswith("data:") and line.strip() != "data:"
    ]


async def test_requests_without_a_valid_token_get_401(
    http_server: str, mcp_world: McpWorld
) -> None:
    from triallens.users import UserStore

    audit = AuditTrail(get_settings().resolved_edc_url)
    users = UserStore(audit.engine, audit=audit)
    users.revoke_token(
        users.list_tokens("dana")[0].token_id, actor="root", actor_role="admin"
    )
    async with httpx.AsyncClient(timeout=10) as http:
        revoked = await http.post(
            http_server,
            json=INITIALIZE,
            headers={**HEADERS, "Authorization": f"Bearer {mcp_world.tokens['dana']}"},
        )
        anonymous = await http.post(http_server, json=INITIALIZE, headers=HEADERS)
        forged = await http.post(
            http_server,
            json=INITIALIZE,
            headers={**HEADERS, "Authorization": "Bearer tlk_not-a-real-token"},
        )
        valid = await http.post(
            http_server,
            json=INITIALIZE,
            headers={
                **HEADERS,
                "Authorization": f"Bearer {mcp_world.tokens['mona']}",
            },
        )
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].lower().startswith("bearer")
    assert forged.status_code == 401
    assert revoked.status_code == 401
    assert valid.status_code == 200
    assert _messages(valid)[0]["result"]["serverInfo"]["name"] == "TrialLens"
    # The fastmcp client without a token gets no session at all.
    with pytest.raises(MCPError):
        async with Client(http_server) as client:
            await client.list_tools()


async def test_every_tool_over_http(http_server: str, mcp_world: McpWorld) -> None:
    uid = mcp_world.followup_uid
    async with Client(http_server, auth=mcp_world.tokens["rita"]) as client:
        tools = {tool.name for tool in await client.list_tools()}
        worklist = (
            await client.call_tool("list_worklist", {"trial_id": mcp_world.trial})
        ).data
        study = (await client.call_tool("get_study_triage", {"study_uid": uid})).data
        timeline = (
            await client.call_tool(
                "get_subject_timeline",
                {"subject_id": mcp_world.subject_id, "trial_id": mcp_world.trial},
            )
        ).data
        measured = (await client.call_tool("get_measurements", {"study_uid": uid})).data
        image = await client.call_tool(
            "get_key_image", {"study_uid": uid, "lesion_id": "T01"}
        )
        deviations = (
            await client.call_tool("list_deviations", {"trial_id": mcp_world.trial})
        ).data
        reviewed = (
            await client.call_tool(
                "review_finding",
                {
                    "study_uid": uid,
                    "decision": "reject",
                    "password": mcp_world.passwords["rita"],
                    "reason": "lesion T01 is a vessel on the portal phase",
                },
            )
        ).data
        report = await client.read_resource(f"triallens://studies/{uid}/report")
        prompt = await client.get_prompt("review_study", {"study_uid": uid})
    async with Client(http_server, auth=mcp_world.tokens["dana"]) as client:
        query = (
            await client.call_tool(
                "raise_query",
                {
                    "study_uid": uid,
                    "item_name": "sum_of_diameters_mm",
                    "text": "The reader rejected the AI sum; please confirm.",
                },
            )
        ).data
        queries = (
            await client.call_tool("list_queries", {"trial_id": mcp_world.trial})
        ).data

    assert len(tools) == 9
    assert [row["study_uid"] for row in worklist][1] == uid
    assert study["assessment"]["sum_of_diameters_mm"] == mcp_world.sod(uid)
    assert [line["time_point_id"] for line in timeline] == ["BASELINE", "WEEK08"]
    assert {les["lesion_id"] for les in measured["assessment"]["lesions"]} == {
        "T01",
        "N01",
    }
    png = Image.open(io.BytesIO(base64.b64decode(image.content[1].data)))
    assert png.size == mcp_world.key_image_size
    assert {row["study_uid"] for row in deviations} == {uid, mcp_world.other_uid}
    assert reviewed["status"] == "rejected"
    assert "Rita Reader (rita), review" in reviewed["signatures"][0]
    assert "Signed: Rita Reader (rita)" in report[0].text
    assert uid in prompt.messages[0].content.text
    assert query["ai_value"] == mcp_world.sod(uid)
    assert query["raised_by"] == "dana"
    assert [q["query_id"] for q in queries] == [query["query_id"]]

    audit = AuditTrail(get_settings().resolved_edc_url)
    review_entries = [
        e
        for e in audit.show(f"edc_record:{mcp_world.record_ids[uid]}")
        if e.action == "mcp.review_finding"
    ]
    assert [(e.actor, e.role, e.new["client"]) for e in review_entries] == [
        ("rita", "reader", "http")
    ]
    assert review_entries[0].reason == "lesion T01 is a vessel on the portal phase"
    query_entries = audit.show(f"edc_query:{query['query_id']}")
    assert {(e.actor, e.action) for e in query_entries} == {
        ("dana", "edc.raise_query"),
        ("dana", "mcp.raise_query"),
    }


async def test_medical_monitor_review_is_refused_and_audited(
    http_server: str, mcp_world: McpWorld
) -> None:
    uid = mcp_world.followup_uid
    async with Client(http_server, auth=mcp_world.tokens["mona"]) as client:
        rows = (
            await client.call_tool("list_worklist", {"trial_id": mcp_world.trial})
        ).data
        with pytest.raises(ToolError, match=r"permission denied.*medical_monitor"):
            await client.call_tool(
                "review_finding",
                {
                    "study_uid": uid,
                    "decision": "accept",
                    "password": mcp_world.passwords["mona"],
                },
            )
        study = (await client.call_tool("get_study_triage", {"study_uid": uid})).data
    assert len(rows) == 3
    assert study["edc_record"]["status"] == "draft"
    denied = AuditTrail(get_settings().resolved_edc_url).show("mcp_tool:review_finding")
    assert [(e.actor, e.role, e.action, e.new["client"]) for e in denied] == [
        ("mona", "medical_monitor", "mcp.denied", "http")
    ]


async def test_bad_arguments_over_http_are_clear(
    http_server: str, mcp_world: McpWorld
) -> None:
    async with Client(http_server, auth=mcp_world.tokens["rita"]) as client:
        with pytest.raises(ToolError, match=r"no triage result for study 2\.25\.42"):
            await client.call_tool("get_study_triage", {"study_uid": "2.25.42"})
        with pytest.raises(ToolError, match="limit: Input should be a valid integer"):
            await client.call_tool("list_worklist", {"limit": "lots"})

    # A client that sends the whole argument object as one JSON string.
    headers = {**HEADERS, "Authorization": f"Bearer {mcp_world.tokens['rita']}"}
    async with httpx.AsyncClient(timeout=10) as http:
        init = await http.post(http_server, json=INITIALIZE, headers=headers)
        session = init.headers.get("mcp-session-id")
        if session:
            headers["mcp-session-id"] = session
        headers["mcp-protocol-version"] = "2025-06-18"
        await http.post(
            http_server,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers=headers,
        )
        call = await http.post(
            http_server,
            json={
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {
                    "name": "get_study_triage",
                    "arguments": json.dumps({"study_uid": mcp_world.followup_uid}),
                },
            },
            headers=headers,
        )
    body = call.text
    assert "Traceback" not in body
    reply = _messages(call)[-1] if call.status_code == 200 else call.json()
    error = reply.get("error") or {}
    assert error.get("code") == -32602, reply
    assert "'arguments' was sent as a JSON string" in error["message"]
