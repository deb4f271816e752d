"""The durable log of new-study events.

Every event is written here before anything acts on it, under an idempotency
key, so a repeated delivery (a poll that overlaps the last one, an HL7 sender
that resends, a restarted source) is recorded once. Processing is
at-least-once: a worker claims an event with a lease; if the worker dies, the
lease lapses (or the dead process is noticed on the same host) and the event is
delivered again. A study version (the hash of its sorted SOP Instance UIDs) is
triaged at most once: once a version is marked done, later events for the same
version complete without calling the handler. Failures keep their reason and
come back after an exponential backoff; nothing is ever dropped.

Events hold UIDs, accession numbers and source details, never patient names,
IDs or dates of birth.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

__all__ = [
    "EventLog",
    "EventStatus",
    "StudyEvent",
    "study_version",
]

logger = logging.getLogger(__name__)

_metadata = MetaData()

_events = Table(
    "study_events",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(512), nullable=False, unique=True),
    Column("source", String(32), nullable=False),
    Column("study_uid", String(128)),
    Column("accession_number", String(64)),
    Column("study_version", String(64)),
    Column("details", Text, nullable=False, default="{}"),
    Column("status", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("lease_owner", String(128)),
    Column("lease_until", DateTime(timezone=True)),
    Column("note", Text),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

_versions = Table(
    "study_versions_done",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_uid", String(128), nullable=False),
    Column("study_version", String(64), nullable=False),
    Column("event_id", Integer, nullable=False),
    Column("done_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("study_uid", "study_version", name="uq_study_version"),
)

_state = Table(
    "event_source_state",
    _metadata,
    Column("name", String(128), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class EventStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


def study_version(sop_instance_uids: Iterable[str]) -> str:
    """The version of a study: a hash of its sorted SOP Instance UIDs.

    A study that gains (or loses) instances gets a new version.
    """
    joined = "\n".join(sorted(sop_instance_uids))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StudyEvent:
    """A notice that a study (or a new version of it) may be ready.

    Attributes
    ----------
    source
        ``qido``, ``orthanc``, ``dimse``, ``hl7``, ``webhook`` or a test name.
    idempotency_key
        Identical for repeated deliveries of the same notice.
    study_uid, accession_number
        At least one identifies the study.
    study_version
        The version when the source knows it; the watcher works it out
        from the PACS otherwise.
    details
        Source facts without PHI (sequence numbers, counts, message IDs).
    event_id, attempts
        Set by the log.
    """

    source: str
    idempotency_key: str
    study_uid: str | None = None
    accession_number: str | None = None
    study_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    received_at: datetime | None = None
    event_id: int | None = None
    attempts: int = 0

    def with_study(self, study_uid: str, version: str, **details: Any) -> StudyEvent:
        """A copy with the study UID, version and extra details filled in."""
        return replace(
            self,
            study_uid=study_uid,
            study_version=version,
            details={**self.details, **details},
        )


@dataclass(frozen=True)
class EventRecord:
    """One row of the log, for inspection and tests."""

    event: StudyEvent
    status: EventStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    note: str | None


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class EventLog:
    """The durable event log on any SQLAlchemy engine (SQLite or PostgreSQL).

    Parameters
    ----------
    engine
        From :func:`triallens.db.make_engine`.
    owner
        Names the claiming process; ``host:pid`` by default.
    retry_base_s, retry_cap_s
        The first retry delay after a failure, doubling per attempt up to the
        cap.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        owner: str | None = None,
        retry_base_s: float = 30.0,
        retry_cap_s: float = 3600.0,
    ) -> None:
        self.engine = engine
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        _metadata.create_all(engine)

    # Recording -------------------------------------------------------------

    def record(self, event: StudyEvent) -> tuple[StudyEvent, bool]:
        """Write an event unless its idempotency key is already in the log.

        Returns
        -------
        tuple[StudyEvent, bool]
            The stored event (with ``event_id``) and whether it is new.
        """
        now = _now()
        row = {
            "idempotency_key": event.idempotency_key,
            "source": event.source,
            "study_uid": event.study_uid,
            "accession_number": event.accession_number,
            "study_version": event.study_version,
            "details": json.dumps(event.details, sort_keys=True, default=str),
            "status": EventStatus.PENDING.value,
            "attempts": 0,
            "received_at": event.received_at or now,
            "updated_at": now,
        }
        try:
            with self.engine.begin() as conn:
                event_id = conn.execute(
                    insert(_events).values(**row)
                ).inserted_primary_key[0]
        except IntegrityError:
            existing = self._by_key(event.idempotency_key)
            if existing is None:
                raise
            return existing, False
        logger.info("event %s recorded from %s", event_id, event.source)
        return replace(
            event, event_id=int(event_id), received_at=row["received_at"]
        ), True

    # Claiming and completing ----------------------------------------------

    def claim(self, lease_s: float = 300.0) -> StudyEvent | None:
        """Take the oldest event that is due, leasing it to this owner.

        Due means pending, failed with its retry time reached, or processing
        under a lease that has lapsed.
        """
        now = _now()
        due = or_(
            _events.c.status == EventStatus.PENDING.value,
            and_(
                _events.c.status == EventStatus.FAILED.value,
                _events.c.next_attempt_at <= now,
            ),
            and_(
                _events.c.status == EventStatus.PROCESSING.value,
                _events.c.lease_until < now,
            ),
        )
        with self.engine.begin() as conn:
            candidates = conn.execute(
                select(_events.c.id, _events.c.status)
                .where(due)
                .order_by(_events.c.id)
                .limit(5)
            ).all()
            for event_id, status in candidates:
                claimed = conn.execute(
                    update(_events)
                    .where(_events.c.id == event_id, _events.c.status == status)
                    .values(
                        status=EventStatus.PROCESSING.value,
                        lease_owner=self.owner,
                        lease_until=now + timedelta(seconds=lease_s),
                        attempts=_events.c.attempts + 1,
                        updated_at=now,
                    )
                )
                if claimed.rowcount == 1:
                    row = conn.execute(
                        select(_events).where(_events.c.id == event_id)
                    ).one()
                    return _to_event(row)
        return None

    def extend_lease(self, event_id: int, lease_s: float = 300.0) -> None:
        """Keep a long-running event leased to this owner."""
        with self.engine.begin() as conn:
            conn.execute(
                update(_events)
                .where(_events.c.id == event_id, _events.c.lease_owner == self.owner)
                .values(lease_until=_now() + timedelta(seconds=lease_s))
            )

    def complete(
        self, event: StudyEvent, note: str | None = None, *, version_done: bool = True
    ) -> None:
        """Mark an event done, and its study version triaged when it has one."""
        now = _now()
        with self.engine.begin() as conn:
            if version_done and event.study_uid and event.study_version:
                exists = conn.execute(
                    select(_versions.c.id).where(
                        _versions.c.study_uid == event.study_uid,
                        _versions.c.study_version == event.study_version,
                    )
                ).first()
                if exists is None:
                    conn.execute(
                        insert(_versions).values(
                            study_uid=event.study_uid,
                            study_version=event.study_version,
                            event_id=event.event_id,
                            done_at=now,
                        )
                    )
            conn.execute(
                update(_events)
                .where(_events.c.id == event.event_id)
                .values(
                    status=EventStatus.DONE.value,
                    study_uid=event.study_uid,
                    study_version=event.study_version,
                    details=json.dumps(event.details, sort_keys=True, default=str),
                    lease_owner=None,
                    lease_until=None,
                    last_error=None,
                    note=note,
                    updated_at=now,
                )
            )

    def fail(self, event: StudyEvent, reason: str) -> datetime:
        """Keep a failed event with its reason; it is due again after a backoff.

        Returns
        -------
        datetime
            When the event will next be attempted.
        """
        attempts = max(event.attempts, 1)
        delay = min(self.retry_base_s * 2 ** (attempts - 1), self.retry_cap_s)
        next_at = _now() + timedelta(seconds=delay)
        with self.engine.begin() as conn:
            conn.execute(
                update(_events)
                .where(_events.c.id == event.event_id)
                .values(
                    status=EventStatus.FAILED.value,
                    last_error=reason.splitlines()[0][:500] if reason else "unknown",
                    next_attempt_at=next_at,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=_now(),
                )
            )
        logger.warning(
            "event %s failed (attempt %d), next try in %.0f s: %s",
            event.event_id,
            attempts,
            delay,
            reason,
        )
        return next_at

    def release(self, event: StudyEvent) -> None:
        """Hand an unprocessed claimed event back (the attempt does not count)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(_events)
                .where(
                    _events.c.id == event.event_id, _events.c.lease_owner == self.owner
                )
                .values(
                    status=EventStatus.PENDING.value,
                    attempts=func.max(_events.c.attempts - 1, 0)
                    if self.engine.dialect.name == "sqlite"
                    else func.greatest(_events.c.attempts - 1, 0),
                    lease_owner=None,
                    lease_until=None,
                    updated_at=_now(),
                )
            )

    def recover_abandoned(self) -> int:
        """Re-queue events held by processes of this host that no longer run.

        Returns
        -------
        int
            How many events went back to pending.
        """
        host = socket.gethostname()
        recovered = 0
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(_events.c.id, _events.c.lease_owner).where(
                    _events.c.status == EventStatus.PROCESSING.value
                )
            ).all()
            for event_id, owner in rows:
                if owner == self.owner or not _dead_local_owner(owner, host):
                    continue
                conn.execute(
                    update(_events)
                    .where(_events.c.id == event_id, _events.c.lease_owner == owner)
                    .values(
                        status=EventStatus.PENDING.value,
                        lease_owner=None,
                        lease_until=None,
                        note="re-delivered after its worker stopped",
                        updated_at=_now(),
                    )
                )
                recovered += 1
        if recovered:
            logger.warning(
                "re-queued %d events abandoned by a stopped worker", recovered
            )
        return recovered

    def version_done(self, study_uid: str, version: str) -> bool:
        """Whether this version of the study has already been processed."""
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(_versions.c.id).where(
                        _versions.c.study_uid == study_uid,
                        _versions.c.study_version == version,
                    )
                ).first()
                is not None
            )

    # Inspection ------------------------------------------------------------

    def records(self, status: EventStatus | None = None) -> list[EventRecord]:
        """Every event in the log (oldest first), optionally of one status."""
        query = select(_events).order_by(_events.c.id)
        if status is not None:
            query = query.where(_events.c.status == status.value)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            EventRecord(
                event=_to_event(row),
                status=EventStatus(row.status),
                attempts=row.attempts,
                last_error=row.last_error,
                next_attempt_at=_aware(row.next_attempt_at),
                note=row.note,
            )
            for row in rows
        ]

    def counts(self) -> dict[str, int]:
        """How many events are in each status."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_events.c.status, func.count()).group_by(_events.c.status)
            ).all()
        return {status: int(n) for status, n in rows}

    # Source state (watermarks, sequence numbers) ---------------------------

    def get_state(self, name: str) -> str | None:
        """A value a source persisted under ``name``, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_state.c.value).where(_state.c.name == name)
            ).first()
        return None if row is None else str(row[0])

    def set_state(self, name: str, value: str) -> None:
        """Persist a source's value (a watermark, a sequence number)."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(_state)
                .where(_state.c.name == name)
                .values(value=value, updated_at=_now())
            )
            if changed.rowcount == 0:
                conn.execute(
                    insert(_state).values(name=name, value=value, updated_at=_now())
                )

    def _by_key(self, key: str) -> StudyEvent | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_events).where(_events.c.idempotency_key == key)
            ).first()
        return None if row is None else _to_event(row)


def _to_event(row: Any) -> StudyEvent:
    return StudyEvent(
        source=row.source,
        idempotency_key=row.idempotency_key,
        study_uid=row.study_uid,
        accession_number=row.accession_number,
        study_version=row.study_version,
        details=json.loads(row.details or "{}"),
        received_at=_aware(row.received_at),
        event_id=int(row.id),
        attempts=int(row.attempts),
    )


def _dead_local_owner(owner: str | None, host: str) -> bool:
    """True when ``owner`` names a process of this host that has exited."""
    if not owner or ":" not in owner:
        return False
    owner_host, _, pid_text = owner.rpartition(":")
    if owner_host != host or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
