"""MLflow traces of LLM calls: prompt version, served model, tokens, no PHI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.llm import LlmClient, draft_narrative
from prompts import load_prompt, register_prompt
from tests._llm_fixtures import (
    SCRIPTED_MODEL,
    ScriptedLlmServer,
    ScriptedReply,
    sample_result,
    scripted_llm,
)
from triallens.settings import Settings

__all__ = ["scripted_llm"]

PHI = {
    "name": ["DOE^JANE"],
    "id": ["MRN-778812", "ACC99812"],
    "date": ["19580214"],
    "text": ["St Elsewhere General Hospital"],
}


def traced_settings(tmp_path: Path, base_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        llm_base_url=base_url,
        llm_model=None,
        llm_retries=0,
    )


def stored_traces(client: LlmClient) -> list[Any]:
    import mlflow

    assert client.tracer is not None
    client.tracer._ensure()
    experiment = mlflow.get_experiment_by_name("triallens-triage")
    return mlflow.search_traces(
        locations=[experiment.experiment_id], return_type="list"
    )


def test_narrative_calls_are_traced(
    scripted_llm: ScriptedLlmServer, tmp_path: Path
) -> None:
    from triallens.phi import PhiGuard

    text = "Liver lesion L1 measured 23.5 mm; overall response PD, priority HIGH."
    scripted_llm.script(
        ScriptedReply(content=json.dumps({"narrative": text}), model="served-7b")
    )
    client = LlmClient.from_settings(
        traced_settings(tmp_path, scripted_llm.base_url), tracing=True
    )
    narrative = draft_narrative(sample_result(), client)
    assert narrative.source == "llm" and narrative.model == "served-7b"

    (trace,) = stored_traces(client)
    spans = {span.name: span for span in trace.data.spans}
    assert set(spans) == {"draft_narrative", "llm.structured"}
    llm = spans["llm.structured"]
    assert llm.parent_id == spans["draft_narrative"].span_id
    assert llm.attributes["triallens.prompt.id"] == "triage-narrative"
    assert llm.attributes["triallens.prompt.version"] == 1
    prompt = load_prompt("triage-narrative")
    assert llm.attributes["triallens.prompt.content_hash"] == prompt.content_hash
    assert llm.attributes["llm.model_requested"] == SCRIPTED_MODEL
    assert llm.attributes["mlflow.llm.model"] == "served-7b"
    usage = llm.attributes["mlflow.chat.tokenUsage"]
    sent = scripted_llm.requests[-1]
    assert usage["input_tokens"] == len(json.dumps(sent["messages"])) // 4
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert trace.info.tags["triallens.prompt.triage-narrative"] == prompt.version_label
    assert spans["draft_narrative"].outputs["source"] == "llm"
    # The prompt version was registered in MLflow's prompt registry.
    assert trace.info.tags["triallens.prompt.triage-narrative.mlflow"] == "1"
    assert register_prompt(prompt) == 1

    assert PhiGuard.from_mapping(PHI).scan(trace.to_json()) == []


def test_a_refused_draft_is_traced_with_its_reason(
    scripted_llm: ScriptedLlmServer, tmp_path: Path
) -> None:
    scripted_llm.script(
        ScriptedReply(content=json.dumps({"narrative": "L1 is 44.4 mm."}))
    )
    client = LlmClient.from_settings(
        traced_settings(tmp_path, scripted_llm.base_url), tracing=True
    )
    narrative = draft_narrative(sample_result(), client)
    assert narrative.source == "template"

    (trace,) = stored_traces(client)
    outer = next(s for s in trace.data.spans if s.name == "draft_narrative")
    assert outer.outputs["source"] == "template"
    assert outer.outputs["problems"] == ["number '44.4' is not in the findings"]
