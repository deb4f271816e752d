"""Volume geometry: ordering, spacing, affine, rescale and QC flags."""

from __future__ import annotations

import random

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from tests._deid_fixtures import ct_series, ct_slice
from triallens.geometry import GeometryTolerances, QcCode, build_volumes


def _codes(volume: object) -> set[str]:
    return {flag.code for flag in volume.qc_flags}  # type: ignore[attr-defined]


def test_slices_ordered_along_normal_whatever_the_input_order() -> None:
    series = ct_series(6, spacing=2.5)
    shuffled = series[:]
    random.Random(3).shuffle(shuffled)
    (volume,) = build_volumes(shuffled)

    assert volume.shape == (6, 16, 16)
    assert volume.spacing == pytest.approx((2.5, 0.75, 0.75))
    assert volume.sop_instance_uids == [ds.SOPInstanceUID for ds in series]
    assert volume.measurable and volume.qc_flags == []
    # affine @ (i, j, k) is the centre of voxel (k, j, i) in LPS.
    corner = volume.index_to_patient(np.array([3.0, 2.0, 4.0]))
    assert corner == pytest.approx([-20 + 3 * 0.75, -20 + 2 * 0.75, -100 + 4 * 2.5])
    # Rescale: stored + index with intercept -1024.
    stored = series[4].pixel_array.astype(np.float32)
    assert volume.pixels.dtype == np.float32
    assert np.array_equal(volume.pixels[4], stored - 1024)


def test_rescale_applied_per_instance() -> None:
    series = ct_series(3)
    series[1].RescaleSlope = 2
    series[1].RescaleIntercept = -1000
    (volume,) = build_volumes(series)
    expected = series[1].pixel_array.astype(np.float32) * 2 - 1000
    assert np.array_equal(volume.pixels[1], expected)
    assert np.array_equal(volume.pixels[0], series[0].pixel_array - 1024.0)


def test_pixel_spacing_row_and_column_are_not_swapped() -> None:
    series = ct_series(3)
    for ds in series:
        ds.PixelSpacing = [0.5, 0.8]  # row spacing, column spacing
    (volume,) = build_volumes(series)
    _, row, col = volume.spacing
    assert (row, col) == pytest.approx((0.5, 0.8))
    assert volume.affine[:3, 0] == pytest.approx([0.8, 0, 0])
    assert volume.affine[:3, 1] == pytest.approx([0, 0.5, 0])


def test_missing_and_uneven_and_duplicate_slices_flagged() -> None:
    positions = [0.0, 5.0, 10.0, 20.0, 25.0]
    series = ct_series(5)
    for ds, z in zip(series, positions, strict=True):
        ds.ImagePositionPatient = [0.0, 0.0, z]
    (volume,) = build_volumes(series)
    assert QcCode.MISSING in _codes(volume)
    assert not volume.measurable
    assert "missing" in volume.not_measurable_reason

    series = ct_series(4)
    for ds, z in zip(series, [0.0, 5.0, 8.0, 13.0], strict=True):
        ds.ImagePositionPatient = [0.0, 0.0, z]
    (volume,) = build_volumes(series)
    assert QcCode.UNEVEN in _codes(volume)
    assert "uneven" in volume.not_measurable_reason

    series = ct_series(4)
    series[3].ImagePositionPatient = series[2].ImagePositionPatient
    (volume,) = build_volumes(series)
    assert QcCode.DUPLICATE in _codes(volume)
    assert volume.shape[0] == 3


def test_small_jitter_within_tolerance_is_even() -> None:
    series = ct_series(5, spacing=2.0)
    series[2].ImagePositionPatient = [-20.0, -20.0, -100 + 4.0 + 0.01]
    (volume,) = build_volumes(series)
    assert volume.measurable, volume.qc_flags
    strict = GeometryTolerances(gap_mm=0.001, gap_fraction=0.0)
    (volume,) = build_volumes(series, strict)
    assert QcCode.UNEVEN in _codes(volume)


def test_gantry_tilt_detected_from_geometry_without_the_tag() -> None:
    tilt = np.radians(20.0)
    series = ct_series(5, spacing=3.0)
    for index, ds in enumerate(series):
        ds.ImageOrientationPatient = [1, 0, 0, 0, np.cos(tilt), -np.sin(tilt)]
        ds.ImagePositionPatient = [0.0, 0.0, 3.0 * index]  # table moves along z
    (volume,) = build_volumes(series)
    assert QcCode.GANTRY_TILT in _codes(volume)
    assert "20.0 deg" in next(f.reason for f in volume.qc_flags)
    # The sheared affine puts every slice where its header says.
    for index, ds in enumerate(series):
        assert volume.index_to_patient(np.array([0.0, 0.0, index])) == pytest.approx(
            [float(v) for v in ds.ImagePositionPatient]
        )
    assert volume.voxel_volume_mm3 == pytest.approx(0.75 * 0.75 * 3.0 * np.cos(tilt))


def test_localizer_dropped_and_mixed_orientation_split() -> None:
    series = ct_series(4)
    scout = ct_slice(9, series_uid=series[0].SeriesInstanceUID)
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    (volume,) = build_volumes([*series, scout])
    assert QcCode.LOCALIZER in _codes(volume)
    assert volume.shape[0] == 4

    sagittal = ct_series(3)
    for ds in sagittal:
        ds.SeriesInstanceUID = series[0].SeriesInstanceUID
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [float(ds.InstanceNumber) * 4, 0.0, 0.0]
    volumes = build_volumes([*series, *sagittal])
    assert sorted(v.shape[0] for v in volumes) == [3, 4]
    assert all(QcCode.MIXED_ORIENTATION in _codes(v) for v in volumes)


def test_unknown_or_implausible_spacing_refuses_measurement() -> None:
    series = ct_series(3)
    for ds in series:
        del ds.PixelSpacing
    (volume,) = build_volumes(series)
    assert not volume.measurable
    assert "pixel spacing" in volume.not_measurable_reason

    single = ct_series(1)
    (volume,) = build_volumes(single)
    assert not volume.measurable
    assert "slice spacing unknown" in volume.not_measurable_reason

    two = ct_series(2)
    (volume,) = build_volumes(two)
    assert QcCode.TOO_FEW in _codes(volume)


def test_cine_positions_split_into_phases() -> None:
    study, series_uid, frame = generate_uid(), generate_uid(), generate_uid()
    datasets = []
    for slice_index in range(4):
        for phase in range(3):
            ds = ct_slice(
                slice_index,
                study_uid=study,
                series_uid=series_uid,
                frame_uid=frame,
                spacing=8.0,
            )
            ds.Modality = "MR"
            ds.TriggerTime = phase * 40.0 + slice_index  # drifts per slice
            ds.PixelData = np.full(
                (16, 16), phase * 10 + slice_index, dtype=np.uint16
            ).tobytes()
            datasets.append(ds)
    volumes = build_volumes(datasets)
    assert len(volumes) == 3
    assert [v.temporal_index for v in volumes] == [0, 1, 2]
    for phase, volume in enumerate(volumes):
        assert volume.shape == (4, 16, 16)
        assert volume.spacing[0] == pytest.approx(8.0)
        values = volume.pixels[:, 0, 0] + 1024
        assert values.tolist() == [phase * 10 + s for s in range(4)]
        assert QcCode.DUPLICATE not in _codes(volume)


def _enhanced(frames: int, spacing: float) -> Dataset:
    ds = ct_slice(0)
    ds.NumberOfFrames = frames
    for keyword in (
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "PixelSpacing",
        "SliceThickness",
        "RescaleSlope",
        "RescaleIntercept",
    ):
        delattr(ds, keyword)
    shared = Dataset()
    orient = Dataset()
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = Sequence([orient])
    measures = Dataset()
    measures.PixelSpacing = [0.6, 0.6]
    measures.SliceThickness = spacing
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for index in reversed(range(frames)):  # stored in reverse order
        item = Dataset()
        position = Dataset()
        position.ImagePositionPatient = [0.0, 0.0, 50.0 + index * spacing]
        item.PlanePositionSequence = Sequence([position])
        transform = Dataset()
        transform.RescaleSlope = 1
        transform.RescaleIntercept = -1000 - index
        item.PixelValueTransformationSequence = Sequence([transform])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    pixels = np.stack(
        [np.full((16, 16), 100 + i, dtype=np.uint16) for i in reversed(range(frames))]
    )
    ds.PixelData = pixels.tobytes()
    return ds


def test_enhanced_multiframe_geometry_from_functional_groups() -> None:
    ds = _enhanced(5, 1.5)
    (volume,) = build_volumes([ds])
    assert volume.shape == (5, 16, 16)
    assert volume.spacing == pytest.approx((1.5, 0.6, 0.6))
    assert volume.affine[:3, 3] == pytest.approx([0.0, 0.0, 50.0])
    # Frame at z index k had stored value 100 + k and intercept -1000 - k.
    assert volume.pixels[:, 0, 0].tolist() == [-900.0] * 5
    assert volume.measurable


def test_localizer_only_series_is_flagged_not_measured() -> None:
    scout = ct_series(2)
    for ds in scout:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    (volume,) = build_volumes(scout)
    assert _codes(volume) == {QcCode.LOCALIZER}
    assert not volume.measurable
    assert volume.not_measurable_reason == "localizer series"


def test_a_broken_copy_at_an_occupied_position_does_not_spoil_the_slice() -> None:
    import copy

    series = ct_series(4)
    broken = copy.deepcopy(series[2])
    broken.SOPInstanceUID = generate_uid()
    broken.PixelData = broken.PixelData[: len(broken.PixelData) // 2]
    for order in ([broken, *series], [*series, broken]):
        (volume,) = build_volumes(order)
        assert volume.measurable, volume.not_measurable_reason
        assert QcCode.DUPLICATE in _codes(volume)
        assert QcCode.DECODE not in _codes(volume)
        assert np.array_equal(volume.pixels[2], series[2].pixel_array - 1024.0)
