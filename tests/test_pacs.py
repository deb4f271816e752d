"""The PACS interface over the local store and a real Orthanc (DICOMweb)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests._orthanc_fixtures import (
    OrthancServer,
    non_image_instance,
    orthanc,  # noqa: F401 - pytest fixture
    synthetic_ct_study,
    write_datasets,
)
from tests._shared import shared_data
from tools.pacs import DicomWebPacs, LocalPacs, Pacs, StudySummary, open_pacs
from triallens.errors import DicomInputError, PacsError, StudyNotFoundError
from triallens.settings import Settings


@pytest.fixture(params=["local", pytest.param("orthanc", marks=pytest.mark.orthanc)])
def pacs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pacs]:
    if request.param == "local":
        backend: Pacs = LocalPacs(tmp_path / "store")
    else:
        server: OrthancServer = request.getfixturevalue("orthanc")
        server.delete_all()
        backend = DicomWebPacs(server.dicomweb_url, timeout_s=10, retries=1)
    yield backend
    backend.close()


def test_store_search_and_retrieve_round_trip(pacs: Pacs) -> None:
    study = synthetic_ct_study(slices=3, size=8, seed=2, accession="ACC42")
    study_uid = study[0].StudyInstanceUID

    report = pacs.store(study)

    assert report.ok
    assert sorted(report.stored) == sorted(ds.SOPInstanceUID for ds in study)
    found = {s.study_uid: s for s in pacs.search_studies()}
    assert study_uid in found
    summary = found[study_uid]
    assert summary.patient_id == "SYN-0001"
    assert summary.number_of_instances == 3
    assert summary.modalities == ("CT",)

    series = pacs.search_series(study_uid)
    assert [s.series_uid for s in series] == [study[0].SeriesInstanceUID]
    assert series[0].modality == "CT" and series[0].for_inference

    instances = pacs.search_instances(study_uid)
    assert {i.sop_instance_uid for i in instances} == {d.SOPInstanceUID for d in study}

    retrieved = {ds.SOPInstanceUID: ds for ds in pacs.retrieve_study(study_uid)}
    assert len(retrieved) == 3
    for original in study:
        got = retrieved[original.SOPInstanceUID]
        expected = np.frombuffer(original.PixelData, dtype=np.int16).reshape(8, 8)
        np.testing.assert_array_equal(got.pixel_array, expected)
        assert got.ClinicalTrialSubjectID == "SUBJ-001"

    by_series = pacs.retrieve_series(study_uid, study[0].SeriesInstanceUID)
    assert len(by_series) == 3
    metadata = pacs.study_metadata(study_uid)
    assert len(metadata) == 3
    assert all(
        "7FE00010" not in item or "Value" not in item["7FE00010"] for item in metadata
    )


def test_filters_limit_and_offset(pacs: Pacs) -> None:
    first = synthetic_ct_study(slices=1, size=4, patient_id="SYN-A", accession="A1")
    second = synthetic_ct_study(slices=1, size=4, patient_id="SYN-B", accession="B1")
    pacs.store(first + second)

    only_b = pacs.search_studies(PatientID="SYN-B")
    assert [s.study_uid for s in only_b] == [second[0].StudyInstanceUID]
    page_one = pacs.search_studies(limit=1)
    page_two = pacs.search_studies(limit=1, offset=1)
    assert len(page_one) == len(page_two) == 1
    assert {page_one[0].study_uid, page_two[0].study_uid} == {
        first[0].StudyInstanceUID,
        second[0].StudyInstanceUID,
    }


def test_unknown_study_is_study_not_found(pacs: Pacs) -> None:
    unknown = pydicom.uid.generate_uid()
    with pytest.raises(StudyNotFoundError, match=unknown):
        pacs.retrieve_study(unknown)
    with pytest.raises(StudyNotFoundError):
        pacs.search_series(unknown)


def test_non_image_objects_are_kept_but_not_for_inference(pacs: Pacs) -> None:
    study = synthetic_ct_study(slices=2, size=4)
    study_uid = study[0].StudyInstanceUID
    extras = [non_image_instance(kind, study_uid) for kind in ("SR", "KO", "PR", "SEG")]

    report = pacs.store(study + extras)

    assert report.ok and len(report.stored) == 6
    flags = {
        i.sop_instance_uid: i.for_inference for i in pacs.search_instances(study_uid)
    }
    assert len(flags) == 6
    assert all(flags[d.SOPInstanceUID] for d in study)
    assert not any(flags[d.SOPInstanceUID] for d in extras)
    modalities = {s.modality: s.for_inference for s in pacs.search_series(study_uid)}
    assert modalities == {
        "CT": True,
        "SR": False,
        "KO": False,
        "PR": False,
        "SEG": False,
    }


def test_frames_are_raw_pixel_bytes(pacs: Pacs) -> None:
    study = synthetic_ct_study(slices=1, size=8, seed=3)
    pacs.store(study)
    ds = study[0]

    frames = pacs.retrieve_frames(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [1]
    )

    assert len(frames) == 1
    assert bytes(frames[0]) == bytes(ds.PixelData)


@pytest.mark.slow
@pytest.mark.orthanc
def test_storescu_push_is_visible_over_dicomweb(
    orthanc: OrthancServer,  # noqa: F811 - pytest fixture
    tmp_path: Path,
) -> None:
    orthanc.delete_all()
    study = synthetic_ct_study(slices=5, size=8)
    orthanc.storescu(write_datasets(study, tmp_path / "push"))
    pacs = DicomWebPacs(orthanc.dicomweb_url, page_size=2)

    instances = pacs.search_instances(study[0].StudyInstanceUID)

    assert len(instances) == 5  # three pages of two, the last one short
    assert sorted(i.instance_number or 0 for i in instances) == [1, 2, 3, 4, 5]


def test_real_mr_series_round_trips_through_local_store(tmp_path: Path) -> None:
    files = sorted(shared_data("mr_brain_t1_sag_35sl_hfs").glob("*.dcm"))[:5]
    originals = [pydicom.dcmread(f) for f in files]
    pacs = LocalPacs(tmp_path / "store")

    report = pacs.store(originals)

    assert report.ok and len(report.stored) == 5
    study_uid = originals[0].StudyInstanceUID
    got = {d.SOPInstanceUID: d for d in pacs.retrieve_study(study_uid)}
    for original in originals:
        np.testing.assert_array_equal(
            got[original.SOPInstanceUID].pixel_array, original.pixel_array
        )


def test_local_store_indexes_files_placed_by_hand(tmp_path: Path) -> None:
    store = tmp_path / "store"
    study = synthetic_ct_study(slices=2, size=4)
    write_datasets(study, store / "incoming")

    found = LocalPacs(store).search_studies()

    assert [s.study_uid for s in found] == [study[0].StudyInstanceUID]


def test_non_dicom_file_in_local_store_names_the_file(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_datasets(synthetic_ct_study(slices=1, size=4), store / "ok")
    (store / "notes.txt").write_text("not an image")

    with pytest.raises(DicomInputError, match=r"notes\.txt") as caught:
        LocalPacs(store)

    assert "\n" not in str(caught.value)


def test_connection_refused_is_one_clear_line() -> None:
    from tests._orthanc_fixtures import free_port

    pacs = DicomWebPacs(f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=2)

    with pytest.raises(PacsError, match="connection refused") as caught:
        pacs.search_studies()

    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/x", "http:///nohost"])
def test_bad_url_is_pacs_error(url: str) -> None:
    with pytest.raises(PacsError, match=r"bad PACS URL|unsupported PACS URL"):
        if url.startswith("ftp"):
            open_pacs(url, Settings())
        else:
            DicomWebPacs(url)


def test_open_pacs_picks_the_backend(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", pacs_timeout_s=7, pacs_retries=1)

    local = open_pacs(None, settings)
    web = open_pacs("http://127.0.0.1:8042/dicom-web", settings)
    by_path = open_pacs(str(tmp_path / "other"), settings)

    assert isinstance(local, LocalPacs) and local.directory == settings.pacs_dir
    assert isinstance(web, DicomWebPacs)
    assert web.timeout_s == 7 and web.retries == 1
    assert isinstance(by_path, LocalPacs)
    assert isinstance(local, Pacs) and isinstance(web, Pacs)


def test_qido_json_with_missing_empty_and_bulkdata_values() -> None:
    item = {
        "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
        "00100020": {"vr": "LO"},
        "00080050": {"vr": "SH", "Value": []},
        "00081030": {"vr": "LO", "BulkDataURI": "http://127.0.0.1/bulk/1"},
        "00080061": {"vr": "CS", "Value": ["CT", "", "SR"]},
        "00201208": {"vr": "IS", "Value": ["not-a-number"]},
    }

    summary = StudySummary.from_json(item)

    assert summary == StudySummary(study_uid="1.2.3", modalities=("CT", "SR"))
    assert StudySummary.from_json({"00100020": {"vr": "LO", "Value": ["X"]}}) is None


@pytest.fixture(scope="module")
def orthanc_with_users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests._orthanc_fixtures import orthanc_missing, run_orthanc

    if orthanc_missing():
        pytest.skip(str(orthanc_missing()))
    users = {"AuthenticationEnabled": True, "RegisteredUsers": {"reader": "s3cret"}}
    with run_orthanc(
        tmp_path_factory.mktemp("orthanc-auth"), extra_config=users
    ) as server:
        yield server.dicomweb_url


@pytest.mark.slow
@pytest.mark.orthanc
def test_basic_auth_against_orthanc(orthanc_with_users: str) -> None:
    study = synthetic_ct_study(slices=1, size=4)
    good = DicomWebPacs(orthanc_with_users, username="reader", password="s3cret")
    bad = DicomWebPacs(orthanc_with_users, username="reader", password="wrong")
    anonymous = DicomWebPacs(orthanc_with_users)

    assert good.store(study).ok
    assert [s.study_uid for s in good.search_studies()] == [study[0].StudyInstanceUID]
    for client in (bad, anonymous):
        with pytest.raises(PacsError, match="HTTP 401"):
            client.search_studies()
