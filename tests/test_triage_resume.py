"""A triage process killed mid-graph resumes from its checkpoint."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests._synth_fixtures import stored_recist_baseline

pytestmark = pytest.mark.slow


def _triage(data_dir: Path, study_uid: str, kill_after: str | None = None) -> int:
    env = dict(os.environ, TRIALLENS_DATA_DIR=str(data_dir))
    if kill_after:
        env["TRIALLENS_FAULT_KILL_AFTER_NODE"] = kill_after
    proc = subprocess.run(
        [sys.executable, "-m", "triallens", "triage", "--study", study_uid],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    return proc.returncode


@pytest.mark.parametrize("kill_after", ["measure", "write_outputs"])
def test_killed_run_resumes_with_one_edc_record(
    tmp_path: Path, kill_after: str
) -> None:
    ctx, data_dir, study_uid = stored_recist_baseline(tmp_path)

    assert _triage(data_dir, study_uid, kill_after) == -signal.SIGKILL
    with sqlite3.connect(data_dir / "checkpoints.db") as db:
        assert db.execute("select count(*) from checkpoints").fetchone()[0] > 0
    if kill_after == "write_outputs":
        assert len(ctx.edc.list_records()) == 1

    assert _triage(data_dir, study_uid) == 0
    assert _triage(data_dir, study_uid) == 0

    records = ctx.edc.list_records()
    assert len(records) == 1
    result = ctx.store.get_study(records[0].study_uid)
    assert result is not None
    assert result.edc_record_id == records[0].record_id
    # The record cites the trace that completed the work, as the result does.
    assert records[0].trace_id == result.trace_id

    # Either UID finds it: the PACS's own, or the de-identified one.
    asked = study_uid if kill_after == "write_outputs" else result.study.study_uid
    shown = subprocess.run(
        [sys.executable, "-m", "triallens", "trace", "show", asked],
        capture_output=True,
        text=True,
        env=dict(os.environ, TRIALLENS_DATA_DIR=str(data_dir), COLUMNS="200"),
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr
    assert result.trace_id in shown.stdout
    for node in ("write_outputs", "await_review"):
        assert node in shown.stdout
