"""DICOM SEG and TID 1500 SR: written with highdicom, read back identical."""

from __future__ import annotations

import io

import numpy as np
import pytest

hd = pytest.importorskip("highdicom")

from pydicom import dcmread  # noqa: E402

from models.dicom_outputs import (  # noqa: E402
    read_measurement_report,
    sort_source_images,
    write_measurement_report,
    write_segmentation,
)
from models.quantify import measure_lesions_with_geometry  # noqa: E402
from tests._quantify_fixtures import (  # noqa: E402
    ct_datasets,
    ellipsoid_mask,
    make_volume,
    rotation,
    voxel_centre,
)
from triallens.errors import GeometryError  # noqa: E402


def _roundtrip(dataset):
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return dcmread(buffer)


@pytest.fixture(params=[np.eye(3), rotation("x", 12.0)], ids=["axial", "tilted"])
def measured_series(request):
    vol = make_volume((12, 64, 64), (3.0, 1.2, 1.2), request.param)
    labels = np.zeros(vol.shape, dtype=np.uint8)
    axes = request.param
    labels[ellipsoid_mask(vol, voxel_centre(vol, 20, 22, 6), (12, 8, 7), axes)] = 1
    labels[ellipsoid_mask(vol, voxel_centre(vol, 45, 44, 5), (9, 7.5, 6), axes)] = 2
    vol.pixels = np.where(labels > 0, 60.0, -50.0).astype(np.float32)
    images = ct_datasets(vol)
    measured = measure_lesions_with_geometry(labels, vol)
    return vol, images, labels, measured


def test_segmentation_round_trip(measured_series):
    vol, images, labels, _ = measured_series
    shuffled = images[::-1]
    ordered = sort_source_images(shuffled, vol.sop_instance_uids)
    assert [d.SOPInstanceUID for d in ordered] == vol.sop_instance_uids
    assert [d.SOPInstanceUID for d in sort_source_images(shuffled)] == (
        vol.sop_instance_uids
    )
    seg = write_segmentation(
        ordered,
        labels,
        {1: "lesion", 2: "lymph node"},
        model_name="recist_ct",
        model_version="sha256:0123456789abcdef",
    )
    back = hd.seg.Segmentation.from_dataset(_roundtrip(seg))
    assert [d.SegmentLabel for d in back.SegmentSequence] == ["lesion", "lymph node"]
    algo = back.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algo.AlgorithmVersion == "sha256:0123456789abcdef"
    assert algo.AlgorithmName == "recist_ct"
    # Segments come back on the source images, slice for slice.
    restored = back.get_pixels_by_source_instance(
        vol.sop_instance_uids, combine_segments=True, relabel=True
    )
    assert np.array_equal(np.asarray(restored, dtype=np.uint8), labels)


def test_measurement_report_round_trip(measured_series):
    vol, images, _, measured = measured_series
    tracking = {m.lesion_id: f"T{n + 1:02d}" for n, (m, _) in enumerate(measured)}
    uids = {m.lesion_id: f"2.25.{1000 + n}" for n, (m, _) in enumerate(measured)}
    sr = write_measurement_report(
        images,
        measured,
        time_point="W08",
        model_name="recist_ct",
        model_version="sha256:0123456789abcdef",
        tracking=tracking,
        tracking_uids=uids,
    )
    back = read_measurement_report(_roundtrip(sr))
    assert len(back) == len(measured) == 2
    for (lesion, geometry), reported in zip(measured, back, strict=True):
        assert reported.tracking_identifier == tracking[lesion.lesion_id]
        assert reported.tracking_uid == uids[lesion.lesion_id]
        assert reported.time_point == "W08"
        assert reported.long_axis_mm == pytest.approx(lesion.longest_diameter_mm)
        assert reported.short_axis_mm == pytest.approx(lesion.short_axis_mm)
        assert reported.volume_ml == pytest.approx(lesion.volume_ml)
        key_uid = vol.sop_instance_uids[geometry.slice_index]
        assert reported.referenced_sop_instance_uid == key_uid
    assert {r.finding_type for r in back} == {"Lesion", "Lymph Node"}
    assert back[0].long_axis_mm == pytest.approx(24.0, abs=1.0)


def test_empty_or_mismatched_masks_raise(measured_series):
    _, images, labels, _ = measured_series
    with pytest.raises(GeometryError):
        write_segmentation(
            images, np.zeros_like(labels), {}, model_name="m", model_version="v"
        )
    with pytest.raises(GeometryError):
        write_segmentation(
            images[:-1], labels, {1: "lesion"}, model_name="m", model_version="v"
        )
