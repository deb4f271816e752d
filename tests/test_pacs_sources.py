"""QIDO-RS polling and Orthanc's /changes feed as event sources."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests._orthanc_fixtures import (
    OrthancServer,
    orthanc,  # noqa: F401 - pytest fixture
    synthetic_ct_study,
    write_datasets,
)
from tools.pacs import DicomWebPacs, LocalPacs
from tools.pacs.sources.orthanc import OrthancChangesSource
from tools.pacs.sources.qido import QidoPollingSource
from triallens.db import make_engine
from triallens.events import EventLog, StudyEvent, study_version


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return EventLog(make_engine(f"sqlite:///{tmp_path / 'events.db'}"))


class StoresDuringSearch:
    """A PACS whose next study search stores more instances as it answers."""

    def __init__(self, pacs: LocalPacs) -> None:
        self.pacs = pacs
        self.store_next: list[Any] = []

    def search_studies(self, **kwargs: Any) -> Any:
        found = self.pacs.search_studies(**kwargs)
        if self.store_next:
            self.pacs.store(self.store_next)
            self.store_next = []
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pacs, name)


def test_study_stored_during_a_poll_is_reported_once(
    log: EventLog, tmp_path: Path
) -> None:
    pacs = StoresDuringSearch(LocalPacs(tmp_path / "store"))
    study = synthetic_ct_study(slices=5, size=4)
    pacs.store(study[:2])
    pacs.store_next = study[2:]
    source = QidoPollingSource(pacs, log)  # type: ignore[arg-type]
    emitted: list[StudyEvent] = []

    for _ in range(4):
        emitted += source.poll_once(lambda e: log.record(e))

    assert len(emitted) == 1
    assert emitted[0].details["instances"] == 5
    assert emitted[0].study_version == study_version(d.SOPInstanceUID for d in study)
    assert len(log.records()) == 1


def test_qido_watermark_survives_a_restart(log: EventLog, tmp_path: Path) -> None:
    pacs = LocalPacs(tmp_path / "store")
    study = synthetic_ct_study(slices=2, size=4)
    pacs.store(study)
    first = QidoPollingSource(pacs, log)
    first.poll_once(lambda e: log.record(e))
    assert len(first.poll_once(lambda e: log.record(e))) == 1

    restarted = QidoPollingSource(pacs, log)
    assert restarted.poll_once(lambda e: log.record(e)) == []

    extra = synthetic_ct_study(slices=1, size=4, study_uid=study[0].StudyInstanceUID)
    pacs.store(extra)
    restarted.poll_once(lambda e: log.record(e))
    again = restarted.poll_once(lambda e: log.record(e))
    assert [e.details["instances"] for e in again] == [3]
    assert len(log.records()) == 2


def test_stable_time_holds_back_a_study(log: EventLog, tmp_path: Path) -> None:
    pacs = LocalPacs(tmp_path / "store")
    pacs.store(synthetic_ct_study(slices=1, size=4))
    source = QidoPollingSource(pacs, log, stable_s=0.3)

    source.poll_once(log.record)
    assert source.poll_once(log.record) == []
    time.sleep(0.35)
    assert len(source.poll_once(log.record)) == 1


@pytest.mark.slow
@pytest.mark.orthanc
def test_qido_polling_against_orthanc(
    orthanc: OrthancServer,  # noqa: F811 - pytest fixture
    log: EventLog,
    tmp_path: Path,
) -> None:
    orthanc.delete_all()
    pacs = DicomWebPacs(orthanc.dicomweb_url)
    study = synthetic_ct_study(slices=3, size=4)
    orthanc.storescu(write_datasets(study, tmp_path / "push"))
    source = QidoPollingSource(pacs, log)

    events = source.poll_once(log.record) + source.poll_once(log.record)

    assert [e.study_uid for e in events] == [study[0].StudyInstanceUID]


@pytest.mark.slow
@pytest.mark.orthanc
def test_orthanc_stable_study_events_with_persisted_sequence(
    orthanc: OrthancServer,  # noqa: F811 - pytest fixture
    log: EventLog,
    tmp_path: Path,
) -> None:
    orthanc.delete_all()
    source = OrthancChangesSource(orthanc.http_url, log)
    assert source.poll_once(log.record) == []
    start = source.sequence
    assert start is not None and start >= 0
    study = synthetic_ct_study(slices=3, size=4, accession="ACC-OR1")
    orthanc.storescu(write_datasets(study, tmp_path / "push"))

    events = _poll_until(source, log, 1)

    assert len(events) == 1
    assert events[0].study_uid == study[0].StudyInstanceUID
    assert events[0].accession_number == "ACC-OR1"
    assert events[0].study_version == study_version(d.SOPInstanceUID for d in study)
    assert (source.sequence or 0) > start

    restarted = OrthancChangesSource(orthanc.http_url, log)
    assert restarted.sequence == source.sequence
    assert restarted.poll_once(log.record) == []

    extra = synthetic_ct_study(slices=1, size=4, study_uid=study[0].StudyInstanceUID)
    orthanc.storescu(write_datasets(extra, tmp_path / "push2"))
    again = _poll_until(restarted, log, 1)
    assert again[0].details["instances"] == 4
    assert len(log.records()) == 2


def test_orthanc_unreachable_is_a_pacs_error(log: EventLog) -> None:
    from tests._orthanc_fixtures import free_port
    from triallens.errors import PacsError

    source = OrthancChangesSource(f"http://127.0.0.1:{free_port()}", log, timeout_s=2)

    with pytest.raises(PacsError, match="cannot connect"):
        source.poll_once(log.record)
    assert source.sequence is None


def _poll_until(
    source: OrthancChangesSource, log: EventLog, count: int, timeout_s: float = 20
) -> list[StudyEvent]:
    events: list[StudyEvent] = []
    deadline = time.monotonic() + timeout_s
    while len(events) < count and time.monotonic() < deadline:
        events += source.poll_once(log.record)
        time.sleep(0.3)
    return events
