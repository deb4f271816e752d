"""Analytic shapes on synthetic grids for the measurement tests."""

from __future__ import annotations

import numpy as np

from triallens.geometry.volume import SeriesVolume


def rotation(axis: str, degrees: float) -> np.ndarray:
    """A 3x3 rotation about the x, y or z axis."""
    t = np.radians(degrees)
    c, s = np.cos(t), np.sin(t)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def make_volume(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    orientation: np.ndarray | None = None,
    slice_shear_mm: float = 0.0,
    origin: tuple[float, float, float] = (-100.0, -80.0, 20.0),
) -> SeriesVolume:
    """A zero volume; ``spacing`` is (slice, row, column) in mm.

    ``orientation`` columns are the row direction, the column direction and the
    normal. ``slice_shear_mm`` shifts each slice along the column direction, as
    a gantry tilt does, without changing the distance between planes.
    """
    r = np.eye(3) if orientation is None else np.asarray(orientation, dtype=float)
    affine = np.eye(4)
    affine[:3, 0] = r[:, 0] * spacing[2]
    affine[:3, 1] = r[:, 1] * spacing[1]
    affine[:3, 2] = r[:, 2] * spacing[0] + r[:, 1] * slice_shear_mm
    affine[:3, 3] = origin
    return SeriesVolume(
        series_uid="1.2.3.4",
        modality="CT",
        pixels=np.zeros(shape, dtype=np.float32),
        affine=affine,
    )


def patient_grid(volume: SeriesVolume) -> np.ndarray:
    """Patient coordinates (mm) of every voxel centre, shape (k, j, i, 3)."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in volume.shape), indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).astype(float)
    return volume.index_to_patient(ijk)


def ellipsoid_mask(
    volume: SeriesVolume,
    centre_mm: np.ndarray,
    semi_axes_mm: tuple[float, float, float],
    axes: np.ndarray,
) -> np.ndarray:
    """Voxels whose centres lie in an ellipsoid; ``axes`` columns are its axes."""
    rel = patient_grid(volume) - np.asarray(centre_mm, dtype=float)
    local = rel @ np.asarray(axes, dtype=float)
    q = sum((local[..., n] / semi_axes_mm[n]) ** 2 for n in range(3))
    return q <= 1.0


def voxel_centre(volume: SeriesVolume, i: float, j: float, k: float) -> np.ndarray:
    return volume.index_to_patient(np.array([i, j, k], dtype=float))


def ct_datasets(volume: SeriesVolume, study_uid: str = "") -> list:
    """Single-frame CT datasets of a volume (axis-aligned or oblique), in k order.

    Returns pydicom datasets with the image plane, pixel and patient modules
    highdicom needs; pixel values are stored as HU + 1024.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    frame_uid = generate_uid()
    row_dir = volume.row_direction
    col_dir = volume.column_direction
    _, row_mm, col_mm = volume.spacing
    out = []
    uids = []
    for k in range(volume.shape[0]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        sop_uid = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "CT"
        ds.PatientID = "SUBJ-001"
        ds.PatientName = "SUBJ-001^"
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.StudyDate = "20260101"
        ds.StudyTime = "120000"
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.Manufacturer = "Phantom"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [float(v) for v in volume.index_to_patient([0, 0, k])]
        ds.ImageOrientationPatient = [float(v) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [float(row_mm), float(col_mm)]
        ds.SliceThickness = float(volume.spacing[0])
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = -1024.0
        ds.RescaleSlope = 1.0
        stored = np.clip(np.rint(volume.pixels[k] + 1024.0), 0, 65535).astype(np.uint16)
        ds.PixelData = stored.tobytes()
        out.append(ds)
        uids.append(sop_uid)
    volume.sop_instance_uids = uids
    return out
