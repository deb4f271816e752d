"""Synthetic DICOM instances with planted PHI for de-identification tests."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

PATIENT_NAME = "DOE^JANE^Q"
PATIENT_ID = "MRN-884422"
BIRTH_DATE = "19610417"
INSTITUTION = "SAINT ELSEWHERE HOSPITAL"
ACCESSION = "ACC99887766"


def ct_slice(
    index: int = 0,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_uid: str | None = None,
    study_date: str = "20240312",
    patient_id: str = PATIENT_ID,
    subject_id: str | None = None,
    rows: int = 16,
    cols: int = 16,
    spacing: float = 2.5,
    position_z: float | None = None,
) -> Dataset:
    """One axial CT slice with identifying values in the usual places."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.FrameOfReferenceUID = frame_uid or generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = patient_id
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientSex = "F"
    ds.PatientAddress = "12 ELM STREET, SPRINGFIELD"
    ds.OtherPatientIDs = "OTHER-5566"
    ds.InstitutionName = INSTITUTION
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.OperatorsName = "NURSE^RATCHED"
    ds.AccessionNumber = ACCESSION
    ds.StudyID = "ST7788"
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.AcquisitionDate = study_date
    ds.ContentDate = study_date
    ds.StudyTime = "101500"
    ds.ContentTime = "101700.123"
    ds.AcquisitionDateTime = f"{study_date}101600.000000"
    ds.StudyDescription = "CT CHEST ABDOMEN PELVIS WITH CONTRAST"
    ds.SeriesDescription = "AXIAL 2.5MM PORTAL VENOUS"
    ds.ImageComments = "Patient DOE JANE arrived late"
    ds.Modality = "CT"
    ds.Manufacturer = "TESTVENDOR"
    ds.ContrastBolusAgent = "OMNIPAQUE 350"
    ds.SeriesNumber = 3
    ds.InstanceNumber = index + 1
    z = position_z if position_z is not None else -100.0 + index * spacing
    ds.ImagePositionPatient = [-20.0, -20.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.75, 0.75]
    ds.SliceThickness = spacing
    ds.RescaleSlope = 1
    ds.RescaleIntercept = -1024
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    pixels = (
        np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols) + index
    ) % 4096
    ds.PixelData = pixels.tobytes()
    if subject_id:
        ds.ClinicalTrialSubjectID = subject_id
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    ds.ReferencedImageSequence = Sequence([ref])
    ds.add_new(0x00091010, "LO", "GEMS_PRIVATE")
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "LO", PATIENT_NAME)
    return ds


def ct_series(count: int = 4, **kwargs: object) -> list[Dataset]:
    """A small axial CT series sharing study, series and frame of reference."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    return [
        ct_slice(i, study_uid=study, series_uid=series, frame_uid=frame, **kwargs)
        for i in range(count)
    ]
