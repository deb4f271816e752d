"""The chat agent's tool-calling round trip against the scripted server."""

from __future__ import annotations

import json
from typing import Literal

import pytest

from agent.chat import ChatAgent, ChatTool
from agent.llm import LlmClient
from tests._llm_fixtures import (
    ScriptedLlmServer,
    ScriptedReply,
    sample_result,
    scripted_llm,
)
from triallens.errors import NotFoundError

__all__ = ["scripted_llm"]

RESULT = sample_result()


def get_lesion(lesion_id: Literal["L1", "N1"], time_point: str = "TP2") -> dict:
    """Measurements of one target lesion at one time point."""
    assert RESULT.assessment is not None
    if time_point != RESULT.study.time_point_id:
        raise NotFoundError(f"no time point {time_point}")
    lesion = next(x for x in RESULT.assessment.lesions if x.lesion_id == lesion_id)
    return {"lesion_id": lesion_id, "longest_diameter_mm": lesion.longest_diameter_mm}


def agent_for(server: ScriptedLlmServer) -> ChatAgent:
    client = LlmClient(server.base_url, retries=0, timeout_s=5)
    return ChatAgent(client, [get_lesion])


def test_tool_schemas_come_from_the_signature() -> None:
    schema = ChatTool(get_lesion).schema()["function"]
    assert schema["name"] == "get_lesion"
    assert (
        schema["description"] == "Measurements of one target lesion at one time point."
    )
    parameters = schema["parameters"]
    assert parameters["properties"]["lesion_id"]["enum"] == ["L1", "N1"]
    assert parameters["required"] == ["lesion_id"]
    assert parameters["additionalProperties"] is False


def test_a_named_tool_call_round_trip(scripted_llm: ScriptedLlmServer) -> None:
    scripted_llm.script(
        ScriptedReply(
            tool_calls=[{"name": "get_lesion", "arguments": {"lesion_id": "L1"}}]
        ),
        ScriptedReply(content="Lesion L1 measures 23.47 mm."),
    )
    answer = agent_for(scripted_llm).ask("How big is L1?", tool="get_lesion")

    assert answer.text == "Lesion L1 measures 23.47 mm."
    (invocation,) = answer.invocations
    assert invocation.arguments == {"lesion_id": "L1", "time_point": "TP2"}
    assert json.loads(invocation.result) == {
        "lesion_id": "L1",
        "longest_diameter_mm": 23.47,
    }
    first, second = scripted_llm.requests
    assert first["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_lesion"},
    }
    assert first["parallel_tool_calls"] is False
    assert first["tools"][0]["function"]["name"] == "get_lesion"
    assert second["tool_choice"] == "none"
    tool_message = second["messages"][-1]
    assert tool_message == {
        "role": "tool",
        "tool_call_id": "call-0",
        "content": invocation.result,
    }
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "get_lesion"
    assert answer.usage.total_tokens > 0


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"lesion_id": "L9"}, "lesion_id: Input should be 'L1' or 'N1'"),
        ({"lesion": "L1"}, "lesion_id: Field required"),
        ({"lesion_id": "L1", "time_point": "TP7"}, "no time point TP7"),
    ],
)
def test_bad_calls_are_reported_back_to_the_model(
    scripted_llm: ScriptedLlmServer, arguments: dict, error: str
) -> None:
    scripted_llm.script(
        ScriptedReply(tool_calls=[{"name": "get_lesion", "arguments": arguments}]),
        ScriptedReply(content="The lookup failed."),
    )
    answer = agent_for(scripted_llm).ask("How big is it?", tool="get_lesion")
    (invocation,) = answer.invocations
    assert invocation.error is not None and error in invocation.error
    assert scripted_llm.requests[1]["messages"][-1]["content"].startswith("error: ")
    assert answer.text == "The lookup failed."


def test_unknown_tools_are_refused_before_any_call(
    scripted_llm: ScriptedLlmServer,
) -> None:
    with pytest.raises(ValueError, match="Unknown tool 'drop_table'"):
        agent_for(scripted_llm).ask("x", tool="drop_table")
    assert scripted_llm.requests == []
