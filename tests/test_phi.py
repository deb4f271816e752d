"""The PHI guard finds identifying values and their variants in any payload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._deid_fixtures import ct_slice
from triallens.phi import PhiGuard


@pytest.fixture
def guard() -> PhiGuard:
    return PhiGuard.from_datasets([ct_slice(0)])


@pytest.mark.parametrize(
    "text",
    [
        "Subject DOE^JANE^Q scanned",
        "patient jane doe",
        "Doe, Jane",
        "JANE DOE",
        "name: doe",
        "born 1961-04-17",
        "DOB 17/04/1961",
        "DOB 04/17/1961",
        "DOB 17.04.1961",
        "19610417",
        "17 April 1961",
        "Apr 17, 1961",
        "id mrn-884422",
        "accession ACC99887766",
        "Saint Elsewhere Hospital",
        "saint   elsewhere    hospital",
    ],
)
def test_variants_are_found(guard: PhiGuard, text: str) -> None:
    hits = guard.scan(text)
    assert hits, text
    assert all("DOE" not in str(hit).upper() for hit in hits)


@pytest.mark.parametrize(
    "text",
    [
        "Subject 101-004 at WEEK8: sum of diameters 42 mm",
        "doerr family",  # a longer word is not the name
        "19610418",
        "ANONYMIZED",
        "series 1.2.3.4",
    ],
)
def test_clean_text_has_no_hits(guard: PhiGuard, text: str) -> None:
    assert guard.scan(text) == []


def test_json_xml_bytes_and_nested_objects(guard: PhiGuard, tmp_path: Path) -> None:
    payload = {"subject": "101-004", "notes": ["ok", {"free_text": "Jane Doe called"}]}
    hits = guard.scan(payload)
    assert [hit.location for hit in hits] == ["$.notes[1].free_text"] * len(hits)

    xml = '<ODM><ItemData ItemOID="X" Value="DOE^JANE"/></ODM>'
    assert guard.scan(xml)
    assert guard.scan(xml.encode("utf-8"))
    path = tmp_path / "odm.xml"
    path.write_text(xml, encoding="utf-8")
    assert guard.scan(path)
    path.write_text(json.dumps({"a": "fine"}), encoding="utf-8")
    assert guard.scan(path) == []
    assert guard.scan({"DOE^JANE^Q": 1}), "keys are scanned too"


def test_dicom_dataset_and_file(guard: PhiGuard, tmp_path: Path) -> None:
    ds = ct_slice(1)
    hits = guard.scan(ds)
    sources = {hit.source for hit in hits}
    assert {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "InstitutionName",
    } <= sources
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert guard.scan(path)


def test_original_uids_are_identifying() -> None:
    ds = ct_slice(0)
    guard = PhiGuard.from_datasets([ds])
    hits = guard.scan(f"study {ds.StudyInstanceUID}")
    assert [hit.kind for hit in hits] == ["uid"]


def test_raw_bytes_in_other_character_sets() -> None:
    guard = PhiGuard.from_mapping({"name": ["MÜLLER^JÖRG"], "id": ["ABC123"]})
    assert guard.scan_bytes("x MÜLLER y".encode("latin-1"))
    assert guard.scan("müller jörg")
    assert guard.scan_bytes(b"id=abc123;") != []
    assert guard.scan_bytes(b"id=abc1234") == []


def test_pydantic_models_are_scanned() -> None:
    from triallens.domain import Finding

    guard = PhiGuard.from_mapping({"name": ["DOE^JANE"]})
    finding = Finding(name="note", value="Jane Doe")
    assert guard.scan(finding)
    assert guard.scan(Finding(name="LVEF", value=55.0)) == []


def test_assert_clean_names_kind_and_place_but_not_value() -> None:
    from triallens.phi import PhiLeakError

    guard = PhiGuard.from_mapping({"name": ["DOE^JANE"], "date": ["19610417"]})
    guard.assert_clean({"lvef": 55}, "EDC payload")
    with pytest.raises(PhiLeakError) as excinfo:
        guard.assert_clean({"comment": "seen 1961-04-17"}, "EDC payload")
    message = str(excinfo.value)
    assert "EDC payload" in message and "$.comment" in message
    assert "1961" not in message and "DOE" not in message.upper()


def test_mapping_keys_may_be_dicom_keywords() -> None:
    guard = PhiGuard.from_mapping(
        {"PatientName": "ROE^RICHARD", "StudyDate": "20240312", "PatientID": "X-99"}
    )
    assert guard.scan("richard roe")
    assert guard.scan("2024-03-12")
    assert guard.scan("x-99")
    assert guard.scan("nothing here") == []
    kinds = {value.source: value.kind for value in guard.values}
    assert kinds == {"PatientName": "name", "StudyDate": "date", "PatientID": "id"}
