"""Imaging charter: loading, study and schedule checks, alert priorities."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from tests._synth_fixtures import small_trial
from tools.charter import (
    SeriesSummary,
    VisitSeen,
    check_schedule,
    check_study,
    dump_charter,
    load_charter,
    priority_from_rules,
)
from tools.charter.facts import priority_facts
from triallens.domain import Priority, StudyRef
from triallens.errors import ConfigurationError

__all__ = ["small_trial"]


@pytest.fixture(scope="module")
def charter():
    from evals.synth.charter import synthetic_charter

    return synthetic_charter("TL-TEST", "Sponsor", "Test protocol")


def _study(time_point: str, modality: str = "CT") -> StudyRef:
    return StudyRef(
        trial_id="TL-TEST",
        subject_id="101-001",
        time_point_id=time_point,
        study_uid="1.2.3",
        modality=modality,
    )


def _ct_series(**changes) -> list[SeriesSummary]:
    axial = {
        "series_uid": "1.2.3.2",
        "modality": "CT",
        "description": "Thorax-Abdomen PV",
        "body_part": "CHESTABDOMEN",
        "slice_thickness_mm": 5.0,
        "contrast": True,
        "axial": True,
        "instances": 40,
        "positions": 40,
    }
    axial.update(changes)
    localizer = SeriesSummary(
        series_uid="1.2.3.1", modality="CT", localizer=True, instances=1
    )
    return [localizer, SeriesSummary(**axial)]


def test_yaml_round_trip(charter, tmp_path: Path) -> None:
    path = dump_charter(charter, tmp_path / "charter.yaml")
    assert load_charter(path) == charter


def test_load_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        load_charter(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("trial_id: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not valid YAML at line"):
        load_charter(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="mapping"):
        load_charter(listy)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        "trial_id: X\ntitle: T\nsponsor: S\nversion: '1'\nprocedures: {}\n"
        "cohorts:\n- name: c\n  procedure: nope\n  criteria: recist\n  visits: []\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError, match="unknown procedure 'nope'"):
        load_charter(wrong)
    window = tmp_path / "window.yaml"
    window.write_text(
        "trial_id: X\ntitle: T\nsponsor: S\nversion: '1'\nprocedures: {}\n"
        "cohorts: []\nextra_key: 1\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError, match="extra_key"):
        load_charter(window)


def test_conforming_study_has_no_deviation(charter) -> None:
    assert check_study(charter, _study("WEEK8"), _ct_series(), visit_day=56) == []


@pytest.mark.parametrize(
    ("changes", "day", "code"),
    [
        ({"slice_thickness_mm": 7.5}, 56, "slice_thickness"),
        ({"contrast": False}, 56, "contrast_missing"),
        ({"modality": "MR"}, 56, "wrong_modality"),
        ({"body_part": "HEAD"}, 56, "wrong_body_part"),
        ({"instances": 4}, 56, "missing_series"),
        ({}, 64, "visit_out_of_window"),
        ({}, 48, "visit_out_of_window"),
    ],
)
def test_each_rule_fires_alone(charter, changes, day, code) -> None:
    found = check_study(charter, _study("WEEK8"), _ct_series(**changes), visit_day=day)
    assert [d.code for d in found] == [code]
    assert found[0].reason
    assert found[0].raise_query is (code == "visit_out_of_window")


def test_window_edges_are_inclusive(charter) -> None:
    for day in (49, 63):
        assert check_study(charter, _study("WEEK8"), _ct_series(), visit_day=day) == []


def test_head_ct_forbids_contrast_and_unknown_time_point(charter) -> None:
    series = _ct_series(body_part="HEAD")
    found = check_study(charter, _study("ICH-24H"), series, visit_day=2)
    assert [d.code for d in found] == ["contrast_given"]
    unknown = check_study(charter, _study("WEEK99"), series, visit_day=2)
    assert [d.code for d in unknown] == ["unscheduled_time_point"]


def test_schedule_missing_and_out_of_window(charter) -> None:
    seen = [
        VisitSeen(subject_id="A", time_point_id="BASELINE", day=-5),
        VisitSeen(subject_id="A", time_point_id="WEEK8", day=70),
        VisitSeen(subject_id="A", time_point_id="WEEK24", day=168),
        VisitSeen(subject_id="B", time_point_id="BASELINE", day=-3),
    ]
    keys = {d.key for d in check_schedule(charter, seen)}
    assert keys == {
        ("visit_out_of_window", "A", "WEEK8"),
        ("missing_visit", "A", "WEEK16"),
    }
    overdue = {d.key for d in check_schedule(charter, seen, as_of_day={"B": 64})}
    assert ("missing_visit", "B", "WEEK8") in overdue
    assert ("missing_visit", "B", "WEEK16") not in overdue


def test_priority_from_rules(charter) -> None:
    priority, reasons = priority_from_rules(charter, {"overall_response": "PD"})
    assert priority is Priority.HIGH and reasons[0].startswith("recist-pd")
    priority, reasons = priority_from_rules(
        charter, {"lvef_percent": 47.5, "lvef_drop_points": 12.0}
    )
    assert priority is Priority.HIGH
    assert reasons == ["lvef-drop: LVEF fell 12.0 points to 47.5 %"]
    priority, reasons = priority_from_rules(
        charter, {"lvef_percent": 38.0, "lvef_drop_points": 20.0}
    )
    assert [r.split(":")[0] for r in reasons] == ["lvef-drop", "lvef-severe"]
    assert (
        priority_from_rules(charter, {"lvef_percent": 52, "lvef_drop_points": 11})[0]
        is Priority.ROUTINE
    )
    assert priority_from_rules(charter, {"haematoma_expansion": True})[0] is (
        Priority.HIGH
    )
    normal = {"normal": True, "min_confidence": 0.95, "deviation_count": 0}
    assert priority_from_rules(charter, normal)[0] is Priority.EXPEDITED
    assert priority_from_rules(charter, {**normal, "deviation_count": 1})[0] is (
        Priority.ROUTINE
    )
    assert priority_from_rules(charter, {**normal, "overall_response": "PD"})[0] is (
        Priority.HIGH
    )
    assert priority_from_rules(charter, {}) == (Priority.ROUTINE, [])


def test_every_planted_deviation_found_and_none_invented(small_trial: Path) -> None:
    charter = load_charter(small_trial / "charter.yaml")
    truth = json.loads((small_trial / "ground_truth.json").read_text("utf-8"))
    found = []
    seen = []
    for subject in truth["subjects"]:
        for visit in subject["visits"]:
            if visit["missing"]:
                continue
            datasets = [
                pydicom.dcmread(p, stop_before_pixels=True)
                for p in sorted((small_trial / visit["path"]).rglob("*.dcm"))
            ]
            study = StudyRef(
                trial_id=truth["trial_id"],
                subject_id=str(datasets[0].ClinicalTrialSubjectID),
                time_point_id=str(datasets[0].ClinicalTrialTimePointID),
                study_uid=str(datasets[0].StudyInstanceUID),
                modality=str(datasets[0].Modality),
            )
            day = int(float(datasets[0].LongitudinalTemporalOffsetFromEvent))
            found += check_study(charter, study, datasets, day)
            seen.append(
                VisitSeen(
                    subject_id=study.subject_id,
                    time_point_id=study.time_point_id,
                    day=day,
                )
            )
    found += check_schedule(charter, seen)
    planted = {
        (d["code"], d["subject_id"], d["time_point_id"]) for d in truth["deviations"]
    }
    assert {d.key for d in found} == planted
    assert len(planted) == 5
    # Expected priorities in the truth follow the same rules.
    for subject in truth["subjects"]:
        for visit in subject["visits"]:
            if visit["missing"]:
                continue
            own = [
                d
                for d in truth["deviations"]
                if d["subject_id"] == subject["subject_id"]
                and d["time_point_id"] == visit["time_point_id"]
                and d["code"] != "missing_visit"
            ]
            present = any(
                lesion["status"] in ("present", "too_small")
                for lesion in visit.get("lesions", [])
            )
            task = {"recist": "recist_ct", "lvef": "lvef_cmr", "ich": "ich_ct"}
            facts = priority_facts(
                task=task[subject["criteria"]],
                overall_response=visit.get("overall_response"),
                new_lesions=bool(visit.get("new_lesion_ids")),
                lvef_percent=visit.get("lvef_percent"),
                lvef_drop_points=visit.get("lvef_drop_points"),
                haematoma_expansion=visit.get("haematoma_expansion"),
                deviation_count=len(own),
                min_confidence=1.0
                if present or subject["criteria"] != "recist"
                else None,
            )
            priority, _ = priority_from_rules(charter, facts)
            assert priority.value == visit["expected_priority"]


def test_contrast_survives_deidentified_agent(small_trial: Path) -> None:
    from tools.charter import summarize_series

    truth = json.loads((small_trial / "ground_truth.json").read_text("utf-8"))
    visit = truth["subjects"][0]["visits"][0]
    datasets = [
        pydicom.dcmread(p, stop_before_pixels=True)
        for p in sorted((small_trial / visit["path"]).rglob("*.dcm"))
    ]
    for ds in datasets:
        if "ContrastBolusAgent" in ds:
            ds.ContrastBolusAgent = ""  # what PS3.15 E.1-1 action Z/D leaves
    summaries = {s.series_uid: s for s in summarize_series(datasets)}
    assert summaries[visit["axial_series_uid"]].contrast
    assert summaries[visit["axial_series_uid"]].slice_thickness_mm == 5.0
    localizers = [s for s in summaries.values() if s.localizer]
    assert len(localizers) == 1 and not localizers[0].contrast


@pytest.mark.slow
def test_deviations_found_on_deidentified_headers(small_trial: Path) -> None:
    """After PS3.15 de-identification (time point passed on) the same
    deviations, and only those, are found."""
    from tools.deid import BurnedInTextError, Deidentifier

    charter = load_charter(small_trial / "charter.yaml")
    truth = json.loads((small_trial / "ground_truth.json").read_text("utf-8"))
    deidentifier = Deidentifier("test-secret", truth["trial_id"])
    found, seen = [], []
    for subject in truth["subjects"]:
        for visit in subject["visits"]:
            if visit["missing"]:
                continue
            headers = []
            for path in sorted((small_trial / visit["path"]).rglob("*.dcm")):
                source = pydicom.dcmread(path, stop_before_pixels=True)
                try:
                    headers.append(
                        deidentifier.deidentify(
                            source, time_point_id=str(source.ClinicalTrialTimePointID)
                        )
                    )
                except BurnedInTextError:
                    continue
            first = headers[0]
            assert str(first.PatientName) != subject["phi"]["PatientName"]
            study = StudyRef(
                trial_id=truth["trial_id"],
                subject_id=str(first.ClinicalTrialSubjectID),
                time_point_id=str(first.ClinicalTrialTimePointID),
                study_uid=str(first.StudyInstanceUID),
                modality=str(first.Modality),
            )
            day = round(float(first.LongitudinalTemporalOffsetFromEvent))
            found += check_study(charter, study, headers, day)
            seen.append(
                VisitSeen(
                    subject_id=study.subject_id,
                    time_point_id=study.time_point_id,
                    day=day,
                )
            )
    found += check_schedule(charter, seen)
    planted = {
        (d["code"], d["subject_id"], d["time_point_id"]) for d in truth["deviations"]
    }
    assert {d.key for d in found} == planted
