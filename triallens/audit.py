"""The append-only, hash-chained audit trail.

Every audit record holds who (actor and role) did what (action, entity, field,
old and new value), why (reason), when (UTC time taken by the server, never
given by the caller) and, for AI actions, the model version and trace id
(21 CFR 11.10(e)). Each record's hash covers its content and the hash of the
record before it, and a one-row chain head holds the last sequence number and
hash, so :meth:`AuditTrail.verify` finds a changed, deleted or reordered record
and names it.

Appends are serialized through the chain head: the first statement of an
append updates that row, which takes a row lock on PostgreSQL and the write
lock on SQLite, so two writers never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from triallens.db import make_engine

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditProblem",
    "AuditTrail",
    "VerifyReport",
    "audit_metadata",
    "insert_ignore",
]

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64

audit_metadata = MetaData()

audit_records = Table(
    "audit_records",
    audit_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("record_id", String(36), nullable=False, unique=True),
    Column("recorded_at", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("role", String(50), nullable=False),
    Column("action", String(100), nullable=False),
    Column("entity", String(300), nullable=False, index=True),
    Column("field", String(200)),
    Column("old_value", Text),
    Column("new_value", Text),
    Column("reason", Text),
    Column("model_version", String(200)),
    Column("trace_id", String(200)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_chain_head = Table(
    "audit_chain_head",
    audit_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

_HASHED_FIELDS = (
    "record_id",
    "recorded_at",
    "actor",
    "role",
    "action",
    "entity",
    "field",
    "old_value",
    "new_value",
    "reason",
    "model_version",
    "trace_id",
    "prev_hash",
)


@dataclass(frozen=True)
class AuditEntry:
    """One audit record as read back from the trail."""

    seq: int
    record_id: str
    recorded_at: str
    actor: str
    role: str
    action: str
    entity: str
    field: str | None
    old: Any
    new: Any
    reason: str | None
    model_version: str | None
    trace_id: str | None
    hash: str


@dataclass(frozen=True)
class AuditProblem:
    """One break in the chain: which record, what kind, and how it was seen."""

    seq: int | None
    record_id: str | None
    kind: str  # "changed", "deleted", "reordered" or "inserted"
    detail: str

    def __str__(self) -> str:
        where = f"record #{self.seq}" if self.seq is not None else "the chain"
        ident = f" ({self.record_id})" if self.record_id else ""
        return f"{where}{ident}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    """The outcome of :meth:`AuditTrail.verify`."""

    checked: int
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return f"audit trail intact: {self.checked} records verified"
        lines = [f"audit trail broken: {len(self.problems)} problem(s)"]
        lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)


def _encode(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _decode(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def compute_hash(row: dict[str, Any]) -> str:
    """The SHA-256 of a record's content and its predecessor's hash."""
    payload = {name: row.get(name) for name in _HASHED_FIELDS}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AuditTrail:
    """The audit trail in a SQLite or PostgreSQL database.

    Parameters
    ----------
    engine_or_url
        An SQLAlchemy engine, or a database URL for :func:`make_engine`.
        The tables are created when missing.
    """

    def __init__(self, engine_or_url: Engine | str) -> None:
        if isinstance(engine_or_url, str):
            engine_or_url = make_engine(engine_or_url)
        self.engine: Engine = engine_or_url
        audit_metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            head = conn.execute(select(audit_chain_head.c.id)).first()
            if head is None:
                conn.execute(
                    insert_ignore(conn, audit_chain_head).values(
                        id=1, last_seq=0, last_hash=GENESIS_HASH
                    )
                )

    # Writing ---------------------------------------------------------------

    def record(
        self,
        actor: str,
        role: str,
        action: str,
        entity: str,
        field: str | None = None,
        old: Any = None,
        new: Any = None,
        reason: str | None = None,
        model_version: str | None = None,
        trace_id: str | None = None,
        *,
        connection: Connection | None = None,
    ) -> str:
        """Append one audit record and return its id.

        Parameters
        ----------
        actor, role
            Who acted (user name or ``system``/service name) and in which role.
        action
            What was done, e.g. ``edc.write_ai_findings``, ``review.accept``.
        entity
            What it was done to, e.g. ``edc_record:<id>``, ``user:<name>``.
        field, old, new
            The field changed and its values before and after (JSON-encoded).
        reason
            Why (reason for change), where one applies.
        model_version, trace_id
            For AI actions, the model that produced the value and its trace.
        connection
            Append inside the caller's transaction (the audit record commits
            or rolls back with the change it describes).

        Returns
        -------
        str
            The audit record id.
        """
        if connection is not None:
            return self._append(
                connection, actor, role, action, entity, field, old, new, reason,
                model_version, trace_id,
            )  # fmt: skip
        with self.engine.begin() as conn:
            return self._append(
                conn, actor, role, action, entity, field, old, new, reason,
                model_version, trace_id,
            )  # fmt: skip

    def _append(
        self,
        conn: Connection,
        actor: str,
        role: str,
        action: str,
        entity: str,
        field: str | None,
        old: Any,
        new: Any,
        reason: str | None,
        model_version: str | None,
        trace_id: str | None,
    ) -> str:
        # Taking the head row first serializes appenders (see module docstring).
        conn.execute(
            update(audit_chain_head)
            .where(audit_chain_head.c.id == 1)
            .values(last_seq=audit_chain_head.c.last_seq + 1)
        )
        head = conn.execute(
            select(audit_chain_head.c.last_seq, audit_chain_head.c.last_hash).where(
                audit_chain_head.c.id == 1
            )
        ).one()
        row: dict[str, Any] = {
            "record_id": str(uuid.uuid4()),
            "recorded_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "role": role,
            "action": action,
            "entity": entity,
            "field": field,
            "old_value": _encode(old),
            "new_value": _encode(new),
            "reason": reason,
            "model_version": model_version,
            "trace_id": trace_id,
            "prev_hash": head.last_hash,
        }
        row["hash"] = compute_hash(row)
        conn.execute(insert(audit_records).values(seq=head.last_seq, **row))
        conn.execute(
            update(audit_chain_head)
            .where(audit_chain_head.c.id == 1)
            .values(last_hash=row["hash"])
        )
        logger.debug("audit %s on %s", action, entity)
        return str(row["record_id"])

    # Reading ---------------------------------------------------------------

    def show(
        self, entity: str | None = None, *, limit: int | None = None
    ) -> list[AuditEntry]:
        """An entity's history (or the whole trail), oldest first.

        ``entity`` matches exactly, or as a prefix when it ends with ``*``.
        """
        query = select(audit_records).order_by(audit_records.c.seq)
        if entity is not None:
            if entity.endswith("*"):
                query = query.where(audit_records.c.entity.startswith(entity[:-1]))
            else:
                query = query.where(audit_records.c.entity == entity)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_entry(row) for row in rows]

    def verify(self) -> VerifyReport:
        """Check every record's hash and link; name each broken record.

        Returns
        -------
        VerifyReport
            ``ok`` when the chain is intact; otherwise one problem per broken
            record: ``changed`` (content no longer matches its hash),
            ``deleted`` (a record is missing before this one or at the end),
            ``reordered`` (the record's predecessor exists but elsewhere) or
            ``inserted`` (a record that belongs to no chain position).
        """
        with self.engine.connect() as conn:
            rows = [
                dict(row)
                for row in conn.execute(
                    select(audit_records).order_by(audit_records.c.seq)
                ).mappings()
            ]
            head = conn.execute(select(audit_chain_head)).mappings().first()
        return _verify_rows(rows, head)


def insert_ignore(conn: Connection, table: Table) -> Any:
    """An INSERT that skips rows whose key already exists (SQLite, PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"database {conn.dialect.name} is not supported")


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        record_id=row["record_id"],
        recorded_at=row["recorded_at"],
        actor=row["actor"],
        role=row["role"],
        action=row["action"],
        entity=row["entity"],
        field=row["field"],
        old=_decode(row["old_value"]),
        new=_decode(row["new_value"]),
        reason=row["reason"],
        model_version=row["model_version"],
        trace_id=row["trace_id"],
        hash=row["hash"],
    )


def _verify_rows(rows: list[dict[str, Any]], head: Any) -> VerifyReport:
    report = VerifyReport(checked=len(rows))
    stored_hashes = {row["hash"]: row for row in rows}
    prev_hash = GENESIS_HASH
    expected_seq = 1
    for row in rows:
        seq, record_id = row["seq"], row["record_id"]
        content_ok = compute_hash(row) == row["hash"]
        if not content_ok:
            report.problems.append(
                AuditProblem(seq, record_id, "changed", "content does not match hash")
            )
        elif row["prev_hash"] != prev_hash:
            predecessor = stored_hashes.get(row["prev_hash"])
            if predecessor is not None:
                report.problems.append(
                    AuditProblem(
                        seq,
                        record_id,
                        "reordered",
                        f"its predecessor is record #{predecessor['seq']}, "
                        f"not the record before it",
                    )
                )
            elif row["prev_hash"] == GENESIS_HASH:
                first_claims = sum(r["prev_hash"] == GENESIS_HASH for r in rows)
                report.problems.append(
                    AuditProblem(
                        seq,
                        record_id,
                        "reordered" if first_claims == 1 else "inserted",
                        "it is the first record of the trail, moved from #1"
                        if first_claims == 1
                        else "a second record claims to start the trail",
                    )
                )
            elif seq == expected_seq:
                report.problems.append(
                    AuditProblem(
                        seq,
                        record_id,
                        "changed",
                        "the link to the record before it is broken",
                    )
                )
            else:
                report.problems.append(
                    AuditProblem(
                        seq,
                        record_id,
                        "deleted",
                        f"the record(s) before it are missing (#{expected_seq}"
                        f"..#{seq - 1})"
                        if seq > expected_seq
                        else "the record before it is missing",
                    )
                )
        prev_hash = row["hash"]
        expected_seq = seq + 1
    if head is not None:
        _check_head(report, rows, head, prev_hash, expected_seq - 1)
    return report


def _check_head(
    report: VerifyReport,
    rows: list[dict[str, Any]],
    head: Any,
    last_hash: str,
    last_seq: int,
) -> None:
    """Compare the chain's end with the head row (finds deletion at the end)."""
    if head["last_hash"] == last_hash and head["last_seq"] == last_seq:
        return
    missing = head["last_seq"] - last_seq
    if missing > 0:
        report.problems.append(
            AuditProblem(
                last_seq + 1,
                None,
                "deleted",
                f"{missing} record(s) missing at the end of the trail "
                f"(#{last_seq + 1}..#{head['last_seq']})",
            )
        )
        return
    last = rows[-1] if rows else None
    if last is not None and not any(
        p.record_id == last["record_id"] for p in report.problems
    ):
        report.problems.append(
            AuditProblem(
                last["seq"],
                last["record_id"],
                "changed",
                "the last record does not match the chain head",
            )
        )
