"""Shared pieces of the ODM 1.3.2 modules: namespace, codes, parsing, schema."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from lxml import etree

from triallens.errors import EdcError

__all__ = [
    "FLAG_TYPE_CODELIST",
    "ODM_NS",
    "SIGNATURE_OIDS",
    "STATUS_CODELIST",
    "SYSTEM_LOCATION",
    "odm_root",
    "odm_time",
    "parse_odm",
    "validate_odm",
]

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
STATUS_CODELIST = "CL.TL.RECORD_STATUS"
FLAG_TYPE_CODELIST = "CL.TL.FLAG_TYPE"
SYSTEM_LOCATION = "LOC.TRIALLENS"
SIGNATURE_OIDS = {"review": "SIG.REVIEW", "approval": "SIG.APPROVAL"}


def odm_root(file_type: str = "Transactional", **attributes: str) -> etree._Element:
    """An empty ODM 1.3.2 document element written by TrialLens."""
    import uuid

    return etree.Element(
        f"{{{ODM_NS}}}ODM",
        nsmap={None: ODM_NS},
        FileOID=f"TL.{uuid.uuid4()}",
        FileType=file_type,
        CreationDateTime=odm_time(datetime.now(UTC)),
        ODMVersion="1.3.2",
        Originator="TrialLens",
        **attributes,
    )


def odm_time(moment: datetime) -> str:
    """An ODM ``DateTimeStamp``: UTC, whole seconds, ``Z`` suffix."""
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
