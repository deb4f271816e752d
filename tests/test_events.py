"""The durable event log and the watcher loop."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from tests._db_fixtures import db_url  # noqa: F401 - pytest fixture
from tests._orthanc_fixtures import synthetic_ct_study
from tools.pacs import LocalPacs
from tools.pacs.watch import Watcher
from triallens.db import make_engine
from triallens.events import EventLog, EventStatus, StudyEvent, study_version


@pytest.fixture
def log(db_url: str) -> EventLog:  # noqa: F811 - the imported fixture
    return EventLog(make_engine(db_url), retry_base_s=0.2)


def _event(key: str, uid: str = "1.2.3", version: str | None = "v1") -> StudyEvent:
    return StudyEvent(
        source="test", idempotency_key=key, study_uid=uid, study_version=version
    )


def test_study_version_is_order_free_and_changes_with_instances() -> None:
    assert study_version(["1.2", "1.1"]) == study_version(["1.1", "1.2"])
    assert study_version(["1.1", "1.2"]) != study_version(["1.1", "1.2", "1.3"])
    assert len(study_version(["1"])) == 16


def test_record_is_idempotent_by_key(log: EventLog) -> None:
    first, created = log.record(_event("k1"))
    again, created_again = log.record(_event("k1"))

    assert created and not created_again
    assert first.event_id == again.event_id
    assert len(log.records()) == 1


def test_claim_complete_and_version_dedupe(log: EventLog) -> None:
    log.record(_event("a"))
    claimed = log.claim()
    assert claimed is not None and claimed.attempts == 1
    assert log.claim() is None  # leased

    log.complete(claimed)

    assert log.version_done("1.2.3", "v1")
    assert not log.version_done("1.2.3", "v2")
    assert log.counts() == {"done": 1}


def test_failure_keeps_reason_and_backs_off(log: EventLog) -> None:
    log.record(_event("a"))
    claimed = log.claim()
    assert claimed is not None

    next_at = log.fail(claimed, "PACS at http://127.0.0.1:1: HTTP 503\nsecond line")

    record = log.records()[0]
    assert record.status is EventStatus.FAILED
    assert record.last_error == "PACS at http://127.0.0.1:1: HTTP 503"
    assert log.claim() is None  # not due yet
    assert next_at - datetime.now(UTC) <= timedelta(seconds=0.2)
    time.sleep(0.25)
    retried = log.claim()
    assert retried is not None and retried.attempts == 2
    second_next = log.fail(retried, "still down")
    assert second_next - datetime.now(UTC) > timedelta(seconds=0.3)  # doubled


def test_lapsed_lease_is_delivered_again(log: EventLog) -> None:
    log.record(_event("a"))
    assert log.claim(lease_s=0.05) is not None
    time.sleep(0.1)

    again = log.claim()

    assert again is not None and again.attempts == 2


def test_events_of_a_dead_worker_are_recovered(log: EventLog, tmp_path: Path) -> None:
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    other = EventLog(
        log.engine, owner=f"{log.owner.rpartition(':')[0]}:{dead.stdout.strip()}"
    )
    other.record(_event("a"))
    assert other.claim() is not None
    assert log.claim() is None

    assert log.recover_abandoned() == 1

    assert log.claim() is not None


def test_release_returns_an_event_without_counting(log: EventLog) -> None:
    log.record(_event("a"))
    claimed = log.claim()
    assert claimed is not None
    log.release(claimed)

    again = log.claim()

    assert again is not None and again.attempts == 1


def test_source_state_round_trips(log: EventLog) -> None:
    assert log.get_state("orthanc") is None
    log.set_state("orthanc", "41")
    log.set_state("orthanc", "42")
    assert log.get_state("orthanc") == "42"


# The watcher ------------------------------------------------------------------


def test_watcher_resolves_versions_and_triages_each_version_once(
    log: EventLog, tmp_path: Path
) -> None:
    pacs = LocalPacs(tmp_path / "store")
    study = synthetic_ct_study(slices=3, size=4, accession="ACC-W1")
    uid = study[0].StudyInstanceUID
    pacs.store(study[:2])
    seen: list[StudyEvent] = []
    watcher = Watcher([], log, seen.append, pacs=pacs)

    log.record(
        StudyEvent(source="hl7", idempotency_key="m1", accession_number="ACC-W1")
    )
    log.record(StudyEvent(source="hl7", idempotency_key="m2", study_uid=uid))
    while watcher.process_next():
        pass

    assert len(seen) == 1
    assert seen[0].study_uid == uid
    assert seen[0].study_version == study_version(d.SOPInstanceUID for d in study[:2])
    assert seen[0].details["instances"] == 2
    notes = [r.note for r in log.records()]
    assert notes == [None, "this study version was already processed"]

    pacs.store(study[2:])  # the study gains an instance: a new version
    log.record(StudyEvent(source="hl7", idempotency_key="m3", study_uid=uid))
    while watcher.process_next():
        pass

    assert len(seen) == 2
    assert seen[1].study_version == study_version(d.SOPInstanceUID for d in study)


def test_handler_failure_is_kept_and_retried(log: EventLog) -> None:
    calls: list[int] = []

    def flaky(event: StudyEvent) -> None:
        calls.append(event.attempts)
        if len(calls) == 1:
            raise RuntimeError("model bundle missing")

    watcher = Watcher([], log, flaky)
    log.record(_event("a"))

    watcher.process_next()
    failed = log.records()[0]
    assert failed.status is EventStatus.FAILED
    assert failed.last_error == "RuntimeError: model bundle missing"
    time.sleep(0.25)
    watcher.process_next()

    assert calls == [1, 2]
    assert log.records()[0].status is EventStatus.DONE


def test_unknown_accession_waits_for_the_pacs(log: EventLog, tmp_path: Path) -> None:
    pacs = LocalPacs(tmp_path / "store")
    watcher = Watcher([], log, lambda e: None, pacs=pacs)
    log.record(StudyEvent(source="hl7", idempotency_key="m1", accession_number="NOPE"))

    watcher.process_next()

    record = log.records()[0]
    assert record.status is EventStatus.FAILED
    assert "accession NOPE" in (record.last_error or "")


def test_ctrl_c_lets_the_event_in_hand_finish(log: EventLog) -> None:
    started = threading.Event()
    finished: list[str] = []

    def slow(event: StudyEvent) -> None:
        started.set()
        time.sleep(0.5)
        finished.append(event.idempotency_key)

    for key in ("a", "b", "c"):
        log.record(_event(key, uid=f"1.2.{len(key)}{key}", version=key))
    watcher = Watcher([], log, slow, idle_s=0.05)

    def interrupt() -> None:
        started.wait(5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    watcher.run()

    assert finished == ["a"]
    statuses = [r.status for r in log.records()]
    assert statuses == [EventStatus.DONE, EventStatus.PENDING, EventStatus.PENDING]


def test_stale_processing_rows_never_block_new_events(log: EventLog) -> None:
    log.record(_event("a"))
    claimed = log.claim()
    assert claimed is not None
    from triallens import events as module

    with log.engine.begin() as conn:
        conn.execute(
            update(module._events).values(
                lease_until=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
    log.record(_event("b", version="v2"))

    assert log.claim() is not None
    assert log.claim() is not None
