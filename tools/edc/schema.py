"""Tables of the embedded EDC, after the CDISC ODM 1.3.2 hierarchy.

Study (StudyOID, MetaDataVersionOID) > subject (SubjectKey, SiteRef) > study
event (StudyEventOID, one per time point) > form (FormOID; one row is one
record) > item (ItemGroupOID, ItemOID, Value). Item definitions, signatures and
queries sit beside them.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "edc_forms",
    "edc_item_defs",
    "edc_items",
    "edc_metadata",
    "edc_queries",
    "edc_signatures",
    "edc_studies",
    "edc_study_events",
    "edc_subjects",
]

edc_metadata = MetaData()

edc_studies = Table(
    "edc_studies",
    edc_metadata,
    Column("study_oid", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("metadata_version_oid", String(100), nullable=False),
    Column("created_at", String(40), nullable=False),
)

edc_item_defs = Table(
    "edc_item_defs",
    edc_metadata,
    Column("item_oid", String(200), primary_key=True),
    Column("form_oid", String(100), nullable=False),
    Column("item_group_oid", String(200), nullable=False),
    Column("name", String(100), nullable=False),
    Column("data_type", String(20), nullable=False),
    Column("unit", String(20)),
)

edc_subjects = Table(
    "edc_subjects",
    edc_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "study_oid", String(100), ForeignKey("edc_studies.study_oid"), nullable=False
    ),
    Column("subject_key", String(100), nullable=False),
    Column("site_oid", String(100)),
    Column("created_at", String(40), nullable=False),
    UniqueConstraint("study_oid", "subject_key", name="uq_edc_subject"),
)

edc_study_events = Table(
    "edc_study_events",
    edc_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject_id", Integer, ForeignKey("edc_subjects.id"), nullable=False),
    Column("event_oid", String(200), nullable=False),
    Column("time_point_id", String(100), nullable=False),
    Column("repeat_key", String(20), nullable=False, default="1"),
    UniqueConstraint("subject_id", "event_oid", "repeat_key", name="uq_edc_event"),
)

edc_forms = Table(
    "edc_forms",
    edc_metadata,
    Column("record_id", String(36), primary_key=True),
    Column("event_id", Integer, ForeignKey("edc_study_events.id"), nullable=False),
    Column("form_oid", String(100), nullable=False),
    Column("study_uid", String(100)),
    Column("status", String(20), nullable=False),
    Column("machine_derived", Boolean, nullable=False),
    Column("model_version", String(200)),
    Column("trace_id", String(200)),
    Column("input_hashes", Text, nullable=False, default="[]"),
    Column("idempotency_key", String(300), unique=True),
    Column("version", Integer, nullable=False, default=1),
    Column("created_by", String(200), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
)

edc_items = Table(
    "edc_items",
    edc_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(36), ForeignKey("edc_forms.record_id"), nullable=False),
    Column("item_group_oid", String(200), nullable=False),
    Column("item_oid", String(200), nullable=False),
    Column("name", String(100), nullable=False),
    Column("value", Text),
    Column("data_type", String(20), nullable=False),
    Column("machine_derived", Boolean, nullable=False),
    Column("original_value", Text),
    UniqueConstraint("record_id", "item_oid", name="uq_edc_item"),
)

edc_signatures = Table(
    "edc_signatures",
    edc_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(36), ForeignKey("edc_forms.record_id"), nullable=False),
    Column("user_name", String(200), nullable=False),
    Column("printed_name", String(200), nullable=False),
    Column("meaning", String(50), nullable=False),
    Column("decision", String(20), nullable=False),
    Column("reason", Text),
    Column("signed_at", String(40), nullable=False),
)

edc_queries = Table(
    "edc_queries",
    edc_metadata,
    Column("query_id", String(36), primary_key=True),
    Column("study_oid", String(100), nullable=False),
    Column("subject_key", String(100), nullable=False),
    Column("time_point_id", String(100), nullable=False),
    Column("item_name", String(100), nullable=False),
    Column("record_id", String(36)),
    Column("discrepancy_key", String(400), unique=True),
    Column("text", Text, nullable=False),
    Column("ai_value", Text),
    Column("ai_source", Text),
    Column("site_value", Text),
    Column("site_source", Text),
    Column("status", String(20), nullable=False),
    Column("raised_by", String(200), nullable=False),
    Column("raised_at", String(40), nullable=False),
    Column("closed_by", String(200)),
    Column("closed_at", String(40)),
    Column("close_reason", Text),
)
