"""De-identification of synthetic CT: PS3.15 Basic Profile with options."""

from __future__ import annotations

import io
from datetime import date

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests._deid_fixtures import (
    ACCESSION,
    BIRTH_DATE,
    INSTITUTION,
    PATIENT_ID,
    PATIENT_NAME,
    ct_series,
    ct_slice,
)
from tools.deid import BurnedInTextError, Deidentifier
from triallens.errors import DeidentificationError
from triallens.phi import PhiGuard

SECRET = "test-secret-key"


@pytest.fixture
def deid() -> Deidentifier:
    return Deidentifier(SECRET, "TRIAL-007", "ACME ONCOLOGY")


def _roundtrip(ds: Dataset) -> Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


def _days(a: str, b: str) -> int:
    da = date(int(a[:4]), int(a[4:6]), int(a[6:8]))
    db = date(int(b[:4]), int(b[4:6]), int(b[6:8]))
    return (da - db).days


def test_identifying_attributes_removed_and_subject_written(deid: Deidentifier) -> None:
    original = ct_slice(0)
    out = _roundtrip(deid.deidentify(original, subject_id="101-004", site_id="101"))

    assert str(out.PatientName) == "101-004"
    assert out.PatientID == "101-004"
    assert out.PatientBirthDate == ""
    assert out.AccessionNumber == ""
    assert "OtherPatientIDs" not in out
    assert "PatientAddress" not in out
    assert "ImageComments" not in out
    assert out.get("InstitutionName", "") in ("", "ANONYMIZED")
    assert str(out.get("ReferringPhysicianName", "")) == ""
    assert out.ClinicalTrialSponsorName == "ACME ONCOLOGY"
    assert out.ClinicalTrialProtocolID == "TRIAL-007"
    assert out.ClinicalTrialSubjectID == "101-004"
    assert out.ClinicalTrialSiteID == "101"
    assert out.PatientIdentityRemoved == "YES"
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113105", "113107"}
    assert all(
        i.CodingSchemeDesignator == "DCM"
        for i in out.DeidentificationMethodCodeSequence
    )
    assert not [e for e in out if e.tag.group % 2 == 1], "private tags remain"

    guard = PhiGuard.from_datasets([original])
    assert guard.scan(out) == []
    # The guard does see the original values in the original.
    kinds = {hit.source for hit in guard.scan(original)}
    assert {"PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"} <= kinds


def test_input_dataset_is_not_changed(deid: Deidentifier) -> None:
    original = ct_slice(0)
    deid.deidentify(original, subject_id="S1")
    assert str(original.PatientName) == PATIENT_NAME
    assert original.PatientID == PATIENT_ID


def test_descriptors_kept_when_clean_and_removed_when_identifying(
    deid: Deidentifier,
) -> None:
    original = ct_slice(0)
    original.SeriesDescription = f"AXIAL {INSTITUTION}"
    out = deid.deidentify(original, subject_id="S1")
    assert out.StudyDescription == "CT CHEST ABDOMEN PELVIS WITH CONTRAST"
    assert out.ContrastBolusAgent == "OMNIPAQUE 350"
    assert "SeriesDescription" not in out


def test_uids_remapped_deterministically_and_consistently(deid: Deidentifier) -> None:
    series = ct_series(3)
    outs = [deid.deidentify(ds, subject_id="S1") for ds in series]

    for ds, out in zip(series, outs, strict=True):
        assert out.SOPInstanceUID == deid.remap_uid(ds.SOPInstanceUID)
        assert out.SOPInstanceUID != ds.SOPInstanceUID
        assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
        ref = out.ReferencedImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == out.SOPInstanceUID
        assert ref.ReferencedSOPClassUID == ds.SOPClassUID
        assert out.SOPClassUID == ds.SOPClassUID
        assert pydicom.uid.UID(out.SOPInstanceUID).is_valid
    assert len({o.StudyInstanceUID for o in outs}) == 1
    assert len({o.SeriesInstanceUID for o in outs}) == 1
    assert len({o.FrameOfReferenceUID for o in outs}) == 1
    assert outs[0].StudyInstanceUID == deid.remap_uid(series[0].StudyInstanceUID)

    again = Deidentifier(SECRET, "TRIAL-007").deidentify(series[0], subject_id="S1")
    assert again.SOPInstanceUID == outs[0].SOPInstanceUID
    other = Deidentifier("another-secret", "TRIAL-007")
    assert other.remap_uid(series[0].SOPInstanceUID) != outs[0].SOPInstanceUID
    other_trial = Deidentifier(SECRET, "TRIAL-008")
    assert other_trial.remap_uid(series[0].SOPInstanceUID) != outs[0].SOPInstanceUID


def test_dates_shift_by_one_offset_per_subject(deid: Deidentifier) -> None:
    baseline = ct_slice(0, study_date="20240312", subject_id="101-004")
    follow_up = ct_slice(0, study_date="20240507", subject_id="101-004")
    other = ct_slice(0, study_date="20240312", subject_id="101-009")
    out_b, out_f, out_o = (deid.deidentify(ds) for ds in (baseline, follow_up, other))

    shift = deid.date_shift_days("101-004")
    assert shift < 0
    assert _days(out_b.StudyDate, baseline.StudyDate) == shift
    assert _days(out_f.StudyDate, out_b.StudyDate) == 56
    assert out_b.SeriesDate == out_b.StudyDate == out_b.ContentDate
    assert out_b.AcquisitionDateTime[:8] == out_b.StudyDate
    assert out_b.AcquisitionDateTime[8:] == "101600.000000"
    assert out_b.StudyTime == "101500"
    assert out_o.StudyDate != out_b.StudyDate or (
        deid.date_shift_days("101-009") == shift
    )
    assert out_b.ClinicalTrialSubjectID == "101-004"


def test_subject_from_clinical_trial_subject_id_and_derived_pseudonym(
    deid: Deidentifier,
) -> None:
    tagged = ct_slice(0, subject_id="201-001")
    assert deid.deidentify(tagged, subject_id="IGNORED").PatientID == "201-001"

    untagged_a = ct_slice(0, patient_id="MRN-1")
    untagged_b = ct_slice(1, patient_id="MRN-1")
    untagged_c = ct_slice(0, patient_id="MRN-2")
    ids = [deid.deidentify(ds).PatientID for ds in (untagged_a, untagged_b, untagged_c)]
    assert ids[0] == ids[1] != ids[2]
    assert ids[0].startswith("SUBJ-")
    assert "MRN" not in ids[0]


def test_pixel_data_identical(deid: Deidentifier) -> None:
    original = ct_slice(2)
    out = _roundtrip(deid.deidentify(original, subject_id="S1"))
    assert out.PixelData == original.PixelData
    assert (out.pixel_array == original.pixel_array).all()


def test_references_inside_sr_like_content_are_remapped(deid: Deidentifier) -> None:
    image = ct_slice(0)
    sr = ct_slice(1)
    del sr.PixelData
    item = Dataset()
    item.ValueType = "IMAGE"
    ref = Dataset()
    ref.ReferencedSOPClassUID = image.SOPClassUID
    ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
    item.ReferencedSOPSequence = Sequence([ref])
    item.PersonName = PATIENT_NAME
    sr.ContentSequence = Sequence([item])
    evidence = Dataset()
    evidence.StudyInstanceUID = image.StudyInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = image.SeriesInstanceUID
    series.ReferencedSOPSequence = Sequence([ref])
    evidence.ReferencedSeriesSequence = Sequence([series])
    sr.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])

    out = deid.deidentify(sr, subject_id="S1")
    new_uid = deid.remap_uid(image.SOPInstanceUID)
    content_ref = out.ContentSequence[0].ReferencedSOPSequence[0]
    assert content_ref.ReferencedSOPInstanceUID == new_uid
    assert str(out.ContentSequence[0].PersonName) != PATIENT_NAME
    ev = out.CurrentRequestedProcedureEvidenceSequence[0]
    assert ev.StudyInstanceUID == deid.remap_uid(image.StudyInstanceUID)
    assert ev.ReferencedSeriesSequence[0].ReferencedSOPSequence[0] == content_ref
    assert PhiGuard.from_datasets([sr, image]).scan(out) == []


def test_name_in_wrong_character_set_is_removed(deid: Deidentifier) -> None:
    original = ct_slice(0)
    original.SpecificCharacterSet = "ISO_IR 192"
    raw_name = "MÜLLER^JÖRG".encode("latin-1")  # not valid UTF-8
    buf = io.BytesIO()
    original.PatientName = "PLACEHOLDER"
    original.save_as(buf, enforce_file_format=True)
    data = buf.getvalue().replace(b"PLACEHOLDER ", raw_name[:12].ljust(12, b" "))
    broken = pydicom.dcmread(io.BytesIO(data))
    out = deid.deidentify(broken, subject_id="S1")
    written = io.BytesIO()
    out.save_as(written, enforce_file_format=True)
    assert raw_name[:6] not in written.getvalue()
    assert PhiGuard.from_datasets([broken]).scan_bytes(written.getvalue()) == []


def test_safe_private_tags_kept_and_recorded() -> None:
    deid = Deidentifier(SECRET, "T1", safe_private_tags=["0009,02,ACME 1.0"])
    original = ct_slice(0)
    original.add_new(0x00091002, "DS", "2.5")
    out = deid.deidentify(original, subject_id="S1")
    assert out[0x00091002].value == "2.5"
    assert out[0x00090010].value == "ACME 1.0"
    assert 0x00091001 not in out
    assert 0x00091010 not in out
    codes = {i.CodeValue for i in out.DeidentificationMethodCodeSequence}
    assert "113111" in codes
    with pytest.raises(DeidentificationError):
        Deidentifier(SECRET, "T1", safe_private_tags=["0008,01,X"])


def test_burned_in_annotation_is_quarantined(deid: Deidentifier) -> None:
    original = ct_slice(0)
    original.BurnedInAnnotation = "YES"
    with pytest.raises(BurnedInTextError) as excinfo:
        deid.deidentify(original, subject_id="S1")
    assert "BurnedInAnnotation" in excinfo.value.reason
    us = ct_slice(0)
    us.Modality = "US"
    assert deid.check(us) is not None
    assert deid.check(ct_slice(0)) is None


def test_missing_sop_instance_uid_is_rejected(deid: Deidentifier) -> None:
    original = ct_slice(0)
    del original.SOPInstanceUID
    with pytest.raises(DeidentificationError, match="SOP Instance UID"):
        deid.deidentify(original)


def test_accession_and_birth_date_not_in_output_bytes(deid: Deidentifier) -> None:
    original = ct_slice(0)
    buf = io.BytesIO()
    deid.deidentify(original, subject_id="S1").save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    for value in (ACCESSION, BIRTH_DATE, PATIENT_ID, "DOE^JANE"):
        assert value.encode() not in data


def _all_values(ds: Dataset, keyword: str) -> list[str]:
    found: list[str] = []
    for elem in ds.iterall():
        if elem.keyword == keyword:
            found.append(str(elem.value))
    return found


def test_segmentation_references_follow_the_remapped_images(
    deid: Deidentifier,
) -> None:
    import highdicom as hd
    import numpy as np

    series = ct_series(3)
    mask = np.zeros((3, 16, 16), dtype=bool)
    mask[1, 4:8, 4:8] = True
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="lesion",
        segmented_property_category=hd.sr.CodedConcept(
            "49755003", "SCT", "Morphologically Altered Structure"
        ),
        segmented_property_type=hd.sr.CodedConcept("4147007", "SCT", "Mass"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="test", version="1", family=hd.sr.CodedConcept("123109", "DCM", "x")
        ),
    )
    seg = hd.seg.Segmentation(
        source_images=series,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="x",
        manufacturer_model_name="y",
        software_versions="1",
        device_serial_number="1",
    )
    images = [deid.deidentify(ds, subject_id="S1") for ds in series]
    out = _roundtrip(deid.deidentify(seg, subject_id="S1"))

    image_uids = {ds.SOPInstanceUID for ds in images}
    references = _all_values(out, "ReferencedSOPInstanceUID")
    assert references and set(references) == image_uids
    assert out.StudyInstanceUID == images[0].StudyInstanceUID
    assert out.FrameOfReferenceUID == images[0].FrameOfReferenceUID
    referenced_series = out.ReferencedSeriesSequence[0].SeriesInstanceUID
    assert referenced_series == images[0].SeriesInstanceUID
    assert PhiGuard.from_datasets([*series, seg]).scan(out) == []

    back = hd.seg.Segmentation.from_dataset(out)
    assert back.SegmentSequence[0].SegmentLabel == "lesion"
    assert np.array_equal(back.pixel_array, seg.pixel_array)
