"""Domain types shared by every part of TrialLens.

Identifiers here are always the de-identified ones (trial, site, subject,
time point, study/series/instance UIDs after remapping). Nothing in these
types may hold PHI.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

__all__ = [
    "Assessment",
    "Finding",
    "LesionKind",
    "LesionMeasurement",
    "Priority",
    "QcFlag",
    "Response",
    "StudyRef",
    "TriageOutcome",
    "TriageResult",
]


class Priority(StrEnum):
    HIGH = "HIGH"
    ROUTINE = "ROUTINE"
    EXPEDITED = "EXPEDITED"


class Response(StrEnum):
    """RECIST 1.1 response categories (target, non-target or overall)."""

    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    NE = "NE"
    NON_CR_NON_PD = "NON-CR/NON-PD"
    BASELINE = "BASELINE"


class LesionKind(StrEnum):
    LESION = "lesion"
    NODE = "node"


class TriageOutcome(StrEnum):
    MEASURED = "measured"
    NOT_APPLICABLE = "not_applicable"
    FAILED = "failed"


class QcFlag(BaseModel):
    """A quality-control observation about a series, with its reason."""

    code: str
    reason: str
    series_uid: str | None = None


class StudyRef(BaseModel):
    """A study as TrialLens knows it after de-identification."""

    trial_id: str
    site_id: str | None = None
    subject_id: str
    time_point_id: str
    time_point_description: str | None = None
    study_uid: str
    study_date: str | None = None
    modality: str
    study_description: str | None = None


class LesionMeasurement(BaseModel):
    """One lesion as measured on one time point."""

    lesion_id: str
    kind: LesionKind = LesionKind.LESION
    organ: str | None = None
    longest_diameter_mm: float
    short_axis_mm: float
    centroid_mm: tuple[float, float, float]
    slice_index: int
    volume_ml: float | None = None
    voxel_count: int = 0
    confidence: float = 1.0
    key_image: str | None = None

    @property
    def recist_diameter_mm(self) -> float:
        """The diameter RECIST 1.1 sums: short axis for nodes, else longest."""
        if self.kind is LesionKind.NODE:
            return self.short_axis_mm
        return self.longest_diameter_mm


class Finding(BaseModel):
    """One machine-derived result with its provenance."""

    name: str
    value: float | str | None
    unit: str | None = None
    confidence: float | None = None
    model_version: str | None = None
    input_hashes: list[str] = Field(default_factory=list)
    machine_derived: bool = True


class Assessment(BaseModel):
    """All findings for one subject at one time point, with the response."""

    subject_id: str
    time_point_id: str
    lesions: list[LesionMeasurement] = Field(default_factory=list)
    sum_of_diameters_mm: float | None = None
    baseline_sum_mm: float | None = None
    nadir_sum_mm: float | None = None
    percent_change_from_baseline: float | None = None
    target_response: Response | None = None
    overall_response: Response | None = None
    new_lesions: list[str] = Field(default_factory=list)


class TriageResult(BaseModel):
    """Priority, reasons, deviations and findings for one study version."""

    study: StudyRef
    study_version: str
    outcome: TriageOutcome
    outcome_reason: str | None = None
    task: str | None = None
    series_uid: str | None = None
    priority: Priority = Priority.ROUTINE
    reasons: list[str] = Field(default_factory=list)
    deviations: list[str] = Field(default_factory=list)
    qc_flags: list[QcFlag] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    assessment: Assessment | None = None
    model_version: str | None = None
    input_hashes: list[str] = Field(default_factory=list)
    visit_day: int | None = None
    key_images: dict[str, str] = Field(default_factory=dict)
    dicom_outputs: dict[str, str] = Field(default_factory=dict)
    narrative: str | None = None
    narrative_source: str | None = None
    narrative_prompt: str | None = None
    narrative_refused_reason: str | None = None
    edc_record_id: str | None = None
    trace_id: str | None = None
    created_at: datetime | None = None
