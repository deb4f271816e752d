"""Types the EDC interface exchanges (records, items, signatures, queries)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

__all__ = [
    "AI_FINDINGS_FORM_OID",
    "SITE_IMAGING_FORM_OID",
    "EdcQuery",
    "EdcRecord",
    "ItemValue",
    "QueryStatus",
    "RecordStatus",
    "Signature",
    "SubjectInfo",
    "VisitInfo",
]

AI_FINDINGS_FORM_OID = "AI_IMAGING"
SITE_IMAGING_FORM_OID = "SITE_IMAGING"


class RecordStatus(StrEnum):
    """Life of a form: draft -> confirmed | modified | rejected -> locked."""

    DRAFT = "draft"
    CONFIRMED = "confirmed"
    MODIFIED = "modified"
    REJECTED = "rejected"
    LOCKED = "locked"


class QueryStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class ItemValue(BaseModel):
    """One item of a form: its value, and whether a machine produced it."""

    item_oid: str
    name: str
    value: int | float | str | None
    data_type: str = "text"
    unit: str | None = None
    machine_derived: bool = False
    original_value: int | float | str | None = None


class Signature(BaseModel):
    """An electronic signature linked to one record (21 CFR 11.50, 11.70)."""

    user_name: str
    printed_name: str
    meaning: str
    decision: str
    signed_at: datetime
    reason: str | None = None

    def manifestation(self) -> str:
        """The signature as shown wherever the record is shown."""
        stamp = self.signed_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.printed_name} ({self.user_name}), {self.meaning}, {stamp}"


class EdcRecord(BaseModel):
    """One form of one subject at one time point, with its provenance."""

    record_id: str
    study_oid: str
    site_id: str | None
    subject_id: str
    time_point_id: str
    form_oid: str
    study_uid: str | None = None
    status: RecordStatus
    machine_derived: bool
    model_version: str | None = None
    trace_id: str | None = None
    input_hashes: list[str] = Field(default_factory=list)
    items: dict[str, ItemValue] = Field(default_factory=dict)
    version: int = 1
    created_at: datetime
    updated_at: datetime
    signatures: list[Signature] = Field(default_factory=list)

    def values(self) -> dict[str, int | float | str | None]:
        """Item values by item name."""
        return {name: item.value for name, item in self.items.items()}


class SubjectInfo(BaseModel):
    study_oid: str
    subject_id: str
    site_id: str | None = None


class VisitInfo(BaseModel):
    subject_id: str
    time_point_id: str
    event_oid: str
    forms: list[str] = Field(default_factory=list)


class EdcQuery(BaseModel):
    """A data query on one item, raised on a discrepancy or a missing value."""

    query_id: str
    study_oid: str
    subject_id: str
    time_point_id: str
    item_name: str
    record_id: str | None = None
    text: str
    ai_value: float | str | None = None
    ai_source: str | None = None
    site_value: float | str | None = None
    site_source: str | None = None
    status: QueryStatus
    raised_by: str
    raised_at: datetime
    closed_by: str | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
