"""The embedded EDC: machine-derived drafts, idempotency, status, queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.edc import AI_FINDINGS_FORM_OID, EmbeddedEdc, RecordStatus
from triallens.errors import ConflictError, EdcError, NotFoundError

pytest_plugins = ["tests._db_fixtures"]


def _write(edc: EmbeddedEdc, key: str = "evt-1", **overrides: object) -> str:
    arguments: dict[str, object] = {
        "trial_id": "TL-001",
        "site_id": "SITE-01",
        "subject_id": "SUBJ-001",
        "time_point_id": "WEEK8",
        "study_uid": "2.25.1",
        "items": {"sum_of_diameters_mm": 48.5, "overall_response": "PR"},
        "model_version": "recist-ct@sha256:abc",
        "trace_id": "tr-1",
        "input_hashes": ["sha256:1", "sha256:2"],
        "idempotency_key": key,
    }
    arguments.update(overrides)
    return edc.write_ai_findings(**arguments)  # type: ignore[arg-type]


def test_ai_findings_are_machine_derived_drafts_with_provenance(db_url: str) -> None:
    edc = EmbeddedEdc(db_url)

    record = edc.get_record(_write(edc))

    assert record.form_oid == AI_FINDINGS_FORM_OID
    assert record.status is RecordStatus.DRAFT
    assert record.machine_derived
    assert (record.study_oid, record.site_id) == ("TL-001", "SITE-01")
    assert (record.subject_id, record.time_point_id) == ("SUBJ-001", "WEEK8")
    assert record.model_version == "recist-ct@sha256:abc"
    assert record.trace_id == "tr-1"
    assert record.input_hashes == ["sha256:1", "sha256:2"]
    assert record.values() == {"sum_of_diameters_mm": 48.5, "overall_response": "PR"}
    sod = record.items["sum_of_diameters_mm"]
    assert sod.item_oid == "AI_IMAGING.SUM_OF_DIAMETERS_MM"
    assert sod.unit == "mm" and sod.machine_derived


def test_the_same_idempotency_key_writes_nothing_new(db_url: str) -> None:
    edc = EmbeddedEdc(db_url)
    first = _write(edc)
    audit_before = len(edc.audit.show())

    again = _write(edc, items={"sum_of_diameters_mm": 99.0})

    assert again == first
    assert len(edc.list_records()) == 1
    assert edc.get_record(first).values()["sum_of_diameters_mm"] == 48.5
    assert len(edc.audit.show()) == audit_before


def test_writes_are_audited_with_model_version_and_trace(db_url: str) -> None:
    edc = EmbeddedEdc(db_url)
    record_id = _write(edc)

    history = edc.audit.show(f"edc_record:{record_id}")

    assert [entry.action for entry in history] == ["edc.write_ai_findings"]
    assert history[0].new == {"sum_of_diameters_mm": 48.5, "overall_response": "PR"}
    assert history[0].model_version == "recist-ct@sha256:abc"
    assert history[0].trace_id == "tr-1"
    assert edc.audit.verify().ok


def test_list_records_filters_by_subject_and_status(db_url: str) -> None:
    edc = EmbeddedEdc(db_url)
    a = _write(edc, "k1")
    b = _write(edc, "k2", subject_id="SUBJ-002")
    edc.set_status(b, "rejected", actor="r1", role="reader", reason="artefact")

    assert [r.record_id for r in edc.list_records("SUBJ-001")] == [a]
    assert [r.record_id for r in edc.list_records(status="rejected")] == [b]
    assert len(edc.list_records()) == 2
    assert edc.list_records("SUBJ-404") == []


def test_subjects_visits_and_site_values(db_url: str) -> None:
    edc = EmbeddedEdc(db_url)
    _write(edc, "k1", time_point_id="BASELINE")
    _write(edc, "k2")
    edc.write_site_values(
        trial_id="TL-001",
        site_id="SITE-01",
        subject_id="SUBJ-001",
        time_point_id="WEEK8",
        items={"sum_of_diameters_mm": 61.0},
    )

    assert [s.subject_id for s in edc.list_subjects("TL-001")] == ["SUBJ-001"]
    visits = edc.list_visits("SUBJ-001")
    assert [v.time_point_id for v in visits] == ["BASELINE", "WEEK8"]
    assert visits[1].forms == ["AI_IMAGING", "SITE_IMAGING"]
    assert edc.site_reported_values("SUBJ-001", "WEEK8") == {
        "sum_of_diameters_mm": 61.0
    }
    assert edc.site_reported_values("SUBJ-001", "BASELINE") == {}


def test_status_moves_and_lock_rules(db_url: str) -> None:
    edc = EmbeddedEdc(db_url)
    record_id = _write(edc)

    with pytest.raises(EdcError, match="machine-derived draft"):
        edc.set_status(record_id, "locked", actor="dm", role="data_manager")
    confirmed = edc.set_status(record_id, "confirmed", actor="r", role="reader")
    assert confirmed.status is RecordStatus.CONFIRMED and confirmed.version == 2
    locked = edc.set_status(record_id, "locked", actor="dm", role="data_manager")
    assert edc.get_status(record_id) is RecordStatus.LOCKED
    assert locked.version == 3
    with pytest.raises(ConflictError, match="already reviewed"):
        edc.set_status(record_id, "modified", actor="r", role="reader")
    with pytest.raises(EdcError, match="cannot become"):
        edc.set_status(record_id, "locked", actor="dm", role="data_manager")
    statuses = [
        (e.old, e.new)
        for e in edc.audit.show(f"edc_record:{record_id}")
        if e.field == "status"
    ]
    assert statuses == [("draft", "confirmed"), ("confirmed", "locked")]


def test_site_entered_data_may_lock_from_draft(db_url: str) -> None:
    edc = EmbeddedEdc(db_url)
    record_id = edc.write_site_values(
        trial_id="T", subject_id="S", time_point_id="BL", items={"lvef_percent": 55}
    )
    assert edc.set_status(record_id, "locked", actor="dm", role="data_manager")


def test_stale_version_is_a_conflict(db_url: str) -> None:
    edc = EmbeddedEdc(db_url)
    record_id = _write(edc)
    edc.set_status(record_id, "confirmed", actor="a", role="reader", expected_version=1)

    with pytest.raises(ConflictError, match="reload"):
        edc.set_status(
            record_id, "locked", actor="b", role="data_manager", expected_version=1
        )


def test_unknown_record_and_bad_input(db_url: str) -> None:
    edc = EmbeddedEdc(db_url)
    with pytest.raises(NotFoundError):
        edc.get_record("nope")
    with pytest.raises(EdcError, match="plain identifier"):
        _write(edc, items={"bad name!": 1.0})
    with pytest.raises(EdcError, match="study_oid or trial_id"):
        _write(edc, trial_id=None)
    assert edc.list_records() == []


def test_queries_open_close_and_no_duplicates(db_url: str) -> None:
    edc = EmbeddedEdc(db_url)
    arguments = {
        "study_oid": "TL-001",
        "subject_id": "SUBJ-001",
        "time_point_id": "WEEK8",
        "item_name": "sum_of_diameters_mm",
        "text": "AI and site values differ",
        "actor": "triallens",
        "role": "system",
        "ai_value": 48.5,
        "site_value": 61.0,
        "discrepancy_key": "k",
    }
    query = edc.raise_query(**arguments)  # type: ignore[arg-type]
    again = edc.raise_query(**arguments)  # type: ignore[arg-type]

    assert again.query_id == query.query_id
    assert (query.ai_value, query.site_value) == (48.5, 61.0)
    assert len(edc.list_queries(status="open")) == 1
    closed = edc.close_query(
        query.query_id, actor="dm", role="data_manager", reason="site corrected"
    )
    assert closed.status == "closed" and closed.closed_by == "dm"
    with pytest.raises(EdcError, match="already closed"):
        edc.close_query(query.query_id, actor="dm", role="data_manager", reason="x")
    actions = [e.action for e in edc.audit.show(f"edc_query:{query.query_id}")]
    assert actions == ["edc.raise_query", "edc.close_query"]


def test_open_edc_follows_the_settings(tmp_path: Path) -> None:
    from tools.edc import Edc, RwsEdc, open_edc
    from triallens.errors import ConfigurationError
    from triallens.settings import Settings

    embedded = open_edc(Settings(data_dir=tmp_path))
    remote = open_edc(
        Settings(
            data_dir=tmp_path,
            trial_id="TL-9",
            edc_rws_url="http://127.0.0.1:9/RaveWebServices",
            edc_rws_username="svc",
            edc_rws_password="secret-pw",
        )
    )

    assert isinstance(embedded, EmbeddedEdc) and isinstance(embedded, Edc)
    assert isinstance(remote, RwsEdc) and remote.rave_study == "TL-9(Prod)"
    with pytest.raises(ConfigurationError, match="USERNAME"):
        open_edc(Settings(data_dir=tmp_path, edc_rws_url="http://127.0.0.1:9/"))


def test_a_phi_guard_stops_identifying_values(db_url: str) -> None:
    from triallens.phi import PhiGuard, PhiLeakError

    edc = EmbeddedEdc(db_url)
    guard = PhiGuard.from_mapping({"PatientName": "Doe^Jane", "PatientID": "MRN448812"})

    with pytest.raises(PhiLeakError, match="EDC findings payload"):
        _write(edc, items={"overall_response": "PR", "comment": "Jane Doe, MRN448812"},
               phi_guard=guard)  # fmt: skip
    clean = _write(edc, "k-clean", phi_guard=guard)

    assert [r.record_id for r in edc.list_records()] == [clean]


def test_relinking_the_trace_is_audited_and_changes_nothing_else(db_url: str) -> None:
    edc = EmbeddedEdc(db_url)
    record_id = _write(edc)
    before = edc.get_record(record_id)

    after = edc.relink_trace(
        record_id, "tr-2", actor="triallens", role="system", reason="resumed"
    )
    again = edc.relink_trace(
        record_id, "tr-2", actor="triallens", role="system", reason="resumed"
    )

    assert after.trace_id == again.trace_id == "tr-2"
    assert after.values() == before.values()
    assert after.status is before.status and after.machine_derived
    history = edc.audit.show(f"edc_record:{record_id}")
    assert [e.action for e in history] == ["edc.write_ai_findings", "edc.relink_trace"]
    assert (history[1].old, history[1].new, history[1].reason) == (
        "tr-1",
        "tr-2",
        "resumed",
    )
    assert edc.audit.verify().ok
    with pytest.raises(EdcError, match="no EDC record"):
        edc.relink_trace("nope", "tr-3", actor="triallens", role="system", reason="x")
