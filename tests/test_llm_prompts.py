"""Versioned prompt templates and their registration in MLflow."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import prompts
from prompts import PromptError, list_prompts, load_prompt, register_prompt


def test_prompts_have_id_version_and_content_hash() -> None:
    prompt = load_prompt("triage-narrative")
    assert (prompt.id, prompt.version) == ("triage-narrative", 1)
    canonical = json.dumps(
        {"id": prompt.id, "version": prompt.version, "messages": prompt.messages},
        sort_keys=True,
        ensure_ascii=False,
    )
    assert prompt.content_hash == hashlib.sha256(canonical.encode()).hexdigest()
    assert prompt.version_label == f"1+{prompt.content_hash[:12]}"
    assert prompt.variables == {"findings_json"}
    assert {p.id for p in list_prompts()} >= {"triage-narrative", "chat-assistant"}


def test_render_fills_placeholders_once_and_checks_names() -> None:
    prompt = load_prompt("triage-narrative")
    messages = prompt.render(findings_json='{"x": "{{ findings_json }}"}')
    assert [m["role"] for m in messages] == ["system", "user"]
    assert '{"x": "{{ findings_json }}"}' in messages[1]["content"]
    with pytest.raises(PromptError, match="missing variables"):
        prompt.render()
    with pytest.raises(PromptError, match="unknown variables"):
        prompt.render(findings_json="{}", extra="x")
    with pytest.raises(PromptError, match="No prompt 'nope'"):
        load_prompt("nope")


def test_a_changed_text_changes_the_hash(tmp_path: Path) -> None:
    source = (prompts.PROMPTS_DIR / "chat_assistant.yaml").read_text()
    (tmp_path / "a.yaml").write_text(source)
    (tmp_path / "b.yaml").write_text(source.replace("You answer", "You reply to"))
    first = prompts._parse(tmp_path / "a.yaml")
    second = prompts._parse(tmp_path / "b.yaml")
    assert (first.id, first.version) == (second.id, second.version)
    assert first.content_hash != second.content_hash


def test_prompts_are_registered_once_per_text_in_mlflow(tmp_path: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    prompt = load_prompt("triage-narrative")
    assert register_prompt(prompt) == 1
    assert register_prompt(prompt) == 1

    stored = mlflow.genai.load_prompt("prompts:/triage-narrative/1")
    assert stored.tags["triallens.content_hash"] == prompt.content_hash
    assert stored.tags["triallens.prompt_version"] == "1"
    assert stored.template == [
        {"role": role, "content": text} for role, text in prompt.messages
    ]

    changed = prompts.Prompt(
        id=prompt.id,
        version=2,
        description=prompt.description,
        messages=prompt.messages[:1],
        content_hash="0" * 64,
    )
    assert register_prompt(changed) == 2
