"""CDISC ODM 1.3.2 export and import of the embedded EDC's clinical data.

A file holds ``AdminData`` (users with full names, locations, signature
definitions with their meaning) and ``ClinicalData``: subjects > study events
(time points) > forms > item groups > items. Each form carries its latest
``AuditRecord`` and ``Signature``, and an ``Annotation`` whose flags give the
record status and whether a machine produced it, and whose comment holds the
provenance (model version, trace id, input hashes) as JSON. ``ClinicalData``
ends with the full audit history of each exported record (``AuditRecords``)
and every signature (``Signatures``). Only elements of the ODM 1.3.2 schema
are used, so every file validates without vendor extensions.

Import is transactional: every form of a file is applied, or none.
"""

from __future__ import annotations

from tools.edc.odm_common import (
    FLAG_TYPE_CODELIST,
    ODM_NS,
    SIGNATURE_OIDS,
    STATUS_CODELIST,
    SYSTEM_LOCATION,
    odm_time,
    parse_odm,
    validate_odm,
)
from tools.edc.odm_export import export_clinical_data, form_document
from tools.edc.odm_import import ImportResult, import_clinical_data, records_from_odm

__all__ = [
    "FLAG_TYPE_CODELIST",
    "ODM_NS",
    "SIGNATURE_OIDS",
    "STATUS_CODELIST",
    "SYSTEM_LOCATION",
    "ImportResult",
    "export_clinical_data",
    "form_document",
    "import_clinical_data",
    "odm_time",
    "parse_odm",
    "records_from_odm",
    "validate_odm",
]
