"""The steps of the triage graph, one function per node.

Each node takes the state and the context and returns the keys it sets.
Nodes that write outside the graph (EDC, audit, result store) are
idempotent, so a node replayed after a crash writes nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from agent.triage.context import TriageContext
from agent.triage.measuring import compare_with_priors, measure
from agent.triage.state import TriageState
from triallens.domain import (
    Assessment,
    Finding,
    Priority,
    QcFlag,
    Response,
    StudyRef,
    TriageOutcome,
    TriageResult,
)
from triallens.errors import DicomInputError

__all__ = [
    "await_review",
    "check_charter",
    "compare_with_priors",
    "draft_report",
    "fetch_and_deidentify",
    "measure",
    "prioritise",
    "write_outputs",
]

logger = logging.getLogger(__name__)

# SOP classes that carry no pixels to measure (SR, PR, KO, SEG and friends).
_NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports and KO
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.66",  # segmentation, registration
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated documents
)


def _is_image(ds: Any) -> bool:
    sop_class = str(getattr(ds, "SOPClassUID", ""))
    if sop_class.startswith(_NON_IMAGE_SOP_PREFIXES):
        return False
    return "PixelData" in ds or "FloatPixelData" in ds


def fetch_and_deidentify(state: TriageState, ctx: TriageContext) -> TriageState:
    """Retrieve the study, de-identify every instance, keep the copies."""
    datasets = ctx.pacs.retrieve_study(state["source_study_uid"])
    images = [ds for ds in datasets if _is_image(ds)]
    if not images:
        raise DicomInputError("the study holds no image instances to triage")

    from tools.deid import BurnedInTextError

    deidentified = []
    quarantined: dict[str, str] = {}
    for ds in images:
        try:
            deidentified.append(
                ctx.deidentifier.deidentify(
                    ds,
                    time_point_id=_text(ds, "ClinicalTrialTimePointID"),
                    time_point_description=_text(
                        ds, "ClinicalTrialTimePointDescription"
                    ),
                )
            )
        except BurnedInTextError as exc:
            series = ctx.deidentifier.remap_uid(str(ds.SeriesInstanceUID))
            quarantined[series] = exc.reason
    if not deidentified:
        raise DicomInputError(
            "every image of the study was quarantined: "
            + "; ".join(sorted(set(quarantined.values())))
        )
    first = deidentified[0]
    study = _study_ref(first, ctx)
    work_dir = ctx.settings.data_dir / "work" / study.study_uid
    work_dir.mkdir(parents=True, exist_ok=True)
    hashes: list[str] = []
    for ds in deidentified:
        path = work_dir / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        hashes.append(_pixel_hash(ds))
    series_hash = hashlib.sha256("".join(sorted(hashes)).encode()).hexdigest()
    return {
        "work_dir": str(work_dir),
        "study": study.model_dump(mode="json"),
        "input_hashes": [f"sha256:{series_hash}"],
        "non_image_objects": len(datasets) - len(images),
        "visit_day": _visit_day(first),
        "qc_flags": [
            QcFlag(
                code="QUARANTINED",
                reason=f"series quarantined, not measured: {reason}",
                series_uid=series,
            ).model_dump(mode="json")
            for series, reason in sorted(quarantined.items())
        ],
    }


def _study_ref(ds: Any, ctx: TriageContext) -> StudyRef:
    def text(keyword: str) -> str | None:
        value = getattr(ds, keyword, None)
        return str(value) if value not in (None, "") else None

    subject = text("ClinicalTrialSubjectID") or text("PatientID") or "UNASSIGNED"
    modalities = {str(getattr(ds, "Modality", "OT"))}
    return StudyRef(
        trial_id=text("ClinicalTrialProtocolID") or ctx.settings.trial_id,
        site_id=text("ClinicalTrialSiteID"),
        subject_id=subject,
        time_point_id=text("ClinicalTrialTimePointID") or "UNSCHEDULED",
        time_point_description=text("ClinicalTrialTimePointDescription"),
        study_uid=str(ds.StudyInstanceUID),
        study_date=text("StudyDate"),
        modality="/".join(sorted(modalities)),
        study_description=text("StudyDescription"),
    )


def _text(ds: Any, keyword: str) -> str | None:
    value = getattr(ds, keyword, None)
    return str(value) if value not in (None, "") else None


def _visit_day(ds: Any) -> int | None:
    """Days from the trial's day zero (Longitudinal Temporal Offset from Event)."""
    value = getattr(ds, "LongitudinalTemporalOffsetFromEvent", None)
    try:
        return round(float(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def check_charter(state: TriageState, ctx: TriageContext) -> TriageState:
    """Deviations from the imaging charter: acquisition, window, schedule."""
    charter = ctx.charter
    if charter is None:
        return {"deviations": []}
    import pydicom

    from tools.charter import VisitSeen, check_schedule, check_study

    study = StudyRef.model_validate(state["study"])
    headers = [
        pydicom.dcmread(path, stop_before_pixels=True)
        for path in sorted(Path(state["work_dir"]).glob("*.dcm"))
    ]
    found = check_study(charter, study, headers, state.get("visit_day"))

    seen = [
        VisitSeen(
            subject_id=r.study.subject_id,
            time_point_id=r.study.time_point_id,
            day=r.visit_day,
        )
        for r in ctx.store.subject_timeline(study.trial_id, study.subject_id)
        if r.visit_day is not None and r.study.study_uid != study.study_uid
    ]
    if state.get("visit_day") is not None:
        seen.append(
            VisitSeen(
                subject_id=study.subject_id,
                time_point_id=study.time_point_id,
                day=state["visit_day"],
            )
        )
        codes = {(d.code, d.time_point_id) for d in found}
        for deviation in check_schedule(charter, seen):
            if deviation.code == "missing_visit" and (
                (deviation.code, deviation.time_point_id) not in codes
            ):
                found.append(deviation)
    return {"deviations": [d.model_dump(mode="json") for d in found]}


def _pixel_hash(ds: Any) -> str:
    data = ds.PixelData if "PixelData" in ds else b""
    return hashlib.sha256(bytes(data)).hexdigest()


def prioritise(state: TriageState, ctx: TriageContext) -> TriageState:
    """Priority from the charter's alert rules, with every reason listed."""
    facts = _priority_facts(state)
    if ctx.charter is not None:
        from tools.charter import priority_from_rules

        priority, reasons = priority_from_rules(ctx.charter, facts)
    else:
        priority, reasons = Priority.ROUTINE, []
        if facts.get("overall_response") == Response.PD.value:
            priority = Priority.HIGH
            reasons.append("overall response PD (RECIST 1.1)")
    reasons = list(reasons)
    if state.get("outcome") == TriageOutcome.NOT_APPLICABLE.value:
        reasons.append(state.get("outcome_reason") or "not applicable")
    for deviation in state.get("deviations", []):
        reasons.append(f"deviation {deviation['code']}: {deviation['reason']}")
    for flag in state.get("qc_flags", []):
        reasons.append(f"QC {flag['code']}: {flag['reason']}")
    return {"priority": priority.value, "reasons": reasons}


def _priority_facts(state: TriageState) -> dict[str, Any]:
    from tools.charter.facts import priority_facts

    assessment = state.get("assessment") or {}
    measurements = state.get("measurements", {})
    time_point = state["study"]["time_point_id"]
    own = [
        d
        for d in state.get("deviations", [])
        if d.get("time_point_id") == time_point and d["code"] != "missing_visit"
    ]
    confidences = [float(x.get("confidence", 1.0)) for x in state.get("lesions", [])]
    if "confidence" in measurements:
        confidences.append(float(measurements["confidence"]))
    measured = state.get("outcome") == TriageOutcome.MEASURED.value
    return priority_facts(
        task=state.get("task") if measured else None,
        overall_response=assessment.get("overall_response"),
        new_lesions=bool(assessment.get("new_lesions")),
        lvef_percent=measurements.get("lvef_percent"),
        lvef_drop_points=measurements.get("lvef_drop_points"),
        haematoma_expansion=measurements.get("haematoma_expansion"),
        deviation_count=len(own),
        min_confidence=min(confidences) if confidences else None,
    )


def draft_report(state: TriageState, ctx: TriageContext) -> TriageState:
    """Draft the narrative (LLM with grounding when configured, else template).

    An LLM that is down or refuses leaves the template narrative in place:
    triage never waits on prose.
    """
    from agent.llm import draft_narrative, llm_client_from_settings

    result = _result_from_state(state)
    client = llm_client_from_settings(ctx.settings, tracing=True)
    narrative = draft_narrative(result, client, fallback_on_error=True)
    prompt = f"{narrative.prompt_id}@{narrative.prompt_version}"
    ctx.tracer.tag({"triallens.prompt_versions": prompt})
    return {
        "narrative": narrative.text,
        "narrative_source": narrative.source,
        "narrative_prompt": prompt,
        "narrative_refused_reason": narrative.refused_reason,
    }


def write_outputs(state: TriageState, ctx: TriageContext) -> TriageState:
    """EDC draft (machine-derived), audit record and the stored result."""
    result = _result_from_state(state)
    existing = ctx.store.get_by_source(state["source_key"], state["study_version"])
    if existing is not None:
        # A run killed after this node's writes: the resumed run's trace is
        # the one that exists, so the stored result points to it.
        trace_id = state.get("trace_id")
        if trace_id and existing.trace_id != trace_id:
            existing = ctx.store.set_trace_id(
                state["source_key"], state["study_version"], trace_id
            )
        if trace_id and existing.edc_record_id:
            _relink_edc_trace(ctx, existing.edc_record_id, trace_id)
        return {
            "edc_record_id": existing.edc_record_id,
            "result": existing.model_dump(mode="json"),
        }

    record_id = None
    if result.outcome is TriageOutcome.MEASURED:
        record_id = ctx.edc.write_ai_findings(
            trial_id=result.study.trial_id,
            site_id=result.study.site_id or "UNKNOWN",
            subject_id=result.study.subject_id,
            time_point_id=result.study.time_point_id,
            study_uid=result.study.study_uid,
            items=_edc_items(result),
            model_version=result.model_version or "unknown",
            trace_id=state.get("trace_id"),
            input_hashes=result.input_hashes,
            idempotency_key=f"{state['source_key']}:{state['study_version']}",
        )
        if state.get("trace_id"):
            _relink_edc_trace(ctx, record_id, state["trace_id"])
        _raise_discrepancy_queries(ctx, result, record_id)
    _raise_deviation_queries(ctx, result, state.get("deviations", []))
    result = result.model_copy(update={"edc_record_id": record_id})
    ctx.audit.record(
        actor="triallens",
        role="system",
        action="triage",
        entity=f"study/{result.study.study_uid}",
        new=f"outcome={result.outcome.value} priority={result.priority.value}",
        model_version=result.model_version,
        trace_id=state.get("trace_id"),
    )
    saved = ctx.store.save(state["source_key"], result)
    return {"edc_record_id": record_id, "result": saved.model_dump(mode="json")}


def _relink_edc_trace(ctx: TriageContext, record_id: str, trace_id: str) -> None:
    """Make the EDC record cite this run's trace.

    A run killed after the EDC write leaves the record citing its own trace,
    which never finished; the write replayed by the resuming run returns that
    record unchanged. The resuming run's trace is the complete one, and the
    stored result cites it, so the record is pointed at it too (audited).
    """
    ctx.edc.relink_trace(
        record_id,
        trace_id,
        actor="triallens",
        role="system",
        reason="triage resumed after an interrupted run",
    )


def _raise_discrepancy_queries(
    ctx: TriageContext, result: TriageResult, record_id: str
) -> None:
    """A query for each AI value the site reported differently (charter tolerance)."""
    from tools.edc.discrepancy import raise_discrepancy_queries

    charter = ctx.charter
    raise_discrepancy_queries(
        ctx.edc,
        study_oid=result.study.trial_id,
        subject_id=result.study.subject_id,
        time_point_id=result.study.time_point_id,
        record_id=record_id,
        tolerance=charter.discrepancy_tolerance if charter is not None else None,
    )


def _raise_deviation_queries(
    ctx: TriageContext, result: TriageResult, deviations: list[dict[str, Any]]
) -> None:
    """A query for each deviation the site must answer (window, missing visit)."""
    for deviation in deviations:
        if not deviation.get("raise_query"):
            continue
        time_point = deviation.get("time_point_id") or result.study.time_point_id
        parts = (
            result.study.trial_id,
            deviation["subject_id"],
            time_point,
            deviation["code"],
        )
        key = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
        ctx.edc.raise_query(
            study_oid=result.study.trial_id,
            subject_id=deviation["subject_id"],
            time_point_id=time_point,
            item_name="VISIT",
            text=f"Charter deviation {deviation['code']}: {deviation['reason']}.",
            actor="triallens",
            role="system",
            discrepancy_key=key,
        )


def await_review(state: TriageState, ctx: TriageContext) -> TriageState:
    """Wait for a human decision on the EDC draft (a LangGraph interrupt).

    The review actions resume the thread with the decision: accept, modify
    or reject, the reviewer and the e-signature's meaning.
    """
    if not state.get("edc_record_id"):
        return {}
    from langgraph.types import interrupt

    result = state.get("result") or {}
    decision = interrupt(
        {
            "study_uid": result.get("study", {}).get("study_uid"),
            "edc_record_id": state.get("edc_record_id"),
            "priority": result.get("priority"),
        }
    )
    status = str(decision.get("decision", "reviewed")) if decision else "reviewed"
    ctx.store.set_review_status(result["study"]["study_uid"], status)
    return {"review": dict(decision or {})}


def _edc_items(result: TriageResult) -> dict[str, float | str | bool | None]:
    """The "AI Imaging Findings" items, named as the EDC metadata names them."""
    items: dict[str, float | str | bool | None] = {"priority": result.priority.value}
    items.update({finding.name: finding.value for finding in result.findings})
    assessment = result.assessment
    if assessment is not None:
        items.update(
            {
                "baseline_sum_mm": assessment.baseline_sum_mm,
                "nadir_sum_mm": assessment.nadir_sum_mm,
                "percent_change_from_baseline": (
                    assessment.percent_change_from_baseline
                ),
                "new_lesions": ",".join(assessment.new_lesions) or None,
                "lesion_count": len(assessment.lesions),
            }
        )
    return items


# Task measurements reported as findings: name -> unit.
_MEASUREMENT_UNITS: dict[str, str | None] = {
    "lvef_percent": "%",
    "edv_ml": "mL",
    "esv_ml": "mL",
    "lvef_drop_points": "%",
    "ctrcd": None,
    "haemorrhage_volume_ml": "mL",
    "abc2_volume_ml": "mL",
    "haematoma_change_ml": "mL",
    "haematoma_expansion": None,
}


def _findings(state: TriageState, assessment: Assessment | None) -> list[Finding]:
    """Every machine-derived value of the study, with its provenance."""
    common: dict[str, Any] = {
        "model_version": state.get("model_version"),
        "input_hashes": state.get("input_hashes", []),
    }
    findings: list[Finding] = []
    if assessment is not None:
        findings += [
            Finding(
                name=f"{lesion.lesion_id}_diameter_mm",
                value=round(lesion.recist_diameter_mm, 1),
                unit="mm",
                confidence=lesion.confidence,
                **common,
            )
            for lesion in assessment.lesions
        ]
        findings.append(
            Finding(
                name="sum_of_diameters_mm",
                value=assessment.sum_of_diameters_mm,
                unit="mm",
                **common,
            )
        )
        for name in ("target_response", "overall_response"):
            response = getattr(assessment, name)
            if response is not None:
                findings.append(Finding(name=name, value=response.value, **common))
    measurements = state.get("measurements", {})
    confidence = measurements.get("confidence")
    for name, unit in _MEASUREMENT_UNITS.items():
        value = measurements.get(name)
        if value is None:
            continue
        if isinstance(value, bool):
            value = "YES" if value else "NO"
        findings.append(
            Finding(name=name, value=value, unit=unit, confidence=confidence, **common)
        )
    return findings


def _key_images(state: TriageState) -> dict[str, str]:
    """Key image paths by finding: each lesion, the LV cavity, the haematoma."""
    images = {
        lesion["lesion_id"]: lesion["key_image"]
        for lesion in state.get("lesions", [])
        if lesion.get("key_image")
    }
    path = state.get("measurements", {}).get("key_image")
    if path and state.get("task"):
        images[str(state["task"])] = path
    return images


def _deviation_text(deviation: dict[str, Any], state: TriageState) -> str:
    """``code [time point]: reason``, the form reports and reviewers read."""
    time_point = deviation.get("time_point_id") or state["study"]["time_point_id"]
    return f"{deviation['code']} [{time_point}]: {deviation['reason']}"


def _result_from_state(state: TriageState) -> TriageResult:
    assessment_data = state.get("assessment")
    assessment = Assessment.model_validate(assessment_data) if assessment_data else None
    return TriageResult(
        study=StudyRef.model_validate(state["study"]),
        study_version=state["study_version"],
        outcome=TriageOutcome(state.get("outcome", TriageOutcome.FAILED.value)),
        outcome_reason=state.get("outcome_reason"),
        task=state.get("task"),
        series_uid=state.get("series_uid"),
        priority=Priority(state.get("priority", Priority.ROUTINE.value)),
        reasons=state.get("reasons", []),
        deviations=[_deviation_text(d, state) for d in state.get("deviations", [])],
        visit_day=state.get("visit_day"),
        qc_flags=[QcFlag.model_validate(f) for f in state.get("qc_flags", [])],
        assessment=assessment,
        findings=_findings(state, assessment),
        key_images=_key_images(state),
        dicom_outputs=state.get("dicom_outputs", {}),
        model_version=state.get("model_version"),
        input_hashes=state.get("input_hashes", []),
        narrative=state.get("narrative"),
        narrative_source=state.get("narrative_source"),
        narrative_prompt=state.get("narrative_prompt"),
        narrative_refused_reason=state.get("narrative_refused_reason"),
        edc_record_id=state.get("edc_record_id"),
        trace_id=state.get("trace_id"),
    )
