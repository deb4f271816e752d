"""The shipped Annex E table matches the standard's table, attribute by attribute."""

from __future__ import annotations

import json

import pytest

from tests._shared import shared_standard
from tools.deid.profile import entry_for, load_profile

_OPTION_KEYS = {
    "rtnLongFullDatesOpt": "full_dates",
    "rtnLongModifDatesOpt": "modified_dates",
    "cleanDescOpt": "clean_descriptors",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_id",
    "rtnPatCharsOpt": "retain_patient_chars",
    "rtnInstIdOpt": "retain_institution_id",
    "cleanGraphOpt": "clean_graphics",
    "cleanStructContOpt": "clean_structured_content",
    "rtnSafePrivOpt": "retain_safe_private",
}


def _standard() -> list[dict[str, str]]:
    path = shared_standard("ps3.15-confidentiality-profile-attributes.json")
    return json.loads(path.read_text(encoding="utf-8"))


def _our_tag(std_id: str) -> str:
    return "odd" if std_id.startswith("gggg") else std_id


def test_every_attribute_matches_the_standard() -> None:
    standard = _standard()
    ours = {entry.tag: entry for entry in load_profile().entries}
    assert len(ours) == len(standard) == 621
    for row in standard:
        entry = ours[_our_tag(row["id"])]
        assert " ".join(entry.name.split()) == " ".join(row["name"].split())
        assert entry.basic == row["basicProfile"], row["name"]
        assert entry.in_standard_iod == (row["stdCompIOD"] == "Y"), row["name"]
        expected = {
            ours_key: row[key] for key, ours_key in _OPTION_KEYS.items() if key in row
        }
        assert entry.options == expected, row["name"]


@pytest.mark.parametrize(
    ("tag", "basic"),
    [
        (0x00100010, "Z"),  # Patient's Name
        (0x00100020, "Z/D"),  # Patient ID
        (0x0020000D, "U"),  # Study Instance UID
        (0x60003000, "X"),  # Overlay Data, group pattern 60xx
        (0x601E4000, "X"),  # Overlay Comments
        (0x50001234, "X"),  # Curve Data 50xx,xxxx
        (0x00291010, "X"),  # any private attribute
    ],
)
def test_lookup_by_tag_and_pattern(tag: int, basic: str) -> None:
    entry = entry_for(tag)
    assert entry is not None
    assert entry.basic == basic


def test_options_override_basic_action() -> None:
    study_date = entry_for(0x00080020)
    assert study_date.action(frozenset()) == "Z"
    assert study_date.action(frozenset({"modified_dates"})) == "C"
    series_description = entry_for(0x0008103E)
    assert series_description.action(frozenset({"clean_descriptors"})) == "C"
    assert entry_for(0x00280010) is None  # Rows: not listed, kept
