"""The main job end to end on the embedded defaults, against ground truth.

Every scenario of the synthetic generator (RECIST, cardiac MR, head CT, with
their planted deviations, discordant site values and PHI) goes through the
embedded PACS and the triage graph in arrival order.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pydicom
import pytest

from agent.triage import TriageContext, run_triage
from agent.triage.demo import load_site_values
from triallens.domain import LesionMeasurement, TriageOutcome, TriageResult
from triallens.settings import Settings

pytestmark = pytest.mark.slow

_TASKS = {"recist": "recist_ct", "lvef": "lvef_cmr", "ich": "ich_ct"}
_SITE_CODES = {
    "SUMDIAM": "sum_of_diameters_mm",
    "LVEF": "lvef_percent",
    "ICHVOL": "haemorrhage_volume_ml",
}


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A ten-subject trial (every scenario) triaged study by study."""
    from evals.synth import ALL_SCENARIOS, generate_trial

    root = tmp_path_factory.mktemp("pipeline")
    trial_dir = root / "trial"
    generate_trial(
        trial_dir,
        subjects=len(ALL_SCENARIOS),
        seed=11,
        small=True,
        scenarios=list(ALL_SCENARIOS),
    )
    settings = Settings(data_dir=root / "data", charter_path=trial_dir / "charter.yaml")
    ctx = TriageContext(settings=settings)
    ctx.pacs.store([pydicom.dcmread(p) for p in sorted(trial_dir.rglob("*.dcm"))])
    load_site_values(ctx, trial_dir / "edc_site_values.json")

    truth = json.loads((trial_dir / "ground_truth.json").read_text())
    visits = [
        (subject, visit)
        for subject in truth["subjects"]
        for visit in subject["visits"]
        if not visit["missing"]
    ]
    visits.sort(key=lambda sv: (sv[1]["study_date"], sv[0]["subject_id"]))
    results = {
        visit["study_uid"]: run_triage(visit["study_uid"], ctx) for _, visit in visits
    }
    return {"ctx": ctx, "truth": truth, "visits": visits, "results": results}


def _result(trial: dict[str, Any], visit: dict[str, Any]) -> TriageResult:
    return trial["results"][visit["study_uid"]]


def _visits(trial: dict[str, Any], criteria: str) -> list[tuple[Any, Any]]:
    return [
        (subject, visit)
        for subject, visit in trial["visits"]
        if subject["criteria"] == criteria
        and not _wrong_modality(trial, subject, visit)
    ]


def _wrong_modality(trial: dict[str, Any], subject: Any, visit: Any) -> bool:
    return any(
        d["code"] == "wrong_modality"
        and d["subject_id"] == subject["subject_id"]
        and d["time_point_id"] == visit["time_point_id"]
        for d in trial["truth"]["deviations"]
    )


def _match(truth_lesion: dict[str, Any], measured: list[LesionMeasurement]) -> Any:
    centre = np.asarray(truth_lesion["centre_mm"])
    distances = [
        (float(np.linalg.norm(np.asarray(m.centroid_mm) - centre)), m) for m in measured
    ]
    distance, best = min(distances, key=lambda d: d[0], default=(np.inf, None))
    return best if distance < 10.0 else None


def test_each_study_gets_its_task_or_a_reason(trial: dict[str, Any]) -> None:
    for subject, visit in trial["visits"]:
        result = _result(trial, visit)
        assert result.study.subject_id == subject["subject_id"]
        assert result.study.time_point_id == visit["time_point_id"]
        if _wrong_modality(trial, subject, visit):
            assert result.outcome is TriageOutcome.NOT_APPLICABLE
            assert result.outcome_reason
            continue
        assert result.outcome is TriageOutcome.MEASURED, result.outcome_reason
        assert result.task == _TASKS[subject["criteria"]]


def test_diameters_within_2_mm_of_ground_truth(trial: dict[str, Any]) -> None:
    """RECIST diameters (LD; SA for nodes) of every measurable truth lesion.

    At least 95 % lie within 2 mm and none is off by more than 6 mm; the known
    misses are lymph nodes that touch each other (see the model card).
    """
    errors: list[tuple[float, str, str]] = []
    for _, visit in _visits(trial, "recist"):
        measured = _result(trial, visit).assessment.lesions
        for lesion in visit["lesions"]:
            if lesion["status"] != "present" or lesion["longest_diameter_mm"] < 10:
                continue
            found = _match(lesion, measured)
            assert found is not None, f"{lesion['lesion_id']} at {visit['path']}"
            expected = (
                lesion["short_axis_mm"]
                if lesion["kind"] == "node"
                else lesion["longest_diameter_mm"]
            )
            error = abs(found.recist_diameter_mm - expected)
            errors.append((error, lesion["lesion_id"], visit["path"]))
    assert len(errors) >= 60
    within = sum(1 for error, _, _ in errors if error <= 2.0) / len(errors)
    assert within >= 0.95, sorted(errors, reverse=True)[:5]
    assert max(errors)[0] <= 6.0, max(errors)


def test_recist_response_per_visit(trial: dict[str, Any]) -> None:
    sum_errors = []
    for _, visit in _visits(trial, "recist"):
        assessment = _result(trial, visit).assessment
        assert assessment.overall_response.value == visit["overall_response"], visit[
            "path"
        ]
        sum_errors.append(
            abs(assessment.sum_of_diameters_mm - visit["sum_of_diameters_mm"])
        )
    assert float(np.median(sum_errors)) <= 1.5
    assert sum(1 for e in sum_errors if e <= 4.0) / len(sum_errors) >= 0.8


def _finding(result: TriageResult, name: str) -> Any:
    return next(f.value for f in result.findings if f.name == name)


def test_lvef_within_3_points(trial: dict[str, Any]) -> None:
    errors = []
    for _, visit in _visits(trial, "lvef"):
        result = _result(trial, visit)
        errors.append(abs(_finding(result, "lvef_percent") - visit["lvef_percent"]))
        assert _finding(result, "ctrcd") == visit["ctrcd"], visit["path"]
    assert errors
    assert float(np.mean(errors)) <= 3.0


def test_only_targets_that_are_gone_are_flagged_not_found(
    trial: dict[str, Any],
) -> None:
    """A target the model does not find again is flagged for a reader; on this
    trial that happens only where the truth says a target disappeared."""
    flagged = []
    for _, visit in _visits(trial, "recist"):
        flags = [
            f for f in _result(trial, visit).qc_flags if f.code == "target_not_found"
        ]
        gone = [
            lesion
            for lesion in visit["lesions"]
            if lesion["role"] == "target" and lesion["status"] != "present"
        ]
        assert len(flags) <= len(gone), (visit["path"], flags)
        flagged += flags
        # Every scan of this trial covers the whole torso.
        assert not [
            f for f in _result(trial, visit).qc_flags if f.code == "target_not_imaged"
        ]
    assert all("a reader must confirm" in f.reason for f in flagged)


def test_haemorrhage_volume_and_expansion(trial: dict[str, Any]) -> None:
    relative_errors = []
    for _, visit in _visits(trial, "ich"):
        result = _result(trial, visit)
        expansion = _finding(result, "haematoma_expansion") == "YES"
        assert expansion == visit["haematoma_expansion"], visit["path"]
        if visit["haematoma_hu"] >= 50:
            # A clot as dense as brain (about 40 HU) has no edge to segment.
            volume = _finding(result, "haemorrhage_volume_ml")
            truth = visit["haematoma_volume_ml"]
            relative_errors.append(abs(volume - truth) / truth)
    assert len(relative_errors) >= 4
    assert float(np.mean(relative_errors)) <= 0.10
    assert max(relative_errors) <= 0.20


def test_priorities_match_ground_truth(trial: dict[str, Any]) -> None:
    """HIGH exactly where the truth says HIGH; never expedited where the truth
    is routine. An expected EXPEDITED may stay ROUTINE when the model's
    confidence is below the charter's bar (the conservative way round)."""
    expedited = 0
    for _, visit in trial["visits"]:
        result = _result(trial, visit)
        expected, got = visit["expected_priority"], result.priority.value
        assert (got == "HIGH") == (expected == "HIGH"), (visit["path"], result.reasons)
        if expected == "ROUTINE":
            assert got == "ROUTINE", (visit["path"], result.reasons)
        expedited += got == "EXPEDITED"
    assert expedited >= 4


_DEVIATION = re.compile(r"^(?P<code>[a-z_]+) \[(?P<time_point>[^\]]+)\]:")


def test_planted_deviations_found_and_none_invented(trial: dict[str, Any]) -> None:
    planted = {
        (d["subject_id"], d["time_point_id"], d["code"])
        for d in trial["truth"]["deviations"]
    }
    found = set()
    for _, visit in trial["visits"]:
        result = _result(trial, visit)
        for text in result.deviations:
            match = _DEVIATION.match(text)
            assert match, text
            found.add((result.study.subject_id, match["time_point"], match["code"]))
    assert found == planted


def test_discordant_site_values_raise_one_query_each(trial: dict[str, Any]) -> None:
    """Every planted discordance has its query with both values; any other
    query is justified: the AI value really differs beyond the tolerance."""
    ctx: TriageContext = trial["ctx"]
    tolerance = {"SUMDIAM": 20.0, "LVEF": 10.0, "ICHVOL": 20.0}
    for subject, visit in trial["visits"]:
        if _wrong_modality(trial, subject, visit):
            continue
        queries = {
            q.item_name: q
            for q in ctx.edc.list_queries(subject_id=subject["subject_id"])
            if q.time_point_id == visit["time_point_id"]
            and q.item_name in _SITE_CODES.values()
        }
        planted = {
            _SITE_CODES[code]
            for code in visit["site_reported"]["discordant_items"]
            if code in _SITE_CODES
        }
        assert planted <= set(queries), visit["path"]
        for code, item in _SITE_CODES.items():
            if item not in queries:
                continue
            query = queries[item]
            site = visit["site_reported"]["values"][code]
            assert float(query.site_value) == pytest.approx(site)
            assert float(query.ai_value) == pytest.approx(
                _finding(_result(trial, visit), item), abs=0.05
            )
            difference = abs(float(query.ai_value) - site) / abs(site) * 100
            assert difference > tolerance[code], (visit["path"], item)


def test_out_of_window_and_missing_visits_raise_queries(
    trial: dict[str, Any],
) -> None:
    ctx: TriageContext = trial["ctx"]
    for deviation in trial["truth"]["deviations"]:
        if deviation["code"] not in ("visit_out_of_window", "missing_visit"):
            continue
        queries = [
            q
            for q in ctx.edc.list_queries(subject_id=deviation["subject_id"])
            if q.time_point_id == deviation["time_point_id"] and q.item_name == "VISIT"
        ]
        assert len(queries) == 1, deviation
        assert deviation["code"] in queries[0].text


def test_edc_draft_is_machine_derived_with_provenance(trial: dict[str, Any]) -> None:
    ctx: TriageContext = trial["ctx"]
    for _, visit in trial["visits"]:
        result = _result(trial, visit)
        if result.outcome is not TriageOutcome.MEASURED:
            assert result.edc_record_id is None
            continue
        record = ctx.edc.get_record(result.edc_record_id)
        assert record.status == "draft"
        assert record.machine_derived is True
        assert record.model_version == result.model_version
        assert record.input_hashes == result.input_hashes
        assert record.trace_id == result.trace_id
        values = record.values()
        for finding in result.findings:
            if isinstance(finding.value, float):
                assert float(values[finding.name.lower()]) == pytest.approx(
                    finding.value, abs=0.05
                )


def test_replayed_study_writes_nothing_new(trial: dict[str, Any]) -> None:
    ctx: TriageContext = trial["ctx"]
    records, queries = len(ctx.edc.list_records()), len(ctx.edc.list_queries())
    _, visit = trial["visits"][0]
    again = run_triage(visit["study_uid"], ctx)
    assert again.edc_record_id == _result(trial, visit).edc_record_id
    assert len(ctx.edc.list_records()) == records
    assert len(ctx.edc.list_queries()) == queries


def test_audit_and_trace_for_every_run(trial: dict[str, Any]) -> None:
    ctx: TriageContext = trial["ctx"]
    assert ctx.audit.verify().ok
    for _, visit in trial["visits"]:
        result = _result(trial, visit)
        trace = ctx.tracer.get(result.trace_id)
        names = {span.name for span in trace.data.spans}
        assert {"triage", "fetch_and_deidentify", "measure", "write_outputs"} <= names
        tags = trace.info.tags
        assert tags["triallens.study_uid"] == result.study.study_uid
        assert tags["triallens.input_hashes"] == ",".join(result.input_hashes)
        if result.model_version:
            assert tags["triallens.model_version"] == result.model_version


def test_key_images_written_for_findings(trial: dict[str, Any]) -> None:
    for _, visit in trial["visits"]:
        result = _result(trial, visit)
        if result.outcome is not TriageOutcome.MEASURED:
            continue
        for path in result.key_images.values():
            with open(path, "rb") as handle:
                assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


_IDENTIFYING = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "private_tag_value",
)


def test_no_phi_leaves_the_boundary(trial: dict[str, Any]) -> None:
    from triallens.phi import PhiGuard

    ctx: TriageContext = trial["ctx"]
    for subject, visit in trial["visits"]:
        phi = subject["phi"]
        values: dict[str, Any] = {k: phi[k] for k in _IDENTIFYING if phi.get(k)}
        for planted in phi["visits"]:
            if planted["time_point_id"] == visit["time_point_id"]:
                values["AccessionNumber"] = planted["AccessionNumber"]
                values["StudyDate"] = planted["StudyDate"]
        guard = PhiGuard.from_mapping(values)
        result = _result(trial, visit)
        payloads = [result.model_dump_json()]
        if result.edc_record_id:
            payloads.append(ctx.edc.get_record(result.edc_record_id).model_dump_json())
        trace = ctx.tracer.get(result.trace_id)
        payloads.append(trace.to_json())
        for payload in payloads:
            assert guard.scan(payload) == []
