"""Series selection per task, with charter overrides and reasons."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import generate_uid

from tests._deid_fixtures import ct_series, ct_slice
from triallens.errors import ConfigurationError
from triallens.geometry import build_volumes
from triallens.selection import SelectionRules, classify_orientation, select_series


def _series(description: str, count: int = 5, **attrs: object) -> list:
    series = ct_series(count)
    for ds in series:
        ds.SeriesDescription = description
        if "ContrastBolusAgent" in ds:
            del ds.ContrastBolusAgent
        for key, value in attrs.items():
            setattr(ds, key, value)
    return series


def test_recist_picks_contrast_axial_ct_over_non_contrast_and_scout() -> None:
    plain = _series("AXIAL NON-CONTRAST 5MM")
    contrast = _series("AXIAL PORTAL VENOUS 2.5MM", ContrastBolusAgent="OMNIPAQUE")
    scout = _series("TOPOGRAM", count=3)
    volumes = build_volumes([*plain, *contrast, *scout])

    result = select_series(volumes, "recist_ct")
    assert result.volume is not None
    assert result.volume.series_uid == contrast[0].SeriesInstanceUID
    rejected = dict(result.rejected)
    assert "without contrast" in rejected[plain[0].SeriesInstanceUID]
    assert "topogram" in rejected[scout[0].SeriesInstanceUID]


def test_recist_without_contrast_series_says_why_and_charter_can_relax() -> None:
    plain = _series("AXIAL NON-CONTRAST")
    volumes = build_volumes(plain)
    result = select_series(volumes, "recist_ct")
    assert result.volume is None
    assert "without contrast" in result.reason
    assert "recist_ct" in result.reason

    relaxed = select_series(volumes, "recist_ct", {"contrast": None})
    assert relaxed.volume is not None


def test_recist_rejects_thick_slices_and_non_axial() -> None:
    thick = _series("AXIAL C+", SliceThickness=8.0)
    result = select_series(build_volumes(thick), "recist_ct")
    assert result.volume is None
    assert "slice thickness 8 mm" in result.reason

    coronal = _series("CORONAL C+")
    for index, ds in enumerate(coronal):
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.ImagePositionPatient = [0.0, index * 2.0, 0.0]
    volumes = build_volumes(coronal)
    assert classify_orientation(volumes[0]) == "coronal"
    result = select_series(volumes, "recist_ct")
    assert "coronal slices (needs axial)" in result.reason


def test_ich_picks_non_contrast_head_ct() -> None:
    head = _series("HEAD WO", BodyPartExamined="HEAD")
    head_contrast = _series("HEAD C+", BodyPartExamined="HEAD", ContrastBolusAgent="X")
    chest = _series("CHEST", BodyPartExamined="CHEST")
    volumes = build_volumes([*head_contrast, *chest, *head])
    result = select_series(volumes, "ich_ct")
    assert result.volume is not None
    assert result.volume.series_uid == head[0].SeriesInstanceUID
    rejected = dict(result.rejected)
    assert "contrast-enhanced" in rejected[head_contrast[0].SeriesInstanceUID]
    assert "not a head" in rejected[chest[0].SeriesInstanceUID]


def _cine(description: str, phases: int, oblique: bool = True) -> list:
    study, series_uid, frame = generate_uid(), generate_uid(), generate_uid()
    row = np.array([0.8, 0.6, 0.0])
    col = np.array([-0.36, 0.48, -0.8])
    normal = np.cross(row, col)
    datasets = []
    for index in range(6):
        for phase in range(phases):
            ds = ct_slice(
                index, study_uid=study, series_uid=series_uid, frame_uid=frame
            )
            ds.Modality = "MR"
            ds.SeriesDescription = description
            if oblique:
                ds.ImageOrientationPatient = [*row, *col]
                ds.ImagePositionPatient = list(normal * 8.0 * index)
            ds.TriggerTime = phase * 30.0
            datasets.append(ds)
    return datasets


def test_lvef_picks_short_axis_cine_with_all_phases() -> None:
    sax = _cine("cine_SAX_stack", phases=5)
    four_chamber = _cine("cine 4CH", phases=5, oblique=False)
    volumes = build_volumes([*four_chamber, *sax])
    result = select_series(volumes, "lvef_cmr")
    assert result.volume is not None
    assert result.volume.series_uid == sax[0].SeriesInstanceUID
    assert len(result.volumes) == 5
    assert [v.temporal_index for v in result.volumes] == [0, 1, 2, 3, 4]


def test_lvef_rejects_single_phase() -> None:
    single = _cine("SAX", phases=1)
    result = select_series(build_volumes(single), "lvef_cmr")
    assert result.volume is None
    assert "single phase" in result.reason


def test_named_series_override_and_bad_overrides() -> None:
    a = _series("AXIAL C+", ContrastBolusAgent="X")
    b = _series("AXIAL C+ THIN", ContrastBolusAgent="X")
    volumes = build_volumes([*a, *b])
    result = select_series(volumes, "recist_ct", {"series_uid": a[0].SeriesInstanceUID})
    assert result.volume.series_uid == a[0].SeriesInstanceUID
    with pytest.raises(ConfigurationError, match="not rules"):
        select_series(volumes, "recist_ct", {"colour": "blue"})
    with pytest.raises(ConfigurationError, match="unknown task"):
        select_series(volumes, "bone_age")
    custom = SelectionRules(modalities=("MR",))
    assert select_series(volumes, "recist_ct", custom).volume is None


def test_empty_study() -> None:
    result = select_series([], "recist_ct")
    assert result.volume is None
    assert "no image series" in result.reason


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("Thorax-Abdomen nativ 5mm", False),
        ("CT ABD W/O", False),
        ("AXIAL NON-CONTRAST", False),
        ("ABDOMEN PORTAL VENOUS", True),
        ("CHEST C+", True),
        ("AXIAL 5MM", None),
    ],
)
def test_contrast_from_descriptions(description: str, expected: bool | None) -> None:
    from triallens.selection import contrast_status

    (volume,) = build_volumes(_series(description))
    assert contrast_status(volume) is expected
