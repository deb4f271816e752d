"""One triage run at a time per study version, across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.triage.locking import thread_lock
from tests._db_fixtures import fresh_postgres_url
from tests._synth_fixtures import stored_recist_baseline
from triallens.errors import TrialLensError


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def checkpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "checkpoints.db")
    else:
        yield from fresh_postgres_url()


def test_a_second_holder_waits_for_the_first(checkpoint: str) -> None:
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with thread_lock(checkpoint, "key:v1"):
            held.set()
            time.sleep(0.6)
            order.append("first done")

    worker = threading.Thread(target=first)
    worker.start()
    held.wait(10)
    with thread_lock(checkpoint, "key:v1"):
        order.append("second in")
    worker.join()
    assert order == ["first done", "second in"]
    # Another thread of the same study is not held up.
    with thread_lock(checkpoint, "key:v2"):
        pass


def test_a_lock_held_too_long_is_a_clear_error(checkpoint: str) -> None:
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with thread_lock(checkpoint, "key:v1"):
            held.set()
            release.wait(10)

    worker = threading.Thread(target=holder)
    worker.start()
    held.wait(10)
    try:
        with (
            pytest.raises(TrialLensError, match="held its lock"),
            thread_lock(checkpoint, "key:v1", timeout_s=0.5),
        ):
            pass
    finally:
        release.set()
        worker.join()


@pytest.mark.slow
def test_two_processes_triaging_one_study_make_one_run(tmp_path: Path) -> None:
    ctx, data_dir, study_uid = stored_recist_baseline(tmp_path)

    env = dict(os.environ, TRIALLENS_DATA_DIR=str(data_dir))
    command = [sys.executable, "-m", "triallens", "triage", "--study", study_uid]
    runs = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err.decode()
        assert "INFO" not in err.decode()  # a new MLflow store is created quietly

    (record,) = ctx.edc.list_records()
    result = ctx.store.get_study(record.study_uid)
    assert result is not None
    assert result.trace_id == record.trace_id
    triage_entries = [
        e for e in ctx.audit.show(f"study/{record.study_uid}") if e.action == "triage"
    ]
    assert len(triage_entries) == 1
