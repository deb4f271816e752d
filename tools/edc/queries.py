"""EDC data queries of the embedded EDC: raise, close, list, never duplicate."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, select, true, update
from sqlalchemy.exc import IntegrityError

from tools.edc.models import EdcQuery, QueryStatus
from tools.edc.schema import edc_queries
from tools.edc.values import encode_value, now_iso, parse_time, typed_text
from triallens.audit import AuditTrail
from triallens.errors import EdcError, NotFoundError

__all__ = ["QueryMixin"]


class QueryMixin:
    """Query operations; mixed into :class:`~tools.edc.embedded.EmbeddedEdc`."""

    engine: Engine
    audit: AuditTrail

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
        """Open a query on one item of a visit.

        A query with the same ``discrepancy_key`` (open or closed) is returned
        instead of a duplicate.
        """
        fields = {
            "study_oid": study_oid,
            "subject_id": subject_id,
            "time_point_id": time_point_id,
            "item_name": item_name,
            "text": text,
            "record_id": record_id,
            "ai_value": ai_value,
            "ai_source": ai_source,
            "site_value": site_value,
            "site_source": site_source,
            "discrepancy_key": discrepancy_key,
        }
        try:
            with self.engine.begin() as conn:
                query_id = self._raise_query_in(conn, actor, role, fields)
        except IntegrityError:
            found = self._query_by_key(discrepancy_key) if discrepancy_key else None
            if found is None:
                raise
            return found
        return self.get_query(query_id)

    def close_query(
        self, query_id: str, *, actor: str, role: str, reason: str
    ) -> EdcQuery:
        """Close an open query with the answer given as ``reason``.

        Raises
        ------
        NotFoundError
            When no query has this id.
        EdcError
            When the query is already closed.
        """
        with self.engine.begin() as conn:
            self._close_query_in(conn, query_id, actor, role, reason)
        return self.get_query(query_id)

    def get_query(self, query_id: str) -> EdcQuery:
        queries = self._load_queries(edc_queries.c.query_id == query_id)
        if not queries:
            raise NotFoundError(f"no EDC query {query_id}")
        return queries[0]

    def list_queries(
        self,
        subject_id: str | None = None,
        status: QueryStatus | str | None = None,
    ) -> list[EdcQuery]:
        """Queries, oldest first, of one subject and/or one status."""
        conditions = []
        if subject_id is not None:
            conditions.append(edc_queries.c.subject_key == subject_id)
        if status is not None:
            conditions.append(edc_queries.c.status == QueryStatus(status).value)
        return self._load_queries(and_(true(), *conditions))

    # Inside a caller's transaction ----------------------------------------------

    def _raise_query_in(
        self, conn: Connection, actor: str, role: str, fields: dict[str, Any]
    ) -> str:
        key = fields.get("discrepancy_key")
        if key is not None:
            existing = conn.execute(
                select(edc_queries.c.query_id).where(
                    edc_queries.c.discrepancy_key == key
                )
            ).scalar_one_or_none()
            if existing is not None:
                return str(existing)
        query_id = str(uuid.uuid4())
        conn.execute(
            insert(edc_queries).values(
                query_id=query_id,
                study_oid=fields["study_oid"],
                subject_key=fields["subject_id"],
                time_point_id=fields["time_point_id"],
                item_name=fields["item_name"],
                record_id=fields.get("record_id"),
                discrepancy_key=key,
                text=fields["text"],
                ai_value=encode_value(fields.get("ai_value")),
                ai_source=fields.get("ai_source"),
                site_value=encode_value(fields.get("site_value")),
                site_source=fields.get("site_source"),
                status=QueryStatus.OPEN.value,
                raised_by=actor,
                raised_at=now_iso(),
            )
        )
        self.audit.record(
            actor,
            role,
            "edc.raise_query",
            f"edc_query:{query_id}",
            field=fields["item_name"],
            new={
                "subject_id": fields["subject_id"],
                "time_point_id": fields["time_point_id"],
                "text": fields["text"],
                "ai_value": fields.get("ai_value"),
                "site_value": fields.get("site_value"),
                "record_id": fields.get("record_id"),
            },
            connection=conn,
        )
        return query_id

    def _close_query_in(
        self, conn: Connection, query_id: str, actor: str, role: str, reason: str
    ) -> None:
        result = conn.execute(
            update(edc_queries)
            .where(edc_queries.c.query_id == query_id)
            .where(edc_queries.c.status == QueryStatus.OPEN.value)
            .values(
                status=QueryStatus.CLOSED.value,
                closed_by=actor,
                closed_at=now_iso(),
                close_reason=reason,
            )
        )
        if result.rowcount != 1:
            exists = conn.execute(
                select(edc_queries.c.query_id).where(edc_queries.c.query_id == query_id)
            ).first()
            if exists is None:
                raise NotFoundError(f"no EDC query {query_id}")
            raise EdcError(f"EDC query {query_id} is already closed")
        self.audit.record(
            actor,
            role,
            "edc.close_query",
            f"edc_query:{query_id}",
            field="status",
            old=QueryStatus.OPEN.value,
            new=QueryStatus.CLOSED.value,
            reason=reason,
            connection=conn,
        )

    def _query_by_key(self, key: str) -> EdcQuery | None:
        found = self._load_queries(edc_queries.c.discrepancy_key == key)
        return found[0] if found else None

    def _load_queries(self, condition: Any) -> list[EdcQuery]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(edc_queries)
                    .where(condition)
                    .order_by(edc_queries.c.raised_at, edc_queries.c.query_id)
                )
                .mappings()
                .all()
            )
        return [_query(row) for row in rows]


def _query(row: Any) -> EdcQuery:
    return EdcQuery(
        query_id=row["query_id"],
        study_oid=row["study_oid"],
        subject_id=row["subject_key"],
        time_point_id=row["time_point_id"],
        item_name=row["item_name"],
        record_id=row["record_id"],
        text=row["text"],
        ai_value=typed_text(row["ai_value"]),
        ai_source=row["ai_source"],
        site_value=typed_text(row["site_value"]),
        site_source=row["site_source"],
        status=QueryStatus(row["status"]),
        raised_by=row["raised_by"],
        raised_at=parse_time(row["raised_at"]),
        closed_by=row["closed_by"],
        closed_at=parse_time(row["closed_at"]) if row["closed_at"] else None,
        close_reason=row["close_reason"],
    )
