"""The interface every EDC backend offers (embedded, Rave Web Services)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from tools.edc.models import EdcRecord, RecordStatus, SubjectInfo, VisitInfo

__all__ = ["Edc"]

ItemValues = Mapping[str, float | int | str | None]


@runtime_checkable
class Edc(Protocol):
    """Read subjects, visits and site values; write findings; status; queries.

    Every backend tags what TrialLens writes as machine-derived, with the
    model version, trace id and input hashes, and keeps the status life cycle
    draft -> confirmed | modified | rejected -> locked.
    """

    def write_ai_findings(
        self,
        *,
        subject_id: str,
        time_point_id: str,
        items: ItemValues,
        model_version: str,
        input_hashes: Iterable[str],
        idempotency_key: str,
        study_oid: str | None = None,
        trial_id: str | None = None,
        site_id: str | None = None,
        study_uid: str | None = None,
        trace_id: str | None = None,
    ) -> str:
        """Write the "AI Imaging Findings" form as a draft; return its id."""
        ...

    def get_record(self, record_id: str) -> EdcRecord: ...

    def list_records(
        self,
        subject_id: str | None = None,
        status: RecordStatus | str | None = None,
    ) -> list[EdcRecord]: ...

    def list_subjects(self) -> list[SubjectInfo]: ...

    def list_visits(self, subject_id: str) -> list[VisitInfo]: ...

    def site_reported_values(
        self, subject_id: str, time_point_id: str
    ) -> dict[str, float | int | str | None]: ...

    def get_status(self, record_id: str) -> RecordStatus: ...

    def set_status(
        self,
        record_id: str,
        status: RecordStatus | str,
        *,
        actor: str,
        role: str,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> EdcRecord: ...
