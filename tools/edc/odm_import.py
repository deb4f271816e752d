"""ODM 1.3.2 import into the embedded EDC (all or nothing), and reading back."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lxml import etree
from sqlalchemy import insert, select, update

from tools.edc import metadata as md
from tools.edc.models import EdcRecord, RecordStatus, Signature
from tools.edc.odm_common import ODM_NS, parse_odm, validate_odm
from tools.edc.schema import edc_forms, edc_items, edc_signatures
from tools.edc.values import decode_value
from triallens.errors import EdcError

if TYPE_CHECKING:
    from tools.edc.embedded import EmbeddedEdc

__all__ = ["ImportResult", "import_clinical_data", "records_from_odm"]

logger = logging.getLogger(__name__)

_N = f"{{{ODM_NS}}}"
_ORIGINAL_MARKER = "machine-derived value was "


@dataclass
class ImportResult:
    """What an import changed."""

    file_oid: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)


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
            signatures = _signatures_in(root, clinical)
            for subject in clinical.iterfind(_N + "SubjectData"):
                _import_subject(
                    edc, conn, study, subject, actor, role, result, signatures
                )
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
    signatures: dict[str, list[Signature]],
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
                result, signatures,
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
    signatures: dict[str, list[Signature]] | None = None,
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
        select(edc_forms.c.record_id, edc_forms.c.status, edc_forms.c.trace_id).where(
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
        _restore_item_origins(conn, record_id, form)
        if status is not None and status is not RecordStatus.DRAFT:
            edc._change_status(conn, record_id, status, actor, role, reason, None)
        for signature in (signatures or {}).get(record_id, []):
            _restore_signature(edc, conn, record_id, signature, status, actor, role)
        return
    changed = False
    trace = provenance.get("trace_id")
    if trace and existing.trace_id and trace != existing.trace_id:
        edc._relink_trace(conn, record_id, trace, actor, role, reason)
        changed = True
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


def _restore_item_origins(conn: Any, record_id: str, form: etree._Element) -> None:
    """Keep which items a person changed, and the machine's value they replaced."""
    prefix = f"{form.get('FormOID', '')}."
    for item in form.iter(_N + "ItemData"):
        name = item.get("ItemOID", "").removeprefix(prefix).lower()
        machine: bool | None = None
        original: str | None = None
        for annotation in item.iterfind(_N + "Annotation"):
            for flag in annotation.iterfind(_N + "Flag"):
                if flag.findtext(_N + "FlagType") == "MACHINE_DERIVED":
                    machine = flag.findtext(_N + "FlagValue") == "Yes"
            comment = annotation.findtext(_N + "Comment") or ""
            if comment.startswith(_ORIGINAL_MARKER):
                original = comment.removeprefix(_ORIGINAL_MARKER)
        if machine is None and original is None:
            continue
        values: dict[str, Any] = {}
        if machine is not None:
            values["machine_derived"] = machine
        if original is not None:
            values["original_value"] = original
        conn.execute(
            update(edc_items)
            .where(edc_items.c.record_id == record_id, edc_items.c.name == name)
            .values(**values)
        )


def _restore_signature(
    edc: EmbeddedEdc,
    conn: Any,
    record_id: str,
    signature: Signature,
    status: RecordStatus | None,
    actor: str,
    role: str,
) -> None:
    """Keep a signature made in the source system, linked to its record."""
    decision = (status or RecordStatus.DRAFT).value
    reason = "signature imported from ODM"
    conn.execute(
        insert(edc_signatures).values(
            record_id=record_id,
            user_name=signature.user_name,
            printed_name=signature.printed_name,
            meaning=signature.meaning,
            decision=decision,
            reason=reason,
            signed_at=signature.signed_at.isoformat(),
        )
    )
    edc.audit.record(
        actor,
        role,
        "odm.import.signature",
        f"edc_record:{record_id}",
        field="signature",
        new={
            "signer": signature.user_name,
            "printed_name": signature.printed_name,
            "meaning": signature.meaning,
            "signed_at": signature.signed_at.isoformat(),
        },
        reason=reason,
        connection=conn,
    )


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
            raw = None if item.get("IsNull") == "Yes" else item.get("Value")
            items[name] = _typed_value(form_oid, name, raw)
    return items


def _typed_value(form_oid: str, name: str, raw: str | None) -> float | int | str | None:
    """An ODM ``Value`` typed by its item definition.

    Items outside the known list carry no definition in a clinical-data file,
    so a value that reads as a number is taken as one.
    """
    if raw is None:
        return None
    if name in md.KNOWN_ITEMS:
        try:
            return decode_value(raw, md.item_def(form_oid, name).data_type)
        except ValueError:
            return raw
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            continue
    return raw


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
    from tools.edc.models import ItemValue

    root = parse_odm(document).getroot()
    records: list[EdcRecord] = []
    for clinical in root.iterfind(_N + "ClinicalData"):
        signatures = _signatures_in(root, clinical)
        for subject in clinical.iterfind(_N + "SubjectData"):
            site_ref = subject.find(_N + "SiteRef")
            for event in subject.iterfind(_N + "StudyEventData"):
                for form in event.iterfind(_N + "FormData"):
                    provenance, status, machine = _annotation(form)
                    form_oid = form.get("FormOID", "")
                    record_id = form.get("FormRepeatKey", "")
                    items: dict[str, ItemValue] = {}
                    for name, value in _items(form, form_oid).items():
                        definition = md.item_def(form_oid, name, value)
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
                            signatures=[
                                sig.model_copy(
                                    update={
                                        "decision": (status or RecordStatus.DRAFT).value
                                    }
                                )
                                for sig in signatures.get(record_id, [])
                            ],
                        )
                    )
    return records


def _signatures_in(
    root: etree._Element, clinical: etree._Element
) -> dict[str, list[Signature]]:
    """Signatures of ``ClinicalData/Signatures`` by record id, with full names."""
    full_names = {
        user.get("OID", ""): user.findtext(_N + "FullName") or user.get("OID", "")
        for user in root.iter(_N + "User")
    }
    meanings = {
        definition.get("OID", ""): definition.findtext(_N + "Meaning") or ""
        for definition in root.iter(_N + "SignatureDef")
    }
    signatures: dict[str, list[Signature]] = {}
    container = clinical.find(_N + "Signatures")
    for signature in container if container is not None else []:
        record_id = signature.get("ID", "").removeprefix("SG.").rsplit(".", 1)[0]
        user = signature.find(_N + "UserRef")
        user_oid = user.get("UserOID", "") if user is not None else ""
        ref = signature.find(_N + "SignatureRef")
        meaning = meanings.get(ref.get("SignatureOID", "") if ref is not None else "")
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
    return signatures


def _item_flags(form: etree._Element, items: dict[str, Any]) -> None:
    prefix = f"{form.get('FormOID', '')}."
    for item in form.iter(_N + "ItemData"):
        name = item.get("ItemOID", "").removeprefix(prefix).lower()
        for flag in item.iter(_N + "Flag"):
            if flag.findtext(_N + "FlagType") == "MACHINE_DERIVED" and name in items:
                items[name].machine_derived = flag.findtext(_N + "FlagValue") == "Yes"
        comment = item.findtext(f"{_N}Annotation/{_N}Comment") or ""
        if comment.startswith(_ORIGINAL_MARKER) and name in items:
            raw = comment.removeprefix(_ORIGINAL_MARKER)
            try:
                items[name].original_value = decode_value(raw, items[name].data_type)
            except ValueError:
                items[name].original_value = raw


def _parse_odm_time(text: str) -> datetime:
    if not text:
        return datetime.now(UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
