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

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lxml import etree
from sqlalchemy import select

from tools.edc import metadata as md
from tools.edc.embedded import decode_value, encode_value
from tools.edc.models import EdcRecord, RecordStatus
from tools.edc.schema import edc_forms, edc_items
from triallens.errors import EdcError

if TYPE_CHECKING:
    from tools.edc.embedded import EmbeddedEdc

__all__ = [
    "ODM_NS",
    "ImportResult",
    "export_clinical_data",
    "import_clinical_data",
    "parse_odm",
    "validate_odm",
]

logger = logging.getLogger(__name__)

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
_N = f"{{{ODM_NS}}}"
STATUS_CODELIST = "CL.TL.RECORD_STATUS"
FLAG_TYPE_CODELIST = "CL.TL.FLAG_TYPE"
SYSTEM_LOCATION = "LOC.TRIALLENS"
SIGNATURE_OIDS = {"review": "SIG.REVIEW", "approval": "SIG.APPROVAL"}
_LEGAL_REASON = (
    "The signer confirms, by user name and password, that they reviewed the "
    "machine-derived finding and made the decision recorded here."
)


@dataclass
class ImportResult:
    """What an import changed."""

    file_oid: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)


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
    root = etree.Element(
        _N + "ODM",
        nsmap={None: ODM_NS},
        FileOID=f"TL.{uuid.uuid4()}",
        FileType=file_type,
        CreationDateTime=_odm_time(datetime.now(UTC)),
        ODMVersion="1.3.2",
        Originator="TrialLens",
        SourceSystem="TrialLens embedded EDC",
    )
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
    etree.SubElement(parent, _N + "DateTimeStamp").text = _odm_time(
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
    etree.SubElement(parent, _N + "DateTimeStamp").text = _odm_time(signature.signed_at)


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


def _odm_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# Validation --------------------------------------------------------------------


@lru_cache(maxsize=4)
def _schema(path: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(path))


def validate_odm(document: bytes, schema_path: str | Path) -> None:
    """Validate an ODM document against the ODM 1.3.2 XML schema.

    Parameters
    ----------
    document
        The XML bytes.
    schema_path
        ``ODM1-3-2.xsd`` (its imported schemas beside it).

    Raises
    ------
    EdcError
        When the document is not well-formed or breaks the schema; the message
        lists the first problems with their line numbers.
    """
    schema = _schema(str(schema_path))
    tree = parse_odm(document)
    if not schema.validate(tree):
        problems = "; ".join(
            f"line {error.line}: {error.message}"
            for error in list(schema.error_log)[:5]
        )
        raise EdcError(f"the ODM document breaks the ODM 1.3.2 schema: {problems}")


def parse_odm(document: bytes) -> etree._ElementTree:
    """Parse ODM XML safely (no entities, no network)."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True
    )
    try:
        return etree.ElementTree(etree.fromstring(document, parser))
    except etree.XMLSyntaxError as exc:
        raise EdcError(f"the ODM document is not well-formed XML: {exc}") from exc


# Import ------------------------------------------------------------------------


def import_clinical_data(
    edc: EmbeddedEdc,
    document: bytes,
    *,
    actor: str,
    role: str,
    schema_path: str | Path | None = None,
) -> ImportResult:
    """Apply an ODM 1.3.2 clinical-data document to the EDC, all or nothing.

    A form whose ``FormRepeatKey`` names an existing record updates it (item
    values, and the status when its flag differs); otherwise a record is
    created. A form carrying an idempotency key already known is skipped.
    Every change is audited with the file's ``AuditRecord`` (user, time,
    reason) quoted.

    Raises
    ------
    EdcError
        When the document is invalid (with ``schema_path``: against the
        schema), names an unknown form, or a change is refused (for example
        a locked record); nothing of the file is applied then.
    """
    if schema_path is not None:
        validate_odm(document, schema_path)
    root = parse_odm(document).getroot()
    if root.tag != _N + "ODM":
        raise EdcError("the document is not CDISC ODM 1.3 (wrong root element)")
    result = ImportResult(file_oid=root.get("FileOID", ""))
    with edc.engine.begin() as conn:
        for clinical in root.iterfind(_N + "ClinicalData"):
            study = clinical.get("StudyOID", "")
            for subject in clinical.iterfind(_N + "SubjectData"):
                _import_subject(edc, conn, study, subject, actor, role, result)
    logger.info(
        "ODM import: %d created, %d updated", len(result.created), len(result.updated)
    )
    return result


def _import_subject(
    edc: EmbeddedEdc,
    conn: Any,
    study: str,
    subject: etree._Element,
    actor: str,
    role: str,
    result: ImportResult,
) -> None:
    subject_key = subject.get("SubjectKey", "")
    site_ref = subject.find(_N + "SiteRef")
    site = site_ref.get("LocationOID") if site_ref is not None else None
    for event in subject.iterfind(_N + "StudyEventData"):
        event_oid = event.get("StudyEventOID", "")
        time_point = event_oid.removeprefix("SE.")
        for form in event.iterfind(_N + "FormData"):
            _import_form(
                edc, conn, study, site, subject_key, time_point, form, actor, role,
                result,
            )  # fmt: skip


def _import_form(
    edc: EmbeddedEdc,
    conn: Any,
    study: str,
    site: str | None,
    subject_key: str,
    time_point: str,
    form: etree._Element,
    actor: str,
    role: str,
    result: ImportResult,
) -> None:
    form_oid = form.get("FormOID", "")
    if form_oid not in md.FORM_NAMES:
        raise EdcError(f"ODM form {form_oid!r} is not a form of this EDC")
    if form.get("TransactionType") == "Context":
        from tools.edc.odm_queries import import_query_annotations

        result.queries += import_query_annotations(
            edc,
            conn,
            study_oid=study,
            subject_id=subject_key,
            time_point_id=time_point,
            form=form,
            actor=actor,
            role=role,
        )
        return
    provenance, status, machine_flag = _annotation(form)
    source = _source_audit(form)
    items = _items(form, form_oid)
    key = provenance.get("idempotency_key")
    if key:
        known = conn.execute(
            select(edc_forms.c.record_id).where(edc_forms.c.idempotency_key == key)
        ).scalar_one_or_none()
        if known is not None:
            result.unchanged.append(known)
            return
    record_id = form.get("FormRepeatKey") or str(uuid.uuid4())
    existing = conn.execute(
        select(edc_forms.c.record_id, edc_forms.c.status).where(
            edc_forms.c.record_id == record_id
        )
    ).first()
    reason = source.get("reason") or "ODM import"
    if existing is None:
        if form.get("TransactionType") in ("Update", "Remove"):
            raise EdcError(f"ODM {form.get('TransactionType')} of unknown form record")
        machine_derived = (
            machine_flag if machine_flag is not None else form_oid == "AI_IMAGING"
        )
        edc._write_form(
            study_oid=study,
            site_id=site,
            subject_id=subject_key,
            time_point_id=time_point,
            form_oid=form_oid,
            items=items,
            machine_derived=machine_derived,
            study_uid=provenance.get("study_uid"),
            model_version=provenance.get("model_version"),
            trace_id=provenance.get("trace_id") or source.get("source"),
            input_hashes=list(provenance.get("input_hashes") or []),
            idempotency_key=key,
            actor=actor,
            role=role,
            action="odm.import.create",
            status=RecordStatus.DRAFT,
            record_id=record_id,
            connection=conn,
        )
        result.created.append(record_id)
        if status is not None and status is not RecordStatus.DRAFT:
            edc._change_status(conn, record_id, status, actor, role, reason, None)
        return
    changed = False
    current_values = _current_values(conn, record_id)
    for name, value in items.items():
        if name in current_values and _same(current_values[name], value):
            continue
        if RecordStatus(existing.status) is RecordStatus.LOCKED:
            raise EdcError(
                f"EDC record {record_id} is locked; the ODM update is refused"
            )
        edc._modify_item(conn, record_id, name, value, actor, role, reason)
        changed = True
    if status is not None and status.value != existing.status:
        expected = provenance.get("version")
        edc._change_status(
            conn,
            record_id,
            status,
            actor,
            role,
            reason,
            int(expected)
            if form.get("TransactionType") == "Update" and expected
            else None,
        )
        changed = True
    (result.updated if changed else result.unchanged).append(record_id)


def _annotation(
    form: etree._Element,
) -> tuple[dict[str, Any], RecordStatus | None, bool | None]:
    provenance: dict[str, Any] = {}
    status: RecordStatus | None = None
    machine: bool | None = None
    for annotation in form.iterfind(_N + "Annotation"):
        comment = annotation.find(_N + "Comment")
        if comment is not None and comment.text:
            try:
                loaded = json.loads(comment.text)
            except json.JSONDecodeError:
                loaded = None
            if isinstance(loaded, dict):
                provenance.update(loaded)
        for flag in annotation.iterfind(_N + "Flag"):
            value = (flag.findtext(_N + "FlagValue") or "").strip()
            kind = (flag.findtext(_N + "FlagType") or "").strip()
            if kind == "RECORD_STATUS":
                try:
                    status = RecordStatus(value)
                except ValueError as exc:
                    raise EdcError(f"unknown record status {value!r} in ODM") from exc
            elif kind == "MACHINE_DERIVED":
                machine = value == "Yes"
    return provenance, status, machine


def _source_audit(form: etree._Element) -> dict[str, str]:
    audit = form.find(_N + "AuditRecord")
    if audit is None:
        return {}
    user = audit.find(_N + "UserRef")
    return {
        "user": user.get("UserOID", "") if user is not None else "",
        "time": audit.findtext(_N + "DateTimeStamp") or "",
        "reason": audit.findtext(_N + "ReasonForChange") or "",
        "source": audit.findtext(_N + "SourceID") or "",
    }


def _items(form: etree._Element, form_oid: str) -> dict[str, float | int | str | None]:
    items: dict[str, float | int | str | None] = {}
    prefix = f"{form_oid}."
    for group in form.iterfind(_N + "ItemGroupData"):
        for item in group.iterfind(_N + "ItemData"):
            oid = item.get("ItemOID", "")
            if not oid.startswith(prefix):
                raise EdcError(f"ODM item {oid!r} does not belong to form {form_oid}")
            name = oid.removeprefix(prefix).lower()
            definition = md.item_def(form_oid, name)
            raw = None if item.get("IsNull") == "Yes" else item.get("Value")
            try:
                items[name] = decode_value(raw, definition.data_type)
            except ValueError:
                items[name] = raw
    return items


def _current_values(conn: Any, record_id: str) -> dict[str, Any]:
    rows = conn.execute(
        select(edc_items.c.name, edc_items.c.value, edc_items.c.data_type).where(
            edc_items.c.record_id == record_id
        )
    )
    return {row.name: decode_value(row.value, row.data_type) for row in rows}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return a == b


# Reading records back -----------------------------------------------------------


def records_from_odm(document: bytes) -> list[EdcRecord]:
    """The form records of an ODM document written by :func:`export_clinical_data`.

    Status, provenance and machine-derived flags come from the annotations;
    signatures from ``Signatures`` with the signer's full name and the meaning
    of their ``SignatureDef``.
    """
    from tools.edc.models import ItemValue, Signature

    root = parse_odm(document).getroot()
    full_names = {
        user.get("OID", ""): user.findtext(_N + "FullName") or user.get("OID", "")
        for user in root.iter(_N + "User")
    }
    meanings = {
        definition.get("OID", ""): definition.findtext(_N + "Meaning") or ""
        for definition in root.iter(_N + "SignatureDef")
    }
    records: list[EdcRecord] = []
    for clinical in root.iterfind(_N + "ClinicalData"):
        signatures: dict[str, list[Signature]] = {}
        container = clinical.find(_N + "Signatures")
        for signature in container if container is not None else []:
            record_id = signature.get("ID", "").removeprefix("SG.").rsplit(".", 1)[0]
            user = signature.find(_N + "UserRef")
            user_oid = user.get("UserOID", "") if user is not None else ""
            ref = signature.find(_N + "SignatureRef")
            meaning = meanings.get(
                ref.get("SignatureOID", "") if ref is not None else ""
            )
            signatures.setdefault(record_id, []).append(
                Signature(
                    user_name=user_oid,
                    printed_name=full_names.get(user_oid, user_oid),
                    meaning=meaning or "review",
                    decision="",
                    signed_at=_parse_odm_time(
                        signature.findtext(_N + "DateTimeStamp") or ""
                    ),
                )
            )
        for subject in clinical.iterfind(_N + "SubjectData"):
            site_ref = subject.find(_N + "SiteRef")
            for event in subject.iterfind(_N + "StudyEventData"):
                for form in event.iterfind(_N + "FormData"):
                    provenance, status, machine = _annotation(form)
                    form_oid = form.get("FormOID", "")
                    record_id = form.get("FormRepeatKey", "")
                    items: dict[str, ItemValue] = {}
                    for name, value in _items(form, form_oid).items():
                        definition = md.item_def(form_oid, name)
                        items[name] = ItemValue(
                            item_oid=definition.item_oid,
                            name=name,
                            value=value,
                            data_type=definition.data_type,
                            unit=definition.unit,
                            machine_derived=bool(machine),
                        )
                    _item_flags(form, items)
                    stamp = _parse_odm_time(
                        form.findtext(f"{_N}AuditRecord/{_N}DateTimeStamp") or ""
                    )
                    records.append(
                        EdcRecord(
                            record_id=record_id,
                            study_oid=clinical.get("StudyOID", ""),
                            site_id=(
                                site_ref.get("LocationOID")
                                if site_ref is not None
                                else None
                            ),
                            subject_id=subject.get("SubjectKey", ""),
                            time_point_id=event.get("StudyEventOID", "").removeprefix(
                                "SE."
                            ),
                            form_oid=form_oid,
                            study_uid=provenance.get("study_uid"),
                            status=status or RecordStatus.DRAFT,
                            machine_derived=bool(machine),
                            model_version=provenance.get("model_version"),
                            trace_id=provenance.get("trace_id"),
                            input_hashes=list(provenance.get("input_hashes") or []),
                            items=items,
                            version=int(provenance.get("version") or 1),
                            created_at=stamp,
                            updated_at=stamp,
                            signatures=signatures.get(record_id, []),
                        )
                    )
    return records


def _item_flags(form: etree._Element, items: dict[str, Any]) -> None:
    prefix = f"{form.get('FormOID', '')}."
    for item in form.iter(_N + "ItemData"):
        name = item.get("ItemOID", "").removeprefix(prefix).lower()
        for flag in item.iter(_N + "Flag"):
            if flag.findtext(_N + "FlagType") == "MACHINE_DERIVED" and name in items:
                items[name].machine_derived = flag.findtext(_N + "FlagValue") == "Yes"
        comment = item.findtext(f"{_N}Annotation/{_N}Comment") or ""
        marker = "machine-derived value was "
        if comment.startswith(marker) and name in items:
            raw = comment.removeprefix(marker)
            try:
                items[name].original_value = decode_value(raw, items[name].data_type)
            except ValueError:
                items[name].original_value = raw


def _parse_odm_time(text: str) -> datetime:
    if not text:
        return datetime.now(UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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
    root = etree.Element(
        _N + "ODM",
        nsmap={None: ODM_NS},
        FileOID=f"TL.{uuid.uuid4()}",
        FileType="Transactional",
        CreationDateTime=_odm_time(datetime.now(UTC)),
        ODMVersion="1.3.2",
        Originator="TrialLens",
    )
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
