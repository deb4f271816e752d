"""The triage result store: one row per study version that was triaged.

Rows hold only de-identified identifiers. The original Study Instance UID
is kept as a keyed hash so a replayed event finds its earlier result.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    Float,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from triallens.db import make_engine
from triallens.domain import TriageResult

__all__ = ["ResultStore", "source_key"]


def source_key(original_study_uid: str, secret: str) -> str:
    """A keyed hash of the PACS's Study Instance UID (never stored in clear)."""
    digest = hashlib.sha256(f"{secret}\x00{original_study_uid}".encode())
    return digest.hexdigest()[:32]


class _Base(DeclarativeBase):
    pass


class _TriageRow(_Base):
    __tablename__ = "triage_results"
    __table_args__ = (UniqueConstraint("source_key", "study_version"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(64), index=True)
    study_version: Mapped[str] = mapped_column(String(64))
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    trial_id: Mapped[str] = mapped_column(String(64), index=True)
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    time_point_id: Mapped[str] = mapped_column(String(64))
    study_date: Mapped[str | None] = mapped_column(String(8), nullable=True)
    modality: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16), index=True)
    sum_of_diameters_mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    overall_response: Mapped[str | None] = mapped_column(String(16), nullable=True)
    review_status: Mapped[str] = mapped_column(String(16), default="pending")
    edc_record_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    result_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ResultStore:
    """Triage results, queryable by study, subject and worklist filters."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        _Base.metadata.create_all(self.engine)

    def save(self, key: str, result: TriageResult) -> TriageResult:
        """Insert the result, or return the one already saved for this version."""
        existing = self.get_by_source(key, result.study_version)
        if existing is not None:
            return existing
        stamped = result.model_copy(update={"created_at": datetime.now(UTC)})
        assessment = stamped.assessment
        row = _TriageRow(
            source_key=key,
            study_version=stamped.study_version,
            study_uid=stamped.study.study_uid,
            trial_id=stamped.study.trial_id,
            subject_id=stamped.study.subject_id,
            time_point_id=stamped.study.time_point_id,
            study_date=stamped.study.study_date,
            modality=stamped.study.modality,
            outcome=stamped.outcome.value,
            priority=stamped.priority.value,
            sum_of_diameters_mm=assessment.sum_of_diameters_mm if assessment else None,
            overall_response=(
                assessment.overall_response.value
                if assessment and assessment.overall_response
                else None
            ),
            edc_record_id=stamped.edc_record_id,
            trace_id=stamped.trace_id,
            result_json=stamped.model_dump_json(),
            created_at=stamped.created_at,
        )
        with Session(self.engine) as session, session.begin():
            session.add(row)
        return stamped

    def get_by_source(self, key: str, study_version: str) -> TriageResult | None:
        with Session(self.engine) as session:
            row = session.scalar(
                select(_TriageRow).where(
                    _TriageRow.source_key == key,
                    _TriageRow.study_version == study_version,
                )
            )
            return TriageResult.model_validate_json(row.result_json) if row else None

    def set_trace_id(self, key: str, study_version: str, trace_id: str) -> TriageResult:
        """Point a stored result at the trace of the run that completed it."""
        with Session(self.engine) as session, session.begin():
            row = session.scalars(
                select(_TriageRow).where(
                    _TriageRow.source_key == key,
                    _TriageRow.study_version == study_version,
                )
            ).one()
            result = TriageResult.model_validate_json(row.result_json)
            result = result.model_copy(update={"trace_id": trace_id})
            row.trace_id = trace_id
            row.result_json = result.model_dump_json()
        return result

    def get_study(self, study_uid: str, key: str | None = None) -> TriageResult | None:
        """The newest triage result of a study.

        ``study_uid`` is the de-identified UID; ``key`` (the keyed hash of the
        PACS's own UID, see :func:`source_key`) finds it by the original UID.
        """
        condition = _TriageRow.study_uid == study_uid
        if key is not None:
            condition = condition | (_TriageRow.source_key == key)
        with Session(self.engine) as session:
            row = session.scalar(
                select(_TriageRow).where(condition).order_by(_TriageRow.id.desc())
            )
            return TriageResult.model_validate_json(row.result_json) if row else None

    def source_of(self, study_uid: str) -> tuple[str, str] | None:
        """The (source key, study version) of a study's newest result."""
        with Session(self.engine) as session:
            row = session.scalar(
                select(_TriageRow)
                .where(_TriageRow.study_uid == study_uid)
                .order_by(_TriageRow.id.desc())
            )
            return (row.source_key, row.study_version) if row else None

    def subject_timeline(self, trial_id: str, subject_id: str) -> list[TriageResult]:
        """The newest result per time point, in visit order (study date)."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(_TriageRow)
                .where(
                    _TriageRow.trial_id == trial_id,
                    _TriageRow.subject_id == subject_id,
                )
                .order_by(_TriageRow.id)
            ).all()
        latest: dict[str, _TriageRow] = {}
        for row in rows:
            latest[row.study_uid] = row
        ordered = sorted(
            latest.values(), key=lambda r: (r.study_date or "", r.time_point_id)
        )
        return [TriageResult.model_validate_json(r.result_json) for r in ordered]

    def worklist(
        self,
        trial_id: str | None = None,
        priority: str | None = None,
        review_status: str | None = None,
        limit: int = 200,
    ) -> list[TriageResult]:
        """Newest first, filtered by trial, priority and review status."""
        query = select(_TriageRow).order_by(_TriageRow.id.desc()).limit(limit)
        if trial_id:
            query = query.where(_TriageRow.trial_id == trial_id)
        if priority:
            query = query.where(_TriageRow.priority == priority)
        if review_status:
            query = query.where(_TriageRow.review_status == review_status)
        with Session(self.engine) as session:
            rows = session.scalars(query).all()
        return [TriageResult.model_validate_json(r.result_json) for r in rows]

    def set_review_status(self, study_uid: str, status: str) -> None:
        with Session(self.engine) as session, session.begin():
            for row in session.scalars(
                select(_TriageRow).where(_TriageRow.study_uid == study_uid)
            ):
                row.review_status = status
