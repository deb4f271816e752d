"""PS3.15 Annex E de-identification of DICOM datasets for one trial.

The Basic Application Level Confidentiality Profile is applied from the
attribute table (``profile.py``) with two options: Retain Longitudinal
Temporal Information with Modified Dates (every date of a subject moves by the
same number of days) and Clean Descriptors. Elements are copied as raw bytes
and decided by tag, so removal never depends on decoding text: a name stored
in a wrong character set is removed all the same.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from tools.deid.burned_in import burned_in_reason
from tools.deid.pixels import PixelCleaningRule, clean_pixels, find_rule
from tools.deid.profile import entry_for
from triallens.errors import DeidentificationError

__all__ = ["BurnedInTextError", "Deidentifier", "SafePrivateTag"]

logger = logging.getLogger(__name__)

OPTIONS = frozenset({"modified_dates", "clean_descriptors"})

_DUMMY_TEXT = "ANONYMIZED"
# Attributes whose values make up a patient's PHI guard (see triallens.phi).
_GUARD_KEY_TAGS = (
    0x00100010,  # Patient's Name
    0x00100020,  # Patient ID
    0x00100030,  # Patient's Birth Date
    0x00101000,  # Other Patient IDs
    0x00101001,  # Other Patient Names
    0x00101005,  # Patient's Birth Name
    0x00101060,  # Patient's Mother's Birth Name
    0x00101040,  # Patient's Address
    0x00102154,  # Patient's Telephone Numbers
    0x00100021,  # Issuer of Patient ID
    0x00101090,  # Medical Record Locator
    0x00080050,  # Accession Number
    0x00200010,  # Study ID
    0x00080080,  # Institution Name
    0x00080081,  # Institution Address
    0x00080090,  # Referring Physician's Name
    0x00081050,  # Performing Physician's Name
    0x00081060,  # Name of Physician(s) Reading Study
    0x00081070,  # Operators' Name
    0x00321032,  # Requesting Physician
)
_TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC", "PN", "AE", "CS"})
_SCRUBBED_VRS = (_TEXT_VRS - {"CS"}) | {"UN"}
_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "IS", "DS", "SV", "UV"})
_DESCRIPTOR_SUFFIXES = ("Description", "Label", "ProtocolName", "ContrastBolusAgent")

_METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113105", "Clean Descriptors Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
_SAFE_PRIVATE_CODE = ("113111", "Retain Safe Private Option")
_CLEAN_PIXELS_CODE = ("113101", "Clean Pixel Data Option")
_METHOD_TEXT = (
    "DICOM PS3.15 Basic Application Confidentiality Profile",
    "Retain Longitudinal Temporal Information Modified Dates",
    "Clean Descriptors",
)


class BurnedInTextError(DeidentificationError):
    """The instance may carry identifying text in its pixels: quarantine it."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"quarantined: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class SafePrivateTag:
    """A private element kept by the safe list: group, creator, element byte."""

    group: int
    creator: str
    offset: int

    @classmethod
    def parse(cls, text: str) -> SafePrivateTag:
        """Parse ``"GGGG,EE,CREATOR"``, e.g. ``"0019,10,GEMS_ACQU_01"``."""
        try:
            group, offset, creator = (p.strip() for p in text.split(",", 2))
            parsed = cls(int(group, 16), creator.upper(), int(offset, 16) & 0xFF)
        except ValueError as exc:
            raise DeidentificationError(
                f"safe private tag {text!r} is not 'GGGG,EE,CREATOR'"
            ) from exc
        if parsed.group % 2 == 0:
            raise DeidentificationError(f"safe private tag {text!r} is not private")
        return parsed


class Deidentifier:
    """De-identify DICOM datasets for one trial.

    Parameters
    ----------
    secret
        The re-identification key: UID remapping and date shifts derive from
        it, so the same secret gives the same UIDs and shifts on every run.
    trial_id
        Clinical Trial Protocol ID written into every output.
    sponsor
        Clinical Trial Sponsor Name; the trial ID when not given.
    safe_private_tags
        Private elements to keep, as ``"GGGG,EE,CREATOR"`` strings.
    max_date_shift_days
        Dates move back by 1 to this many days, fixed per subject.
    pixel_cleaning
        Regions to blank in images that may carry burned-in text; such an
        image matching no rule is quarantined.
    """

    def __init__(
        self,
        secret: str,
        trial_id: str,
        sponsor: str | None = None,
        *,
        safe_private_tags: Iterable[str] = (),
        max_date_shift_days: int = 3650,
        pixel_cleaning: Iterable[PixelCleaningRule] = (),
    ) -> None:
        if not secret:
            raise DeidentificationError("the de-identification secret is empty")
        if not trial_id:
            raise DeidentificationError("the trial ID is empty")
        self._key = secret.encode("utf-8")
        self.trial_id = trial_id
        self.sponsor = sponsor or trial_id
        self.safe_private = frozenset(
            SafePrivateTag.parse(t) for t in safe_private_tags
        )
        self.max_date_shift_days = max(1, max_date_shift_days)
        self.pixel_cleaning = tuple(pixel_cleaning)
        self._uid_cache: dict[str, str] = {}
        self._guards: dict[tuple[bytes, ...], Any] = {}

    # Keys --------------------------------------------------------------

    def _digest(self, *parts: str) -> bytes:
        message = "\x1f".join((self.trial_id, *parts)).encode("utf-8", "replace")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def remap_uid(self, uid: str) -> str:
        """The trial's replacement for a UID (deterministic, same in every file)."""
        uid = uid.strip(" \x00")
        cached = self._uid_cache.get(uid)
        if cached is None:
            # PS3.5 B.2: a UUID-derived UID under the 2.25 root; the UUID is
            # an HMAC of the original UID, so the map needs no storage.
            digest = self._digest("uid", uid)[:16]
            cached = f"2.25.{uuid.UUID(bytes=digest, version=5).int}"
            self._uid_cache[uid] = cached
        return cached

    def date_shift_days(self, subject_id: str) -> int:
        """The (negative) number of days every date of this subject moves."""
        value = int.from_bytes(self._digest("date-shift", subject_id)[:8], "big")
        return -(1 + value % self.max_date_shift_days)

    def subject_id_for(self, ds: Dataset, subject_id: str | None = None) -> str:
        """The trial subject ID: Clinical Trial Subject ID, else given, else derived."""
        existing = _ascii(ds, 0x00120040)
        if existing:
            return existing
        if subject_id:
            return subject_id
        basis = _raw_bytes(ds, 0x00100020) or _raw_bytes(ds, 0x00100010)
        if not basis:
            basis = _raw_bytes(ds, 0x0020000D)
        token = self._digest("subject", basis.hex()).hex()[:10].upper()
        return f"SUBJ-{token}"

    # Public entry ------------------------------------------------------

    def check(self, ds: Dataset) -> str | None:
        """Why this instance must go to quarantine, or None when it may pass."""
        return burned_in_reason(ds)

    def deidentify(
        self,
        ds: Dataset,
        subject_id: str | None = None,
        site_id: str | None = None,
        *,
        time_point_id: str | None = None,
        time_point_description: str | None = None,
        allow_burned_in: bool = False,
    ) -> Dataset:
        """A de-identified copy of ``ds`` (the input is not changed).

        Parameters
        ----------
        ds
            The original dataset, as read by pydicom.
        subject_id
            Trial subject ID when the dataset has no Clinical Trial Subject ID.
        site_id
            Clinical Trial Site ID.
        time_point_id, time_point_description
            Clinical Trial Time Point ID and description, when known.
        allow_burned_in
            Process instances that may carry burned-in text and match no
            pixel cleaning rule (for header-only use; pixels are kept).

        Raises
        ------
        BurnedInTextError
            The instance may hold burned-in text, no pixel cleaning rule
            matches it and ``allow_burned_in`` is off.
        DeidentificationError
            The dataset has no SOP Instance UID or cannot be processed.
        """
        reason = self.check(ds)
        rule = find_rule(self.pixel_cleaning, ds) if reason else None
        if reason and rule is None and not allow_burned_in:
            raise BurnedInTextError(reason)
        if 0x00080018 not in ds:
            raise DeidentificationError("the instance has no SOP Instance UID")

        subject = self.subject_id_for(ds, subject_id)
        site = site_id or _ascii(ds, 0x00120030) or None
        guard = self._guard_for(ds)
        context = _Context(self, self.date_shift_days(subject), guard)
        try:
            out = context.process(ds)
        except DeidentificationError:
            raise
        except Exception as exc:
            raise DeidentificationError(
                f"cannot de-identify instance ({type(exc).__name__})"
            ) from exc

        self._write_trial_modules(
            out, subject, site, time_point_id, time_point_description
        )
        self._write_markers(out, context.kept_private, rule is not None)
        out.file_meta = self._file_meta(ds, out)
        if rule is not None:
            clean_pixels(ds, out, rule)
        return out

    def _guard_for(self, ds: Dataset) -> Any:
        """The PHI guard of this patient, shared by the instances of a study."""
        from triallens.phi import PhiGuard

        key = tuple(_raw_bytes(ds, tag) for tag in _GUARD_KEY_TAGS)
        guard = self._guards.get(key)
        if guard is None:
            guard = PhiGuard.from_datasets([ds], include_uids=False)
            if len(self._guards) >= 64:
                self._guards.pop(next(iter(self._guards)))
            self._guards[key] = guard
        return guard

    # Output modules ----------------------------------------------------

    def _write_trial_modules(
        self,
        out: Dataset,
        subject: str,
        site: str | None,
        time_point_id: str | None,
        time_point_description: str | None,
    ) -> None:
        # Patient module: the subject ID stands in for name and ID.
        out.PatientName = subject
        out.PatientID = subject

        # Clinical Trial Subject module (PS3.3 C.7.1.3).
        out.ClinicalTrialSponsorName = self.sponsor
        out.ClinicalTrialProtocolID = self.trial_id
        out.ClinicalTrialProtocolName = ""
        out.ClinicalTrialSiteID = site or ""
        out.ClinicalTrialSiteName = ""
        out.ClinicalTrialSubjectID = subject

        # Clinical Trial Study module (C.7.2.3).
        out.ClinicalTrialTimePointID = time_point_id or ""
        if time_point_description:
            out.ClinicalTrialTimePointDescription = time_point_description

        # Clinical Trial Series module (C.7.3.2).
        out.ClinicalTrialCoordinatingCenterName = ""

    def _write_markers(
        self, out: Dataset, kept_private: bool, cleaned_pixels: bool = False
    ) -> None:
        out.PatientIdentityRemoved = "YES"
        out.LongitudinalTemporalInformationModified = "MODIFIED"
        out.DeidentificationMethod = list(_METHOD_TEXT)
        codes = list(_METHOD_CODES)
        if kept_private:
            codes.append(_SAFE_PRIVATE_CODE)
        if cleaned_pixels:
            codes.append(_CLEAN_PIXELS_CODE)
        items = []
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            items.append(item)
        out.DeidentificationMethodCodeSequence = Sequence(items)

    def _file_meta(self, src: Dataset, out: Dataset) -> FileMetaDataset:
        meta = FileMetaDataset()
        src_meta = getattr(src, "file_meta", None)
        syntax = None
        if src_meta is not None:
            syntax = src_meta.get("TransferSyntaxUID")
        if syntax is None:
            implicit = src.original_encoding[0]
            syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = out.get("SOPClassUID", "")
        meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
        meta.TransferSyntaxUID = syntax
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        return meta


class _Context:
    """State of one dataset's de-identification: shift, guard, private creators."""

    def __init__(self, owner: Deidentifier, shift_days: int, guard: Any) -> None:
        self.owner = owner
        self.shift = timedelta(days=shift_days)
        self.guard = guard
        self.kept_private = False

    def process(self, src: Dataset) -> Dataset:
        out = Dataset()
        implicit, little = src.original_encoding
        out.set_original_encoding(implicit, little, src.original_character_set)
        private: list[int] = []
        for tag in list(src.keys()):
            if tag.element == 0:
                continue  # group lengths are recomputed or omitted
            group = tag.group
            if group % 2 == 1:
                private.append(int(tag))
                continue
            if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
                continue  # curves and overlays: their data is removed (X)
            self._handle(src, out, int(tag))
        if private:
            self._handle_private(src, out, private)
        return out

    # Public elements ---------------------------------------------------

    def _handle(self, src: Dataset, out: Dataset, tag: int) -> None:
        raw = src.get_item(tag)
        vr = _vr(raw, tag)
        entry = entry_for(tag)
        if entry is None:
            self._unlisted(src, out, tag, raw, vr)
            return
        action = entry.action(OPTIONS)
        if action == "X":
            return
        if vr == "SQ":
            self._sequence(src, out, tag, action)
            return
        if action == "K":
            out[tag] = raw
        elif action == "U":
            out.add_new(tag, "UI", self._remap(raw))
        elif action == "C":
            self._clean(out, tag, raw, vr, entry.basic)
        elif "D" in action:
            # X/Z/D, Z/D and D: a dummy is valid whatever the attribute's type
            # in the IOD, where an empty or absent value could break a Type 1.
            out.add_new(tag, vr, self._dummy(vr))
        else:
            out.add_new(tag, vr, _empty(vr))

    def _unlisted(
        self, src: Dataset, out: Dataset, tag: int, raw: Any, vr: str
    ) -> None:
        if vr == "SQ":
            self._sequence(src, out, tag, "K")
        elif vr == "UI":
            out.add_new(tag, "UI", self._remap(raw, keep_registered=True))
        elif vr in _SCRUBBED_VRS and _has_phi(self.guard, raw):
            # A value the standard does not list, yet holding an identifying
            # value of this study (e.g. a name copied into a sequence name).
            if vr != "UN":
                out.add_new(tag, vr, _empty(vr))
        else:
            out[tag] = raw

    def _sequence(self, src: Dataset, out: Dataset, tag: int, action: str) -> None:
        if action in {"X", "X/D"}:
            return
        keyword = keyword_for_tag(tag)
        is_reference = "Referenced" in keyword or keyword.startswith("Source")
        if "Z" in action and "U" not in action and not is_reference:
            out.add_new(tag, "SQ", Sequence())
            return
        items = src[tag].value or []
        out.add_new(tag, "SQ", Sequence([self.process(item) for item in items]))

    def _remap(self, raw: Any, keep_registered: bool = False) -> str | list[str]:
        from pydicom._uid_dict import UID_dictionary

        text = _text_of(raw)
        values = [v.strip(" \x00") for v in text.split("\\")]
        mapped = [
            v
            if not v or (keep_registered and v in UID_dictionary)
            else self.owner.remap_uid(v)
            for v in values
        ]
        return mapped if len(mapped) > 1 else mapped[0]

    def _dummy(self, vr: str) -> Any:
        if vr in _NUMBER_VRS:
            return 0
        return {
            "DA": "19000101",
            "DT": "19000101000000",
            "TM": "000000",
            "AS": "000Y",
            "UI": self.owner.remap_uid(_DUMMY_TEXT),
        }.get(vr, _DUMMY_TEXT if vr in _TEXT_VRS else b"")

    # Cleaning (options) ------------------------------------------------

    def _clean(self, out: Dataset, tag: int, raw: Any, vr: str, basic: str) -> None:
        if vr in {"DA", "DT", "TM"}:
            out.add_new(tag, vr, self._shift(_text_of(raw), vr))
            return
        text = _text_of(raw, strict=True)
        keyword = keyword_for_tag(tag)
        keep = (
            text is not None
            and keyword.endswith(_DESCRIPTOR_SUFFIXES)
            and text.isprintable()
            and not self.guard.scan(text)
        )
        if keep:
            out[tag] = raw
        elif "Z" in basic:
            out.add_new(tag, vr, _empty(vr))
        elif "D" in basic:
            out.add_new(tag, vr, self._dummy(vr))

    def _shift(self, text: str, vr: str) -> str:
        """Move every date by the subject's shift; times of day are kept."""
        if vr == "TM":
            return text.strip()
        shifted: list[str] = []
        for value in text.split("\\"):
            value = value.strip(" \x00")
            if len(value) < 8 or not value[:8].isdigit():
                shifted.append("")
                continue
            try:
                day = date(int(value[:4]), int(value[4:6]), int(value[6:8]))
            except ValueError:
                shifted.append("")
                continue
            moved = day + self.shift
            shifted.append(moved.strftime("%Y%m%d") + value[8:])
        return "\\".join(shifted)

    # Private elements --------------------------------------------------

    def _handle_private(self, src: Dataset, out: Dataset, tags: list[int]) -> None:
        safe = self.owner.safe_private
        if not safe:
            return
        creators: dict[tuple[int, int], str] = {}
        for tag in tags:
            element = tag & 0xFFFF
            if 0x0010 <= element <= 0x00FF:
                creators[(tag >> 16, element)] = _text_of(src.get_item(tag)) or ""
        used: set[int] = set()
        for tag in tags:
            group, element = tag >> 16, tag & 0xFFFF
            if element < 0x1000:
                continue
            creator = creators.get((group, element >> 8), "").strip().upper()
            if SafePrivateTag(group, creator, element & 0xFF) in safe:
                out[tag] = src.get_item(tag)
                used.add((group << 16) | (element >> 8))
        for creator_tag in used:
            out[creator_tag] = src.get_item(creator_tag)
        self.kept_private = self.kept_private or bool(used)


# Raw helpers ----------------------------------------------------------------


def _vr(raw: Any, tag: int) -> str:
    vr = getattr(raw, "VR", None)
    if vr and vr != "UN":
        return str(vr)
    try:
        return str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        return "UN"


def _text_of(raw: Any, strict: bool = False) -> Any:
    """An element's value as text; with ``strict``, None unless plain ASCII."""
    value = raw.value
    if isinstance(value, bytes):
        try:
            return value.decode("ascii").strip(" \x00")
        except UnicodeDecodeError:
            return None if strict else value.decode("latin-1").strip(" \x00")
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    text = str(value)
    if strict and not text.isascii():
        return None
    return text


def _has_phi(guard: Any, raw: Any) -> bool:
    value = raw.value
    if isinstance(value, bytes):
        return bool(guard.scan_bytes(value))
    return bool(value) and bool(guard.scan(str(value)))


def _empty(vr: str) -> Any:
    return None if vr not in _TEXT_VRS else ""


def _ascii(ds: Dataset, tag: int) -> str:
    if tag not in ds:
        return ""
    text = _text_of(ds.get_item(tag), strict=True)
    return text or ""


def _raw_bytes(ds: Dataset, tag: int) -> bytes:
    if tag not in ds:
        return b""
    value = ds.get_item(tag).value
    if isinstance(value, bytes):
        return value.strip(b" \x00")
    return str(value or "").encode("utf-8")
