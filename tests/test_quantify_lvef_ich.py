"""LVEF and haemorrhage volumetry on analytic shapes."""

from __future__ import annotations

import numpy as np
import pytest

from models.quantify.ich import abc2, haematoma_expansion, haemorrhage_volume_ml
from models.quantify.lvef import (
    CtrcdClass,
    CtrcdThresholds,
    cavity_volume_ml,
    ctrcd_class,
    ejection_fraction,
    lvef_from_phases,
)
from tests._quantify_fixtures import (
    ellipsoid_mask,
    make_volume,
    patient_grid,
    rotation,
    voxel_centre,
)
from triallens.errors import GeometryError


def _cylinder(vol, centre, radius_a, radius_b, first, last):
    """An elliptic prism covering slices first..last of the stack."""
    grid = patient_grid(vol)
    rel = grid - centre
    u = rel @ vol.row_direction
    v = rel @ vol.column_direction
    mask = (u / radius_a) ** 2 + (v / radius_b) ** 2 <= 1
    mask[:first] = False
    mask[last + 1 :] = False
    return mask


@pytest.mark.parametrize(
    ("orientation", "shear"),
    [(np.eye(3), 0.0), (rotation("y", 30) @ rotation("x", -40), 0.0), (None, 2.0)],
)
def test_cavity_volume_sums_areas_times_spacing(orientation, shear):
    # 8 mm between planes, 1.4 x 1.1 mm pixels, 10 slices with cavity.
    vol = make_volume((14, 90, 110), (8.0, 1.1, 1.4), orientation, shear)
    centre = voxel_centre(vol, 55, 45, 6)
    mask = _cylinder(vol, centre, 25.0, 20.0, 2, 11)
    # The prism follows the shear, so recentre each slice on its own centre.
    if shear:
        for k in range(vol.shape[0]):
            c = voxel_centre(vol, 55, 45, k)
            mask[k] = _cylinder(vol, c, 25.0, 20.0, 0, 99)[k] & (2 <= k <= 11)
    expected = np.pi * 25.0 * 20.0 * 8.0 * 10 / 1000.0
    assert cavity_volume_ml(mask, vol) == pytest.approx(expected, rel=0.015)


def test_lvef_from_phases_picks_ed_and_es():
    vol = make_volume((12, 80, 80), (10.0, 1.5, 1.5))
    centre = voxel_centre(vol, 40, 40, 6)
    radii = [26.0, 24.0, 19.0, 17.0, 20.0, 25.0]
    masks = [_cylinder(vol, centre, r, r, 1, 10) for r in radii]
    res = lvef_from_phases(masks, vol)
    assert res.ed_phase == 0 and res.es_phase == 3
    true_edv = np.pi * 26.0**2 * 10.0 * 10 / 1000.0
    true_esv = np.pi * 17.0**2 * 10.0 * 10 / 1000.0
    assert res.edv_ml == pytest.approx(true_edv, rel=0.02)
    assert res.esv_ml == pytest.approx(true_esv, rel=0.03)
    true_ef = 100 * (true_edv - true_esv) / true_edv
    assert res.ef_percent == pytest.approx(true_ef, abs=1.0)
    assert len(res.volumes_ml) == 6


def test_ejection_fraction_formula_and_errors():
    assert ejection_fraction(150.0, 60.0) == pytest.approx(60.0)
    with pytest.raises(ValueError):
        ejection_fraction(0.0, 0.0)
    vol = make_volume((2, 4, 4), (8, 1, 1))
    with pytest.raises(GeometryError):
        cavity_volume_ml(np.zeros((2, 4, 5), dtype=bool), vol)


@pytest.mark.parametrize(
    ("baseline", "current", "gls", "marker", "expected"),
    [
        (62, 38, None, False, CtrcdClass.SEVERE),
        (62, 45, None, False, CtrcdClass.MODERATE),  # 17-point fall to 40-49
        (52, 48, None, False, CtrcdClass.NONE),  # small fall, no GLS/biomarker
        (52, 48, 0.20, False, CtrcdClass.MODERATE),
        (52, 48, None, True, CtrcdClass.MODERATE),
        (60, 55, 0.16, False, CtrcdClass.MILD),
        (60, 55, 0.10, False, CtrcdClass.NONE),
        (60, 58, None, True, CtrcdClass.MILD),
        (60, 50, None, False, CtrcdClass.NONE),  # 10 points but still >= 50 %
    ],
)
def test_ctrcd_esc_2022(baseline, current, gls, marker, expected):
    got = ctrcd_class(
        baseline, current, gls_relative_decline=gls, biomarker_rise=marker
    )
    assert got is expected


def test_ctrcd_thresholds_overridable():
    # ESC 2016 style: > 10 points to < 50 % counts.
    rules = CtrcdThresholds(moderate_drop_points=10.001)
    assert ctrcd_class(58, 48, thresholds=rules) is CtrcdClass.NONE
    assert ctrcd_class(59, 48, thresholds=rules) is CtrcdClass.MODERATE


# -- haemorrhage ---------------------------------------------------------------


@pytest.mark.parametrize("orientation", [np.eye(3), rotation("x", 18.0)])
def test_haemorrhage_volume_of_ellipsoid(orientation):
    vol = make_volume((30, 80, 80), (2.5, 0.5, 0.5), orientation)
    centre = voxel_centre(vol, 40.3, 39.6, 15.2)
    semi = (16.0, 11.0, 12.0)
    mask = ellipsoid_mask(vol, centre, semi, orientation)
    true_ml = 4 / 3 * np.pi * np.prod(semi) / 1000
    assert haemorrhage_volume_ml(mask, vol) == pytest.approx(true_ml, rel=0.02)


def test_abc2_uses_kothari_slice_weights():
    spacing = 5.0
    vol = make_volume((20, 120, 120), (spacing, 0.5, 0.5))
    centre = voxel_centre(vol, 60, 60, 10)
    a, b, c = 20.0, 14.0, 22.0
    mask = ellipsoid_mask(vol, centre, (a, b, c), np.eye(3))
    res = abc2(mask, vol)
    assert res.slice_index == 10
    assert res.a_mm == pytest.approx(2 * a, abs=0.6)
    assert res.b_mm == pytest.approx(2 * b, abs=0.6)
    # Analytic slice areas of the ellipsoid: 1 - (z/c)^2 of the largest.
    z = (np.arange(20) - 10) * spacing
    ratio = np.clip(1 - (z / c) ** 2, 0, None)
    weights = np.where(ratio >= 0.75, 1.0, np.where(ratio >= 0.25, 0.5, 0.0))
    assert res.c_mm == pytest.approx(weights.sum() * spacing)
    expected = (2 * a) * (2 * b) * weights.sum() * spacing / 2 / 1000
    assert res.volume_ml == pytest.approx(expected, rel=0.05)


def test_abc2_of_empty_mask_is_zero():
    vol = make_volume((3, 5, 5), (5, 1, 1))
    assert abc2(np.zeros(vol.shape, dtype=bool), vol).volume_ml == 0.0


@pytest.mark.parametrize(
    ("base", "follow", "expanded"),
    [
        (20.0, 26.5, True),  # +6.5 mL
        (20.0, 26.0, False),  # +6 mL exactly, +30 %
        (10.0, 13.4, True),  # +34 %
        (10.0, 13.3, False),  # +33 % exactly
        (30.0, 25.0, False),
        (0.0, 7.0, True),
        (0.0, 3.0, False),
    ],
)
def test_haematoma_expansion(base, follow, expanded):
    res = haematoma_expansion(base, follow)
    assert res.expanded is expanded
    assert res.absolute_ml == pytest.approx(follow - base)


def test_expansion_threshold_override():
    assert haematoma_expansion(20, 30, absolute_ml=12.5, relative=1.0).expanded is False


def test_largest_component_drops_islands():
    from models.quantify.lvef import largest_component

    mask = np.zeros((6, 20, 20), dtype=bool)
    mask[1:5, 4:12, 4:12] = True
    mask[2, 16:18, 16:18] = True  # a stray island
    kept = largest_component(mask)
    assert kept.sum() == 4 * 8 * 8
    assert not kept[2, 16, 16]
    assert largest_component(np.zeros((2, 3, 3), dtype=bool)).sum() == 0
