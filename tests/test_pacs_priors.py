"""Prior-study lookup by Clinical Trial Subject ID and by patient-ID mapping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._orthanc_fixtures import (
    OrthancServer,
    non_image_instance,
    orthanc,  # noqa: F401 - pytest fixture
    synthetic_ct_study,
)
from tools.pacs import DicomWebPacs, LocalPacs, Pacs
from tools.pacs.priors import find_prior_studies, trial_identity


@pytest.fixture(params=["local", pytest.param("orthanc", marks=pytest.mark.orthanc)])
def pacs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pacs]:
    if request.param == "local":
        yield LocalPacs(tmp_path / "store")
        return
    server: OrthancServer = request.getfixturevalue("orthanc")
    server.delete_all()
    yield DicomWebPacs(server.dicomweb_url)


def _study(**kwargs: object) -> list:  # type: ignore[type-arg]
    return synthetic_ct_study(slices=1, size=4, **kwargs)  # type: ignore[arg-type]


def test_priors_of_the_same_subject_and_protocol(pacs: Pacs) -> None:
    baseline = _study(subject_id="S-1", time_point_id="BASELINE", study_date="20240105")
    week6 = _study(subject_id="S-1", time_point_id="WEEK6", study_date="20240216")
    week12 = _study(subject_id="S-1", time_point_id="WEEK12", study_date="20240329")
    other_subject = _study(subject_id="S-2", study_date="20240101")
    other_trial = _study(subject_id="S-1", protocol_id="OTHER-9", study_date="20231201")
    for study in (baseline, week6, week12, other_subject, other_trial):
        pacs.store(study)
    pacs.store([non_image_instance("SR", week12[0].StudyInstanceUID)])

    priors = find_prior_studies(pacs, week12[0].StudyInstanceUID)

    assert [p.identity.time_point_id for p in priors] == ["BASELINE", "WEEK6"]
    assert [p.study_uid for p in priors] == [
        baseline[0].StudyInstanceUID,
        week6[0].StudyInstanceUID,
    ]
    assert {p.matched_by for p in priors} == {"clinical trial subject and protocol"}
    assert find_prior_studies(pacs, baseline[0].StudyInstanceUID) == []


def test_priors_through_a_patient_id_mapping(pacs: Pacs) -> None:
    # Two site Patient IDs for one subject, without trial attributes to match.
    first = _study(patient_id="SITE-A-17", subject_id="", study_date="20240105")
    second = _study(patient_id="SITE-B-03", subject_id="", study_date="20240301")
    stranger = _study(patient_id="SITE-A-99", subject_id="", study_date="20240101")
    for study in (first, second, stranger):
        pacs.store(study)
    mapping = {"SITE-A-17": "SUBJ-17", "SITE-B-03": "SUBJ-17", "SITE-A-99": "SUBJ-99"}

    priors = find_prior_studies(
        pacs, second[0].StudyInstanceUID, patient_id_map=mapping
    )
    without_mapping = find_prior_studies(pacs, second[0].StudyInstanceUID)

    assert [(p.study_uid, p.matched_by) for p in priors] == [
        (first[0].StudyInstanceUID, "patient ID mapping")
    ]
    assert without_mapping == []


def test_trial_identity_reads_the_clinical_trial_attributes(pacs: Pacs) -> None:
    study = _study(subject_id="S-7", time_point_id="WEEK6", study_date="20240216")
    pacs.store(study)

    identity = trial_identity(pacs, study[0].StudyInstanceUID)

    assert (identity.subject_id, identity.protocol_id, identity.time_point_id) == (
        "S-7",
        "TL-DEMO-001",
        "WEEK6",
    )
    assert identity.study_date == "20240216"
