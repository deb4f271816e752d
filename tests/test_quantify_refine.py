"""Boundary refinement of model masks against the image (half-contrast edge)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from models.quantify import measure_lesions
from models.quantify.refine import refine_labels, split_touching
from models.training.data import phantom_volume

PIXEL = 1.6
SLICE = 5.0


def _scene(
    a_mm: float,
    b_mm: float,
    lesion_hu: float,
    background_hu: float,
    rng: np.random.Generator,
    noise_hu: float = 8.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Three slices of 64 x 64 with an ellipse on the middle one.

    Intensities carry partial volume (8 x 8 supersampling); the truth mask is
    the set of pixels whose centre lies inside the ellipse.
    """
    n, sub = 64, 8
    offset = rng.uniform(-0.5, 0.5, 2)
    fine = (np.arange(n * sub) + 0.5) / sub - n / 2 + offset[0]
    y, x = np.meshgrid(fine * PIXEL, (fine - offset[0] + offset[1]) * PIXEL)
    inside = (x / a_mm) ** 2 + (y / b_mm) ** 2 <= 1.0
    cover = inside.reshape(n, sub, n, sub).mean(axis=(1, 3))
    centres = np.arange(n) - n / 2 + offset[0] + 0.5
    cy, cx = np.meshgrid(centres * PIXEL, (centres - offset[0] + offset[1]) * PIXEL)
    truth = (cx / a_mm) ** 2 + (cy / b_mm) ** 2 <= 1.0
    image = np.full((3, n, n), background_hu, dtype=np.float32)
    image[1] += (lesion_hu - background_hu) * cover.astype(np.float32)
    image += rng.normal(0.0, noise_hu, image.shape).astype(np.float32)
    truth3 = np.zeros((3, n, n), dtype=bool)
    truth3[1] = truth
    return image, truth3


@pytest.mark.parametrize("change", [-2, -1, 1, 2])
@pytest.mark.parametrize(
    ("lesion_hu", "background_hu"), [(45.0, 105.0), (75.0, -100.0), (35.0, -850.0)]
)
def test_refinement_recovers_the_edge_of_a_shifted_outline(
    change, lesion_hu, background_hu
):
    rng = np.random.default_rng(abs(change) * 7 + int(lesion_hu))
    image, truth = _scene(11.0, 7.0, lesion_hu, background_hu, rng)
    plane = np.zeros((3, 3, 3), dtype=bool)
    plane[1] = True
    if change > 0:
        drawn = ndimage.binary_dilation(truth, plane, iterations=change)
    else:
        drawn = ndimage.binary_erosion(truth, plane, iterations=-change)
    refined, (record,) = refine_labels(drawn.astype(np.uint8), image)
    assert record.refined
    assert record.contrast == pytest.approx(abs(lesion_hu - background_hu), rel=0.2)
    wrong = int(((refined == 1) ^ truth).sum())
    assert wrong <= 0.08 * truth.sum(), wrong
    vol = phantom_volume(image, (SLICE, PIXEL, PIXEL), (0.0, 0.0, 0.0))
    before = measure_lesions(drawn.astype(np.uint8), vol, refine=False)[0]
    after = measure_lesions(drawn.astype(np.uint8), vol, refine=True)[0]
    assert after.longest_diameter_mm == pytest.approx(22.0, abs=1.2)
    assert after.short_axis_mm == pytest.approx(14.0, abs=1.2)
    assert abs(before.longest_diameter_mm - 22.0) > abs(
        after.longest_diameter_mm - 22.0
    )


def test_findings_without_contrast_are_kept_or_dropped_as_asked():
    rng = np.random.default_rng(1)
    image = rng.normal(50.0, 8.0, (3, 40, 40)).astype(np.float32)
    labels = np.zeros(image.shape, dtype=np.uint8)
    labels[1, 15:25, 15:25] = 1
    kept, (record,) = refine_labels(labels, image)
    assert not record.refined and record.contrast < 20.0
    assert np.array_equal(kept, labels)
    dropped, _ = refine_labels(labels, image, drop_low_contrast=True)
    assert not dropped.any()


def test_neighbouring_findings_stay_apart_and_brighter_tissue_is_excluded():
    rng = np.random.default_rng(2)
    image, truth = _scene(8.0, 8.0, 75.0, -100.0, rng, noise_hu=5.0)
    # A vessel of 200 HU touching the node on the right, and a second finding
    # three pixels to the left.
    image[1, 28:36, 38:44] = 200.0
    labels = truth.astype(np.uint8) * 2
    labels[1, 29:34, 18:21] = 1
    image[1, 29:34, 18:21] = 75.0
    refined, records = refine_labels(labels, image, grow_px=3)
    assert len(records) == 2
    assert not (refined[1, 28:36, 38:44] > 0).any()
    _, count = ndimage.label(refined > 0, np.ones((3, 3, 3), dtype=bool))
    assert count == 2


def test_measure_lesions_refines_model_masks_by_default():
    rng = np.random.default_rng(4)
    image, truth = _scene(10.0, 6.0, 45.0, 105.0, rng)
    plane = np.zeros((3, 3, 3), dtype=bool)
    plane[1] = True
    drawn = ndimage.binary_dilation(truth, plane, iterations=2).astype(np.uint8)
    probabilities = np.stack([1.0 - drawn, drawn, np.zeros_like(drawn)]).astype(
        np.float32
    )
    vol = phantom_volume(image, (SLICE, PIXEL, PIXEL), (0.0, 0.0, 0.0))
    (exact,) = measure_lesions(drawn, vol)
    (model,) = measure_lesions(drawn, vol, probabilities=probabilities)
    assert exact.longest_diameter_mm > 23.0  # the mask as given
    assert model.longest_diameter_mm == pytest.approx(20.0, abs=1.2)
    assert model.confidence == pytest.approx(1.0)


def _ball(shape, spacing, centre, radius):
    k, j, i = np.indices(shape)
    d = (
        ((k - centre[0]) * spacing[0]) ** 2
        + ((j - centre[1]) * spacing[1]) ** 2
        + ((i - centre[2]) * spacing[2]) ** 2
    )
    return d <= radius**2


def test_touching_findings_are_split_and_single_ones_are_not():
    spacing = (5.0, 1.6, 1.6)
    shape = (12, 60, 80)
    a = _ball(shape, spacing, (5, 30, 28), 10.0)
    b = _ball(shape, spacing, (6, 30, 40), 9.0)
    assert ndimage.label(a | b, np.ones((3, 3, 3), dtype=bool))[1] == 1
    labels = (a | b).astype(np.uint8) * 2
    split = split_touching(labels, spacing)
    _, count = ndimage.label(split > 0, np.ones((3, 3, 3), dtype=bool))
    assert count == 2
    assert int((split > 0).sum()) >= 0.9 * int(labels.astype(bool).sum())
    single = _ball(shape, spacing, (5, 30, 40), 12.0).astype(np.uint8)
    assert np.array_equal(split_touching(single, spacing), single)
