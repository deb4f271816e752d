"""Writing synthetic studies as standard single-frame CT and MR instances.

Every instance carries the Patient, General Study, Patient Study, General
Series, Clinical Trial Subject/Study/Series (PS3.3 C.7.1.3, C.7.2.3, C.7.3.2),
Frame of Reference, General Equipment, General Acquisition, General Image,
Image Plane, Image Pixel, CT Image or MR Image, (Contrast/Bolus) and SOP Common
modules. Pixel data is little-endian explicit VR, uncompressed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
)

__all__ = [
    "PRIVATE_CREATOR",
    "PRIVATE_NAME_TAG",
    "SeriesGeometry",
    "SeriesSpec",
    "StudyContext",
    "UidFactory",
    "write_series",
]

logger = logging.getLogger(__name__)

IMPLEMENTATION_CLASS_UID = "2.25.163059243071582960785741622516744196011"
IMPLEMENTATION_VERSION = "TRIALLENS_SYN1"
PRIVATE_CREATOR = "TRIALLENS SYNTH PATIENT"
PRIVATE_GROUP = 0x0029
# The private element that repeats the patient's name (block 0x10, offset 0x01).
PRIVATE_NAME_TAG = (PRIVATE_GROUP, 0x1001)


class UidFactory:
    """Deterministic UIDs: the same seed and names give the same UID."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, *names: object) -> str:
        # A 2.25 UID (PS3.5 B.2) from a 128-bit hash of the seed and names.
        sources = ["triallens-synth", str(self.seed), *(str(n) for n in names)]
        digest = hashlib.sha256("\x1f".join(sources).encode("utf-8")).digest()
        return f"2.25.{int.from_bytes(digest[:16], 'big')}"


@dataclass
class StudyContext:
    """Everything study- and patient-level, identical across a study's series.

    ``phi`` holds the planted identifying values (names, MRN, dates, ...);
    ``trial`` the Clinical Trial Subject and Study attributes.
    """

    study_uid: str
    frame_of_reference_uid: str
    study_date: str
    study_time: str
    study_description: str
    phi: dict[str, str]
    trial: dict[str, str | float]
    equipment: dict[str, str]


@dataclass
class SeriesGeometry:
    """Orientation and position of a series' slices (patient LPS, mm)."""

    row_direction: Sequence[float]
    column_direction: Sequence[float]
    positions: Sequence[Sequence[float]]
    pixel_spacing: tuple[float, float]
    slice_thickness: float | None
    spacing_between_slices: float | None = None


@dataclass
class SeriesSpec:
    """One series to write: pixel stack, geometry and acquisition details."""

    series_uid: str
    series_number: int
    description: str
    modality: str
    body_part: str
    image_type: list[str]
    pixels: np.ndarray
    geometry: SeriesGeometry
    rescale: tuple[float, float] | None = (1.0, -1024.0)
    window: tuple[float, float] = (40.0, 400.0)
    contrast_agent: str | None = None
    burned_in: bool = False
    trigger_times: Sequence[float] | None = None
    position_index: Sequence[int] | None = None
    acquisition: dict[str, object] = field(default_factory=dict)
    sop_uids: list[str] = field(default_factory=list)


def write_series(
    context: StudyContext, spec: SeriesSpec, folder: Path, uids: UidFactory
) -> list[Path]:
    """Write one instance per 2-D image of ``spec.pixels`` into ``folder``.

    ``spec.pixels`` is ``[n, rows, columns]`` stored values (int16 for CT,
    uint16 for MR). ``spec.geometry.positions[position_index[n]]`` is the
    position of image ``n``; ``trigger_times[n]`` its cardiac phase time.
    """
    folder.mkdir(parents=True, exist_ok=True)
    base = _series_dataset(context, spec)
    count, rows, columns = spec.pixels.shape
    positions = spec.geometry.positions
    index = list(spec.position_index) if spec.position_index else list(range(count))
    normal = np.cross(
        np.asarray(spec.geometry.row_direction, float),
        np.asarray(spec.geometry.column_direction, float),
    )
    sop_class = CTImageStorage if spec.modality == "CT" else MRImageStorage
    paths = []
    for n in range(count):
        sop_uid = uids(context.study_uid, spec.series_uid, "sop", n)
        spec.sop_uids.append(sop_uid)
        ds = Dataset()
        ds.update(base)
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = n + 1
        position = [float(v) for v in positions[index[n]]]
        ds.ImagePositionPatient = [round(v, 4) for v in position]
        ds.SliceLocation = round(float(np.dot(normal, position)), 4)
        if spec.trigger_times is not None:
            ds.TriggerTime = round(float(spec.trigger_times[n]), 2)
        ds.Rows, ds.Columns = rows, columns
        ds.PixelData = np.ascontiguousarray(spec.pixels[n]).tobytes()

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION
        ds.file_meta = meta
        path = folder / f"{n + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _series_dataset(context: StudyContext, spec: SeriesSpec) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    phi = context.phi

    # Patient and Patient Study modules.
    ds.PatientName = phi["PatientName"]
    ds.PatientID = phi["PatientID"]
    ds.IssuerOfPatientID = phi["IssuerOfPatientID"]
    ds.PatientBirthDate = phi["PatientBirthDate"]
    ds.PatientSex = phi["PatientSex"]
    ds.PatientAge = phi["PatientAge"]
    ds.PatientAddress = phi["PatientAddress"]
    ds.PatientTelephoneNumbers = phi["PatientTelephoneNumbers"]
    ds.PatientSize = phi["PatientSize"]
    ds.PatientWeight = phi["PatientWeight"]

    # Clinical Trial Subject module (C.7.1.3).
    trial = context.trial
    ds.ClinicalTrialSponsorName = trial["ClinicalTrialSponsorName"]
    ds.ClinicalTrialProtocolID = trial["ClinicalTrialProtocolID"]
    ds.ClinicalTrialProtocolName = trial["ClinicalTrialProtocolName"]
    ds.ClinicalTrialSiteID = trial["ClinicalTrialSiteID"]
    ds.ClinicalTrialSiteName = trial["ClinicalTrialSiteName"]
    ds.ClinicalTrialSubjectID = trial["ClinicalTrialSubjectID"]

    # General Study and Clinical Trial Study modules (C.7.2.1, C.7.2.3).
    ds.StudyInstanceUID = context.study_uid
    ds.StudyDate = context.study_date
    ds.StudyTime = context.study_time
    ds.ReferringPhysicianName = phi["ReferringPhysicianName"]
    ds.StudyID = phi["StudyID"]
    ds.AccessionNumber = phi["AccessionNumber"]
    ds.StudyDescription = context.study_description
    ds.ClinicalTrialTimePointID = trial["ClinicalTrialTimePointID"]
    ds.ClinicalTrialTimePointDescription = trial["ClinicalTrialTimePointDescription"]
    ds.LongitudinalTemporalOffsetFromEvent = float(
        trial["LongitudinalTemporalOffsetFromEvent"]
    )
    ds.LongitudinalTemporalEventType = trial["LongitudinalTemporalEventType"]

    # General Series and Clinical Trial Series modules (C.7.3.1, C.7.3.2).
    ds.Modality = spec.modality
    ds.SeriesInstanceUID = spec.series_uid
    ds.SeriesNumber = spec.series_number
    ds.SeriesDate = context.study_date
    ds.SeriesTime = context.study_time
    ds.SeriesDescription = spec.description
    ds.BodyPartExamined = spec.body_part
    ds.PatientPosition = "HFS"
    ds.OperatorsName = phi["OperatorsName"]
    ds.PerformingPhysicianName = phi["PerformingPhysicianName"]
    ds.ClinicalTrialCoordinatingCenterName = "TrialLens Imaging Core Lab"
    ds.ClinicalTrialSeriesID = f"S{spec.series_number:02d}"
    ds.ClinicalTrialSeriesDescription = spec.description

    # Frame of Reference and General Equipment modules.
    ds.FrameOfReferenceUID = context.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = context.equipment["Manufacturer"]
    ds.ManufacturerModelName = context.equipment["ManufacturerModelName"]
    ds.DeviceSerialNumber = context.equipment["DeviceSerialNumber"]
    ds.SoftwareVersions = context.equipment["SoftwareVersions"]
    ds.StationName = phi["StationName"]
    ds.InstitutionName = phi["InstitutionName"]
    ds.InstitutionAddress = phi["InstitutionAddress"]
    ds.InstitutionalDepartmentName = phi["InstitutionalDepartmentName"]

    # General Acquisition and General Image modules.
    ds.AcquisitionNumber = 1
    ds.AcquisitionDate = context.study_date
    ds.AcquisitionTime = context.study_time
    ds.ContentDate = context.study_date
    ds.ContentTime = context.study_time
    ds.ImageType = spec.image_type
    ds.BurnedInAnnotation = "YES" if spec.burned_in else "NO"
    ds.LossyImageCompression = "00"

    # Image Plane module (C.7.6.2).
    geometry = spec.geometry
    ds.ImageOrientationPatient = [
        round(float(v), 6)
        for v in [*geometry.row_direction, *geometry.column_direction]
    ]
    ds.PixelSpacing = [round(float(v), 6) for v in geometry.pixel_spacing]
    ds.SliceThickness = (
        round(geometry.slice_thickness, 4) if geometry.slice_thickness else None
    )
    if geometry.spacing_between_slices:
        ds.SpacingBetweenSlices = round(geometry.spacing_between_slices, 4)

    # Image Pixel module.
    signed = spec.pixels.dtype == np.int16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.WindowCenter = spec.window[0]
    ds.WindowWidth = spec.window[1]

    # CT Image or MR Image module, with acquisition details.
    if spec.rescale is not None:
        ds.RescaleSlope = spec.rescale[0]
        ds.RescaleIntercept = spec.rescale[1]
        if spec.modality == "CT" and "LOCALIZER" not in spec.image_type:
            ds.RescaleType = "HU"
    for keyword, value in spec.acquisition.items():
        setattr(ds, keyword, value)

    # Contrast/Bolus module (C.7.6.4), present only when contrast was given.
    if spec.contrast_agent:
        ds.ContrastBolusAgent = spec.contrast_agent
        ds.ContrastBolusRoute = "IV"
        ds.ContrastBolusVolume = 100
        ds.ContrastBolusIngredient = "IODINE"
        ds.ContrastBolusIngredientConcentration = 350

    # A vendor-style private block that repeats the patient's name.
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", phi["PatientName"].replace("^", " ")[:64])

    ds.InstanceCreationDate = context.study_date
    ds.InstanceCreationTime = context.study_time
    return ds
