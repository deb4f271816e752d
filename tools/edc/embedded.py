"""The embedded EDC: CDISC ODM-shaped tables in SQLite or PostgreSQL.

Every change commits together with its audit record (same transaction), so the
EDC never holds a value the audit trail does not explain.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, insert, select, true, update
from sqlalchemy.exc import IntegrityError

from tools.edc import metadata as md
from tools.edc.models import (
    AI_FINDINGS_FORM_OID,
    SITE_IMAGING_FORM_OID,
    EdcRecord,
    ItemValue,
    RecordStatus,
    Signature,
    SubjectInfo,
    VisitInfo,
)
from tools.edc.queries import QueryMixin
from tools.edc.schema import (
    edc_forms,
    edc_item_defs,
    edc_items,
    edc_metadata,
    edc_signatures,
    edc_studies,
    edc_study_events,
    edc_subjects,
)
from tools.edc.values import decode_value, encode_value, now_iso, parse_time
from triallens.audit import AuditTrail, insert_ignore
from triallens.db import make_engine
from triallens.errors import ConflictError, EdcError, NotFoundError

if TYPE_CHECKING:
    from triallens.phi import PhiGuard

__all__ = [
    "SYSTEM_ACTOR",
    "SYSTEM_ROLE",
    "EmbeddedEdc",
    "decode_value",
    "encode_value",
]

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = "triallens"
SYSTEM_ROLE = "system"

ItemInput = Mapping[str, float | int | str | None]

# Allowed status moves. Machine-derived drafts need a human decision before
# they can be locked; data a person entered may lock straight from draft.
_TRANSITIONS: dict[RecordStatus, set[RecordStatus]] = {
    RecordStatus.DRAFT: {
        RecordStatus.CONFIRMED,
        RecordStatus.MODIFIED,
        RecordStatus.REJECTED,
        RecordStatus.LOCKED,
    },
    RecordStatus.CONFIRMED: {RecordStatus.LOCKED},
    RecordStatus.MODIFIED: {RecordStatus.LOCKED},
    RecordStatus.REJECTED: {RecordStatus.LOCKED},
    RecordStatus.LOCKED: set(),
}

_DECISIONS = frozenset(
    {RecordStatus.CONFIRMED, RecordStatus.MODIFIED, RecordStatus.REJECTED}
)


def _entity(record_id: str) -> str:
    return f"edc_record:{record_id}"


class EmbeddedEdc(QueryMixin):
    """An EDC in a local database, modelled on CDISC ODM 1.3.2.

    Parameters
    ----------
    url
        A database URL (``sqlite:///...`` or ``postgresql://...``) or an engine.
        Tables are created when missing; the audit trail lives in the same
        database.
    """

    def __init__(self, url: str | Engine) -> None:
        self.engine: Engine = make_engine(url) if isinstance(url, str) else url
        edc_metadata.create_all(self.engine)
        self.audit = AuditTrail(self.engine)

    # Writing findings ------------------------------------------------------

    def write_ai_findings(
        self,
        *,
        subject_id: str,
        time_point_id: str,
        items: ItemInput,
        model_version: str,
        input_hashes: Iterable[str],
        idempotency_key: str,
        study_oid: str | None = None,
        trial_id: str | None = None,
        site_id: str | None = None,
        study_uid: str | None = None,
        trace_id: str | None = None,
        actor: str = SYSTEM_ACTOR,
        phi_guard: PhiGuard | None = None,
    ) -> str:
        """Write the "AI Imaging Findings" form as a machine-derived draft.

        Parameters
        ----------
        study_oid, trial_id
            The study (either name; ``study_oid`` wins when both are given).
        site_id, subject_id, time_point_id
            Where the form belongs (de-identified identifiers).
        study_uid
            The DICOM study the findings were measured on.
        items
            Item values by item name, e.g. ``{"sum_of_diameters_mm": 42.0}``.
        model_version, trace_id, input_hashes
            Provenance stored with the record and in the audit trail.
        idempotency_key
            A replay with the same key returns the first record and writes
            nothing.
        phi_guard
            When given, the payload is scanned first and nothing is written
            if it holds an original identifying value.

        Returns
        -------
        str
            The record id.

        Raises
        ------
        EdcError
            When no study is named or an item name is not a plain identifier.
        PhiLeakError
            When ``phi_guard`` finds identifying values (nothing is written).
        """
        study = study_oid or trial_id
        if not study:
            raise EdcError("write_ai_findings needs study_oid or trial_id")
        if phi_guard is not None:
            phi_guard.assert_clean(
                {
                    "study": study,
                    "site": site_id,
                    "subject": subject_id,
                    "time_point": time_point_id,
                    "items": dict(items),
                    "trace_id": trace_id,
                },
                what="the EDC findings payload",
            )
        existing = self._record_id_for_key(idempotency_key)
        if existing is not None:
            logger.info("AI findings already written (idempotent replay)")
            return existing
        try:
            return self._write_form(
                study_oid=study,
                site_id=site_id,
                subject_id=subject_id,
                time_point_id=time_point_id,
                form_oid=AI_FINDINGS_FORM_OID,
                items=items,
                machine_derived=True,
                study_uid=study_uid,
                model_version=model_version,
                trace_id=trace_id,
                input_hashes=list(input_hashes),
                idempotency_key=idempotency_key,
                actor=actor,
                role=SYSTEM_ROLE,
                action="edc.write_ai_findings",
            )
        except IntegrityError:
            # A concurrent replay of the same event won the insert.
            existing = self._record_id_for_key(idempotency_key)
            if existing is None:
                raise
            return existing

    def write_site_values(
        self,
        *,
        subject_id: str,
        time_point_id: str,
        items: ItemInput,
        study_oid: str | None = None,
        trial_id: str | None = None,
        site_id: str | None = None,
        actor: str = "site",
        role: str = "site",
        idempotency_key: str | None = None,
    ) -> str:
        """Write the values a site reported ("Site Imaging Assessment" form).

        Returns the record id. With an ``idempotency_key`` a replay returns the
        first record.
        """
        study = study_oid or trial_id
        if not study:
            raise EdcError("write_site_values needs study_oid or trial_id")
        if idempotency_key is not None:
            existing = self._record_id_for_key(idempotency_key)
            if existing is not None:
                return existing
        return self._write_form(
            study_oid=study,
            site_id=site_id,
            subject_id=subject_id,
            time_point_id=time_point_id,
            form_oid=SITE_IMAGING_FORM_OID,
            items=items,
            machine_derived=False,
            study_uid=None,
            model_version=None,
            trace_id=None,
            input_hashes=[],
            idempotency_key=idempotency_key,
            actor=actor,
            role=role,
            action="edc.write_site_values",
        )

    def _write_form(
        self,
        *,
        study_oid: str,
        site_id: str | None,
        subject_id: str,
        time_point_id: str,
        form_oid: str,
        items: ItemInput,
        machine_derived: bool,
        study_uid: str | None,
        model_version: str | None,
        trace_id: str | None,
        input_hashes: list[str],
        idempotency_key: str | None,
        actor: str,
        role: str,
        action: str,
        status: RecordStatus = RecordStatus.DRAFT,
        record_id: str | None = None,
        connection: Connection | None = None,
    ) -> str:
        try:
            defs = [md.item_def(form_oid, name, value) for name, value in items.items()]
        except ValueError as exc:
            raise EdcError(f"cannot write form {form_oid}: {exc}") from exc
        record_id = record_id or str(uuid.uuid4())
        now = now_iso()

        def write(conn: Connection) -> None:
            event_id = self._ensure_event(
                conn, study_oid, site_id, subject_id, time_point_id
            )
            conn.execute(
                insert(edc_forms).values(
                    record_id=record_id,
                    event_id=event_id,
                    form_oid=form_oid,
                    study_uid=study_uid,
                    status=status.value,
                    machine_derived=machine_derived,
                    model_version=model_version,
                    trace_id=trace_id,
                    input_hashes=json.dumps(input_hashes),
                    idempotency_key=idempotency_key,
                    version=1,
                    created_by=actor,
                    created_at=now,
                    updated_at=now,
                )
            )
            for definition, value in zip(defs, items.values(), strict=True):
                self._ensure_item_def(conn, definition)
                conn.execute(
                    insert(edc_items).values(
                        record_id=record_id,
                        item_group_oid=definition.item_group_oid,
                        item_oid=definition.item_oid,
                        name=definition.name,
                        value=encode_value(value),
                        data_type=definition.data_type,
                        machine_derived=machine_derived,
                    )
                )
            self.audit.record(
                actor,
                role,
                action,
                _entity(record_id),
                new={d.name: v for d, v in zip(defs, items.values(), strict=True)},
                reason=None,
                model_version=model_version,
                trace_id=trace_id,
                connection=conn,
            )

        if connection is not None:
            write(connection)
        else:
            with self.engine.begin() as conn:
                write(conn)
        logger.info("wrote %s record %s", form_oid, record_id)
        return record_id

    # Reading ---------------------------------------------------------------

    def get_record(self, record_id: str) -> EdcRecord:
        """One record with its items and signatures.

        Raises
        ------
        NotFoundError
            When no record has this id.
        """
        records = self._load_records(edc_forms.c.record_id == record_id)
        if not records:
            raise NotFoundError(f"no EDC record {record_id}")
        return records[0]

    def list_records(
        self,
        subject_id: str | None = None,
        status: RecordStatus | str | None = None,
        *,
        form_oid: str | None = None,
        study_oid: str | None = None,
        time_point_id: str | None = None,
    ) -> list[EdcRecord]:
        """Records, oldest first, filtered by any of the arguments."""
        conditions = []
        if subject_id is not None:
            conditions.append(edc_subjects.c.subject_key == subject_id)
        if status is not None:
            conditions.append(edc_forms.c.status == RecordStatus(status).value)
        if form_oid is not None:
            conditions.append(edc_forms.c.form_oid == form_oid)
        if study_oid is not None:
            conditions.append(edc_subjects.c.study_oid == study_oid)
        if time_point_id is not None:
            conditions.append(edc_study_events.c.time_point_id == time_point_id)
        return self._load_records(and_(true(), *conditions))

    def list_subjects(self, study_oid: str | None = None) -> list[SubjectInfo]:
        query = select(edc_subjects).order_by(edc_subjects.c.id)
        if study_oid is not None:
            query = query.where(edc_subjects.c.study_oid == study_oid)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            SubjectInfo(
                study_oid=row["study_oid"],
                subject_id=row["subject_key"],
                site_id=row["site_oid"],
            )
            for row in rows
        ]

    def list_visits(
        self, subject_id: str, study_oid: str | None = None
    ) -> list[VisitInfo]:
        """The subject's study events (time points) and the forms in each."""
        query = (
            select(
                edc_study_events.c.id,
                edc_study_events.c.event_oid,
                edc_study_events.c.time_point_id,
                edc_forms.c.form_oid,
            )
            .join(edc_subjects, edc_subjects.c.id == edc_study_events.c.subject_id)
            .outerjoin(edc_forms, edc_forms.c.event_id == edc_study_events.c.id)
            .where(edc_subjects.c.subject_key == subject_id)
            .order_by(edc_study_events.c.id)
        )
        if study_oid is not None:
            query = query.where(edc_subjects.c.study_oid == study_oid)
        visits: dict[int, VisitInfo] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                visit = visits.setdefault(
                    row.id,
                    VisitInfo(
                        subject_id=subject_id,
                        time_point_id=row.time_point_id,
                        event_oid=row.event_oid,
                    ),
                )
                if row.form_oid and row.form_oid not in visit.forms:
                    visit.forms.append(row.form_oid)
        return list(visits.values())

    def site_reported_values(
        self, subject_id: str, time_point_id: str, study_oid: str | None = None
    ) -> dict[str, float | str | None]:
        """The latest site-reported imaging values for one visit, by item name."""
        records = self.list_records(
            subject_id,
            form_oid=SITE_IMAGING_FORM_OID,
            study_oid=study_oid,
            time_point_id=time_point_id,
        )
        values: dict[str, float | str | None] = {}
        for record in records:
            values.update(record.values())
        return values

    def get_status(self, record_id: str) -> RecordStatus:
        return self.get_record(record_id).status

    # Status and review -------------------------------------------------------

    def set_status(
        self,
        record_id: str,
        status: RecordStatus | str,
        *,
        actor: str,
        role: str,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> EdcRecord:
        """Move a record to ``status`` (e.g. lock it).

        Raises
        ------
        EdcError
            When the move is not allowed (a locked record, or a
            machine-derived draft that no person has decided on).
        ConflictError
            When ``expected_version`` is given and someone changed the record.
        """
        target = RecordStatus(status)
        with self.engine.begin() as conn:
            self._change_status(
                conn, record_id, target, actor, role, reason, expected_version
            )
        return self.get_record(record_id)

    def relink_trace(
        self, record_id: str, trace_id: str, *, actor: str, role: str, reason: str
    ) -> EdcRecord:
        """Point a record at the trace that completed it.

        A triage run killed after writing the record leaves it citing a trace
        that never finished; the run that resumes the work has the complete
        one. The trace id is provenance, not a clinical value: any status
        allows the change, and it is audited with the old and new id.
        """
        with self.engine.begin() as conn:
            self._relink_trace(conn, record_id, trace_id, actor, role, reason)
        return self.get_record(record_id)

    def _relink_trace(
        self,
        conn: Connection,
        record_id: str,
        trace_id: str,
        actor: str,
        role: str,
        reason: str | None,
    ) -> None:
        old = conn.execute(
            select(edc_forms.c.trace_id).where(edc_forms.c.record_id == record_id)
        ).first()
        if old is None:
            raise EdcError(f"no EDC record {record_id}")
        if old.trace_id == trace_id:
            return
        conn.execute(
            update(edc_forms)
            .where(edc_forms.c.record_id == record_id)
            .values(trace_id=trace_id)
        )
        self.audit.record(
            actor,
            role,
            "edc.relink_trace",
            _entity(record_id),
            field="trace_id",
            old=old.trace_id,
            new=trace_id,
            reason=reason,
            trace_id=trace_id,
            connection=conn,
        )

    def apply_review(
        self,
        record_id: str,
        *,
        decision: RecordStatus,
        actor: str,
        role: str,
        printed_name: str,
        meaning: str,
        reason: str | None,
        expected_version: int,
        new_values: ItemInput | None = None,
    ) -> EdcRecord:
        """Record a signed human decision on a draft, atomically.

        The status change, any modified item values, the signature and their
        audit records commit together, or not at all.

        Raises
        ------
        ConflictError
            When the record's version is no longer ``expected_version``.
        EdcError
            When the record is not a draft, or a modified item is unknown.
        """
        if decision not in _DECISIONS:
            raise EdcError(f"{decision} is not a review decision")
        with self.engine.begin() as conn:
            version = self._change_status(
                conn, record_id, decision, actor, role, reason, expected_version
            )
            for name, value in (new_values or {}).items():
                self._modify_item(conn, record_id, name, value, actor, role, reason)
            signed_at = now_iso()
            conn.execute(
                insert(edc_signatures).values(
                    record_id=record_id,
                    user_name=actor,
                    printed_name=printed_name,
                    meaning=meaning,
                    decision=decision.value,
                    reason=reason,
                    signed_at=signed_at,
                )
            )
            self.audit.record(
                actor,
                role,
                "edc.signature",
                _entity(record_id),
                field="signature",
                new={
                    "printed_name": printed_name,
                    "meaning": meaning,
                    "decision": decision.value,
                    "signed_at": signed_at,
                    "version": version,
                },
                reason=reason,
                connection=conn,
            )
        return self.get_record(record_id)

    def _change_status(
        self,
        conn: Connection,
        record_id: str,
        target: RecordStatus,
        actor: str,
        role: str,
        reason: str | None,
        expected_version: int | None,
    ) -> int:
        row = conn.execute(
            select(
                edc_forms.c.status, edc_forms.c.version, edc_forms.c.machine_derived
            ).where(edc_forms.c.record_id == record_id)
        ).first()
        if row is None:
            raise NotFoundError(f"no EDC record {record_id}")
        current = RecordStatus(row.status)
        version = expected_version if expected_version is not None else row.version
        if expected_version is not None and row.version != expected_version:
            raise ConflictError(
                f"EDC record {record_id} changed since version {expected_version} "
                f"(now version {row.version}, {current}); reload it and decide again"
            )
        if target in _DECISIONS and current is not RecordStatus.DRAFT:
            raise ConflictError(
                f"EDC record {record_id} was already reviewed (now {current}, "
                f"version {row.version}); reload it to see the decision"
            )
        if target not in _TRANSITIONS[current]:
            raise EdcError(
                f"EDC record {record_id} is {current}; it cannot become {target}"
            )
        if (
            target is RecordStatus.LOCKED
            and current is RecordStatus.DRAFT
            and row.machine_derived
        ):
            raise EdcError(
                f"EDC record {record_id} is a machine-derived draft; a reviewer "
                "must confirm, modify or reject it before it can be locked"
            )
        result = conn.execute(
            update(edc_forms)
            .where(edc_forms.c.record_id == record_id)
            .where(edc_forms.c.version == version)
            .values(status=target.value, version=version + 1, updated_at=now_iso())
        )
        if result.rowcount != 1:
            raise ConflictError(
                f"EDC record {record_id} was changed by someone else; reload it "
                "and decide again"
            )
        self.audit.record(
            actor,
            role,
            "edc.set_status",
            _entity(record_id),
            field="status",
            old=current.value,
            new=target.value,
            reason=reason,
            connection=conn,
        )
        return version + 1

    def _modify_item(
        self,
        conn: Connection,
        record_id: str,
        name: str,
        value: float | int | str | None,
        actor: str,
        role: str,
        reason: str | None,
    ) -> None:
        item = (
            conn.execute(
                select(edc_items).where(
                    edc_items.c.record_id == record_id,
                    edc_items.c.name == name.lower(),
                )
            )
            .mappings()
            .first()
        )
        if item is None:
            raise EdcError(f"EDC record {record_id} has no item {name!r}")
        conn.execute(
            update(edc_items)
            .where(edc_items.c.id == item["id"])
            .values(
                value=encode_value(value),
                machine_derived=False,
                original_value=(
                    item["original_value"]
                    if item["original_value"] is not None
                    else item["value"]
                ),
            )
        )
        self.audit.record(
            actor,
            role,
            "edc.modify_item",
            _entity(record_id),
            field=item["item_oid"],
            old=decode_value(item["value"], item["data_type"]),
            new=value,
            reason=reason,
            connection=conn,
        )

    # Helpers -----------------------------------------------------------------

    def _record_id_for_key(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(edc_forms.c.record_id).where(edc_forms.c.idempotency_key == key)
            ).scalar_one_or_none()

    def ensure_study(self, study_oid: str, name: str | None = None) -> None:
        """Create the study when it is missing."""
        with self.engine.begin() as conn:
            self._ensure_study(conn, study_oid, name)

    def _ensure_study(
        self, conn: Connection, study_oid: str, name: str | None = None
    ) -> None:
        exists = conn.execute(
            select(edc_studies.c.study_oid).where(edc_studies.c.study_oid == study_oid)
        ).first()
        if exists is None:
            _insert_ignoring_duplicate(
                conn,
                edc_studies,
                study_oid=study_oid,
                name=name or study_oid,
                metadata_version_oid=md.METADATA_VERSION_OID,
                created_at=now_iso(),
            )

    def _ensure_event(
        self,
        conn: Connection,
        study_oid: str,
        site_id: str | None,
        subject_id: str,
        time_point_id: str,
    ) -> int:
        self._ensure_study(conn, study_oid)
        subject_pk = conn.execute(
            select(edc_subjects.c.id).where(
                edc_subjects.c.study_oid == study_oid,
                edc_subjects.c.subject_key == subject_id,
            )
        ).scalar_one_or_none()
        if subject_pk is None:
            _insert_ignoring_duplicate(
                conn,
                edc_subjects,
                study_oid=study_oid,
                subject_key=subject_id,
                site_oid=site_id,
                created_at=now_iso(),
            )
            subject_pk = conn.execute(
                select(edc_subjects.c.id).where(
                    edc_subjects.c.study_oid == study_oid,
                    edc_subjects.c.subject_key == subject_id,
                )
            ).scalar_one()
        oid = md.event_oid(time_point_id)
        event_pk = conn.execute(
            select(edc_study_events.c.id).where(
                edc_study_events.c.subject_id == subject_pk,
                edc_study_events.c.event_oid == oid,
            )
        ).scalar_one_or_none()
        if event_pk is None:
            _insert_ignoring_duplicate(
                conn,
                edc_study_events,
                subject_id=subject_pk,
                event_oid=oid,
                time_point_id=time_point_id,
                repeat_key="1",
            )
            event_pk = conn.execute(
                select(edc_study_events.c.id).where(
                    edc_study_events.c.subject_id == subject_pk,
                    edc_study_events.c.event_oid == oid,
                )
            ).scalar_one()
        return int(event_pk)

    def _ensure_item_def(self, conn: Connection, definition: md.ItemDef) -> None:
        exists = conn.execute(
            select(edc_item_defs.c.item_oid).where(
                edc_item_defs.c.item_oid == definition.item_oid
            )
        ).first()
        if exists is None:
            _insert_ignoring_duplicate(
                conn,
                edc_item_defs,
                item_oid=definition.item_oid,
                form_oid=definition.form_oid,
                item_group_oid=definition.item_group_oid,
                name=definition.name,
                data_type=definition.data_type,
                unit=definition.unit,
            )

    def _load_records(self, condition: Any) -> list[EdcRecord]:
        query = (
            select(
                edc_forms,
                edc_subjects.c.study_oid,
                edc_subjects.c.subject_key,
                edc_subjects.c.site_oid,
                edc_study_events.c.time_point_id,
            )
            .join(edc_study_events, edc_study_events.c.id == edc_forms.c.event_id)
            .join(edc_subjects, edc_subjects.c.id == edc_study_events.c.subject_id)
            .where(condition)
            .order_by(edc_forms.c.created_at, edc_forms.c.record_id)
        )
        with self.engine.connect() as conn:
            forms = conn.execute(query).mappings().all()
            ids = [form["record_id"] for form in forms]
            if not ids:
                return []
            items = (
                conn.execute(
                    select(edc_items, edc_item_defs.c.unit)
                    .join(
                        edc_item_defs,
                        edc_item_defs.c.item_oid == edc_items.c.item_oid,
                        isouter=True,
                    )
                    .where(edc_items.c.record_id.in_(ids))
                    .order_by(edc_items.c.id)
                )
                .mappings()
                .all()
            )
            signatures = (
                conn.execute(
                    select(edc_signatures)
                    .where(edc_signatures.c.record_id.in_(ids))
                    .order_by(edc_signatures.c.id)
                )
                .mappings()
                .all()
            )
        return [_record(form, items, signatures) for form in forms]


def _insert_ignoring_duplicate(conn: Connection, table: Any, **values: Any) -> None:
    """Insert a row unless a concurrent writer inserted the same key first."""
    conn.execute(insert_ignore(conn, table).values(**values))


def _record(form: Any, items: Any, signatures: Any) -> EdcRecord:
    record_id = form["record_id"]
    item_values: dict[str, ItemValue] = {}
    for item in items:
        if item["record_id"] != record_id:
            continue
        original = item["original_value"]
        item_values[item["name"]] = ItemValue(
            item_oid=item["item_oid"],
            name=item["name"],
            value=decode_value(item["value"], item["data_type"]),
            data_type=item["data_type"],
            unit=item["unit"],
            machine_derived=bool(item["machine_derived"]),
            original_value=decode_value(original, item["data_type"]),
        )
    return EdcRecord(
        record_id=record_id,
        study_oid=form["study_oid"],
        site_id=form["site_oid"],
        subject_id=form["subject_key"],
        time_point_id=form["time_point_id"],
        form_oid=form["form_oid"],
        study_uid=form["study_uid"],
        status=RecordStatus(form["status"]),
        machine_derived=bool(form["machine_derived"]),
        model_version=form["model_version"],
        trace_id=form["trace_id"],
        input_hashes=json.loads(form["input_hashes"] or "[]"),
        items=item_values,
        version=form["version"],
        created_at=parse_time(form["created_at"]),
        updated_at=parse_time(form["updated_at"]),
        signatures=[
            Signature(
                user_name=sig["user_name"],
                printed_name=sig["printed_name"],
                meaning=sig["meaning"],
                decision=sig["decision"],
                reason=sig["reason"],
                signed_at=parse_time(sig["signed_at"]),
            )
            for sig in signatures
            if sig["record_id"] == record_id
        ],
    )
