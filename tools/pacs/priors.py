"""Earlier time points of the same trial subject.

Two studies belong to the same subject when they carry the same Clinical Trial
Subject ID under the same Clinical Trial Protocol ID (PS3.3 C.7.1.3), or when
a configured mapping sends their Patient IDs to the same subject. Candidates
come from QIDO searches by Patient ID (every PACS supports those) and by
Clinical Trial Subject ID where the PACS can search it; ``scan_all`` reads
every study when neither finds the priors (slow on large archives).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tools.pacs.models import json_value
from triallens.errors import PacsError

if TYPE_CHECKING:
    from tools.pacs.base import Pacs

__all__ = ["PriorStudy", "TrialIdentity", "find_prior_studies", "trial_identity"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialIdentity:
    """Who and when a study is, as its first image says."""

    study_uid: str
    patient_id: str | None
    subject_id: str | None
    protocol_id: str | None
    time_point_id: str | None
    study_date: str | None
    study_time: str | None


@dataclass(frozen=True)
class PriorStudy:
    """An earlier study of the same subject and how it was matched."""

    identity: TrialIdentity
    matched_by: str

    @property
    def study_uid(self) -> str:
        return self.identity.study_uid


def trial_identity(pacs: Pacs, study_uid: str) -> TrialIdentity:
    """Read the trial attributes of a study from one of its instances."""
    instances = pacs.search_instances(study_uid)
    first = min(
        (i for i in instances if i.for_inference),
        key=lambda i: (i.series_uid, i.instance_number or 0),
        default=instances[0] if instances else None,
    )
    if first is None:
        return TrialIdentity(study_uid, None, None, None, None, None, None)
    meta = pacs.instance_metadata(study_uid, first.series_uid, first.sop_instance_uid)

    def text(keyword: str) -> str | None:
        value = json_value(meta, keyword)
        return None if value is None else str(value).strip() or None

    return TrialIdentity(
        study_uid=study_uid,
        patient_id=text("PatientID"),
        subject_id=text("ClinicalTrialSubjectID"),
        protocol_id=text("ClinicalTrialProtocolID"),
        time_point_id=text("ClinicalTrialTimePointID"),
        study_date=text("StudyDate"),
        study_time=text("StudyTime"),
    )


def find_prior_studies(
    pacs: Pacs,
    study_uid: str,
    *,
    patient_id_map: Mapping[str, str] | None = None,
    scan_all: bool = False,
) -> list[PriorStudy]:
    """The same subject's studies dated before ``study_uid``, oldest first.

    Parameters
    ----------
    pacs
        Where to search.
    study_uid
        The current study.
    patient_id_map
        Patient ID -> subject key, for sites whose Patient IDs differ between
        visits or that lack the Clinical Trial attributes.
    scan_all
        Also read every other study in the PACS.

    Returns
    -------
    list[PriorStudy]
        Studies with an earlier (or unknown) date; the current study is never
        included.
    """
    mapping = dict(patient_id_map or {})
    current = trial_identity(pacs, study_uid)
    own_key = _subject_key(current, mapping)

    patient_ids = {current.patient_id} if current.patient_id else set()
    if own_key is not None:
        patient_ids |= {pid for pid, key in mapping.items() if key == own_key}
    candidates: dict[str, None] = {}
    for pid in sorted(patient_ids):
        for study in pacs.search_studies(PatientID=pid):
            candidates[study.study_uid] = None
    if current.subject_id:
        try:
            for study in pacs.search_studies(ClinicalTrialSubjectID=current.subject_id):
                candidates[study.study_uid] = None
        except PacsError:
            logger.debug("the PACS cannot search by Clinical Trial Subject ID")
    if scan_all:
        for study in pacs.search_studies():
            candidates[study.study_uid] = None
    candidates.pop(study_uid, None)

    priors: list[PriorStudy] = []
    for uid in candidates:
        other = trial_identity(pacs, uid)
        matched_by = _match(current, other, mapping)
        if matched_by is None or not _is_earlier(other, current):
            continue
        priors.append(PriorStudy(other, matched_by))
    priors.sort(
        key=lambda p: (p.identity.study_date or "", p.identity.study_time or "")
    )
    return priors


def _subject_key(identity: TrialIdentity, mapping: Mapping[str, str]) -> str | None:
    if identity.patient_id and identity.patient_id in mapping:
        return mapping[identity.patient_id]
    return None


def _match(
    current: TrialIdentity, other: TrialIdentity, mapping: Mapping[str, str]
) -> str | None:
    if (
        current.subject_id
        and current.subject_id == other.subject_id
        and current.protocol_id == other.protocol_id
    ):
        return "clinical trial subject and protocol"
    key = _subject_key(current, mapping)
    if key is not None and key == _subject_key(other, mapping):
        return "patient ID mapping"
    return None


def _is_earlier(other: TrialIdentity, current: TrialIdentity) -> bool:
    if not other.study_date or not current.study_date:
        return True
    return (other.study_date, other.study_time or "") < (
        current.study_date,
        current.study_time or "",
    )
