"""A vLLM server that stops mid-request: clear errors, retries, nothing written.

This module has its own server because the test kills it.
"""

from __future__ import annotations

import threading
import time

import pytest

from agent.llm import ChatReply, LlmClient, LlmUnavailableError, draft_narrative
from tests._llm_fixtures import VllmServer, sample_result, vllm_server

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
__all__ = ["vllm_server"]

LONG_REPLY = {"ignore_eos": True, "min_tokens": 480}
# Twenty log-probabilities per token make a 480-token reply take about a
# second on two cores, several times the window in which the server is killed.
SLOW_REPLY = {**LONG_REPLY, "logprobs": True, "top_logprobs": 20}
MESSAGES = [{"role": "user", "content": "Describe the study."}]


def test_server_stopped_mid_request(vllm_server: VllmServer) -> None:
    client = LlmClient(vllm_server.base_url, retries=2, backoff_s=0.2, timeout_s=30)
    edc_writes: list[ChatReply] = []

    # A stream that has handed on its first piece when the server dies: the
    # caller gets a clear error and the completion callback never runs.
    stream = client.stream(
        MESSAGES, max_tokens=480, extra_body=LONG_REPLY, on_complete=edc_writes.append
    )
    streamed = [next(stream)]
    vllm_server.kill()
    with pytest.raises(LlmUnavailableError, match="broke off after") as broken:
        streamed.extend(stream)
    assert "partial reply was discarded" in str(broken.value)
    assert edc_writes == []

    # A plain call in flight when the server dies is retried, then fails
    # with both causes named; nothing is written.
    vllm_server.start()
    outcome: dict[str, BaseException | ChatReply] = {}

    def draft_and_write() -> None:
        try:
            reply = client.chat(MESSAGES, max_tokens=480, extra_body=SLOW_REPLY)
        except BaseException as exc:
            outcome["error"] = exc
            return
        edc_writes.append(reply)
        outcome["reply"] = reply

    # The first use of log-probabilities compiles for seconds; do it first.
    client.chat(
        MESSAGES, max_tokens=2, extra_body={"logprobs": True, "top_logprobs": 20}
    )
    worker = threading.Thread(target=draft_and_write)
    worker.start()
    time.sleep(0.4)
    vllm_server.kill()
    worker.join(timeout=60)

    error = outcome.get("error")
    assert isinstance(error, LlmUnavailableError), outcome
    assert error.attempts == 3
    assert "refused the connection" in str(error)
    assert "first attempt" in str(error) and "mid-request" in str(error)
    assert edc_writes == []

    # Later calls fail fast with the same clear error, or fall back if asked.
    with pytest.raises(LlmUnavailableError, match="refused the connection"):
        draft_narrative(sample_result(), client)
    narrative = draft_narrative(sample_result(), client, fallback_on_error=True)
    assert narrative.source == "template"
    assert narrative.refused_reason is not None
    assert narrative.refused_reason.startswith("LLM request failed:")
