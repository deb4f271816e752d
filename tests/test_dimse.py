"""The C-STORE SCP source, fed by dcmtk storescu over a real association."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._orthanc_fixtures import (
    free_port,
    non_image_instance,
    push_with_storescu,
    synthetic_ct_study,
    write_datasets,
)
from tools.pacs import LocalPacs
from tools.pacs.sources.dimse import DimseSource
from triallens.db import make_engine
from triallens.events import EventLog, study_version

pytestmark = [
    pytest.mark.orthanc,
    pytest.mark.skipif(
        shutil.which("storescu") is None, reason="dcmtk storescu is not installed"
    ),
]


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return EventLog(make_engine(f"sqlite:///{tmp_path / 'events.db'}"))


@pytest.fixture
def scp(tmp_path: Path, log: EventLog) -> Iterator[DimseSource]:
    source = DimseSource(
        LocalPacs(tmp_path / "store"),
        tmp_path / "spool",
        ae_title="TLSCP",
        port=free_port(),
        quiet_s=2.0,
    )
    source.start(log.record)
    yield source
    source.stop()


def _wait_events(log: EventLog, count: int, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while len(log.records()) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def test_pushed_study_becomes_one_event_after_the_quiet_period(
    scp: DimseSource, log: EventLog, tmp_path: Path
) -> None:
    study = synthetic_ct_study(slices=4, size=8)
    uid = study[0].StudyInstanceUID
    sr = non_image_instance("SR", uid)
    files = write_datasets([*study, sr], tmp_path / "push")

    push_with_storescu(files[:2], scp.port, "TLSCP")
    push_with_storescu(files[2:], scp.port, "TLSCP")
    _wait_events(log, 1)
    time.sleep(2.5)  # no second event may follow

    (record,) = log.records()
    assert record.event.study_uid == uid
    assert record.event.study_version == study_version(
        d.SOPInstanceUID for d in [*study, sr]
    )
    assert record.event.details["instances"] == 5
    assert record.event.details["non_image_instances"] == 1
    stored = scp.pacs.search_instances(uid)
    assert len(stored) == 5
    assert not any((tmp_path / "spool").glob("*/*.dcm"))


def test_later_push_to_the_same_study_is_a_new_version(
    scp: DimseSource, log: EventLog, tmp_path: Path
) -> None:
    study = synthetic_ct_study(slices=3, size=4)
    files = write_datasets(study, tmp_path / "push")
    push_with_storescu(files[:2], scp.port, "TLSCP")
    _wait_events(log, 1)
    push_with_storescu(files[2:], scp.port, "TLSCP")
    _wait_events(log, 2)

    versions = [r.event.study_version for r in log.records()]
    assert versions == [
        study_version(d.SOPInstanceUID for d in study[:2]),
        study_version(d.SOPInstanceUID for d in study),
    ]


def test_wrong_called_ae_title_is_rejected(scp: DimseSource, tmp_path: Path) -> None:
    files = write_datasets(synthetic_ct_study(slices=1, size=4), tmp_path / "push")

    with pytest.raises(AssertionError, match="storescu failed"):
        push_with_storescu(files, scp.port, "SOMEONE_ELSE")
    assert scp.received == 0


def test_spooled_instances_survive_a_restart(tmp_path: Path, log: EventLog) -> None:
    port = free_port()
    pacs = LocalPacs(tmp_path / "store")
    study = synthetic_ct_study(slices=2, size=4)
    first = DimseSource(
        pacs, tmp_path / "spool", ae_title="TLSCP", port=port, quiet_s=30
    )
    first.start(log.record)
    try:
        push_with_storescu(write_datasets(study, tmp_path / "push"), port, "TLSCP")
    finally:
        first.stop()  # stopped inside the quiet period: nothing reported yet
    assert log.records() == []
    assert len(list((tmp_path / "spool").glob("*/*.dcm"))) == 2

    second = DimseSource(
        pacs, tmp_path / "spool", ae_title="TLSCP", port=port, quiet_s=0.3
    )
    second.start(log.record)
    try:
        _wait_events(log, 1)
    finally:
        second.stop()

    (record,) = log.records()
    assert record.event.details["instances"] == 2


def test_port_in_use_is_a_clear_error(tmp_path: Path, scp: DimseSource) -> None:
    from triallens.errors import PacsError

    other = DimseSource(LocalPacs(tmp_path / "s2"), tmp_path / "sp2", port=scp.port)
    with pytest.raises(PacsError, match="cannot listen"):
        other.start(lambda e: None)


def test_echoscu_is_answered(scp: DimseSource) -> None:
    binary = shutil.which("echoscu")
    if binary is None:
        pytest.skip("dcmtk echoscu is not installed")
    result = subprocess.run(
        [binary, "-aec", "TLSCP", "127.0.0.1", str(scp.port)],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0
