"""The LLM client over HTTP against the scripted OpenAI-compatible server."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from agent.llm import (
    ChatReply,
    LlmClient,
    LlmContextLengthError,
    LlmError,
    LlmOutputError,
    LlmUnavailableError,
    llm_client_from_settings,
)
from tests._llm_fixtures import (
    SCRIPTED_MODEL,
    ScriptedLlmServer,
    ScriptedReply,
    free_port,
    scripted_llm,
)
from triallens.errors import ConfigurationError
from triallens.settings import Settings

__all__ = ["scripted_llm"]

MESSAGES = [{"role": "user", "content": "Describe lesion L1."}]


class Answer(BaseModel):
    lesion_id: str
    diameter_mm: float


def client_for(server: ScriptedLlmServer, retries: int = 2) -> LlmClient:
    return LlmClient(server.base_url, retries=retries, backoff_s=0.01, timeout_s=5)


def test_from_settings_uses_the_llm_settings(scripted_llm: ScriptedLlmServer) -> None:
    settings = Settings(
        llm_base_url=scripted_llm.base_url,
        llm_model="served-name",
        llm_api_key="k-123",
        llm_timeout_s=7,
        llm_retries=4,
    )
    client = LlmClient.from_settings(settings)
    assert (client.base_url, client.model) == (scripted_llm.base_url, "served-name")
    assert (client.timeout_s, client.retries) == (7, 4)
    assert client._openai.api_key == "k-123"
    assert llm_client_from_settings(Settings(llm_base_url=None)) is None
    with pytest.raises(ConfigurationError, match="TRIALLENS_LLM_BASE_URL"):
        LlmClient.from_settings(Settings(llm_base_url=None))


def test_the_model_is_asked_of_the_server_when_not_set(
    scripted_llm: ScriptedLlmServer,
) -> None:
    scripted_llm.script(ScriptedReply(content="ok"))
    reply = client_for(scripted_llm).chat(MESSAGES)
    assert reply == ChatReply(
        content="ok",
        model=SCRIPTED_MODEL,
        usage=reply.usage,
        finish_reason="stop",
    )
    assert scripted_llm.requests[0]["model"] == SCRIPTED_MODEL
    assert scripted_llm.requests[0]["temperature"] == 0.0


def test_structured_output_sends_the_schema_and_validates(
    scripted_llm: ScriptedLlmServer,
) -> None:
    scripted_llm.script(
        ScriptedReply(content='{"lesion_id": "L1", "diameter_mm": 23.5}')
    )
    value, reply = client_for(scripted_llm).structured(MESSAGES, Answer)
    assert value == Answer(lesion_id="L1", diameter_mm=23.5)
    sent = scripted_llm.requests[0]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"] == Answer.model_json_schema()
    assert reply.usage is not None and reply.usage.total_tokens > 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "does not match Answer"),
        ('{"lesion_id": "L1"}', "diameter_mm: Field required"),
        ("", "empty structured reply"),
    ],
)
def test_invalid_structured_output_is_a_clear_error(
    scripted_llm: ScriptedLlmServer, content: str, message: str
) -> None:
    scripted_llm.script(ScriptedReply(content=content))
    with pytest.raises(LlmOutputError, match=message):
        client_for(scripted_llm).structured(MESSAGES, Answer)
    assert len(scripted_llm.requests) == 1


def test_connection_refused_is_retried_then_reported() -> None:
    port = free_port()
    client = LlmClient(
        f"http://127.0.0.1:{port}/v1", "m", retries=2, backoff_s=0.01, timeout_s=2
    )
    with pytest.raises(LlmUnavailableError, match="refused the connection") as info:
        client.chat(MESSAGES)
    assert info.value.attempts == 3
    assert "after 3 attempt(s)" in str(info.value)


def test_a_dropped_request_is_retried(scripted_llm: ScriptedLlmServer) -> None:
    scripted_llm.script(ScriptedReply(drop=True), ScriptedReply(content="second"))
    reply = client_for(scripted_llm).chat(MESSAGES)
    assert (reply.content, reply.attempts) == ("second", 2)
    assert len(scripted_llm.requests) == 2


def test_server_errors_are_retried_until_the_budget_is_spent(
    scripted_llm: ScriptedLlmServer,
) -> None:
    scripted_llm.script(*[ScriptedReply(status=503, error="engine busy")] * 2)
    with pytest.raises(LlmUnavailableError, match="HTTP 503") as info:
        client_for(scripted_llm, retries=1).chat(MESSAGES)
    assert info.value.attempts == 2


def test_dropped_every_time_says_the_server_stopped(
    scripted_llm: ScriptedLlmServer,
) -> None:
    scripted_llm.script(*[ScriptedReply(drop=True)] * 3)
    with pytest.raises(LlmUnavailableError, match="mid-request") as info:
        client_for(scripted_llm).chat(MESSAGES)
    assert info.value.attempts == 3


def test_context_length_is_a_clear_error_and_not_retried(
    scripted_llm: ScriptedLlmServer,
) -> None:
    error = (
        "This model's maximum context length is 512 tokens. However, your "
        "prompt contains at least 900 input tokens."
    )
    scripted_llm.script(ScriptedReply(status=400, error=error))
    with pytest.raises(LlmContextLengthError, match="longer than the context") as info:
        client_for(scripted_llm).chat(MESSAGES)
    assert "512 tokens" in str(info.value)
    assert len(scripted_llm.requests) == 1


def test_a_bad_key_is_named_and_not_retried(scripted_llm: ScriptedLlmServer) -> None:
    scripted_llm.script(ScriptedReply(status=401, error="Unauthorized"))
    with pytest.raises(LlmError, match="TRIALLENS_LLM_API_KEY"):
        client_for(scripted_llm).chat(MESSAGES)
    assert len(scripted_llm.requests) == 1


def test_a_stream_is_handed_on_once_complete(scripted_llm: ScriptedLlmServer) -> None:
    text = "Lesion L1 measured 23.5 mm."
    scripted_llm.script(ScriptedReply(content=text))
    written: list[ChatReply] = []
    pieces = list(client_for(scripted_llm).stream(MESSAGES, on_complete=written.append))
    assert len(pieces) == 7
    assert "".join(pieces) == text
    assert [w.content for w in written] == [text]
    assert written[0].finish_reason == "stop"
    assert written[0].usage is not None and written[0].usage.completion_tokens > 0


def test_a_stream_cut_short_writes_nothing(scripted_llm: ScriptedLlmServer) -> None:
    scripted_llm.script(
        ScriptedReply(content="Lesion L1 measured 23.5 mm.", cut_after=2)
    )
    written: list[ChatReply] = []
    received: list[str] = []
    with pytest.raises(LlmUnavailableError, match="broke off after 2 pieces"):
        for piece in client_for(scripted_llm).stream(
            MESSAGES, on_complete=written.append
        ):
            received.append(piece)
    assert received == ["Lesi", "on L"]
    assert written == []


def test_a_stream_refused_before_any_text_is_retried(
    scripted_llm: ScriptedLlmServer,
) -> None:
    scripted_llm.script(ScriptedReply(drop=True), ScriptedReply(content="L1 23.5 mm"))
    written: list[ChatReply] = []
    text = "".join(
        client_for(scripted_llm).stream(MESSAGES, on_complete=written.append)
    )
    assert text == "L1 23.5 mm"
    assert [(w.content, w.attempts) for w in written] == [("L1 23.5 mm", 2)]
