"""The interface every EDC backend offers (embedded, Rave Web Services)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from tools.edc.models import (
    EdcQuery,
    EdcRecord,
    QueryStatus,
    RecordStatus,
    SubjectInfo,
    VisitInfo,
)

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

    def relink_trace(
        self, record_id: str, trace_id: str, *, actor: str, role: str, reason: str
    ) -> EdcRecord:
        """Point a machine-derived record at the trace that completed it
        (after an interrupted run); audited with the old and new trace, and
        a no-op when the record already cites it."""
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

    def raise_query(
        self,
        *,
        study_oid: str,
        subject_id: str,
        time_point_id: str,
        item_name: str,
        text: str,
        actor: str,
        role: str,
        record_id: str | None = None,
        ai_value: float | str | None = None,
        ai_source: str | None = None,
        site_value: float | str | None = None,
        site_source: str | None = None,
        discrepancy_key: str | None = None,
    ) -> EdcQuery:
        """Open a query; the same ``discrepancy_key`` never opens a second."""
        ...

    def close_query(
        self, query_id: str, *, actor: str, role: str, reason: str
    ) -> EdcQuery: ...

    def list_queries(
        self,
        subject_id: str | None = None,
        status: QueryStatus | str | None = None,
    ) -> list[EdcQuery]: ...
