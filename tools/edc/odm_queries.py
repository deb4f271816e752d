"""EDC queries carried in ODM 1.3.2 without vendor extensions.

A query travels on the item it is about: a ``FormData`` with
``TransactionType="Context"`` (it changes no data) holds the ``ItemData`` of
that item, whose ``Annotation`` has a ``QUERY`` flag (``open`` or ``closed``)
and a JSON comment with the query's text, both values and their sources (or,
to close, the query id and the answer).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lxml import etree

from tools.edc import metadata as md
from tools.edc.odm_common import (
    FLAG_TYPE_CODELIST,
    ODM_NS,
    STATUS_CODELIST,
    SYSTEM_LOCATION,
    odm_root,
    odm_time,
    parse_odm,
)
from triallens.errors import EdcError

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from tools.edc.embedded import EmbeddedEdc

__all__ = [
    "QUERY_FLAG",
    "has_query_flags",
    "import_query_annotations",
    "queries_document",
    "queries_from_odm",
    "query_document",
]

QUERY_FLAG = "QUERY"
_N = f"{{{ODM_NS}}}"
_QUERY_FIELDS = (
    "text",
    "record_id",
    "ai_value",
    "ai_source",
    "site_value",
    "site_source",
    "discrepancy_key",
)


def query_document(
    *,
    study_oid: str,
    subject_id: str,
    time_point_id: str,
    item_name: str,
    user: str,
    state: str,
    payload: dict[str, Any],
    form_oid: str,
    record_id: str | None = None,
) -> bytes:
    """An ODM document that opens (``state="open"``) or closes a query."""
    root, clinical = _skeleton(study_oid)
    subject = etree.SubElement(
        clinical, _N + "SubjectData", SubjectKey=subject_id, TransactionType="Context"
    )
    event = etree.SubElement(
        subject,
        _N + "StudyEventData",
        StudyEventOID=md.event_oid(time_point_id),
        StudyEventRepeatKey="1",
        TransactionType="Context",
    )
    form_attributes = {"FormOID": form_oid, "TransactionType": "Context"}
    if record_id:
        form_attributes["FormRepeatKey"] = record_id
    form = etree.SubElement(event, _N + "FormData", **form_attributes)
    audit = etree.SubElement(form, _N + "AuditRecord")
    etree.SubElement(audit, _N + "UserRef", UserOID=user)
    etree.SubElement(audit, _N + "LocationRef", LocationOID=SYSTEM_LOCATION)
    etree.SubElement(audit, _N + "DateTimeStamp").text = odm_time(datetime.now(UTC))
    group = etree.SubElement(
        form,
        _N + "ItemGroupData",
        ItemGroupOID=md.item_group_oid(form_oid),
        ItemGroupRepeatKey="1",
        TransactionType="Context",
    )
    item = etree.SubElement(
        group,
        _N + "ItemData",
        ItemOID=md.item_def(form_oid, item_name).item_oid,
        TransactionType="Context",
    )
    annotation = etree.SubElement(item, _N + "Annotation", SeqNum="1")
    etree.SubElement(
        annotation, _N + "Comment", SponsorOrSite="Sponsor"
    ).text = json.dumps(payload, sort_keys=True, default=str)
    flag = etree.SubElement(annotation, _N + "Flag")
    etree.SubElement(flag, _N + "FlagValue", CodeListOID=STATUS_CODELIST).text = state
    etree.SubElement(
        flag, _N + "FlagType", CodeListOID=FLAG_TYPE_CODELIST
    ).text = QUERY_FLAG
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def import_query_annotations(
    edc: EmbeddedEdc,
    conn: Connection,
    *,
    study_oid: str,
    subject_id: str,
    time_point_id: str,
    form: etree._Element,
    actor: str,
    role: str,
) -> list[str]:
    """Open or close the queries a Context form carries; return their ids."""
    form_oid = form.get("FormOID", "")
    touched: list[str] = []
    for item in form.iter(_N + "ItemData"):
        item_name = item.get("ItemOID", "").removeprefix(f"{form_oid}.").lower()
        for annotation in item.iterfind(_N + "Annotation"):
            state = _query_state(annotation)
            if state is None:
                continue
            payload = _payload(annotation)
            if state == "open":
                fields = {key: payload.get(key) for key in _QUERY_FIELDS}
                if not fields["text"]:
                    raise EdcError(f"the query on {item_name} has no text")
                fields.update(
                    study_oid=study_oid,
                    subject_id=subject_id,
                    time_point_id=time_point_id,
                    item_name=item_name,
                    record_id=fields["record_id"] or form.get("FormRepeatKey"),
                )
                touched.append(edc._raise_query_in(conn, actor, role, fields))
            elif state == "closed":
                query_id = str(payload.get("query_id") or "")
                reason = str(payload.get("reason") or "").strip()
                if not query_id or not reason:
                    raise EdcError("closing a query needs its id and an answer")
                edc._close_query_in(conn, query_id, actor, role, reason)
                touched.append(query_id)
            else:
                raise EdcError(f"unknown query state {state!r} in ODM")
    return touched


def has_query_flags(root: etree._Element) -> bool:
    """Whether a document opens or closes any query."""
    return any(_query_state(a) is not None for a in root.iter(_N + "Annotation"))


def _query_state(annotation: etree._Element) -> str | None:
    for flag in annotation.iterfind(_N + "Flag"):
        if (flag.findtext(_N + "FlagType") or "").strip() == QUERY_FLAG:
            return (flag.findtext(_N + "FlagValue") or "").strip()
    return None


def _payload(annotation: etree._Element) -> dict[str, Any]:
    text = annotation.findtext(_N + "Comment") or "{}"
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EdcError("a query annotation's comment is not JSON") from exc
    if not isinstance(payload, dict):
        raise EdcError("a query annotation's comment is not a JSON object")
    return payload


def queries_document(study_oid: str, queries: list[Any]) -> bytes:
    """An ODM document listing queries (each on its item, state as a flag)."""
    root, clinical = _skeleton(study_oid)
    for query in queries:
        single = etree.fromstring(
            query_document(
                study_oid=study_oid,
                subject_id=query.subject_id,
                time_point_id=query.time_point_id,
                item_name=query.item_name,
                user=query.raised_by,
                state=query.status.value,
                payload=query.model_dump(mode="json"),
                form_oid=_query_form(query),
                record_id=query.record_id,
            )
        )
        for subject in single.iterfind(f"{_N}ClinicalData/{_N}SubjectData"):
            clinical.append(subject)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _skeleton(study_oid: str) -> tuple[etree._Element, etree._Element]:
    root = odm_root()
    clinical = etree.SubElement(
        root,
        _N + "ClinicalData",
        StudyOID=study_oid,
        MetaDataVersionOID=md.METADATA_VERSION_OID,
    )
    return root, clinical


def queries_from_odm(document: bytes) -> list[Any]:
    """The queries of a document written by :func:`queries_document`."""
    from tools.edc.models import EdcQuery

    found: list[EdcQuery] = []
    for annotation in parse_odm(document).getroot().iter(_N + "Annotation"):
        if _query_state(annotation) is None:
            continue
        payload = _payload(annotation)
        if payload.get("query_id"):
            found.append(EdcQuery.model_validate(payload))
    return found


def _query_form(query: Any) -> str:
    from tools.edc.models import AI_FINDINGS_FORM_OID, SITE_IMAGING_FORM_OID

    return AI_FINDINGS_FORM_OID if query.record_id else SITE_IMAGING_FORM_OID
