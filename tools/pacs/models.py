"""Value types the PACS interface returns, and DICOM JSON helpers.

QIDO-RS replies are DICOM JSON (PS3.18 F.2): an attribute may be absent, have
no ``Value``, carry a ``BulkDataURI`` or ``InlineBinary`` instead of a value,
or hold a person name as an ``Alphabetic`` component group. The helpers here
read all of those without raising.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NON_IMAGE_MODALITIES",
    "InstanceSummary",
    "SeriesSummary",
    "StoreReport",
    "StudySummary",
    "is_inference_candidate",
    "json_value",
    "json_values",
]

# SOP classes that carry no pixel data to measure (PS3.4 B.5).
_NON_IMAGE_SOP_PREFIXES: tuple[str, ...] = (
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports, KO (…88.59)
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, registration, SEG (…66.4)
    "1.2.840.10008.5.1.4.1.1.481.",  # RT objects other than RT Image
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF / CDA
    "1.2.840.10008.5.1.4.1.1.9.",  # waveforms
)
_RT_IMAGE_SOP = "1.2.840.10008.5.1.4.1.1.481.1"

NON_IMAGE_MODALITIES: frozenset[str] = frozenset(
    {"SR", "PR", "KO", "SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "REG", "DOC", "ECG"}
)

# DICOM JSON keys of the attributes read below (PS3.6 tags, upper-case hex).
_TAGS: dict[str, str] = {
    "StudyInstanceUID": "0020000D",
    "SeriesInstanceUID": "0020000E",
    "SOPInstanceUID": "00080018",
    "SOPClassUID": "00080016",
    "PatientID": "00100020",
    "AccessionNumber": "00080050",
    "StudyDate": "00080020",
    "StudyTime": "00080030",
    "StudyDescription": "00081030",
    "ModalitiesInStudy": "00080061",
    "Modality": "00080060",
    "SeriesNumber": "00200011",
    "SeriesDescription": "0008103E",
    "InstanceNumber": "00200013",
    "NumberOfStudyRelatedSeries": "00201206",
    "NumberOfStudyRelatedInstances": "00201208",
    "NumberOfSeriesRelatedInstances": "00201209",
    "NumberOfFrames": "00280008",
    "ClinicalTrialSubjectID": "00120040",
    "ClinicalTrialProtocolID": "00120020",
    "ClinicalTrialTimePointID": "00120050",
}


def is_inference_candidate(sop_class_uid: str | None, modality: str | None) -> bool:
    """Whether an instance holds images that a model could measure.

    Parameters
    ----------
    sop_class_uid, modality
        The instance's SOP Class UID and the series' modality; either may be
        unknown.

    Returns
    -------
    bool
        False for SR, PR, KO, SEG, RT objects (other than RT Image), documents
        and waveforms; True otherwise.
    """
    if modality and modality.upper() in NON_IMAGE_MODALITIES:
        return False
    if sop_class_uid:
        if sop_class_uid == _RT_IMAGE_SOP:
            return True
        return not any(sop_class_uid.startswith(p) for p in _NON_IMAGE_SOP_PREFIXES)
    return True


def json_values(item: dict[str, Any], keyword: str) -> list[Any]:
    """Every value of one attribute of a DICOM JSON object (maybe empty).

    Absent attributes, attributes without ``Value`` and bulk data references
    (``BulkDataURI``, ``InlineBinary``) give an empty list. Person names give
    their alphabetic form.
    """
    tag = _TAGS.get(keyword, keyword)
    element = item.get(tag) or item.get(tag.lower())
    if not isinstance(element, dict):
        return []
    values = element.get("Value")
    if not isinstance(values, list):
        return []
    out: list[Any] = []
    for value in values:
        if isinstance(value, dict):
            value = value.get("Alphabetic")
        if value is None or value == "":
            continue
        out.append(value)
    return out


def json_value(item: dict[str, Any], keyword: str) -> Any:
    """The first value of one attribute of a DICOM JSON object, or None."""
    values = json_values(item, keyword)
    return values[0] if values else None


def _str(item: dict[str, Any], keyword: str) -> str | None:
    value = json_value(item, keyword)
    return None if value is None else str(value)


def _int(item: dict[str, Any], keyword: str) -> int | None:
    value = json_value(item, keyword)
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class StudySummary:
    """One study as a QIDO-RS study query describes it."""

    study_uid: str
    patient_id: str | None = None
    accession_number: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    study_description: str | None = None
    modalities: tuple[str, ...] = ()
    number_of_series: int | None = None
    number_of_instances: int | None = None

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> StudySummary | None:
        """Read a QIDO-RS study result; None when it lacks a Study UID."""
        uid = _str(item, "StudyInstanceUID")
        if not uid:
            return None
        return cls(
            study_uid=uid,
            patient_id=_str(item, "PatientID"),
            accession_number=_str(item, "AccessionNumber"),
            study_date=_str(item, "StudyDate"),
            study_time=_str(item, "StudyTime"),
            study_description=_str(item, "StudyDescription"),
            modalities=tuple(str(m) for m in json_values(item, "ModalitiesInStudy")),
            number_of_series=_int(item, "NumberOfStudyRelatedSeries"),
            number_of_instances=_int(item, "NumberOfStudyRelatedInstances"),
        )


@dataclass(frozen=True)
class SeriesSummary:
    """One series as a QIDO-RS series query describes it."""

    study_uid: str
    series_uid: str
    modality: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    number_of_instances: int | None = None

    @property
    def for_inference(self) -> bool:
        """False for series of non-image objects (SR, PR, KO, SEG...)."""
        return is_inference_candidate(None, self.modality)

    @classmethod
    def from_json(
        cls, item: dict[str, Any], study_uid: str | None = None
    ) -> SeriesSummary | None:
        """Read a QIDO-RS series result; None when it lacks a Series UID."""
        uid = _str(item, "SeriesInstanceUID")
        study = _str(item, "StudyInstanceUID") or study_uid
        if not uid or not study:
            return None
        return cls(
            study_uid=study,
            series_uid=uid,
            modality=_str(item, "Modality"),
            series_number=_int(item, "SeriesNumber"),
            series_description=_str(item, "SeriesDescription"),
            number_of_instances=_int(item, "NumberOfSeriesRelatedInstances"),
        )


@dataclass(frozen=True)
class InstanceSummary:
    """One instance as a QIDO-RS instance query describes it."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str | None = None
    modality: str | None = None
    instance_number: int | None = None
    number_of_frames: int | None = None

    @property
    def for_inference(self) -> bool:
        """False for non-image objects: kept and listed, never measured."""
        return is_inference_candidate(self.sop_class_uid, self.modality)

    @classmethod
    def from_json(
        cls,
        item: dict[str, Any],
        study_uid: str | None = None,
        series_uid: str | None = None,
    ) -> InstanceSummary | None:
        """Read a QIDO-RS instance result; None when UIDs are missing."""
        sop = _str(item, "SOPInstanceUID")
        study = _str(item, "StudyInstanceUID") or study_uid
        series = _str(item, "SeriesInstanceUID") or series_uid
        if not sop or not study or not series:
            return None
        return cls(
            study_uid=study,
            series_uid=series,
            sop_instance_uid=sop,
            sop_class_uid=_str(item, "SOPClassUID"),
            modality=_str(item, "Modality"),
            instance_number=_int(item, "InstanceNumber"),
            number_of_frames=_int(item, "NumberOfFrames"),
        )


@dataclass
class StoreReport:
    """What a store request did: stored SOP Instance UIDs and failures."""

    stored: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every instance was stored."""
        return not self.failed
