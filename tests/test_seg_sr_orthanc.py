"""SEG and SR stored in a real Orthanc with STOW-RS and read back identical."""

from __future__ import annotations

import numpy as np
import pytest

hd = pytest.importorskip("highdicom")

from models.dicom_outputs import (  # noqa: E402
    read_measurement_report,
    write_measurement_report,
    write_segmentation,
)
from models.quantify import measure_lesions_with_geometry  # noqa: E402
from tests._orthanc_fixtures import orthanc  # noqa: E402, F401
from tests._quantify_fixtures import (  # noqa: E402
    ct_datasets,
    ellipsoid_mask,
    make_volume,
    voxel_centre,
)
from tools.pacs.dicomweb import DicomWebPacs  # noqa: E402


@pytest.mark.orthanc
@pytest.mark.slow
def test_seg_and_sr_round_trip_through_orthanc(orthanc):  # noqa: F811
    vol = make_volume((10, 48, 48), (3.0, 1.2, 1.2))
    labels = np.zeros(vol.shape, dtype=np.uint8)
    labels[ellipsoid_mask(vol, voxel_centre(vol, 16, 18, 5), (10, 7, 6), np.eye(3))] = 1
    labels[ellipsoid_mask(vol, voxel_centre(vol, 34, 33, 5), (8, 7, 5), np.eye(3))] = 2
    vol.pixels = np.where(labels > 0, 60.0, -40.0).astype(np.float32)
    images = ct_datasets(vol)
    measured = measure_lesions_with_geometry(labels, vol)
    seg = write_segmentation(
        images,
        labels,
        {1: "lesion", 2: "lymph node"},
        model_name="recist_ct",
        model_version="sha256:00aa",
    )
    sr = write_measurement_report(
        images,
        measured,
        time_point="BL",
        model_name="recist_ct",
        model_version="sha256:00aa",
        tracking={m.lesion_id: f"T0{n + 1}" for n, (m, _) in enumerate(measured)},
    )
    pacs = DicomWebPacs(orthanc.dicomweb_url, timeout_s=20, retries=1)
    try:
        report = pacs.store([*images, seg, sr])
        assert report.ok, report.failed
        study = images[0].StudyInstanceUID
        seg_back = pacs.retrieve_instance(
            study, seg.SeriesInstanceUID, seg.SOPInstanceUID
        )
        sr_back = pacs.retrieve_instance(study, sr.SeriesInstanceUID, sr.SOPInstanceUID)
    finally:
        pacs.close()

    seg_read = hd.seg.Segmentation.from_dataset(seg_back)
    restored = seg_read.get_pixels_by_source_instance(
        vol.sop_instance_uids, combine_segments=True, relabel=True
    )
    assert np.array_equal(np.asarray(restored, dtype=np.uint8), labels)
    lesions = read_measurement_report(sr_back)
    assert [r.tracking_identifier for r in lesions] == ["T01", "T02"]
    for (m, _), r in zip(measured, lesions, strict=True):
        assert r.long_axis_mm == pytest.approx(m.longest_diameter_mm)
        assert r.short_axis_mm == pytest.approx(m.short_axis_mm)
        assert r.time_point == "BL"
