"""PHI guard: find a study's original identifying values in anything emitted.

The guard is built from the identifying values of the original (not yet
de-identified) study: names, IDs, birth date, accession number, institution,
the original UIDs. It then scans text, JSON-like objects, XML, bytes and DICOM
datasets for those values and their usual variants: person names with or
without carets and in either order, dates in several formats, any letter case.

Hits never carry the value itself, only its kind and where it was found, so a
hit can be logged or shown without leaking what it found.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from triallens.errors import DeidentificationError

__all__ = ["PhiGuard", "PhiHit", "PhiLeakError", "PhiValue"]

logger = logging.getLogger(__name__)

_MIN_TOKEN = 3
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]

# Attributes of the original study whose values identify the patient, by kind.
_IDENTIFYING_KEYWORDS: dict[str, str] = {
    "PatientName": "name",
    "OtherPatientNames": "name",
    "PatientBirthName": "name",
    "PatientMotherBirthName": "name",
    "ReferringPhysicianName": "name",
    "PerformingPhysicianName": "name",
    "NameOfPhysiciansReadingStudy": "name",
    "OperatorsName": "name",
    "RequestingPhysician": "name",
    "PatientID": "id",
    "OtherPatientIDs": "id",
    "IssuerOfPatientID": "id",
    "AccessionNumber": "id",
    "StudyID": "id",
    "MedicalRecordLocator": "id",
    "PatientBirthDate": "date",
    "PatientAddress": "text",
    "PatientTelephoneNumbers": "text",
    "InstitutionName": "text",
    "InstitutionAddress": "text",
    "StudyInstanceUID": "uid",
    "SeriesInstanceUID": "uid",
    "SOPInstanceUID": "uid",
    "FrameOfReferenceUID": "uid",
}

_KINDS = frozenset({"name", "id", "date", "text", "uid"})

# Values too generic to be evidence of PHI on their own.
_IGNORED_VALUES = frozenset(
    {"anonymous", "anonymized", "anonymised", "removed", "unknown", "none", "test"}
)

# DICOM value representations that hold codes or numbers, not free text.
_SKIPPED_DICOM_VRS = frozenset(
    {"CS", "US", "SS", "UL", "SL", "FL", "FD", "OB", "OW", "OF", "OD", "OL", "OV"}
)
_SKIPPED_DICOM_VRS = _SKIPPED_DICOM_VRS | {"SV", "UV", "AT", "IS", "DS", "UN"}


class PhiLeakError(DeidentificationError):
    """An outgoing payload holds an original identifying value."""


@dataclass(frozen=True)
class PhiValue:
    """One identifying value of the original study."""

    kind: str
    value: str
    source: str = ""


@dataclass(frozen=True)
class PhiHit:
    """Where a scanned object contains an identifying value (never the value)."""

    kind: str
    source: str
    location: str

    def __str__(self) -> str:
        return f"{self.kind} value from {self.source} found at {self.location}"


class PhiGuard:
    """Scan emitted payloads for a study's original identifying values.

    Parameters
    ----------
    values
        The identifying values; variants are derived from each one.
    """

    def __init__(self, values: Iterable[PhiValue]) -> None:
        self._values = [v for v in values if _useful(v.value)]
        variants: list[tuple[str, PhiValue]] = []
        for value in self._values:
            for variant in sorted(_variants(value)):
                if len(variant) >= _MIN_TOKEN:
                    variants.append((_word_body(variant), value))
        self._variants = variants
        # One pattern for all variants: most text holds none, and one search
        # tells so. Per-variant patterns are built only to name a hit.
        bodies = sorted({body for body, _ in variants}, key=len, reverse=True)
        self._any = _bounded("|".join(bodies)) if bodies else None
        self._patterns: list[tuple[re.Pattern[str], PhiValue]] | None = None

    # Construction ------------------------------------------------------

    @classmethod
    def from_datasets(
        cls, datasets: Iterable[Any], *, include_uids: bool = True
    ) -> PhiGuard:
        """A guard from the identifying values of original DICOM datasets.

        Values are read from the raw bytes as well as decoded text, so a value
        stored in a wrong character set is still recognised. With
        ``include_uids`` the original study, series, instance and frame of
        reference UIDs count as identifying too.
        """
        values: dict[tuple[str, str], PhiValue] = {}
        for ds in datasets:
            for keyword, kind in _IDENTIFYING_KEYWORDS.items():
                if kind == "uid" and not include_uids:
                    continue
                for text in _dicom_texts(ds, keyword):
                    values.setdefault((kind, text), PhiValue(kind, text, keyword))
        return cls(values.values())

    @classmethod
    def from_mapping(cls, values: Mapping[str, Sequence[str] | str]) -> PhiGuard:
        """A guard from ``{"name": [...], "date": [...], "id": [...]}``.

        Keys are kinds (``name``, ``id``, ``date``, ``text``, ``uid``) or DICOM
        keywords (``PatientName``, ``StudyDate``), whose kind is inferred.
        """
        items: list[PhiValue] = []
        for key, vals in values.items():
            kind = _kind_for(key)
            for val in [vals] if isinstance(vals, str) else vals:
                items.append(PhiValue(kind, str(val), key))
        return cls(items)

    @property
    def values(self) -> list[PhiValue]:
        return list(self._values)

    # Scanning ----------------------------------------------------------

    def scan(self, obj: Any, location: str = "$") -> list[PhiHit]:
        """Every identifying value found in ``obj``.

        ``obj`` may be text (including JSON or XML), bytes, a mapping or
        sequence of such, a pydicom ``Dataset`` or a ``Path`` to a file.
        """
        hits: list[PhiHit] = []
        for text, where in _walk(obj, location):
            hits.extend(self._scan_text(text, where))
        return _dedupe(hits)

    def scan_bytes(self, data: bytes, location: str = "$") -> list[PhiHit]:
        """Search raw bytes read as Latin-1 and as UTF-8, so a value is found
        whatever character set it was written in (case-insensitive)."""
        texts = {data.decode("latin-1"), data.decode("utf-8", "replace")}
        hits = [hit for text in texts for hit in self._scan_text(text, location)]
        return _dedupe(hits)

    def is_clean(self, obj: Any) -> bool:
        return not self.scan(obj)

    def assert_clean(self, obj: Any, what: str = "payload") -> None:
        """Raise :class:`PhiLeakError` when ``obj`` holds an identifying value.

        The error names the kinds and locations of the hits, never the values.
        """
        hits = self.scan(obj)
        if hits:
            where = "; ".join(str(hit) for hit in hits[:5])
            more = f" and {len(hits) - 5} more" if len(hits) > 5 else ""
            raise PhiLeakError(f"{what} holds identifying values: {where}{more}")

    def _scan_text(self, text: str, location: str) -> list[PhiHit]:
        if isinstance(text, bytes):
            return self.scan_bytes(text, location)
        if self._any is None or not self._any.search(text):
            return []
        if self._patterns is None:
            self._patterns = [(_bounded(body), value) for body, value in self._variants]
        return [
            PhiHit(value.kind, value.source, location)
            for pattern, value in self._patterns
            if pattern.search(text)
        ]


# Variants ------------------------------------------------------------------


def _kind_for(key: str) -> str:
    if key in _KINDS:
        return key
    if key in _IDENTIFYING_KEYWORDS:
        return _IDENTIFYING_KEYWORDS[key]
    if key.endswith(("Date", "DateTime")):
        return "date"
    if key.endswith("Name"):
        return "name"
    if key.endswith("UID"):
        return "uid"
    return "text"


def _useful(value: str) -> bool:
    stripped = value.strip(" ^\x00")
    return len(stripped) >= _MIN_TOKEN and stripped.lower() not in _IGNORED_VALUES


def _variants(value: PhiValue) -> set[str]:
    text = value.value.strip(" \x00")
    out = {text}
    if value.kind == "name":
        out |= _name_variants(text)
    elif value.kind == "date":
        out |= _date_variants(text)
    elif value.kind == "text":
        out.add(" ".join(text.split()))
    return {v for v in out if v.strip().lower() not in _IGNORED_VALUES}


def _name_variants(text: str) -> set[str]:
    groups = text.split("=")
    out: set[str] = set()
    for group in groups:
        parts = [p.strip() for p in group.split("^") if p.strip()]
        if not parts:
            continue
        out.add(group.strip("^ "))
        out.add(" ".join(parts))
        if len(parts) >= 2:
            family, given = parts[0], parts[1]
            out |= {f"{given} {family}", f"{family}, {given}", f"{family},{given}"}
        for part in parts:
            for word in part.split():
                if len(word) >= _MIN_TOKEN:
                    out.add(word)
    return out


def _date_variants(text: str) -> set[str]:
    digits = re.sub(r"\D", "", text)[:8]
    if len(digits) != 8:
        return {text}
    try:
        day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return {text}
    y, m, d = f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}"
    month = _MONTHS[day.month - 1]
    return {
        digits,
        f"{y}-{m}-{d}",
        f"{y}/{m}/{d}",
        f"{y}.{m}.{d}",
        f"{d}/{m}/{y}",
        f"{m}/{d}/{y}",
        f"{d}.{m}.{y}",
        f"{d}-{m}-{y}",
        f"{m}-{d}-{y}",
        f"{day.day}/{day.month}/{y}",
        f"{day.month}/{day.day}/{y}",
        f"{day.day} {month} {y}",
        f"{day.day} {month[:3]} {y}",
        f"{month} {day.day}, {y}",
        f"{month[:3]} {day.day}, {y}",
        f"{d}-{month[:3]}-{y}",
    }


def _word_body(variant: str) -> str:
    return r"\s+".join(re.escape(part) for part in variant.split())


def _bounded(body: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9])(?:{body})(?![A-Za-z0-9])", re.IGNORECASE)


def _dedupe(hits: list[PhiHit]) -> list[PhiHit]:
    return list(dict.fromkeys(hits))


# Walking objects -----------------------------------------------------------


def _walk(obj: Any, location: str) -> Iterator[tuple[Any, str]]:
    from pydicom.dataset import Dataset

    if obj is None or isinstance(obj, bool | int | float):
        return
    if isinstance(obj, str):
        yield obj, location
    elif isinstance(obj, bytes | bytearray | memoryview):
        yield bytes(obj), location
    elif isinstance(obj, Path):
        yield from _walk_file(obj)
    elif isinstance(obj, Dataset):
        yield from _walk_dataset(obj, location)
    elif isinstance(obj, Mapping):
        for key, val in obj.items():
            yield str(key), f"{location}.<key>"
            yield from _walk(val, f"{location}.{key}")
    elif isinstance(obj, list | tuple | set | frozenset):
        for index, item in enumerate(obj):
            yield from _walk(item, f"{location}[{index}]")
    elif hasattr(obj, "model_dump"):
        yield from _walk(obj.model_dump(mode="json"), location)
    else:
        yield str(obj), location


def _walk_file(path: Path) -> Iterator[tuple[Any, str]]:
    data = path.read_bytes()
    if len(data) > 132 and data[128:132] == b"DICM":
        import pydicom

        try:
            ds = pydicom.dcmread(path)
        except Exception:
            logger.debug("could not parse %s as DICOM; scanning bytes", path.name)
        else:
            yield from _walk_dataset(ds, path.name)
            return
    try:
        yield json.dumps(json.loads(data)), path.name
    except (ValueError, UnicodeDecodeError):
        yield data, path.name
        yield data.decode("utf-8", "replace"), path.name


def _walk_dataset(ds: Any, location: str) -> Iterator[tuple[Any, str]]:
    """Text and raw bytes of every element that may hold free text."""
    from pydicom.dataelem import RawDataElement

    if getattr(ds, "file_meta", None) is not None:
        yield from _walk_dataset(ds.file_meta, f"{location}.meta")
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        where = f"{location}({tag.group:04X},{tag.element:04X})"
        vr = raw.VR
        if tag == 0x7FE00010:
            continue
        if isinstance(raw, RawDataElement) and vr != "SQ":
            if vr in _SKIPPED_DICOM_VRS and tag.group % 2 == 0:
                continue
            if raw.value:
                yield bytes(raw.value), where
            continue
        elem = ds[tag]
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value or []):
                yield from _walk_dataset(item, f"{where}[{index}]")
        elif elem.VR in _SKIPPED_DICOM_VRS and tag.group % 2 == 0:
            continue
        elif isinstance(elem.value, bytes):
            yield elem.value, where
        elif elem.value is not None:
            values = elem.value if elem.VM > 1 else [elem.value]
            for value in values:
                yield str(value), where


def _dicom_texts(ds: Any, keyword: str) -> list[str]:
    """Decoded values and a latin-1 reading of the raw bytes of one attribute."""
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataelem import RawDataElement

    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return []
    raw = ds.get_item(tag)
    texts: list[str] = []
    if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
        text = raw.value.decode("latin-1").strip(" \x00")
        texts.extend(t for t in text.split("\\") if t)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ds[tag].value
    except Exception:
        value = None
    if value is not None and value != "":
        values = (
            list(value)
            if isinstance(value, list | tuple) or _is_multi(value)
            else [value]
        )
        texts.extend(str(v) for v in values if str(v))
    return list(dict.fromkeys(texts))


def _is_multi(value: Any) -> bool:
    from pydicom.multival import MultiValue

    return isinstance(value, MultiValue)
