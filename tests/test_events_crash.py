"""A watcher process killed mid-study and restarted triages the study once."""

from __future__ import annotations

import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._orthanc_fixtures import (
    free_port,
    push_with_storescu,
    synthetic_ct_study,
    write_datasets,
)
from triallens.db import make_engine
from triallens.events import EventLog, EventStatus, study_version

pytestmark = [
    pytest.mark.slow,
    pytest.mark.orthanc,
    pytest.mark.skipif(
        shutil.which("storescu") is None, reason="dcmtk is not installed"
    ),
]

REPO = Path(__file__).resolve().parents[1]

WORKER = """
import sqlite3, sys, time
from pathlib import Path
from tools.pacs import LocalPacs
from tools.pacs.sources.dimse import DimseSource
from tools.pacs.watch import Watcher
from triallens.db import make_engine
from triallens.events import EventLog

work, port, pause = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
log = EventLog(make_engine(f"sqlite:///{work / 'events.db'}"))
pacs = LocalPacs(work / "store")
edc = sqlite3.connect(work / "edc.db", isolation_level=None, check_same_thread=False)
edc.execute("CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, instances INT)")
edc.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT)")

def triage(event):
    key = f"{event.study_uid}:{event.study_version}"
    edc.execute("INSERT INTO calls VALUES (?)", (key,))
    time.sleep(pause)
    # The EDC write is keyed by study version, as the triage graph's is.
    edc.execute(
        "INSERT OR IGNORE INTO records VALUES (?, ?)", (key, event.details["instances"])
    )

source = DimseSource(pacs, work / "spool", ae_title="TLSCP", port=port, quiet_s=1.5)
Watcher([source], log, triage, pacs=pacs, idle_s=0.1).run()
"""


def _start(work: Path, port: int, pause: float) -> subprocess.Popen[bytes]:
    script = work / "worker.py"
    script.write_text(WORKER)
    process = subprocess.Popen(
        [sys.executable, str(script), str(work), str(port), str(pause)],
        cwd=REPO,
        env={**_env(), "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "worker exited at start-up"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("worker did not start listening")


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _rows(work: Path, table: str) -> list[tuple[object, ...]]:
    if not (work / "edc.db").exists():
        return []
    with sqlite3.connect(work / "edc.db") as conn:
        try:
            return conn.execute(f"SELECT * FROM {table}").fetchall()
        except sqlite3.OperationalError:
            return []


def _wait(condition, timeout_s: float = 40) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=30)


def test_killed_while_the_study_arrives(tmp_path: Path) -> None:
    port = free_port()
    study = synthetic_ct_study(slices=6, size=8)
    files = write_datasets(study, tmp_path / "push")
    worker = _start(tmp_path, port, pause=0.0)
    push_with_storescu(files[:3], port, "TLSCP")
    worker.kill()  # inside the quiet period: the study is not complete yet
    worker.wait()

    worker = _start(tmp_path, port, pause=0.0)
    push_with_storescu(files[3:], port, "TLSCP")
    _wait(lambda: len(_rows(tmp_path, "records")) >= 1)
    time.sleep(3)  # a second triage would show up by now
    assert _stop(worker) == 0

    full = (
        f"{study[0].StudyInstanceUID}:{study_version(d.SOPInstanceUID for d in study)}"
    )
    assert _rows(tmp_path, "records") == [(full, 6)]
    assert _rows(tmp_path, "calls") == [(full,)]


def test_killed_while_triaging_is_redelivered_and_recorded_once(tmp_path: Path) -> None:
    port = free_port()
    study = synthetic_ct_study(slices=2, size=8)
    worker = _start(tmp_path, port, pause=30.0)
    push_with_storescu(write_datasets(study, tmp_path / "push"), port, "TLSCP")
    _wait(lambda: len(_rows(tmp_path, "calls")) >= 1)
    worker.kill()  # in the middle of the handler
    worker.wait()
    assert _rows(tmp_path, "records") == []

    worker = _start(tmp_path, port, pause=0.0)
    _wait(lambda: len(_rows(tmp_path, "records")) >= 1)
    assert _stop(worker) == 0

    key = (
        f"{study[0].StudyInstanceUID}:{study_version(d.SOPInstanceUID for d in study)}"
    )
    assert _rows(tmp_path, "records") == [(key, 2)]
    assert _rows(tmp_path, "calls") == [(key,), (key,)]  # at-least-once delivery
    log = EventLog(make_engine(f"sqlite:///{tmp_path / 'events.db'}"))
    (record,) = log.records()
    assert record.status is EventStatus.DONE and record.attempts == 2
