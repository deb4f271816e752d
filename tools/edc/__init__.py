"""EDC interface, the embedded EDC, the Rave Web Services adapter and ODM."""

from __future__ import annotations

from tools.edc.embedded import EmbeddedEdc
from tools.edc.models import (
    AI_FINDINGS_FORM_OID,
    SITE_IMAGING_FORM_OID,
    EdcQuery,
    EdcRecord,
    ItemValue,
    QueryStatus,
    RecordStatus,
    Signature,
    SubjectInfo,
    VisitInfo,
)

__all__ = [
    "AI_FINDINGS_FORM_OID",
    "SITE_IMAGING_FORM_OID",
    "EdcQuery",
    "EdcRecord",
    "EmbeddedEdc",
    "ItemValue",
    "QueryStatus",
    "RecordStatus",
    "Signature",
    "SubjectInfo",
    "VisitInfo",
]
