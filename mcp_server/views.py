"""What a reviewer (or the model assisting one) sees of TrialLens records.

Views hold de-identified identifiers and measurements only: no file paths, no
database keys beyond the EDC record id, nothing from outside the
de-identification boundary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.edc import EdcQuery, EdcRecord
    from triallens.domain import Assessment, LesionMeasurement, TriageResult

__all__ = [
    "lesion_view",
    "query_view",
    "record_view",
    "report_markdown",
    "study_view",
    "timeline_markdown",
    "timeline_view",
    "worklist_row",
]


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def worklist_row(result: TriageResult) -> dict[str, Any]:
    """One worklist line: which study, how urgent and why."""
    study = result.study
    assessment = result.assessment
    return {
        "study_uid": study.study_uid,
        "trial_id": study.trial_id,
        "site_id": study.site_id,
        "subject_id": study.subject_id,
        "time_point_id": study.time_point_id,
        "study_date": study.study_date,
        "modality": study.modality,
        "priority": result.priority.value,
        "outcome": result.outcome.value,
        "reasons": list(result.reasons),
        "deviation_count": len(result.deviations),
        "overall_response": (
            assessment.overall_response.value
            if assessment and assessment.overall_response
            else None
        ),
    }


def lesion_view(lesion: LesionMeasurement) -> dict[str, Any]:
    """A lesion's measurements in millimetres, and whether it has a key image."""
    return {
        "lesion_id": lesion.lesion_id,
        "kind": lesion.kind.value,
        "organ": lesion.organ,
        "longest_diameter_mm": _round(lesion.longest_diameter_mm),
        "short_axis_mm": _round(lesion.short_axis_mm),
        "recist_diameter_mm": _round(lesion.recist_diameter_mm),
        "volume_ml": _round(lesion.volume_ml, 2),
        "slice_index": lesion.slice_index,
        "confidence": _round(lesion.confidence, 3),
        "has_key_image": bool(lesion.key_image),
    }


def _assessment_view(assessment: Assessment | None) -> dict[str, Any] | None:
    if assessment is None:
        return None
    return {
        "sum_of_diameters_mm": _round(assessment.sum_of_diameters_mm),
        "baseline_sum_mm": _round(assessment.baseline_sum_mm),
        "nadir_sum_mm": _round(assessment.nadir_sum_mm),
        "percent_change_from_baseline": _round(assessment.percent_change_from_baseline),
        "target_response": _value(assessment.target_response),
        "overall_response": _value(assessment.overall_response),
        "new_lesions": list(assessment.new_lesions),
        "lesions": [lesion_view(lesion) for lesion in assessment.lesions],
    }


def _value(member: Any) -> Any:
    return getattr(member, "value", member)


def record_view(record: EdcRecord | None) -> dict[str, Any] | None:
    """The EDC findings record: status, items and the signatures on it."""
    if record is None:
        return None
    return {
        "record_id": record.record_id,
        "status": record.status.value,
        "version": record.version,
        "machine_derived": record.machine_derived,
        "model_version": record.model_version,
        "items": {
            name: {
                "value": item.value,
                "unit": item.unit,
                "machine_derived": item.machine_derived,
                "original_value": item.original_value,
            }
            for name, item in record.items.items()
        },
        "signatures": [sig.manifestation() for sig in record.signatures],
    }


def study_view(result: TriageResult, record: EdcRecord | None = None) -> dict[str, Any]:
    """Everything TrialLens concluded about one study."""
    view = worklist_row(result)
    view.pop("deviation_count")
    view.update(
        {
            "time_point_description": result.study.time_point_description,
            "study_description": result.study.study_description,
            "outcome_reason": result.outcome_reason,
            "task": result.task,
            "series_uid": result.series_uid,
            "deviations": list(result.deviations),
            "qc_flags": [flag.model_dump() for flag in result.qc_flags],
            "findings": [
                finding.model_dump(exclude={"input_hashes"})
                for finding in result.findings
            ],
            "assessment": _assessment_view(result.assessment),
            "narrative": result.narrative,
            "narrative_source": result.narrative_source,
            "model_version": result.model_version,
            "trace_id": result.trace_id,
            "edc_record": record_view(record),
        }
    )
    return view


def timeline_view(results: list[TriageResult]) -> list[dict[str, Any]]:
    """One line per time point, in visit order."""
    lines = []
    for result in results:
        assessment = result.assessment
        lines.append(
            {
                "time_point_id": result.study.time_point_id,
                "study_date": result.study.study_date,
                "study_uid": result.study.study_uid,
                "modality": result.study.modality,
                "priority": result.priority.value,
                "outcome": result.outcome.value,
                "sum_of_diameters_mm": _round(
                    assessment.sum_of_diameters_mm if assessment else None
                ),
                "percent_change_from_baseline": _round(
                    assessment.percent_change_from_baseline if assessment else None
                ),
                "overall_response": (
                    _value(assessment.overall_response) if assessment else None
                ),
                "new_lesions": list(assessment.new_lesions) if assessment else [],
                "deviations": list(result.deviations),
            }
        )
    return lines


def query_view(query: EdcQuery) -> dict[str, Any]:
    """An EDC query with both values and their sources."""
    return {
        "query_id": query.query_id,
        "trial_id": query.study_oid,
        "subject_id": query.subject_id,
        "time_point_id": query.time_point_id,
        "item_name": query.item_name,
        "record_id": query.record_id,
        "text": query.text,
        "ai_value": query.ai_value,
        "ai_source": query.ai_source,
        "site_value": query.site_value,
        "site_source": query.site_source,
        "status": query.status.value,
        "raised_by": query.raised_by,
        "raised_at": query.raised_at.isoformat(),
        "closed_by": query.closed_by,
        "close_reason": query.close_reason,
    }


def report_markdown(result: TriageResult, record: EdcRecord | None = None) -> str:
    """The study's triage report as a reviewer reads it."""
    study = result.study
    lines = [
        f"# Triage report: study {study.study_uid}",
        "",
        f"- Trial {study.trial_id}, site {study.site_id or '-'}, "
        f"subject {study.subject_id}",
        f"- Time point {study.time_point_id}"
        + (f" ({study.time_point_description})" if study.time_point_description else "")
        + f", study date {study.study_date or 'unknown'}, {study.modality}",
        f"- Priority **{result.priority.value}**; outcome {result.outcome.value}"
        + (f" ({result.outcome_reason})" if result.outcome_reason else ""),
        f"- Model {result.model_version or '-'}; trace {result.trace_id or '-'}",
    ]
    if result.reasons:
        lines += ["", "## Reasons", *[f"- {reason}" for reason in result.reasons]]
    lines += ["", "## Deviations"]
    lines += [f"- {dev}" for dev in result.deviations] or ["- none"]
    if result.qc_flags:
        lines += ["", "## Quality control"]
        lines += [f"- {flag.code}: {flag.reason}" for flag in result.qc_flags]
    assessment = result.assessment
    if assessment is not None:
        lines += ["", "## Measurements (machine-derived, unconfirmed until signed)"]
        lines += ["", "| lesion | kind | organ | LD mm | SA mm | RECIST mm |"]
        lines += ["|---|---|---|---|---|---|"]
        for lesion in assessment.lesions:
            lines.append(
                f"| {lesion.lesion_id} | {lesion.kind.value} | {lesion.organ or '-'} "
                f"| {lesion.longest_diameter_mm:.1f} | {lesion.short_axis_mm:.1f} "
                f"| {lesion.recist_diameter_mm:.1f} |"
            )
        lines += [
            "",
            f"- Sum of diameters: {_fmt(assessment.sum_of_diameters_mm, 'mm')}",
            f"- Baseline sum: {_fmt(assessment.baseline_sum_mm, 'mm')}; "
            f"nadir: {_fmt(assessment.nadir_sum_mm, 'mm')}; change from "
            f"baseline: {_fmt(assessment.percent_change_from_baseline, '%')}",
            f"- Target response: {_value(assessment.target_response) or '-'}; "
            f"overall: {_value(assessment.overall_response) or '-'}",
        ]
        if assessment.new_lesions:
            lines.append(f"- New lesions: {', '.join(assessment.new_lesions)}")
    if result.narrative:
        lines += ["", "## Narrative", "", result.narrative]
    if record is not None:
        lines += [
            "",
            "## EDC record",
            f"- {record.record_id}: {record.status.value} (version {record.version})",
        ]
        lines += [f"- Signed: {sig.manifestation()}" for sig in record.signatures]
    return "\n".join(lines) + "\n"


def timeline_markdown(
    trial_id: str, subject_id: str, results: list[TriageResult]
) -> str:
    """The subject's course across visits as a table."""
    lines = [
        f"# Subject {subject_id} ({trial_id}): course across visits",
        "",
        "| time point | date | study | SOD mm | change % | response | priority |",
        "|---|---|---|---|---|---|---|",
    ]
    for line in timeline_view(results):
        lines.append(
            f"| {line['time_point_id']} | {line['study_date'] or '-'} "
            f"| {line['study_uid']} | {_fmt(line['sum_of_diameters_mm'])} "
            f"| {_fmt(line['percent_change_from_baseline'])} "
            f"| {line['overall_response'] or '-'} | {line['priority']} |"
        )
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.1f}{' ' + unit if unit else ''}"
