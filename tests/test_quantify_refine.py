"""Boundary refinement of model masks against the image (half-contrast edge)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from models.quantify import measure_lesions
from models.quantify._planar import slice_diameters
from models.quantify.refine import finding_instances, refine_labels
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


def test_touching_findings_are_divided_and_single_ones_are_not():
    spacing = (5.0, 1.6, 1.6)
    shape = (12, 60, 80)
    a = _ball(shape, spacing, (5, 30, 28), 10.0)
    b = _ball(shape, spacing, (6, 30, 40), 9.0)
    assert ndimage.label(a | b, np.ones((3, 3, 3), dtype=bool))[1] == 1
    labels = (a | b).astype(np.uint8) * 2
    instances = finding_instances(labels, spacing)
    assert sorted(np.unique(instances)) == [0, 1, 2]
    assert np.array_equal(instances > 0, a | b)  # no voxel lost
    # Each part lies on its own ball's side of the contact.
    for part in (1, 2):
        _, _, i = np.nonzero(instances == part)
        own = a if i.mean() < 34 else b
        assert ((instances == part) & own).sum() >= 0.9 * (instances == part).sum()
    single = _ball(shape, spacing, (5, 30, 40), 12.0).astype(np.uint8)
    assert np.array_equal(finding_instances(single, spacing), single.astype(np.int32))
    assert finding_instances(labels, spacing, split=False).max() == 1


def _ellipsoid_scene(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    ellipsoids: list[tuple[tuple[float, float, float], tuple[float, float, float]]],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (75 HU) in fat (-100 HU) with in-plane partial volume.

    Each ellipsoid is ``((x, y, z) centre, (a, b, c) semi-axes)`` in mm, axes
    along the grid; slice ``k`` lies at ``z = k * spacing[0]``. The truth is a
    label per ellipsoid at the voxel centres.
    """
    sub = 8
    nz, ny, nx = shape
    fine_y = (np.arange(ny * sub) + 0.5) / sub - 0.5
    fine_x = (np.arange(nx * sub) + 0.5) / sub - 0.5
    yy, xx = np.meshgrid(fine_y * spacing[1], fine_x * spacing[2], indexing="ij")
    cy, cx = np.meshgrid(
        np.arange(ny) * spacing[1], np.arange(nx) * spacing[2], indexing="ij"
    )
    image = np.full(shape, -100.0, dtype=np.float32)
    truth = np.zeros(shape, dtype=np.uint8)
    for number, ((x0, y0, z0), (a, b, c)) in enumerate(ellipsoids, start=1):
        for k in range(nz):
            scale = 1.0 - ((k * spacing[0] - z0) / c) ** 2
            if scale <= 0:
                continue
            inside = ((xx - x0) / a) ** 2 + ((yy - y0) / b) ** 2 <= scale
            cover = inside.reshape(ny, sub, nx, sub).mean(axis=(1, 3))
            image[k] += 175.0 * cover.astype(np.float32)
            truth[k][((cx - x0) / a) ** 2 + ((cy - y0) / b) ** 2 <= scale] = number
    image += rng.normal(0.0, 8.0, shape).astype(np.float32)
    return image, truth


def test_nodes_touching_across_thick_slices_keep_their_short_axes():
    """Two nodes on neighbouring 5 mm slices whose outlines overlap in plane:
    one object in 3D, measured as two with their own short axes."""
    spacing = (5.0, 1.6, 1.6)
    nodes = [
        ((64.0, 48.0, 25.0), (13.0, 9.0, 7.0)),
        ((50.0, 48.0, 10.0), (8.0, 12.0, 7.0)),
    ]
    image, truth = _ellipsoid_scene(
        (7, 64, 80), spacing, nodes, np.random.default_rng(3)
    )
    labels = (truth > 0).astype(np.uint8) * 2
    assert ndimage.label(labels, np.ones((3, 3, 3), dtype=bool))[1] == 1
    vol = phantom_volume(image, spacing, (0.0, 0.0, 0.0))
    measured = measure_lesions(labels, vol, refine=True)
    assert len(measured) == 2
    for number in (1, 2):
        own = truth == number
        (exact,) = measure_lesions(own.astype(np.uint8) * 2, vol)
        expected = exact.short_axis_mm
        k, j, i = (float(v.mean()) for v in np.nonzero(own))
        centre = vol.index_to_patient(np.array([i, j, k]))
        found = min(
            measured,
            key=lambda m: float(np.linalg.norm(np.subtract(m.centroid_mm, centre))),
        )
        assert found.short_axis_mm == pytest.approx(expected, abs=1.0)
        assert expected == pytest.approx(2 * min(nodes[number - 1][1][:2]), abs=1.5)


def test_a_node_between_fat_and_muscle_gets_its_edge_against_each():
    """A 75 HU node with fat (-100 HU) on one side and muscle (45 HU) on the
    other: one median surrounding level would let the muscle side grow."""
    rng = np.random.default_rng(8)
    n, sub = 64, 8
    fine = (np.arange(n * sub) + 0.5) / sub
    yy, xx = np.meshgrid(fine * PIXEL, fine * PIXEL, indexing="ij")
    centre, (a, b) = 32 * PIXEL, (9.0, 7.0)
    node = ((xx - centre) / a) ** 2 + ((yy - centre) / b) ** 2 <= 1.0
    muscle = xx > centre + 0.6 * a
    background = np.where(muscle, 45.0, -100.0)
    fine_image = np.where(node, 75.0, background)
    image = np.full((3, n, n), -100.0, dtype=np.float32)
    image[1] = fine_image.reshape(n, sub, n, sub).mean(axis=(1, 3))
    image += rng.normal(0.0, 6.0, image.shape).astype(np.float32)
    c = (np.arange(n) + 0.5) * PIXEL
    cy, cx = np.meshgrid(c, c, indexing="ij")
    truth = np.zeros((3, n, n), dtype=bool)
    truth[1] = ((cx - centre) / a) ** 2 + ((cy - centre) / b) ** 2 <= 1.0
    plane = np.zeros((3, 3, 3), dtype=bool)
    plane[1] = True
    drawn = ndimage.binary_dilation(truth, plane, iterations=1).astype(np.uint8) * 2
    refined, (record,) = refine_labels(drawn, image)
    assert record.refined
    affine = np.diag([PIXEL, PIXEL, SLICE, 1.0])
    expected = slice_diameters(truth[1], affine)
    got = slice_diameters(refined[1] > 0, affine)
    assert got.longest_mm == pytest.approx(expected.longest_mm, abs=1.5)
    assert got.short_mm == pytest.approx(expected.short_mm, abs=1.5)
    # One surrounding level for the whole ring (the median, mostly fat) lets
    # the finding spread into the muscle.
    merged, _ = refine_labels(drawn, image, local_px=0)
    assert slice_diameters(merged[1] > 0, affine).short_mm > expected.short_mm + 5


def test_a_lesion_with_a_bulge_stays_one_finding():
    spacing = (2.5, 1.5, 1.5)
    shape = (20, 64, 64)
    body = _ball(shape, spacing, (10, 32, 28), 14.0)
    bulge = _ball(shape, spacing, (10, 32, 40), 9.0)
    labels = (body | bulge).astype(np.uint8)
    depth = ndimage.distance_transform_edt(labels, sampling=spacing)
    _, n_cores = ndimage.label(depth > 0.6 * depth.max(), np.ones((3, 3, 3), bool))
    assert n_cores == 2  # two cores, but joined through a wide neck
    assert finding_instances(labels, spacing).max() == 1
    assert finding_instances(labels, spacing, neck_fraction=1.01).max() == 2


def test_a_node_touching_a_lesion_keeps_its_own_class():
    """One object for refinement (the lesion's class wins the vote), two
    findings after division, each with the class of its own voxels."""
    spacing = (5.0, 1.6, 1.6)
    shapes = [
        ((40.0, 48.0, 25.0), (14.0, 12.0, 9.0)),
        ((62.0, 48.0, 25.0), (9.0, 8.0, 7.0)),
    ]
    image, truth = _ellipsoid_scene(
        (11, 64, 80), spacing, shapes, np.random.default_rng(5)
    )
    assert ndimage.label(truth > 0, np.ones((3, 3, 3), dtype=bool))[1] == 1
    probabilities = np.zeros((3, *truth.shape), dtype=np.float32)
    probabilities[0] = truth == 0
    probabilities[1] = np.where(truth == 1, 0.9, 0.05) * (truth > 0)
    probabilities[2] = np.where(truth == 2, 0.9, 0.05) * (truth > 0)
    vol = phantom_volume(image, spacing, (0.0, 0.0, 0.0))
    measured = measure_lesions(truth, vol, probabilities=probabilities)
    assert sorted(m.lesion_id for m in measured) == ["L01", "N01"]
    node = next(m for m in measured if m.lesion_id == "N01")
    (exact,) = measure_lesions((truth == 2).astype(np.uint8) * 2, vol)
    assert node.short_axis_mm == pytest.approx(exact.short_axis_mm, abs=1.5)
    assert node.confidence > 0.8


def _disk(n: int, centre: tuple[float, float], radius_px: float) -> np.ndarray:
    jj, ii = np.mgrid[:n, :n]
    return (jj - centre[0]) ** 2 + (ii - centre[1]) ** 2 <= radius_px**2


def _noisy_disk(
    n: int,
    centre: tuple[float, float],
    radius_px: float,
    lesion_hu: float,
    background_hu: float,
    noise_hu: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Three noisy slices of ``background_hu`` with a disk lesion on the middle
    one; returns the image and the disk."""
    rng = np.random.default_rng(seed)
    image = rng.normal(background_hu, noise_hu, (3, n, n)).astype(np.float32)
    lesion = _disk(n, centre, radius_px)
    image[1][lesion] = rng.normal(lesion_hu, noise_hu, int(lesion.sum()))
    return image, lesion


def _on_middle_slice(mask: np.ndarray, label: int) -> np.ndarray:
    """A three-slice label array holding ``mask`` on its middle slice."""
    labels = np.zeros((3, *mask.shape), dtype=np.uint8)
    labels[1][mask] = label
    return labels


def _disk_stack(slices: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """An 80 HU disk lesion on every slice of a 0 HU background."""
    n = 48
    disk = _disk(n, (24, 24), 6.0)
    labels = np.zeros((slices, n, n), dtype=np.uint8)
    labels[:, disk] = 1
    image = np.where(labels > 0, 80.0, 0.0).astype(np.float32)
    image += np.random.default_rng(2).normal(0.0, 3.0, image.shape).astype(np.float32)
    return labels, image


def test_a_slice_without_contrast_inside_a_finding_does_not_split_it():
    labels, image = _disk_stack()
    image[3][labels[3] > 0] = 5.0  # one slice where the lesion does not show
    refined, _ = refine_labels(labels, image, (1,))
    assert ndimage.label(refined > 0, np.ones((3, 3, 3), dtype=bool))[1] == 1
    assert np.array_equal(refined[3], labels[3])  # the network's outline kept
    probabilities = np.stack([1.0 - labels, labels, np.zeros_like(labels)])
    vol = phantom_volume(image, (SLICE, PIXEL, PIXEL), (0.0, 0.0, 0.0))
    assert len(measure_lesions(labels, vol, probabilities=probabilities)) == 1


def test_pixels_without_a_value_change_only_themselves():
    labels, image = _disk_stack()
    clean, _ = refine_labels(labels, image, (1,))
    holed = image.copy()
    holed[4, 24, 24] = np.nan
    holed[1, 10, 10] = np.inf
    refined, (record,) = refine_labels(labels, holed, (1,))
    assert record.refined and np.isfinite(record.contrast)
    assert int((refined != clean).sum()) <= 1
    blank = np.full(image.shape, np.nan, dtype=np.float32)
    kept, (none,) = refine_labels(labels, blank, (1,))
    assert not none.refined and np.array_equal(kept, labels)
    dropped, _ = refine_labels(labels, blank, (1,), drop_low_contrast=True)
    assert not dropped.any()


def test_the_field_of_view_edge_counts_as_outside():
    spacing = (5.0, 1.6, 1.6)
    shape = (12, 60, 80)
    a = _ball(shape, spacing, (5, 2, 28), 10.0)
    b = _ball(shape, spacing, (6, 2, 40), 9.0)
    labels = (a | b).astype(np.uint8)
    padded = np.pad(labels, ((0, 0), (4, 0), (0, 0)))
    cut = finding_instances(labels, spacing).max()
    assert cut == finding_instances(padded, spacing).max()


def test_a_wide_end_slice_holding_a_sliver_does_not_set_the_levels():
    """A 5 mm end slice holds only a small cap of the node, but the network
    drew it wider than the middle. Its core is mostly surrounding tissue, so
    levels taken there would leave the whole finding as drawn."""
    n = 48
    rng = np.random.default_rng(4)
    image = rng.normal(40.0, 6.0, (3, n, n)).astype(np.float32)
    middle = _disk(n, (24, 24), 6.0)
    cap = _disk(n, (24, 24), 2.5)
    image[1][middle] += 40.0
    image[2][cap] += 40.0
    labels = np.zeros((3, n, n), dtype=np.uint8)
    labels[1][_disk(n, (24, 24), 7.0)] = 2
    labels[2][_disk(n, (24, 24), 8.0)] = 2
    refined, (record,) = refine_labels(labels, image)
    assert record.refined
    assert record.lesion_level == pytest.approx(80.0, abs=5.0)
    affine = np.diag([PIXEL, PIXEL, SLICE, 1.0])
    expected = slice_diameters(middle, affine).short_mm
    vol = phantom_volume(image, (SLICE, PIXEL, PIXEL), (0.0, 0.0, 0.0))
    (node,) = measure_lesions(labels, vol, refine=True)
    assert node.slice_index == 1
    assert node.short_axis_mm == pytest.approx(expected, abs=1.0)
    assert slice_diameters(refined[2] > 0, affine).short_mm < expected - 5.0


def test_a_bright_vessel_behind_the_liver_does_not_move_a_dark_lesions_edge():
    """A 45 HU lesion in 105 HU liver with a 180 HU vessel three pixels
    beyond its edge: the local level there is the vessel's, which would let
    the liver between them join the lesion."""
    n = 64
    image, lesion = _noisy_disk(n, (32, 28), 8.0, 45.0, 105.0, 6.0, 6)
    image[:, 20:44, 39:47] = 180.0
    drawn = _on_middle_slice(lesion, 1)
    refined, (record,) = refine_labels(drawn, image)
    assert record.refined
    affine = np.diag([PIXEL, PIXEL, SLICE, 1.0])
    expected = slice_diameters(lesion, affine)
    got = slice_diameters(refined[1] > 0, affine)
    assert got.longest_mm == pytest.approx(expected.longest_mm, abs=1.0)
    assert int((refined[1].astype(bool) ^ lesion).sum()) <= 6


def test_edge_pixels_brighter_than_a_node_stay_in_and_a_vessel_stays_out():
    """Inside a 75 HU node against 45 HU tissue, pixels 20 HU brighter than
    the node are still node; a 180 HU vessel touching it is not."""
    n = 48
    image = np.full((3, n, n), 45.0, dtype=np.float32)
    node = _disk(n, (24, 24), 7.0)
    image[1][node] = 75.0
    bright = node & ~_disk(n, (24, 24), 5.0) & (np.mgrid[:n, :n][1] < 24)
    image[1][bright] = 95.0
    image[1, 20:28, 32:38] = 180.0
    labels = _on_middle_slice(node, 2)
    refined, (record,) = refine_labels(labels, image)
    assert record.refined
    assert refined[1][bright].all()
    assert not refined[1, 20:28, 32:38].any()
    assert int((refined[1].astype(bool) ^ node).sum()) == 0


def test_a_slice_where_the_network_took_in_an_organ_does_not_set_the_levels():
    """A 35 HU lung lesion on two slices; on a third the network's outline
    covers the dome of a 110 HU organ. That slice's core stands out most from
    the lung, but not from its own ring: levels taken there would leave no
    contrast and the lesion would be dropped."""
    n = 48
    rng = np.random.default_rng(9)
    image = rng.normal(-850.0, 12.0, (3, n, n)).astype(np.float32)
    lesion = _disk(n, (24, 24), 6.0)
    image[0][lesion] = 35.0
    image[1][lesion] = 35.0
    organ = _disk(n, (24, 24), 14.0)
    image[2][organ] = 110.0
    labels = np.zeros((3, n, n), dtype=np.uint8)
    labels[0][lesion] = 1
    labels[1][lesion] = 1
    labels[2][_disk(n, (24, 24), 8.0)] = 1
    refined, (record,) = refine_labels(labels, image, drop_low_contrast=True)
    assert record.refined
    assert record.lesion_level == pytest.approx(35.0, abs=5.0)
    assert np.array_equal(refined[1] > 0, lesion)


def test_a_large_lesion_drawn_as_an_open_ring_is_filled():
    """A 45 HU lesion of 25 pixels radius in 105 HU liver that the network
    drew as a ring open on one side: its inside lies more than ``grow_px``
    from the outline, and the ring pixels nearest to much of it lie on the
    lesion in the opening. All of it up to the ring's ends (column 60) joins;
    beyond them only what lies within ``grow_px`` of the ring can."""
    n = 80
    image, lesion = _noisy_disk(n, (40, 40), 25.0, 45.0, 105.0, 12.0, 12)
    rows, columns = np.mgrid[:n, :n]
    ring = lesion & ~_disk(n, (40, 40), 16.0)
    ring &= ~((columns > 48) & (np.abs(rows - 40) < 14))
    refined, (record,) = refine_labels(_on_middle_slice(ring, 1), image)
    assert record.refined
    got = refined[1] > 0
    assert int((lesion & (columns <= 59) & ~got).sum()) <= 3
    assert int((got & ~lesion).sum()) <= 2  # liver pixels as dark as the edge


@pytest.mark.parametrize("width", [1, 2])
def test_a_thin_spur_of_lesion_like_tissue_does_not_lengthen_the_lesion(width):
    """A 35 HU lung lesion whose edge meets a strip one or two pixels wide of
    the same level (the mixture of lung and an organ's dome next to it): the
    strip lies within ``grow_px`` of the network's outline but is not lesion."""
    n = 48
    image, lesion = _noisy_disk(n, (24, 24), 6.0, 35.0, -850.0, 12.0, width)
    image[1, 24 : 24 + width, 30:40] = 35.0
    refined, (record,) = refine_labels(_on_middle_slice(lesion, 1), image)
    assert record.refined
    got = refined[1] > 0
    assert got[lesion].all()
    assert int((got & ~lesion).sum()) <= 1  # where the strip meets the edge
    affine = np.diag([PIXEL, PIXEL, SLICE, 1.0])
    expected = slice_diameters(lesion, affine).longest_mm
    assert slice_diameters(got, affine).longest_mm == pytest.approx(expected, abs=0.5)
    # Without solid growth the strip joins as far as grow_px reaches.
    loose, _ = refine_labels(_on_middle_slice(lesion, 1), image, solid_growth=False)
    assert loose[1, 24 : 24 + width, 30:33].all()


def test_a_wide_extension_beyond_the_outline_still_joins():
    """Growth three pixels across beyond the outline is lesion the network
    drew short, and stays."""
    n = 48
    image, lesion = _noisy_disk(n, (24, 24), 8.0, 45.0, 105.0, 8.0, 3)
    drawn = lesion & (np.mgrid[:n, :n][1] <= 29)
    refined, (record,) = refine_labels(_on_middle_slice(drawn, 1), image)
    assert record.refined
    assert int((refined[1].astype(bool) ^ lesion).sum()) <= 2
