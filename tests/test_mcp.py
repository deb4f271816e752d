"""Every MCP tool, resource and prompt through the in-memory fastmcp client."""

from __future__ import annotations

import base64
import io
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from PIL import Image

from mcp_server import build_server
from triallens.audit import AuditTrail
from triallens.errors import ConfigurationError
from triallens.settings import get_settings

if TYPE_CHECKING:
    from tests._mcp_fixtures import McpWorld

pytest_plugins = ["tests._mcp_fixtures"]
pytestmark = pytest.mark.anyio

TOOLS = {
    "list_worklist",
    "get_study_triage",
    "get_subject_timeline",
    "get_measurements",
    "get_key_image",
    "list_deviations",
    "review_finding",
    "raise_query",
    "list_queries",
}


def _server(user: str) -> FastMCP:
    return build_server(get_settings(), user=user)


async def _call(user: str, tool: str, args: dict[str, Any] | None = None) -> Any:
    async with Client(_server(user)) as client:
        result = await client.call_tool(tool, args or {})
        return result.data if result.data is not None else result.structured_content


def _audit() -> AuditTrail:
    return AuditTrail(get_settings().resolved_edc_url)


async def test_lists_tools_resources_and_prompts(mcp_world: McpWorld) -> None:
    async with Client(_server("rita")) as client:
        tools = {tool.name: tool for tool in await client.list_tools()}
        templates = await client.list_resource_templates()
        prompts = {prompt.name: prompt for prompt in await client.list_prompts()}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 60
        for name, schema in tool.input_schema["properties"].items():
            assert "type" in schema or "anyOf" in schema or "enum" in schema, name
    review = tools["review_finding"].input_schema
    assert review["properties"]["decision"]["enum"] == ["accept", "modify", "reject"]
    assert review["properties"]["password"]["format"] == "password"
    assert set(review["required"]) == {"study_uid", "decision", "password"}
    assert {t.uri_template for t in templates} == {
        "triallens://studies/{study_uid}/report",
        "triallens://trials/{trial_id}/subjects/{subject_id}/timeline",
    }
    assert set(prompts) == {"review_study", "summarise_subject_course"}
    assert prompts["review_study"].title == "Review this study"


async def test_worklist_filters(mcp_world: McpWorld) -> None:
    rows = await _call("mona", "list_worklist", {"trial_id": mcp_world.trial})
    assert [row["study_uid"] for row in rows] == [
        mcp_world.other_uid,
        mcp_world.followup_uid,
        mcp_world.baseline_uid,
    ]
    follow = rows[1]
    assert follow["priority"] == "EXPEDITED"
    assert follow["deviation_count"] == 1
    assert follow["overall_response"] == "PR"
    high = await _call("mona", "list_worklist", {"priority": "HIGH"})
    assert [row["study_uid"] for row in high] == [mcp_world.other_uid]
    pending = await _call("mona", "list_worklist", {"review_status": "pending"})
    assert len(pending) == 3
    assert await _call("mona", "list_worklist", {"trial_id": "NO-SUCH"}) == []
    limited = await _call("mona", "list_worklist", {"limit": 1})
    assert len(limited) == 1


async def test_study_triage_result(mcp_world: McpWorld) -> None:
    uid = mcp_world.followup_uid
    view = await _call("rita", "get_study_triage", {"study_uid": uid})
    assert view["subject_id"] == mcp_world.subject_id
    assert view["time_point_id"] == "WEEK08"
    assert view["deviations"] == [
        "visit window: WEEK08 imaged 2 days after the window closed"
    ]
    assert view["qc_flags"][0]["code"] == "SLICE_GAP"
    assert view["assessment"]["sum_of_diameters_mm"] == mcp_world.sod(uid)
    record = view["edc_record"]
    assert record["record_id"] == mcp_world.record_ids[uid]
    assert record["status"] == "draft"
    assert record["version"] == 1
    assert record["items"]["sum_of_diameters_mm"]["value"] == mcp_world.sod(uid)
    assert record["items"]["sum_of_diameters_mm"]["machine_derived"] is True


async def test_unknown_study_is_a_clear_error(mcp_world: McpWorld) -> None:
    with pytest.raises(ToolError, match=r"no triage result for study 2\.25\.999"):
        await _call("rita", "get_study_triage", {"study_uid": "2.25.999"})


async def test_subject_timeline_defaults_to_the_server_trial(
    mcp_world: McpWorld,
) -> None:
    default_trial = get_settings().trial_id
    assert default_trial != mcp_world.trial
    with pytest.raises(
        ToolError,
        match=f"no triaged studies for subject SUBJ-007 in trial {default_trial}",
    ):
        await _call("rita", "get_subject_timeline", {"subject_id": "SUBJ-007"})


async def test_subject_timeline_in_trial(mcp_world: McpWorld) -> None:
    lines = await _call(
        "rita",
        "get_subject_timeline",
        {"subject_id": mcp_world.subject_id, "trial_id": mcp_world.trial},
    )
    assert [line["time_point_id"] for line in lines] == ["BASELINE", "WEEK08"]
    base = mcp_world.sod(mcp_world.baseline_uid)
    follow = mcp_world.sod(mcp_world.followup_uid)
    assert lines[0]["sum_of_diameters_mm"] == base
    assert lines[1]["sum_of_diameters_mm"] == follow
    assert lines[1]["percent_change_from_baseline"] == round(
        100 * (follow - base) / base, 1
    )
    assert lines[1]["overall_response"] == "PR"


async def test_measurements(mcp_world: McpWorld) -> None:
    uid = mcp_world.baseline_uid
    view = await _call("mona", "get_measurements", {"study_uid": uid})
    lesions = {les["lesion_id"]: les for les in view["assessment"]["lesions"]}
    stored = {les.lesion_id: les for les in mcp_world.lesions[uid]}
    # RECIST 1.1: a node counts with its short axis, a lesion with its longest.
    assert lesions["N01"]["recist_diameter_mm"] == stored["N01"].short_axis_mm
    assert lesions["T01"]["recist_diameter_mm"] == stored["T01"].longest_diameter_mm
    assert view["assessment"]["sum_of_diameters_mm"] == pytest.approx(
        stored["N01"].short_axis_mm + stored["T01"].longest_diameter_mm
    )
    assert view["model_version"] == "recist_ct@abc123"


async def test_key_image_is_image_content(mcp_world: McpWorld) -> None:
    async with Client(_server("rita")) as client:
        result = await client.call_tool(
            "get_key_image", {"study_uid": mcp_world.followup_uid, "lesion_id": "T01"}
        )
    text, image = result.content
    assert text.type == "text"
    assert "lesion T01" in text.text
    assert "slice 31" in text.text
    assert image.type == "image"
    assert image.mime_type == "image/png"
    png = Image.open(io.BytesIO(base64.b64decode(image.data)))
    assert png.size == mcp_world.key_image_size


async def test_key_image_errors(mcp_world: McpWorld) -> None:
    with pytest.raises(ToolError, match="lesions with key images: T01"):
        await _call(
            "rita",
            "get_key_image",
            {"study_uid": mcp_world.followup_uid, "lesion_id": "N01"},
        )
    with pytest.raises(ToolError, match="has no key image"):
        await _call("rita", "get_key_image", {"study_uid": mcp_world.baseline_uid})


async def test_deviations(mcp_world: McpWorld) -> None:
    rows = await _call("mona", "list_deviations", {"trial_id": mcp_world.trial})
    assert {row["study_uid"] for row in rows} == {
        mcp_world.other_uid,
        mcp_world.followup_uid,
    }
    one = await _call("mona", "list_deviations", {"study_uid": mcp_world.baseline_uid})
    assert one == []
    subject = await _call(
        "mona",
        "list_deviations",
        {"trial_id": mcp_world.trial, "subject_id": mcp_world.subject_id},
    )
    assert [row["time_point_id"] for row in subject] == ["WEEK08"]


async def test_reader_accepts_with_signature(mcp_world: McpWorld) -> None:
    uid = mcp_world.followup_uid
    record = await _call(
        "rita",
        "review_finding",
        {
            "study_uid": uid,
            "decision": "accept",
            "password": mcp_world.passwords["rita"],
            "record_version": 1,
        },
    )
    assert record["status"] == "confirmed"
    assert record["version"] == 2
    assert "Rita Reader (rita), review" in record["signatures"][0]
    confirmed = await _call("mona", "list_worklist", {"review_status": "confirmed"})
    assert [row["study_uid"] for row in confirmed] == [uid]
    entries = _audit().show(f"edc_record:{mcp_world.record_ids[uid]}")
    mcp_entries = [e for e in entries if e.action == "mcp.review_finding"]
    assert len(mcp_entries) == 1
    assert mcp_entries[0].actor == "rita"
    assert mcp_entries[0].role == "reader"
    assert mcp_entries[0].new["client"] == "stdio"
    assert mcp_entries[0].new["decision"] == "accept"
    assert mcp_world.passwords["rita"] not in str([e.new for e in entries])


async def test_adjudicator_modifies_an_item(mcp_world: McpWorld) -> None:
    uid = mcp_world.baseline_uid
    record = await _call(
        "adam",
        "review_finding",
        {
            "study_uid": uid,
            "decision": "modify",
            "password": mcp_world.passwords["adam"],
            "item_name": "sum_of_diameters_mm",
            "new_value": 47.0,
            "reason": "node re-measured on the thinner series",
        },
    )
    item = record["items"]["sum_of_diameters_mm"]
    assert record["status"] == "modified"
    assert item["value"] == 47.0
    assert item["original_value"] == mcp_world.sod(uid)
    assert item["machine_derived"] is False
    assert "Adam Adjudicator (adam), approval" in record["signatures"][0]


async def test_review_argument_rules(mcp_world: McpWorld) -> None:
    uid = mcp_world.followup_uid
    with pytest.raises(ToolError, match="a reason is required to reject"):
        await _call(
            "rita",
            "review_finding",
            {
                "study_uid": uid,
                "decision": "reject",
                "password": mcp_world.passwords["rita"],
            },
        )
    with pytest.raises(ToolError, match="give item_name and new_value"):
        await _call(
            "rita",
            "review_finding",
            {
                "study_uid": uid,
                "decision": "modify",
                "password": mcp_world.passwords["rita"],
                "reason": "x",
            },
        )
    with pytest.raises(ToolError, match="has no EDC findings record"):
        await _call(
            "rita",
            "review_finding",
            {
                "study_uid": mcp_world.other_uid,
                "decision": "accept",
                "password": mcp_world.passwords["rita"],
            },
        )


async def test_wrong_password_signs_nothing(mcp_world: McpWorld) -> None:
    uid = mcp_world.followup_uid
    with pytest.raises(ToolError, match="password is wrong") as caught:
        await _call(
            "rita",
            "review_finding",
            {"study_uid": uid, "decision": "accept", "password": "not-her-password"},
        )
    assert "not-her-password" not in str(caught.value)
    view = await _call("rita", "get_study_triage", {"study_uid": uid})
    assert view["edc_record"]["status"] == "draft"
    actions = [
        e.action for e in _audit().show(f"edc_record:{view['edc_record']['record_id']}")
    ]
    assert "review.accept.refused" in actions
    assert "mcp.review_finding.failed" in actions


async def test_stale_version_is_a_conflict(mcp_world: McpWorld) -> None:
    uid = mcp_world.followup_uid
    args = {
        "study_uid": uid,
        "decision": "accept",
        "password": mcp_world.passwords["rita"],
        "record_version": 1,
    }
    await _call("rita", "review_finding", args)
    with pytest.raises(ToolError, match="changed since version 1"):
        await _call(
            "adam", "review_finding", dict(args, password=mcp_world.passwords["adam"])
        )


async def test_medical_monitor_may_not_review(mcp_world: McpWorld) -> None:
    uid = mcp_world.followup_uid
    with pytest.raises(ToolError, match=r"permission denied.*medical_monitor"):
        await _call(
            "mona",
            "review_finding",
            {
                "study_uid": uid,
                "decision": "accept",
                "password": mcp_world.passwords["mona"],
            },
        )
    denied = _audit().show("mcp_tool:review_finding")
    assert len(denied) == 1
    assert (denied[0].actor, denied[0].role, denied[0].action) == (
        "mona",
        "medical_monitor",
        "mcp.denied",
    )
    assert denied[0].new["client"] == "stdio"
    view = await _call("mona", "get_study_triage", {"study_uid": uid})
    assert view["edc_record"]["status"] == "draft"


async def test_queries_raise_and_list(mcp_world: McpWorld) -> None:
    uid = mcp_world.followup_uid
    query = await _call(
        "dana",
        "raise_query",
        {
            "study_uid": uid,
            "item_name": "sum_of_diameters_mm",
            "text": "Site reports a larger sum; please check the node measurement.",
            "site_value": 41.5,
        },
    )
    assert query["ai_value"] == mcp_world.sod(uid)
    assert query["site_value"] == 41.5
    assert query["time_point_id"] == "WEEK08"
    assert query["record_id"] == mcp_world.record_ids[uid]
    assert query["raised_by"] == "dana"
    listed = await _call(
        "mona", "list_queries", {"trial_id": mcp_world.trial, "status": "open"}
    )
    assert [q["query_id"] for q in listed] == [query["query_id"]]
    assert (
        await _call(
            "mona", "list_queries", {"trial_id": mcp_world.trial, "status": "closed"}
        )
        == []
    )
    audited = _audit().show(f"edc_query:{query['query_id']}")
    assert {e.action for e in audited} == {"edc.raise_query", "mcp.raise_query"}
    with pytest.raises(ToolError, match="no item 'lvef'"):
        await _call(
            "dana",
            "raise_query",
            {"study_uid": uid, "item_name": "lvef", "text": "Please check LVEF."},
        )
    with pytest.raises(ToolError, match="permission denied"):
        await _call(
            "rita",
            "raise_query",
            {"study_uid": uid, "item_name": "sum_of_diameters_mm", "text": "Check."},
        )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"limit": "many"}, r"limit: Input should be a valid integer"),
        ({"limit": "[5]"}, r"limit: was sent as a JSON string"),
        ({"priority": "URGENT"}, r"priority: Input should be 'HIGH'"),
        ({"colour": "red"}, r"colour: not an argument of list_worklist"),
        ({"trial_id": '{"trial_id": "TL-MCP-001"}'}, r"trial_id: holds a JSON doc"),
    ],
)
async def test_bad_arguments_are_clear(
    mcp_world: McpWorld, args: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ToolError, match=expected) as caught:
        await _call("rita", "list_worklist", args)
    message = str(caught.value)
    assert message.startswith("invalid arguments for list_worklist")
    assert "pydantic" not in message
    assert "Traceback" not in message


async def test_wrong_type_of_study_uid(mcp_world: McpWorld) -> None:
    with pytest.raises(ToolError, match=r"study_uid: .*pattern"):
        await _call("rita", "get_study_triage", {"study_uid": "SUBJ-007"})
    with pytest.raises(ToolError, match="study_uid: required"):
        await _call("rita", "get_study_triage", {})


async def test_internal_errors_are_masked(mcp_world: McpWorld) -> None:
    db = get_settings().data_dir / "triallens.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE triage_results SET result_json = '{\"broken\": true}' "
            "WHERE study_uid = ?",
            (mcp_world.baseline_uid,),
        )
    with pytest.raises(ToolError) as caught:
        await _call("rita", "get_study_triage", {"study_uid": mcp_world.baseline_uid})
    message = str(caught.value)
    assert message == "Error calling tool 'get_study_triage'"
    assert str(mcp_world.data_dir) not in message


async def test_resources(mcp_world: McpWorld) -> None:
    uid = mcp_world.followup_uid
    async with Client(_server("mona")) as client:
        report = await client.read_resource(f"triallens://studies/{uid}/report")
        timeline = await client.read_resource(
            f"triallens://trials/{mcp_world.trial}/subjects/{mcp_world.subject_id}/timeline"
        )
    text = report[0].text
    assert f"study {uid}" in text
    assert f"Sum of diameters: {mcp_world.sod(uid):.1f} mm" in text
    assert "visit window: WEEK08" in text
    assert "| T01 | lesion | liver |" in text
    rows = [line for line in timeline[0].text.splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| BASELINE | 20260105 |")
    assert f"| {mcp_world.sod(uid):.1f} |" in rows[2]


async def test_unknown_resource_is_a_clear_error(mcp_world: McpWorld) -> None:
    from mcp.shared.exceptions import MCPError

    async with Client(_server("mona")) as client:
        with pytest.raises(MCPError, match=r"no triage result for study 2\.25\.9"):
            await client.read_resource("triallens://studies/2.25.9/report")


async def test_prompts(mcp_world: McpWorld) -> None:
    uid = mcp_world.followup_uid
    async with Client(_server("rita")) as client:
        review = await client.get_prompt("review_study", {"study_uid": uid})
        course = await client.get_prompt(
            "summarise_subject_course",
            {"subject_id": mcp_world.subject_id, "trial_id": mcp_world.trial},
        )
    review_text = review.messages[0].content.text
    assert f"Review study {uid}" in review_text
    assert "review_finding" in review_text
    assert f"Sum of diameters: {mcp_world.sod(uid):.1f} mm" in review_text
    course_text = course.messages[0].content.text
    assert f"subject {mcp_world.subject_id}" in course_text
    assert "| WEEK08 | 20260302 |" in course_text


async def test_stdio_user_must_be_configured(mcp_world: McpWorld) -> None:
    with pytest.raises(ConfigurationError, match="TRIALLENS_MCP_USER"):
        build_server(get_settings())
    with pytest.raises(ToolError, match="configured MCP user is unknown"):
        await _call("nobody", "list_worklist")
