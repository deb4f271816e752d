"""Geometry on the real public DICOM files of ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests._shared import shared_data
from triallens.geometry import QcCode, SeriesVolume, build_volumes
from triallens.selection import classify_orientation

ODDITIES = "geometry_oddities_noise_pixels_dicom2nifti"


def _read(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]


def _codes(volume: SeriesVolume) -> set[str]:
    return {flag.code for flag in volume.qc_flags}


def _projections(datasets: list[pydicom.Dataset]) -> dict[str, float]:
    iop = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    return {
        ds.SOPInstanceUID: float(
            np.array(ds.ImagePositionPatient, dtype=float) @ normal
        )
        for ds in datasets
    }


def test_real_head_ct_tilt_and_variable_spacing() -> None:
    datasets = _read(shared_data("ct_head_gantry_tilt_variable_spacing_ge"))
    (volume,) = build_volumes(datasets)

    assert volume.shape == (28, 512, 512)
    assert volume.spacing[1:] == pytest.approx(
        tuple(float(v) for v in datasets[0].PixelSpacing)
    )
    projections = _projections(datasets)
    order = [projections[uid] for uid in volume.sop_instance_uids]
    assert order == sorted(order)
    gaps = set(np.round(np.diff(order), 1))
    assert gaps == {1.1, 4.0, 7.0}
    assert volume.slice_positions_mm == pytest.approx(order)

    assert _codes(volume) == {QcCode.UNEVEN, QcCode.GANTRY_TILT}
    tilt = next(f for f in volume.qc_flags if f.code == QcCode.GANTRY_TILT)
    assert "18.5 deg" in tilt.reason
    assert not volume.measurable
    assert "uneven" in volume.not_measurable_reason
    # Signed stored values with intercept 0: air near -1000 HU or below.
    assert volume.pixels.min() < -900
    assert classify_orientation(volume) == "axial"


@pytest.mark.parametrize(
    "folder", ["mr_brain_t1_sag_35sl_hfs", "mr_brain_t1_sag_35sl_hfdr_decubitus"]
)
def test_real_mr_sagittal_spacing_and_order(folder: str) -> None:
    datasets = _read(shared_data(folder))
    (volume,) = build_volumes(datasets)

    assert volume.shape == (35, 256, 256)
    assert volume.spacing == pytest.approx((4.8, 1.015625, 1.015625))
    assert volume.qc_flags == []
    assert volume.measurable
    assert volume.slice_thickness_mm == pytest.approx(4.0)
    assert classify_orientation(volume) == "sagittal"
    projections = _projections(datasets)
    order = [projections[uid] for uid in volume.sop_instance_uids]
    assert np.diff(order) == pytest.approx([4.8] * 34, abs=1e-3)
    first = next(
        ds for ds in datasets if ds.SOPInstanceUID == volume.sop_instance_uids[0]
    )
    assert volume.affine[:3, 3] == pytest.approx(
        [float(v) for v in first.ImagePositionPatient]
    )


def test_decubitus_and_supine_copies_share_geometry() -> None:
    hfs = build_volumes(_read(shared_data("mr_brain_t1_sag_35sl_hfs")))[0]
    hfdr = build_volumes(_read(shared_data("mr_brain_t1_sag_35sl_hfdr_decubitus")))[0]
    assert np.allclose(hfs.affine, hfdr.affine)


@pytest.mark.parametrize(
    ("sub", "expected", "slices", "measurable"),
    [
        ("gantrytilting", {QcCode.GANTRY_TILT}, 4, True),
        ("sliceincrement", {QcCode.MISSING}, 4, False),
        ("sliceincrement/002", {QcCode.MISSING, QcCode.GANTRY_TILT}, 4, False),
        ("notavolume", {QcCode.DUPLICATE, QcCode.TOO_FEW}, 1, False),
        ("slicecount", {QcCode.TOO_FEW}, 2, False),
    ],
)
def test_geometry_oddities(
    sub: str, expected: set[str], slices: int, measurable: bool
) -> None:
    folder = shared_data(ODDITIES) / sub
    (volume,) = build_volumes(_read(folder))
    assert _codes(volume) == expected
    assert volume.shape[0] == slices
    assert volume.measurable is measurable
    if not measurable:
        assert volume.not_measurable_reason


def test_tilt_angle_without_the_tilt_tag() -> None:
    datasets = _read(shared_data(ODDITIES) / "gantrytilting")
    assert "GantryDetectorTilt" not in datasets[0]
    (volume,) = build_volumes(datasets)
    reason = next(f.reason for f in volume.qc_flags if f.code == QcCode.GANTRY_TILT)
    assert "14.0 deg" in reason
    assert volume.spacing[0] == pytest.approx(5.0, abs=1e-3)


def test_missing_slice_step_is_the_regular_one() -> None:
    (volume,) = build_volumes(_read(shared_data(ODDITIES) / "sliceincrement"))
    assert volume.spacing[0] == pytest.approx(5.0, abs=0.01)
    assert "10.00 mm" in next(f.reason for f in volume.qc_flags)


def test_mixed_orientations_split() -> None:
    volumes = build_volumes(_read(shared_data(ODDITIES) / "sliceorientation"))
    assert len(volumes) == 2
    for volume in volumes:
        assert QcCode.MIXED_ORIENTATION in _codes(volume)
        assert volume.shape[0] == 2
    normals = [v.slice_normal for v in volumes]
    assert abs(float(normals[0] @ normals[1])) < 0.9


def test_enhanced_philips_split_by_frame_type() -> None:
    folder = shared_data("enhanced_multiframe") / "dcm_qa_enh_philips"
    (ds,) = _read(folder)
    volumes = build_volumes([ds])
    assert len(volumes) == 2
    assert {v.image_type[-1] for v in volumes} == {"M", "FIELD_MAP"}
    for volume in volumes:
        assert volume.shape == (32, 64, 64)
        assert volume.spacing[0] == pytest.approx(4.0, abs=1e-3)
        assert volume.measurable
    field_map = next(v for v in volumes if v.image_type[-1] == "FIELD_MAP")
    # Per-frame rescale: slope 0.2442, intercept -500 gives negative values.
    assert field_map.pixels.min() < 0
    assert "ImagePositionPatient" not in ds
    assert "PixelSpacing" not in ds


def test_enhanced_siemens_time_points() -> None:
    datasets = _read(shared_data("enhanced_multiframe") / "dcm_qa_enh_siemens_xa10")
    volumes = build_volumes(datasets)
    assert len(volumes) == 4
    assert [v.temporal_index for v in volumes] == [0, 1, 2, 3]
    for volume in volumes:
        assert volume.shape == (6, 64, 64)
        assert volume.spacing[0] == pytest.approx(2.4, abs=1e-3)
        assert volume.measurable


def test_enhanced_ct_and_mr_without_plane_geometry() -> None:
    folder = shared_data("enhanced_multiframe") / "pydicom_data"
    ect = build_volumes([pydicom.dcmread(folder / "eCT_Supplemental.dcm")])
    assert len(ect) == 1
    assert ect[0].shape[0] == 2
    assert ect[0].spacing[0] == pytest.approx(10.0)
    assert QcCode.TOO_FEW in _codes(ect[0])

    emri = build_volumes([pydicom.dcmread(folder / "emri_small.dcm")])
    assert emri[0].shape == (10, 64, 64)
    assert not emri[0].measurable
    assert QcCode.NO_GEOMETRY in _codes(emri[0])


def test_transfer_syntaxes_give_identical_rescaled_pixels() -> None:
    folder = shared_data("transfer_syntax_and_encoding_oddities_pydicom")
    reference = build_volumes([pydicom.dcmread(folder / "MR_small.dcm")])[0]
    assert reference.shape == (1, 64, 64)
    assert not reference.measurable  # one slice: no slice spacing
    for syntax in ("_implicit", "_bigendian", "_RLE", "_jp2klossless"):
        (volume,) = build_volumes([pydicom.dcmread(folder / f"MR_small{syntax}.dcm")])
        assert np.array_equal(volume.pixels, reference.pixels), syntax
        assert np.allclose(volume.affine, reference.affine), syntax


def test_secondary_capture_without_plane_geometry_is_not_measurable() -> None:
    folder = shared_data("deid_phi_burned_in_deid_data")
    volumes = build_volumes([pydicom.dcmread(folder / "GREYSCALE_IMAGE.dcm")])
    assert len(volumes) == 1
    assert not volumes[0].measurable
    assert volumes[0].not_measurable_reason
