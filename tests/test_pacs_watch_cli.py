"""``triallens watch`` end to end: DIMSE push and HL7 notice into triage."""

from __future__ import annotations

import os
import shutil
import signal
import socket
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
from tools.pacs.sources.hl7 import END, frame
from triallens.db import make_engine
from triallens.events import EventLog, EventStatus, study_version

REPO = Path(__file__).resolve().parents[1]
PET_IMAGE = "1.2.840.10008.5.1.4.1.1.128"


def _wait_port(
    port: int, process: subprocess.Popen[str], timeout_s: float = 120
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"watch exited: {process.communicate()[0][-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("watch did not start listening")


def _wait(condition, timeout_s: float = 600) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


@pytest.mark.slow
@pytest.mark.orthanc
@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk is not installed")
def test_watch_triages_a_pushed_study_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    dicom_port, hl7_port = free_port(), free_port()
    env = {
        **os.environ,
        "TRIALLENS_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(REPO),
        "TORCH_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    entry = Path(sys.executable).parent / "triallens"
    if not entry.exists():
        pytest.skip("the triallens entry point is not installed in this environment")
    command = [
        str(entry), "watch",
        "--source", "dimse", "--source", "hl7",
        "--dicom-port", str(dicom_port), "--hl7-port", str(hl7_port),
        "--quiet", "1",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_port(dicom_port, process)
        study = synthetic_ct_study(slices=4, size=16, accession="ACC-CLI")
        for ds in study:
            # A modality with no measurement task: triage runs end to end and
            # records a not-applicable result without needing model bundles.
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = PET_IMAGE
            ds.Modality = "PT"
        uid = study[0].StudyInstanceUID
        push_with_storescu(
            write_datasets(study, tmp_path / "push"), dicom_port, "TRIALLENS"
        )
        log = EventLog(make_engine(f"sqlite:///{data_dir / 'triallens.db'}"))
        done = _wait(lambda: log.counts().get("done", 0) >= 1)
        assert done, [(r.status, r.last_error) for r in log.records()]

        message = "\r".join(
            [
                "MSH|^~\\&|RIS|SITE|TL|CORE|20240105||ORU^R01|CLI-1|P|2.5.1",
                "OBR|1|P1|ACC-CLI|CT",
                f"ZDS|{uid}^100^Application^DICOM",
            ]
        )
        with socket.create_connection(("127.0.0.1", hl7_port), timeout=30) as sock:
            sock.sendall(frame(message))
            ack = b""
            while END not in ack:
                ack += sock.recv(4096)
        assert b"MSA|AA|CLI-1" in ack
        assert _wait(lambda: log.counts().get("done", 0) >= 2, 60)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=120)

    assert process.returncode == 0, output[-2000:]
    assert "Stopped: 1 events processed" in output
    records = log.records()
    assert [r.status for r in records] == [EventStatus.DONE, EventStatus.DONE]
    version = study_version(d.SOPInstanceUID for d in study)
    assert {r.event.study_version for r in records} == {version}
    assert records[1].note == "this study version was already processed"

    from triallens.store import ResultStore

    store = ResultStore(f"sqlite:///{data_dir / 'triallens.db'}")
    results = (
        store.engine.connect()
        .exec_driver_sql("SELECT study_version, outcome FROM triage_results")
        .all()
    )
    assert results == [(version, "not_applicable")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "webhook"], "needs a shared secret"),
        (["--source", "orthanc"], "needs --orthanc-url"),
    ],
)
def test_watch_explains_a_missing_setting(
    tmp_path: Path, args: list[str], message: str
) -> None:
    entry = Path(sys.executable).parent / "triallens"
    if not entry.exists():
        pytest.skip("the triallens entry point is not installed in this environment")
    env = {**os.environ, "TRIALLENS_DATA_DIR": str(tmp_path / "data")}
    env.pop("TRIALLENS_WEBHOOK_SECRET", None)

    result = subprocess.run(
        [str(entry), "watch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
