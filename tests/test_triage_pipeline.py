"""The main job end to end on the embedded defaults, against ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from agent.triage import TriageContext, run_triage
from agent.triage.demo import load_site_values
from triallens.domain import LesionMeasurement, TriageOutcome, TriageResult
from triallens.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def triaged_trial(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A demo trial generated, stored in the local PACS and triaged in order."""
    from evals.synth import DEMO_SCENARIOS, generate_trial

    root = tmp_path_factory.mktemp("pipeline")
    trial_dir = root / "trial"
    generate_trial(
        trial_dir, subjects=2, seed=11, small=True, scenarios=list(DEMO_SCENARIOS)
    )
    settings = Settings(data_dir=root / "data", charter_path=trial_dir / "charter.yaml")
    ctx = TriageContext(settings=settings)
    datasets = [pydicom.dcmread(p) for p in sorted(trial_dir.rglob("*.dcm"))]
    ctx.pacs.store(datasets)
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


def _match(truth_lesion: dict[str, Any], measured: list[LesionMeasurement]) -> Any:
    centre = np.asarray(truth_lesion["centre_mm"])
    best = min(
        measured,
        key=lambda m: float(np.linalg.norm(np.asarray(m.centroid_mm) - centre)),
        default=None,
    )
    if best is None:
        return None
    distance = float(np.linalg.norm(np.asarray(best.centroid_mm) - centre))
    return best if distance < 10.0 else None


def test_every_study_is_measured(triaged_trial: dict[str, Any]) -> None:
    for _, visit in triaged_trial["visits"]:
        result: TriageResult = triaged_trial["results"][visit["study_uid"]]
        assert result.outcome is TriageOutcome.MEASURED, result.outcome_reason
        assert result.study.time_point_id == visit["time_point_id"]


def test_diameters_within_2_mm_of_ground_truth(triaged_trial: dict[str, Any]) -> None:
    checked = 0
    for _, visit in triaged_trial["visits"]:
        result: TriageResult = triaged_trial["results"][visit["study_uid"]]
        assert result.assessment is not None
        measured = result.assessment.lesions
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
            assert found.recist_diameter_mm == pytest.approx(expected, abs=2.0), (
                lesion["lesion_id"],
                visit["path"],
            )
            checked += 1
    assert checked >= 8


def test_response_per_visit_matches_ground_truth(
    triaged_trial: dict[str, Any],
) -> None:
    for _, visit in triaged_trial["visits"]:
        result: TriageResult = triaged_trial["results"][visit["study_uid"]]
        assert result.assessment is not None
        assert result.assessment.overall_response is not None
        assert result.assessment.overall_response.value == visit["overall_response"], (
            visit["path"]
        )
        assert result.assessment.sum_of_diameters_mm == pytest.approx(
            visit["sum_of_diameters_mm"], abs=4.0
        )


def test_priorities_match_ground_truth(triaged_trial: dict[str, Any]) -> None:
    for _, visit in triaged_trial["visits"]:
        result: TriageResult = triaged_trial["results"][visit["study_uid"]]
        assert result.priority.value == visit["expected_priority"], (
            visit["path"],
            result.reasons,
        )


def test_planted_deviations_found_and_none_invented(
    triaged_trial: dict[str, Any],
) -> None:
    planted = {
        (d["subject_id"], d["time_point_id"], d["code"])
        for d in triaged_trial["truth"]["deviations"]
        if d["code"] != "missing_visit"
    }
    found = set()
    for _, visit in triaged_trial["visits"]:
        result: TriageResult = triaged_trial["results"][visit["study_uid"]]
        for deviation in result.deviations:
            code = deviation.split(":", 1)[0]
            if code != "missing_visit":
                found.add((result.study.subject_id, visit["time_point_id"], code))
    assert found == planted


def test_edc_draft_is_machine_derived_with_provenance(
    triaged_trial: dict[str, Any],
) -> None:
    ctx: TriageContext = triaged_trial["ctx"]
    for result in triaged_trial["results"].values():
        record = ctx.edc.get_record(result.edc_record_id)
        assert record.status == "draft"
        assert record.machine_derived is True
        assert record.model_version == result.model_version
        assert record.input_hashes == result.input_hashes
        assert record.trace_id == result.trace_id
        values = record.values()
        assert float(values["sum_of_diameters_mm"]) == pytest.approx(
            result.assessment.sum_of_diameters_mm, abs=0.05
        )


def test_discordant_site_values_raise_one_query_each(
    triaged_trial: dict[str, Any],
) -> None:
    ctx: TriageContext = triaged_trial["ctx"]
    for subject, visit in triaged_trial["visits"]:
        queries = [
            q
            for q in ctx.edc.list_queries(subject_id=subject["subject_id"])
            if q.time_point_id == visit["time_point_id"]
            and q.item_name == "sum_of_diameters_mm"
        ]
        discordant = "SUMDIAM" in visit["site_reported"]["discordant_items"]
        assert len(queries) == (1 if discordant else 0), visit["path"]
        for query in queries:
            site = visit["site_reported"]["values"]["SUMDIAM"]
            assert float(query.site_value) == pytest.approx(site)
            result = triaged_trial["results"][visit["study_uid"]]
            assert float(query.ai_value) == pytest.approx(
                result.assessment.sum_of_diameters_mm, abs=0.05
            )


def test_out_of_window_visit_raises_a_query(triaged_trial: dict[str, Any]) -> None:
    ctx: TriageContext = triaged_trial["ctx"]
    planted = [
        d
        for d in triaged_trial["truth"]["deviations"]
        if d["code"] == "visit_out_of_window"
    ]
    assert planted
    for deviation in planted:
        queries = [
            q
            for q in ctx.edc.list_queries(subject_id=deviation["subject_id"])
            if q.time_point_id == deviation["time_point_id"] and q.item_name == "VISIT"
        ]
        assert len(queries) == 1
        assert "visit_out_of_window" in queries[0].text


def test_replayed_study_writes_nothing_new(triaged_trial: dict[str, Any]) -> None:
    ctx: TriageContext = triaged_trial["ctx"]
    before = len(ctx.edc.list_records())
    queries_before = len(ctx.edc.list_queries())
    uid = triaged_trial["visits"][0][1]["study_uid"]
    again = run_triage(uid, ctx)
    assert again.edc_record_id == triaged_trial["results"][uid].edc_record_id
    assert len(ctx.edc.list_records()) == before
    assert len(ctx.edc.list_queries()) == queries_before


def test_audit_and_trace_for_every_run(triaged_trial: dict[str, Any]) -> None:
    ctx: TriageContext = triaged_trial["ctx"]
    assert ctx.audit.verify().ok
    for result in triaged_trial["results"].values():
        trace = ctx.tracer.get(result.trace_id)
        assert trace is not None
        names = {span.name for span in trace.data.spans}
        assert {"triage", "fetch_and_deidentify", "measure", "write_outputs"} <= names
        tags = trace.info.tags
        assert tags["triallens.study_uid"] == result.study.study_uid
        assert tags["triallens.model_version"] == result.model_version
        assert tags["triallens.input_hashes"] == ",".join(result.input_hashes)


def test_no_phi_leaves_the_boundary(
    triaged_trial: dict[str, Any], tmp_path: Path
) -> None:
    from triallens.phi import PhiGuard

    truth = triaged_trial["truth"]
    ctx: TriageContext = triaged_trial["ctx"]
    for subject, visit in triaged_trial["visits"]:
        result: TriageResult = triaged_trial["results"][visit["study_uid"]]
        assert result.study.subject_id == subject["subject_id"]
        guard = PhiGuard.from_mapping(_planted_phi(truth, subject, visit))
        record = ctx.edc.get_record(result.edc_record_id)
        for payload in (result.model_dump_json(), repr(record)):
            assert guard.scan(payload) == []


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


def _planted_phi(
    truth: dict[str, Any], subject: dict[str, Any], visit: dict[str, Any]
) -> dict[str, Any]:
    phi = subject["phi"]
    values: dict[str, Any] = {key: phi[key] for key in _IDENTIFYING if phi.get(key)}
    for planted in phi.get("visits", []):
        if planted["time_point_id"] == visit["time_point_id"]:
            values["AccessionNumber"] = planted["AccessionNumber"]
            values["StudyDate"] = planted["StudyDate"]
    return values
