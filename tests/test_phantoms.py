"""Phantoms: exact labels, realistic attenuation, sizes re-measured from pixels."""

from __future__ import annotations

import numpy as np
import pytest

from models.phantoms import (
    HaematomaSpec,
    LesionSpec,
    cmr_short_axis_phantom,
    ct_torso_phantom,
    head_ct_phantom,
    torso_anatomy,
)
from tests._synth_fixtures import component_at, feret_axes_mm, threshold_region

SHAPE = (24, 160, 160)
SPACING = (5.0, 1.5, 1.5)


def _torso(contrast: bool = True, seed: int = 3):
    anatomy = torso_anatomy(SHAPE, SPACING)
    liver = anatomy.liver.centre
    lesions = [
        LesionSpec(
            "T01",
            (liver[0], liver[1], 0.0 * 5 + 2.5),
            (14.0, 9.0, 10.0),
            organ="liver",
            angle_deg=35.0,
        ),
        LesionSpec(
            "N01",
            (35.0, -25.0, -15.0),
            (11.0, 8.0, 9.0),
            kind="node",
            organ="lymph node",
        ),
        LesionSpec("T02", (-45.0, -10.0, 47.5), (8.0, 6.0, 7.0), organ="lung_right"),
    ]
    rng = np.random.default_rng(seed)
    return ct_torso_phantom(SHAPE, SPACING, lesions, rng, contrast, anatomy=anatomy)


def test_torso_types_labels_and_attenuation() -> None:
    phantom = _torso()
    assert phantom.hu.dtype == np.float32 and phantom.hu.shape == SHAPE
    assert phantom.labels.dtype == np.uint8
    assert set(np.unique(phantom.labels)) == {0, 1, 2}
    assert phantom.hu[0, 0, 0] == pytest.approx(-1000, abs=60)
    liver = phantom.anatomy.liver
    k = int(
        np.argmin(
            np.abs(
                np.arange(SHAPE[0]) * 5.0
                + phantom.origin_mm[2]
                - (liver.centre[2] - 20)
            )
        )
    )
    i = round((liver.centre[0] - phantom.origin_mm[0]) / 1.5)
    j = round((liver.centre[1] - phantom.origin_mm[1]) / 1.5)
    patch = phantom.hu[k, j - 3 : j + 3, i - 3 : i + 3]
    assert patch.mean() == pytest.approx(105, abs=8)
    assert 8 < patch.std() < 20
    lesion_mean = phantom.hu[phantom.instances == 1].mean()
    assert patch.mean() - lesion_mean >= 40
    assert phantom.hu.max() > 500


def test_torso_without_contrast_keeps_lesion_distinct() -> None:
    phantom = _torso(contrast=False)
    lesion = phantom.hu[phantom.instances == 1].mean()
    core = phantom.hu[(phantom.labels == 0)]
    assert lesion < 30
    assert core.min() < -900


def test_labels_match_analytic_sizes() -> None:
    phantom = _torso()
    for index, truth in enumerate(phantom.lesions, start=1):
        mask = phantom.instances[truth.slice_index] == index
        ld, sa = feret_axes_mm(mask, 1.5, 1.5)
        assert ld == pytest.approx(truth.longest_diameter_mm, abs=1.5), truth
        assert sa == pytest.approx(truth.short_axis_mm, abs=1.5), truth
        volume = (phantom.instances == index).sum() * 5.0 * 1.5 * 1.5 / 1000
        assert volume == pytest.approx(truth.volume_ml, rel=0.06)
    node = phantom.lesions[1]
    assert node.short_axis_mm == pytest.approx(16.0 * np.sqrt(1 - (2.5 / 9) ** 2))


def test_pixels_remeasured_by_threshold() -> None:
    phantom = _torso()
    truth = phantom.lesions[0]
    image = phantom.hu[truth.slice_index]
    seed = tuple(
        int(v) for v in np.argwhere(phantom.instances[truth.slice_index] == 1).mean(0)
    )
    region = threshold_region(image, (45.0 + 105.0) / 2, seed, below=True)
    ld, sa = feret_axes_mm(region, 1.5, 1.5)
    assert ld == pytest.approx(truth.longest_diameter_mm, abs=1.5)
    assert sa == pytest.approx(truth.short_axis_mm, abs=1.5)


def test_same_seed_same_phantom() -> None:
    a, b = _torso(seed=11), _torso(seed=11)
    assert np.array_equal(a.hu, b.hu)
    assert not np.array_equal(a.hu, _torso(seed=12).hu)


def test_cmr_volumes_and_ef() -> None:
    rng = np.random.default_rng(5)
    spacing = (8.0, 1.6, 1.6)
    phantom = cmr_short_axis_phantom((12, 128, 128), spacing, 160.0, 70.0, rng, 4)
    assert phantom.edv_ml == pytest.approx(160.0)
    assert phantom.esv_ml == pytest.approx(70.0)
    assert phantom.lvef_percent == pytest.approx(56.25)
    voxel_ml = 8.0 * 1.6 * 1.6 / 1000
    for phase, expected in enumerate(phantom.volumes_ml):
        by_label = (phantom.labels[phase] == 1).sum() * voxel_ml
        assert by_label == pytest.approx(expected, rel=0.03)
        # Bright blood pool re-measured by threshold, LV component only.
        bright = phantom.images[phase] > (550 + 110) / 2
        seeds = np.argwhere(phantom.labels[phase] == 1)
        total = 0
        for k in np.unique(seeds[:, 0]):
            sk = seeds[seeds[:, 0] == k].mean(0).round().astype(int)
            total += component_at(bright[k], tuple(sk[1:])).sum()
        assert total * voxel_ml == pytest.approx(expected, rel=0.03)
    assert not (phantom.labels[0][-1] == 1).any()


def test_cmr_rejects_impossible_volumes() -> None:
    with pytest.raises(ValueError):
        cmr_short_axis_phantom((8, 64, 64), (8, 2, 2), 50, 60, np.random.default_rng(0))


def test_head_haematoma_volume() -> None:
    rng = np.random.default_rng(9)
    spec = HaematomaSpec((25.0, 10.0, -12.5), (20.0, 15.0, 16.0), angle_deg=20)
    phantom = head_ct_phantom((32, 160, 160), (5.0, 1.4, 1.4), spec, rng)
    voxel_ml = 5.0 * 1.4 * 1.4 / 1000
    assert (phantom.labels == 1).sum() * voxel_ml == pytest.approx(
        phantom.haematoma_volume_ml, rel=0.03
    )
    centre = tuple(np.argwhere(phantom.labels == 1).mean(0).round().astype(int))
    measured = 0
    for k in range(phantom.hu.shape[0]):
        measured += threshold_region(
            phantom.hu[k], (60.0 + 28.0) / 2, centre[1:], upper=90.0
        ).sum()
    measured *= voxel_ml
    assert measured == pytest.approx(phantom.haematoma_volume_ml, rel=0.03)
    brain = phantom.hu[phantom.labels == 0]
    assert (brain > 900).any() and (brain < -900).any()
    empty = head_ct_phantom((16, 96, 96), (5.0, 2.0, 2.0), None, rng)
    assert empty.haematoma_volume_ml == 0 and not empty.labels.any()


def test_speed_budget_shape_is_supported() -> None:
    rng = np.random.default_rng(0)
    phantom = ct_torso_phantom((48, 256, 256), (5.0, 1.5, 1.5), [], rng)
    assert phantom.hu.shape == (48, 256, 256)
