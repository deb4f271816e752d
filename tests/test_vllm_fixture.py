"""The vLLM fixture's own failure handling, with stand-ins for the server."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests._llm_fixtures import VllmServer


def fake_python(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_a_server_that_exits_fails_with_its_log_tail(tmp_path: Path) -> None:
    python = fake_python(tmp_path, 'echo "ValueError: no such model" >&2; exit 3')
    server = VllmServer(tmp_path / "work", python, model_dir=tmp_path)
    with pytest.raises(RuntimeError, match="exited with code 3") as info:
        server.start(timeout_s=30)
    assert "ValueError: no such model" in str(info.value)


def test_a_server_that_never_gets_ready_is_stopped(tmp_path: Path) -> None:
    python = fake_python(tmp_path, 'echo "loading weights"; exec sleep 600')
    server = VllmServer(tmp_path / "work", python, model_dir=tmp_path)
    with pytest.raises(RuntimeError, match="not ready within 2 s") as info:
        server.start(timeout_s=2)
    assert "loading weights" in str(info.value)
    assert server.process is not None
    assert server.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(server.process.pid, 0)


def test_the_server_gets_private_temp_and_cache_dirs(tmp_path: Path) -> None:
    python = fake_python(tmp_path, 'env; echo "$@"; exit 1')
    server = VllmServer(tmp_path / "work", python, model_dir=tmp_path)
    with pytest.raises(RuntimeError):
        server.start(timeout_s=30)
    log = server.log_path.read_text()
    work = tmp_path / "work"
    for key in ("TMPDIR", "VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR"):
        assert f"{key}={work}/" in log
    assert "--host 127.0.0.1" in log
    assert "--tool-call-parser hermes --tool-strict-level parameter" in log
