"""A vLLM server that stops mid-request: clear errors, retries, nothing written.

This module has its own server because the test kills it.
"""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from agent.llm import ChatReply, LlmClient, LlmUnavailableError, draft_narrative
from tests._llm_fixtures import VllmServer, sample_result, vllm_server

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
__all__ = ["vllm_server"]

LONG_REPLY = {"ignore_eos": True, "min_tokens": 480}
WARM_UP = {"ignore_eos": True, "min_tokens": 16}
MESSAGES = [{"role": "user", "content": "Describe the study."}]


class RelayProxy:
    """A TCP relay on loopback that notes when a request reached the server.

    A non-streamed reply is sent only once it is complete, so "request
    relayed, no reply byte yet" means the server is working on it.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.request_relayed = threading.Event()
        self.reply_started = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            for source, target, event in (
                (client, upstream, self.request_relayed),
                (upstream, client, self.reply_started),
            ):
                threading.Thread(
                    target=self._pump, args=(source, target, event), daemon=True
                ).start()

    @staticmethod
    def _pump(
        source: socket.socket, target: socket.socket, event: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
                event.set()
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def test_server_stopped_mid_request(vllm_server: VllmServer) -> None:
    client = LlmClient(vllm_server.base_url, retries=2, backoff_s=0.2, timeout_s=30)
    edc_writes: list[ChatReply] = []

    # A stream that has handed on its first piece when the server dies: the
    # caller gets a clear error and the completion callback never runs. A
    # warm-up stream first, so that the server's first-request set-up does
    # not delay the pieces until the whole reply is ready.
    warm_up = list(client.stream(MESSAGES, max_tokens=16, extra_body=WARM_UP))
    assert "".join(warm_up) == '"' * 16
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
    # with a clear error; nothing is written.
    vllm_server.start()
    proxy = RelayProxy(vllm_server.port)
    relayed = LlmClient(
        f"http://127.0.0.1:{proxy.port}/v1",
        vllm_server.model_name,
        retries=2,
        backoff_s=0.2,
        timeout_s=30,
    )
    outcome: dict[str, BaseException | ChatReply] = {}

    def draft_and_write() -> None:
        try:
            reply = relayed.chat(MESSAGES, max_tokens=480, extra_body=LONG_REPLY)
        except BaseException as exc:
            outcome["error"] = exc
            return
        edc_writes.append(reply)
        outcome["reply"] = reply

    worker = threading.Thread(target=draft_and_write)
    worker.start()
    assert proxy.request_relayed.wait(timeout=30)
    assert not proxy.reply_started.is_set()
    vllm_server.kill()
    worker.join(timeout=60)
    proxy.close()

    error = outcome.get("error")
    assert isinstance(error, LlmUnavailableError), outcome
    assert error.attempts == 3
    assert "closed the connection mid-request" in str(error)
    assert edc_writes == []

    # Later calls fail fast with the same clear error, or fall back if asked.
    with pytest.raises(LlmUnavailableError, match="refused the connection"):
        draft_narrative(sample_result(), client)
    narrative = draft_narrative(sample_result(), client, fallback_on_error=True)
    assert narrative.source == "template"
    assert narrative.refused_reason is not None
    assert narrative.refused_reason.startswith("LLM request failed:")
