"""The typed state that flows through the triage graph.

Everything here is checkpointed, so it holds paths and small values, never
pixel arrays or datasets.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["TriageState"]


class TriageState(TypedDict, total=False):
    # Set by the caller.
    source_study_uid: str
    source_key: str
    study_version: str
    # fetch_and_deidentify
    work_dir: str
    study: dict[str, Any]
    input_hashes: list[str]
    non_image_objects: int
    visit_day: int | None
    # check_charter
    deviations: list[dict[str, Any]]
    # measure
    task: str | None
    series_uid: str | None
    outcome: str
    outcome_reason: str | None
    qc_flags: list[dict[str, Any]]
    lesions: list[dict[str, Any]]
    measurements: dict[str, Any]
    dicom_outputs: dict[str, str]
    coverage_mm: list[list[float]] | None
    model_version: str | None
    # compare, prioritise, draft
    assessment: dict[str, Any] | None
    priority: str
    reasons: list[str]
    narrative: str | None
    narrative_source: str | None
    narrative_prompt: str | None
    narrative_refused_reason: str | None
    # write_outputs
    edc_record_id: str | None
    trace_id: str | None
    result: dict[str, Any]
    # await_review
    review: dict[str, Any]
