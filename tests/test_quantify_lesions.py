"""Lesion measurements on analytic ellipses and ellipsoids."""

from __future__ import annotations

import numpy as np
import pytest

from models.quantify import measure_lesions, measure_lesions_with_geometry
from models.quantify._planar import slice_diameters, slice_spacing_mm
from tests._quantify_fixtures import (
    ellipsoid_mask,
    make_volume,
    rotation,
    voxel_centre,
)
from triallens.domain import LesionKind
from triallens.errors import GeometryError


def _ellipse(shape, pixel, a, b, theta_deg, offset=(0.3, 0.6)):
    """A 2D ellipse with semi-axes a, b (mm) on pixels of (row, col) size."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    y = (rows - shape[0] / 2 + offset[1]) * pixel[0]
    x = (cols - shape[1] / 2 + offset[0]) * pixel[1]
    t = np.radians(theta_deg)
    u = x * np.cos(t) + y * np.sin(t)
    v = -x * np.sin(t) + y * np.cos(t)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


@pytest.mark.parametrize("theta", [0.0, 17.0, 45.0, 100.0])
@pytest.mark.parametrize(
    ("pixel", "a", "b", "tol"),
    [
        ((0.7, 0.7), 15.0, 9.0, 0.8),
        ((1.5, 1.5), 20.0, 8.0, 1.6),
        ((0.5, 1.2), 12.0, 7.0, 1.3),  # anisotropic pixels
        ((1.2, 0.5), 25.0, 6.0, 1.3),
    ],
)
def test_ellipse_diameters(pixel, a, b, tol, theta):
    mask = _ellipse((90, 120), pixel, a, b, theta)
    affine = np.diag([pixel[1], pixel[0], 3.0, 1.0])
    d = slice_diameters(mask, affine)
    assert d.longest_mm == pytest.approx(2 * a, abs=tol)
    assert d.short_mm == pytest.approx(2 * b, abs=tol)
    # The drawn long axis has the measured length in mm.
    (i0, j0), (i1, j1) = d.long_endpoints_ij
    length = np.hypot((i1 - i0) * pixel[1], (j1 - j0) * pixel[0])
    assert length == pytest.approx(d.longest_mm, rel=1e-6)
    # And it runs along the ellipse's major axis.
    angle = np.degrees(np.arctan2((j1 - j0) * pixel[0], (i1 - i0) * pixel[1])) % 180
    assert min(abs(angle - theta % 180), 180 - abs(angle - theta % 180)) < 8


def test_small_circle_is_not_biased():
    errors = []
    rng = np.random.default_rng(3)
    for _ in range(20):
        offset = tuple(rng.uniform(0, 1, 2))
        mask = _ellipse((40, 40), (1.5, 1.5), 5.0, 5.0, 0.0, offset)
        errors.append(slice_diameters(mask, np.diag([1.5, 1.5, 5, 1])).longest_mm - 10)
    assert abs(np.mean(errors)) < 0.5


def test_empty_slice_measures_zero():
    d = slice_diameters(np.zeros((5, 5), dtype=bool), np.eye(4))
    assert d.longest_mm == 0.0 and d.short_mm == 0.0


@pytest.mark.parametrize(
    ("orientation", "shear"),
    [
        (np.eye(3), 0.0),
        (rotation("x", 20.0), 0.0),  # tilted plane
        (rotation("z", 30.0) @ rotation("x", -25.0) @ rotation("y", 10.0), 0.0),
        (np.eye(3), 1.2),  # gantry-tilt shear: slices shifted along the column
    ],
)
def test_ellipsoid_on_tilted_planes(orientation, shear):
    vol = make_volume((24, 64, 80), (2.5, 0.8, 0.6), orientation, shear)
    centre = voxel_centre(vol, 40.2, 31.7, 12.0)
    # Ellipsoid axes: two in the image plane (rotated by 35 degrees), one normal.
    in_plane = rotation("z", 35.0)
    axes = orientation @ in_plane
    semi = (14.0, 8.0, 11.0)
    labels = ellipsoid_mask(vol, centre, semi, axes).astype(np.uint8)
    found = measure_lesions(labels, vol)
    assert len(found) == 1
    lesion = found[0]
    assert lesion.lesion_id == "L01"
    assert lesion.kind is LesionKind.LESION
    assert lesion.slice_index == 12
    assert lesion.longest_diameter_mm == pytest.approx(28.0, abs=0.9)
    assert lesion.short_axis_mm == pytest.approx(16.0, abs=0.9)
    assert np.allclose(lesion.centroid_mm, centre, atol=0.5)
    true_ml = 4.0 / 3.0 * np.pi * np.prod(semi) / 1000.0
    assert lesion.volume_ml == pytest.approx(true_ml, rel=0.05)
    assert lesion.voxel_count == int(labels.sum())
    assert slice_spacing_mm(vol.affine) == pytest.approx(2.5)


def test_lesions_and_nodes_are_separated_and_ordered():
    vol = make_volume((20, 100, 100), (3.0, 1.0, 1.0))
    labels = np.zeros(vol.shape, dtype=np.uint8)
    eye = np.eye(3)
    small = ellipsoid_mask(vol, voxel_centre(vol, 20, 20, 10), (6, 6, 6), eye)
    large = ellipsoid_mask(vol, voxel_centre(vol, 70, 25, 10), (12, 9, 9), eye)
    node = ellipsoid_mask(vol, voxel_centre(vol, 50, 75, 9), (11, 8, 8), eye)
    labels[small] = 1
    labels[large] = 1
    labels[node] = 2
    labels[2, 90, 90] = 1  # one-voxel noise
    found = measure_lesions(labels, vol, min_voxels=5)
    assert [m.lesion_id for m in found] == ["L01", "L02", "N01"]
    assert found[0].longest_diameter_mm == pytest.approx(24.0, abs=1.0)
    assert found[1].longest_diameter_mm == pytest.approx(12.0, abs=1.0)
    assert found[2].kind is LesionKind.NODE
    assert found[2].organ == "lymph node"
    assert found[2].short_axis_mm == pytest.approx(16.0, abs=1.0)
    assert found[2].recist_diameter_mm == found[2].short_axis_mm
    assert found[2].slice_index == 9


def test_confidence_and_organ_from_maps():
    vol = make_volume((10, 40, 40), (2.0, 1.0, 1.0))
    mask = ellipsoid_mask(vol, voxel_centre(vol, 20, 20, 5), (8, 8, 4), np.eye(3))
    labels = mask.astype(np.uint8)
    probs = np.zeros((3, *vol.shape), dtype=np.float32)
    probs[1][mask] = 0.8
    organs = np.zeros(vol.shape, dtype=np.uint8)
    organs[:, :, :] = 3
    (lesion,) = measure_lesions(
        labels,
        vol,
        probabilities=probs,
        organ_map=organs,
        organ_names={3: "liver"},
        refine=False,  # the volume holds no image to refine against
    )
    assert lesion.confidence == pytest.approx(0.8)
    assert lesion.organ == "liver"


def test_key_slice_geometry_matches_measurement():
    vol = make_volume((10, 60, 60), (2.0, 0.9, 0.9))
    mask = ellipsoid_mask(vol, voxel_centre(vol, 30, 30, 5), (15, 9, 6), np.eye(3))
    ((lesion, geometry),) = measure_lesions_with_geometry(mask.astype(np.uint8), vol)
    assert geometry.lesion_id == lesion.lesion_id
    assert geometry.slice_index == lesion.slice_index
    assert geometry.mask2d.shape == (60, 60)
    (i0, _), (i1, _) = geometry.diameters.long_endpoints_ij
    assert min(i0, i1) < 16 and max(i0, i1) > 44  # spans the lesion on the full grid


def test_shape_mismatch_and_unmeasurable_volume_raise():
    vol = make_volume((4, 8, 8), (2.0, 1.0, 1.0))
    with pytest.raises(GeometryError):
        measure_lesions(np.zeros((4, 8, 9), dtype=np.uint8), vol)
    vol.measurable = False
    vol.not_measurable_reason = "missing slices"
    with pytest.raises(GeometryError, match="missing slices"):
        measure_lesions(np.zeros((4, 8, 8), dtype=np.uint8), vol)


def test_touching_classes_make_one_finding_and_low_confidence_is_dropped():
    vol = make_volume((10, 60, 60), (3.0, 1.0, 1.0))
    node = ellipsoid_mask(vol, voxel_centre(vol, 30, 30, 5), (12, 9, 6), np.eye(3))
    labels = node.astype(np.uint8) * 2
    labels[:, :, :27] = np.where(node[:, :, :27], 1, 0)  # a quarter called lesion
    (finding,) = measure_lesions(labels, vol)
    assert finding.kind is LesionKind.NODE
    assert finding.longest_diameter_mm == pytest.approx(24.0, abs=1.0)
    probs = np.zeros((3, *vol.shape), dtype=np.float32)
    probs[2][node] = 0.55
    probs[1][node] = 0.4
    # The volume holds no image, so the masks are measured as given.
    low = measure_lesions(
        labels, vol, probabilities=probs, min_confidence=0.6, refine=False
    )
    assert low == []
    assert len(measure_lesions(labels, vol, probabilities=probs, refine=False)) == 1
