"""ODM 1.3.2 export of the embedded EDC, and one-form documents to post.

A file holds ``AdminData`` (users with full names, locations, signature
definitions with their meaning) and ``ClinicalData``: subjects > study events
(time points) > forms > item groups > items. Each form carries its latest
``AuditRecord`` and ``Signature``, and an ``Annotation`` whose flags give the
record status and whether a machine produced it, and whose comment holds the
provenance (model version, trace id, input hashes) as JSON. ``ClinicalData``
ends with the full audit history of each exported record (``AuditRecords``)
and every signature (``Signatures``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lxml import etree
from sqlalchemy import select

from tools.edc import metadata as md
from tools.edc.models import EdcRecord, RecordStatus
from tools.edc.odm_common import (
    FLAG_TYPE_CODELIST,
    ODM_NS,
    SIGNATURE_OIDS,
    STATUS_CODELIST,
    SYSTEM_LOCATION,
    odm_root,
    odm_time,
)
from tools.edc.schema import edc_forms
from tools.edc.values import encode_value
from triallens.errors import EdcError

if TYPE_CHECKING:
    from tools.edc.embedded import EmbeddedEdc

__all__ = ["export_clinical_data", "form_document"]

_N = f"{{{ODM_NS}}}"
_LEGAL_REASON = (
    "The signer confirms, by user name and password, that they reviewed the "
    "machine-derived finding and made the decision recorded here."
)


# Export ------------------------------------------------------------------------


def export_clinical_data(
    edc: EmbeddedEdc,
    *,
    study_oid: str | None = None,
    records: list[EdcRecord] | None = None,
    file_type: str = "Snapshot",
    include_audit: bool = True,
) -> bytes:
    """An ODM 1.3.2 document of the study's forms (or of ``records``).

    Parameters
    ----------
    edc
        The embedded EDC to read.
    study_oid
        The study to export; every study when ``None``.
    records
        Export exactly these records instead.
    file_type
        ``Snapshot`` (current values, TransactionType Insert) or
        ``Transactional`` (TransactionType Upsert).
    include_audit
        Add each record's audit history as ``AuditRecords``.

    Returns
    -------
    bytes
        The UTF-8 XML document.
    """
    if file_type not in ("Snapshot", "Transactional"):
        raise EdcError(f"ODM FileType {file_type!r} is not Snapshot/Transactional")
    if records is None:
        records = edc.list_records(study_oid=study_oid)
    transaction = "Insert" if file_type == "Snapshot" else "Upsert"
    root = odm_root(file_type, SourceSystem="TrialLens embedded EDC")
    by_study: dict[str, list[EdcRecord]] = {}
    for record in records:
        by_study.setdefault(record.study_oid, []).append(record)
    for study, study_records in by_study.items():
        _admin_data(root, edc, study, study_records, include_audit)
    for study, study_records in by_study.items():
        _clinical_data(root, edc, study, study_records, transaction, include_audit)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _admin_data(
    root: etree._Element,
    edc: EmbeddedEdc,
    study: str,
    records: list[EdcRecord],
    include_audit: bool,
) -> None:
    admin = etree.SubElement(root, _N + "AdminData", StudyOID=study)
    users: dict[str, str | None] = {}
    for record in records:
        for signature in record.signatures:
            users[signature.user_name] = signature.printed_name
        if include_audit:
            for entry in edc.audit.show(f"edc_record:{record.record_id}"):
                users.setdefault(entry.actor, None)
    for record in records:
        users.setdefault(_creator(edc, record), None)
    for oid, full_name in sorted(users.items()):
        user = etree.SubElement(admin, _N + "User", OID=_user_oid(oid))
        if full_name:
            etree.SubElement(user, _N + "FullName").text = full_name
    sites = sorted({r.site_id for r in records if r.site_id} | {SYSTEM_LOCATION})
    for site in sites:
        location = etree.SubElement(
            admin,
            _N + "Location",
            OID=site,
            Name=site,
            LocationType="Sponsor" if site == SYSTEM_LOCATION else "Site",
        )
        etree.SubElement(
            location,
            _N + "MetaDataVersionRef",
            StudyOID=study,
            MetaDataVersionOID=md.METADATA_VERSION_OID,
            EffectiveDate="2024-01-01",
        )
    for meaning, oid in SIGNATURE_OIDS.items():
        definition = etree.SubElement(
            admin, _N + "SignatureDef", OID=oid, Methodology="Electronic"
        )
        etree.SubElement(definition, _N + "Meaning").text = meaning
        etree.SubElement(definition, _N + "LegalReason").text = _LEGAL_REASON


def _clinical_data(
    root: etree._Element,
    edc: EmbeddedEdc,
    study: str,
    records: list[EdcRecord],
    transaction: str,
    include_audit: bool,
) -> None:
    clinical = etree.SubElement(
        root,
        _N + "ClinicalData",
        StudyOID=study,
        MetaDataVersionOID=md.METADATA_VERSION_OID,
    )
    by_subject: dict[str, list[EdcRecord]] = {}
    for record in records:
        by_subject.setdefault(record.subject_id, []).append(record)
    for subject, subject_records in by_subject.items():
        subject_el = etree.SubElement(
            clinical,
            _N + "SubjectData",
            SubjectKey=subject,
            TransactionType=transaction,
        )
        site = subject_records[0].site_id
        if site:
            etree.SubElement(subject_el, _N + "SiteRef", LocationOID=site)
        events: dict[str, etree._Element] = {}
        for record in subject_records:
            event = events.get(record.time_point_id)
            if event is None:
                event = etree.SubElement(
                    subject_el,
                    _N + "StudyEventData",
                    StudyEventOID=md.event_oid(record.time_point_id),
                    StudyEventRepeatKey="1",
                    TransactionType=transaction,
                )
                events[record.time_point_id] = event
            _form_data(event, edc, record, transaction)
    if include_audit:
        audit_records = etree.Element(_N + "AuditRecords")
        for record in records:
            for entry in edc.audit.show(f"edc_record:{record.record_id}"):
                audit_el = etree.SubElement(
                    audit_records, _N + "AuditRecord", ID=f"AR.{entry.seq}"
                )
                _audit_children(
                    audit_el,
                    user=entry.actor,
                    location=SYSTEM_LOCATION,
                    when=entry.recorded_at,
                    reason=_audit_reason(entry),
                    source=f"{entry.record_id} {entry.entity}",
                )
        if len(audit_records):
            clinical.append(audit_records)
    signatures = etree.Element(_N + "Signatures")
    for record in records:
        for index, signature in enumerate(record.signatures, start=1):
            signature_el = etree.SubElement(
                signatures, _N + "Signature", ID=f"SG.{record.record_id}.{index}"
            )
            _signature_children(signature_el, record, signature)
    if len(signatures):
        clinical.append(signatures)


def _form_data(
    event: etree._Element, edc: EmbeddedEdc, record: EdcRecord, transaction: str
) -> None:
    form = etree.SubElement(
        event,
        _N + "FormData",
        FormOID=record.form_oid,
        FormRepeatKey=record.record_id,
        TransactionType=transaction,
    )
    audit_el = etree.SubElement(form, _N + "AuditRecord")
    _audit_children(
        audit_el,
        user=_creator(edc, record),
        location=record.site_id or SYSTEM_LOCATION,
        when=record.updated_at.isoformat(),
        reason=None,
        source=record.trace_id,
    )
    if record.signatures:
        signature_el = etree.SubElement(form, _N + "Signature")
        _signature_children(signature_el, record, record.signatures[-1])
    annotation = etree.SubElement(form, _N + "Annotation", SeqNum="1")
    provenance = {
        "machine_derived": record.machine_derived,
        "model_version": record.model_version,
        "trace_id": record.trace_id,
        "input_hashes": record.input_hashes,
        "study_uid": record.study_uid,
        "version": record.version,
        "idempotency_key": _idempotency_key(edc, record.record_id),
    }
    comment = etree.SubElement(annotation, _N + "Comment", SponsorOrSite="Sponsor")
    comment.text = json.dumps(provenance, sort_keys=True)
    _flag(annotation, record.status.value, "RECORD_STATUS")
    _flag(annotation, "Yes" if record.machine_derived else "No", "MACHINE_DERIVED")
    group = etree.SubElement(
        form,
        _N + "ItemGroupData",
        ItemGroupOID=md.item_group_oid(record.form_oid),
        ItemGroupRepeatKey="1",
        TransactionType=transaction,
    )
    for item in record.items.values():
        attributes = {"ItemOID": item.item_oid, "TransactionType": transaction}
        value = encode_value(item.value)
        if value is None:
            attributes["IsNull"] = "Yes"
        else:
            attributes["Value"] = value
        item_el = etree.SubElement(group, _N + "ItemData", **attributes)
        if item.original_value is not None or not item.machine_derived:
            item_annotation = etree.SubElement(item_el, _N + "Annotation", SeqNum="1")
            if item.original_value is not None:
                etree.SubElement(
                    item_annotation, _N + "Comment", SponsorOrSite="Sponsor"
                ).text = (
                    f"machine-derived value was {encode_value(item.original_value)}"
                )
            _flag(
                item_annotation,
                "Yes" if item.machine_derived else "No",
                "MACHINE_DERIVED",
            )


def _flag(parent: etree._Element, value: str, flag_type: str) -> None:
    flag = etree.SubElement(parent, _N + "Flag")
    etree.SubElement(flag, _N + "FlagValue", CodeListOID=STATUS_CODELIST).text = value
    etree.SubElement(
        flag, _N + "FlagType", CodeListOID=FLAG_TYPE_CODELIST
    ).text = flag_type


def _audit_children(
    parent: etree._Element,
    *,
    user: str,
    location: str,
    when: str,
    reason: str | None,
    source: str | None,
) -> None:
    etree.SubElement(parent, _N + "UserRef", UserOID=_user_oid(user))
    etree.SubElement(parent, _N + "LocationRef", LocationOID=location)
    etree.SubElement(parent, _N + "DateTimeStamp").text = odm_time(
        datetime.fromisoformat(when)
    )
    if reason:
        etree.SubElement(parent, _N + "ReasonForChange").text = reason
    if source:
        etree.SubElement(parent, _N + "SourceID").text = source


def _signature_children(
    parent: etree._Element, record: EdcRecord, signature: Any
) -> None:
    etree.SubElement(parent, _N + "UserRef", UserOID=_user_oid(signature.user_name))
    etree.SubElement(
        parent, _N + "LocationRef", LocationOID=record.site_id or SYSTEM_LOCATION
    )
    etree.SubElement(
        parent,
        _N + "SignatureRef",
        SignatureOID=SIGNATURE_OIDS.get(signature.meaning, "SIG.REVIEW"),
    )
    etree.SubElement(parent, _N + "DateTimeStamp").text = odm_time(signature.signed_at)


def _audit_reason(entry: Any) -> str:
    parts = [entry.action]
    if entry.field:
        parts.append(f"field {entry.field}")
    if entry.reason:
        parts.append(f"reason: {entry.reason}")
    return "; ".join(parts)


def _creator(edc: EmbeddedEdc, record: EdcRecord) -> str:
    with edc.engine.connect() as conn:
        creator = conn.execute(
            select(edc_forms.c.created_by).where(
                edc_forms.c.record_id == record.record_id
            )
        ).scalar_one_or_none()
    return creator or "triallens"


def _idempotency_key(edc: EmbeddedEdc, record_id: str) -> str | None:
    with edc.engine.connect() as conn:
        return conn.execute(
            select(edc_forms.c.idempotency_key).where(
                edc_forms.c.record_id == record_id
            )
        ).scalar_one_or_none()


def _user_oid(name: str | None) -> str:
    return name or "unknown"


# Posting one form ----------------------------------------------------------------


def form_document(
    *,
    study_oid: str,
    subject_id: str,
    time_point_id: str,
    form_oid: str,
    record_id: str,
    user: str,
    transaction: str,
    site_id: str | None = None,
    items: dict[str, float | int | str | None] | None = None,
    provenance: dict[str, Any] | None = None,
    status: RecordStatus | None = None,
    machine_derived: bool | None = None,
    reason: str | None = None,
) -> bytes:
    """A Transactional ODM 1.3.2 document carrying one form (to post to an EDC).

    Parameters
    ----------
    study_oid
        The study as the EDC names it (``Study(Env)`` for Rave).
    transaction
        ``Insert``, ``Update`` or ``Upsert``.
    items
        Item values by item name; ``None`` sends no item group (e.g. a status
        change only).
    provenance
        Model version, trace id, input hashes, idempotency key, version.
    status, machine_derived
        Sent as annotation flags.
    reason
        The reason for change, in the form's ``AuditRecord``.
    """
    root = odm_root()
    clinical = etree.SubElement(
        root,
        _N + "ClinicalData",
        StudyOID=study_oid,
        MetaDataVersionOID=md.METADATA_VERSION_OID,
    )
    subject = etree.SubElement(
        clinical, _N + "SubjectData", SubjectKey=subject_id, TransactionType="Upsert"
    )
    if site_id:
        etree.SubElement(subject, _N + "SiteRef", LocationOID=site_id)
    event = etree.SubElement(
        subject,
        _N + "StudyEventData",
        StudyEventOID=md.event_oid(time_point_id),
        StudyEventRepeatKey="1",
        TransactionType="Upsert",
    )
    form = etree.SubElement(
        event,
        _N + "FormData",
        FormOID=form_oid,
        FormRepeatKey=record_id,
        TransactionType=transaction,
    )
    audit_el = etree.SubElement(form, _N + "AuditRecord")
    _audit_children(
        audit_el,
        user=user,
        location=site_id or SYSTEM_LOCATION,
        when=datetime.now(UTC).isoformat(),
        reason=reason,
        source=(provenance or {}).get("trace_id"),
    )
    annotation = etree.SubElement(form, _N + "Annotation", SeqNum="1")
    etree.SubElement(
        annotation, _N + "Comment", SponsorOrSite="Sponsor"
    ).text = json.dumps(provenance or {}, sort_keys=True)
    if status is not None:
        _flag(annotation, status.value, "RECORD_STATUS")
    if machine_derived is not None:
        _flag(annotation, "Yes" if machine_derived else "No", "MACHINE_DERIVED")
    if items is not None:
        group = etree.SubElement(
            form,
            _N + "ItemGroupData",
            ItemGroupOID=md.item_group_oid(form_oid),
            ItemGroupRepeatKey="1",
            TransactionType=transaction,
        )
        for name, value in items.items():
            definition = md.item_def(form_oid, name, value)
            attributes = {
                "ItemOID": definition.item_oid,
                "TransactionType": transaction,
            }
            encoded = encode_value(value)
            if encoded is None:
                attributes["IsNull"] = "Yes"
            else:
                attributes["Value"] = encoded
            etree.SubElement(group, _N + "ItemData", **attributes)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
