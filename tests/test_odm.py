"""ODM 1.3.2 export and import: schema-valid, round trip, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from tests._shared import shared_standard
from tools.edc import EmbeddedEdc, RecordStatus
from tools.edc.odm import (
    ODM_NS,
    export_clinical_data,
    form_document,
    import_clinical_data,
    records_from_odm,
    validate_odm,
)
from triallens.errors import EdcError
from triallens.review import ReviewService
from triallens.users import UserStore

pytest_plugins = ["tests._db_fixtures"]

N = f"{{{ODM_NS}}}"


@pytest.fixture
def schema() -> Path:
    return shared_standard("odm-1.3.2/ODM1-3-2.xsd")


def _reviewed_edc(url: str) -> tuple[EmbeddedEdc, str, str]:
    edc = EmbeddedEdc(url)
    users = UserStore(edc.engine, audit=edc.audit)
    users.add_user(
        "adam", "adam-password", "adjudicator", "Adam Adjudicator",
        actor="root", actor_role="admin",
    )  # fmt: skip
    modified = edc.write_ai_findings(
        trial_id="TL-001",
        site_id="SITE-01",
        subject_id="SUBJ-001",
        time_point_id="WEEK8",
        study_uid="2.25.3",
        items={
            "sum_of_diameters_mm": 48.5,
            "overall_response": "PR",
            "new_lesions": None,
            "L1_diameter_mm": 21.5,
        },
        model_version="recist@1",
        trace_id="tr-1",
        input_hashes=["sha256:x", "sha256:y"],
        idempotency_key="k1",
    )
    ReviewService(edc, users).modify(
        modified,
        username="adam",
        password="adam-password",
        values={"sum_of_diameters_mm": 52.0},
        reason="vessel excluded",
    )
    draft = edc.write_ai_findings(
        trial_id="TL-001",
        site_id="SITE-02",
        subject_id="SUBJ-002",
        time_point_id="BASELINE",
        items={"lvef_percent": 61.5},
        model_version="lvef@1",
        input_hashes=["sha256:z"],
        idempotency_key="k2",
    )
    edc.write_site_values(
        trial_id="TL-001",
        site_id="SITE-01",
        subject_id="SUBJ-001",
        time_point_id="WEEK8",
        items={"sum_of_diameters_mm": 50.0},
    )
    return edc, modified, draft


@pytest.mark.parametrize("file_type", ["Snapshot", "Transactional"])
def test_every_export_validates_against_the_schema(
    db_url: str, schema: Path, file_type: str
) -> None:
    edc, modified, _ = _reviewed_edc(db_url)

    document = export_clinical_data(edc, file_type=file_type)

    validate_odm(document, schema)
    root = etree.fromstring(document)
    assert root.get("ODMVersion") == "1.3.2" and root.get("FileType") == file_type
    forms = root.findall(f".//{N}FormData")
    assert len(forms) == 3
    form = next(f for f in forms if f.get("FormRepeatKey") == modified)
    assert form.find(f"{N}Signature/{N}UserRef").get("UserOID") == "adam"
    assert form.find(f"{N}Signature/{N}SignatureRef").get("SignatureOID") == (
        "SIG.APPROVAL"
    )
    names = {u.get("OID"): u.findtext(f"{N}FullName") for u in root.iter(f"{N}User")}
    assert names["adam"] == "Adam Adjudicator"
    reasons = [r.text for r in root.iter(f"{N}ReasonForChange")]
    assert any("vessel excluded" in (r or "") for r in reasons)


def test_export_then_import_round_trips(
    db_url: str, schema: Path, tmp_path: Path
) -> None:
    source, modified, draft = _reviewed_edc(db_url)
    document = export_clinical_data(source)
    target = EmbeddedEdc(f"sqlite:///{tmp_path / 'target.db'}")

    result = import_clinical_data(
        target, document, actor="dana", role="data_manager", schema_path=schema
    )
    again = import_clinical_data(target, document, actor="dana", role="data_manager")

    assert sorted(result.created) == sorted(r.record_id for r in source.list_records())
    assert sorted(again.unchanged) == sorted(result.created) and not again.created
    copy = target.get_record(modified)
    assert copy.status is RecordStatus.MODIFIED
    assert copy.values() == {
        "sum_of_diameters_mm": 52.0,
        "overall_response": "PR",
        "new_lesions": None,
        "l1_diameter_mm": 21.5,
    }
    assert copy.items["l1_diameter_mm"].item_oid == "AI_IMAGING.L1_DIAMETER_MM"
    assert copy.items["sum_of_diameters_mm"].original_value == 48.5
    assert not copy.items["sum_of_diameters_mm"].machine_derived
    assert copy.items["overall_response"].machine_derived
    (kept,) = copy.signatures
    assert (kept.user_name, kept.printed_name, kept.meaning) == (
        "adam",
        "Adam Adjudicator",
        "approval",
    )
    assert kept.decision == "modified"
    assert copy.machine_derived and copy.model_version == "recist@1"
    assert copy.input_hashes == ["sha256:x", "sha256:y"]
    assert target.get_record(draft).status is RecordStatus.DRAFT
    assert target.site_reported_values("SUBJ-001", "WEEK8") == {
        "sum_of_diameters_mm": 50.0
    }
    actions = [e.action for e in target.audit.show(f"edc_record:{modified}")]
    assert actions[0] == "odm.import.create" and "edc.set_status" in actions
    assert target.audit.verify().ok

    read_back = {r.record_id: r for r in records_from_odm(document)}
    (signature,) = read_back[modified].signatures
    assert signature.printed_name == "Adam Adjudicator"
    assert signature.meaning == "approval"
    item = read_back[modified].items["sum_of_diameters_mm"]
    assert item.value == 52.0 and item.original_value == 48.5
    assert not item.machine_derived


def test_import_is_all_or_nothing(db_url: str, schema: Path) -> None:
    edc = EmbeddedEdc(db_url)
    locked = edc.write_site_values(
        trial_id="TL-001", subject_id="SUBJ-9", time_point_id="BL",
        items={"lvef_percent": 55.0},
    )  # fmt: skip
    edc.set_status(locked, "locked", actor="dana", role="data_manager")
    new_form = form_document(
        study_oid="TL-001",
        subject_id="SUBJ-10",
        time_point_id="BL",
        form_oid="SITE_IMAGING",
        record_id="new-record",
        user="site",
        transaction="Insert",
        items={"lvef_percent": 50.0},
    )
    update_locked = form_document(
        study_oid="TL-001",
        subject_id="SUBJ-9",
        time_point_id="BL",
        form_oid="SITE_IMAGING",
        record_id=locked,
        user="site",
        transaction="Update",
        items={"lvef_percent": 40.0},
        reason="typo",
    )
    combined = etree.fromstring(new_form)
    second = etree.fromstring(update_locked).find(f"{N}ClinicalData/{N}SubjectData")
    combined.find(f"{N}ClinicalData").append(second)
    document = etree.tostring(combined)
    validate_odm(document, schema)
    audit_before = len(edc.audit.show())

    with pytest.raises(EdcError, match="locked"):
        import_clinical_data(edc, document, actor="dana", role="data_manager")

    assert [r.record_id for r in edc.list_records()] == [locked]
    assert edc.get_record(locked).values() == {"lvef_percent": 55.0}
    assert len(edc.audit.show()) == audit_before


def test_an_update_changes_values_with_the_files_reason(
    db_url: str, schema: Path
) -> None:
    edc = EmbeddedEdc(db_url)
    record_id = edc.write_site_values(
        trial_id="TL-001", subject_id="S", time_point_id="BL",
        items={"lvef_percent": 55.0},
    )  # fmt: skip
    update = form_document(
        study_oid="TL-001",
        subject_id="S",
        time_point_id="BL",
        form_oid="SITE_IMAGING",
        record_id=record_id,
        user="site-coordinator",
        transaction="Update",
        items={"lvef_percent": 45.0},
        reason="transcription error",
    )
    validate_odm(update, schema)

    result = import_clinical_data(edc, update, actor="dana", role="data_manager")

    assert result.updated == [record_id]
    assert edc.get_record(record_id).values() == {"lvef_percent": 45.0}
    change = edc.audit.show(f"edc_record:{record_id}")[-1]
    assert (change.old, change.new, change.reason) == (
        55.0,
        45.0,
        "transcription error",
    )


def test_bad_documents_are_refused(db_url: str, schema: Path) -> None:
    edc = EmbeddedEdc(db_url)
    unknown_form = form_document(
        study_oid="T", subject_id="S", time_point_id="BL", form_oid="VITALS",
        record_id="r", user="u", transaction="Insert", items={"pulse": 60},
    )  # fmt: skip
    with pytest.raises(EdcError, match="not a form of this EDC"):
        import_clinical_data(edc, unknown_form, actor="d", role="data_manager")
    with pytest.raises(EdcError, match="schema"):
        validate_odm(b'<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3"/>', schema)
    with pytest.raises(EdcError, match="well-formed"):
        import_clinical_data(edc, b"<ODM", actor="d", role="data_manager")
    assert edc.list_records() == []
