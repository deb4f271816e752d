"""The inference runner: resampling to the model grid and back, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.bundle import Bundle, Preprocessing  # noqa: E402
from models.inference import (  # noqa: E402
    Segmenter,
    from_model_grid,
    model_grid_shape,
    slices_between_working_slices,
    to_model_grid,
)
from models.quantify import measure_lesions  # noqa: E402
from tests._quantify_fixtures import (  # noqa: E402
    ellipsoid_mask,
    make_volume,
    rotation,
    voxel_centre,
)


class ThresholdNet(torch.nn.Module):
    """Class 1 wherever the normalised image is above one half."""

    def forward(self, x):
        return torch.cat([torch.zeros_like(x), 40.0 * (x - 0.5)], dim=1)


def _bundle(spacing=(2.5, 1.5, 1.5), roi=(16, 48, 48)) -> Bundle:
    prep = Preprocessing(
        spacing_mm=spacing,
        a_min=0.0,
        a_max=100.0,
        roi_size=roi,
        labels={0: "background", 1: "lesion"},
    )
    return Bundle(Path("."), {"task": "test"}, {}, prep, ThresholdNet(), "sha256:test")


def test_model_grid_shape_keeps_the_extent():
    assert model_grid_shape((11, 101, 101), (5.0, 0.75, 0.75), (2.5, 1.5, 1.5)) == (
        21,
        51,
        51,
    )
    assert model_grid_shape((1, 10, 10), (5.0, 1.5, 1.5), (2.5, 1.5, 1.5)) == (
        1,
        10,
        10,
    )


def test_resampling_round_trip_of_a_smooth_field():
    k, j, i = np.meshgrid(np.arange(12), np.arange(40), np.arange(30), indexing="ij")
    field = np.sin(k / 4.0) + np.cos(j / 9.0) + i / 30.0
    small = to_model_grid(field, (5.0, 0.8, 1.0), (2.5, 1.6, 1.5))
    assert small.shape == model_grid_shape(
        field.shape, (5.0, 0.8, 1.0), (2.5, 1.6, 1.5)
    )
    back = from_model_grid(torch.from_numpy(small)[None], field.shape)[0].numpy()
    assert np.abs(back - field).max() < 0.05
    assert back[0, 0, 0] == pytest.approx(field[0, 0, 0], abs=1e-5)
    assert back[-1, -1, -1] == pytest.approx(field[-1, -1, -1], abs=1e-5)


@pytest.mark.parametrize(
    ("spacing", "orientation"),
    [((5.0, 0.8, 0.8), np.eye(3)), ((3.0, 1.7, 1.2), rotation("x", 15.0))],
)
def test_labels_come_back_on_the_native_grid(spacing, orientation):
    vol = make_volume((24, 110, 100), spacing, orientation)
    centre = voxel_centre(vol, 47.3, 55.6, 11.0)
    semi = (17.0, 11.0, 15.0)
    mask = ellipsoid_mask(vol, centre, semi, orientation @ rotation("z", 25.0))
    vol.pixels = np.where(mask, 100.0, 0.0).astype(np.float32)
    segmenter = Segmenter(_bundle(), device="cpu")
    result = segmenter.segment_with_probabilities(vol)
    assert result.labels.shape == vol.shape
    assert result.labels.dtype == np.uint8
    assert result.probabilities.shape == (2, *vol.shape)
    assert np.allclose(result.probabilities.sum(axis=0), 1.0, atol=1e-5)
    assert result.model_version == "sha256:test"
    predicted = result.labels == 1
    dice = 2 * (predicted & mask).sum() / (predicted.sum() + mask.sum())
    assert dice > 0.93
    (lesion,) = measure_lesions(result.labels, vol)
    assert lesion.longest_diameter_mm == pytest.approx(2 * semi[0], abs=1.5)
    assert lesion.short_axis_mm == pytest.approx(2 * semi[1], abs=1.5)
    assert np.allclose(lesion.centroid_mm, centre, atol=1.0)
    again = segmenter.segment(vol)
    assert np.array_equal(again, result.labels)


@pytest.mark.parametrize(
    ("slices", "spacing", "target", "expected"),
    [
        (24, 5.0, 2.5, False),
        (120, 2.5, 2.5, False),
        (40, 3.0, 2.5, True),
        (40, 1.25, 2.5, True),
        (80, 0.625, 2.5, True),
        (1, 3.0, 2.5, False),
        (40, 3.0, 0.0, False),
    ],
)
def test_two_passes_only_where_native_slices_fall_between_working_slices(
    slices, spacing, target, expected
):
    assert (
        slices_between_working_slices(
            (slices, 64, 64), (spacing, 1.0, 1.0), (target, 1.5, 1.5)
        )
        is expected
    )


@pytest.mark.parametrize("slab", range(1, 7))
def test_a_one_slice_lesion_is_found_wherever_it_falls_between_working_slices(
    slab,
):
    # 3 mm slices on a 2.5 mm model: slices 2 and 3 (6 and 9 mm) lie 1 mm from
    # the nearest working slice, where the resampled slab (70 of a 100 window)
    # falls below the network's threshold; at half a working slice it does not.
    vol = make_volume((12, 24, 24), (3.0, 1.5, 1.5))
    vol.pixels[slab, 6:18, 8:16] = 70.0
    labels = Segmenter(_bundle(), device="cpu").segment(vol)
    assert labels[slab, 6:18, 8:16].all()
    assert labels.sum() == 12 * 8


def test_volume_smaller_than_the_window_is_padded():
    vol = make_volume((6, 20, 20), (2.5, 1.5, 1.5))
    vol.pixels[2:4, 5:12, 6:14] = 100.0
    labels = Segmenter(_bundle(), device="cpu").segment(vol)
    assert labels.shape == vol.shape
    assert labels[2:4, 5:12, 6:14].all() and labels.sum() == 2 * 7 * 8


def test_cuda_request_without_gpu_raises():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    from triallens.errors import ModelError

    with pytest.raises(ModelError):
        Segmenter(_bundle(), device="cuda")
