"""The per-task entry points: segment, measure, key images, confidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.bundle import Bundle, Preprocessing  # noqa: E402
from models.inference import Segmenter  # noqa: E402
from models.measure import (  # noqa: E402
    measure_ct_lesions,
    measure_haemorrhage,
    measure_lvef,
)
from tests._quantify_fixtures import ellipsoid_mask, make_volume, voxel_centre  # noqa: E402


class BandNet(torch.nn.Module):
    """Class 1 for normalised values in (0.45, 0.75), class 2 above 0.75."""

    def forward(self, x):
        zero = torch.zeros_like(x)
        lesion = 40.0 * torch.minimum(x - 0.45, 0.75 - x)
        node = 40.0 * (x - 0.75)
        return torch.cat([zero, lesion, node], dim=1)


def _segmenter(spacing=(0.0, 1.5, 1.5)) -> Segmenter:
    prep = Preprocessing(
        spacing_mm=spacing, a_min=0.0, a_max=100.0, roi_size=(8, 48, 48)
    )
    bundle = Bundle(Path("."), {"task": "t"}, {}, prep, BandNet(), "sha256:band")
    return Segmenter(bundle, device="cpu")


def test_measure_ct_lesions_gives_measurements_images_and_version():
    vol = make_volume((10, 80, 80), (3.0, 1.0, 1.0))
    lesion = ellipsoid_mask(vol, voxel_centre(vol, 25, 30, 5), (12, 8, 6), np.eye(3))
    node = ellipsoid_mask(vol, voxel_centre(vol, 58, 55, 5), (9, 8, 6), np.eye(3))
    vol.pixels[:] = 0.0
    vol.pixels[lesion] = 60.0
    vol.pixels[node] = 95.0
    found = measure_ct_lesions(vol, _segmenter(spacing=(0.0, 1.0, 1.0)))
    assert [m.lesion_id for m in found.lesions] == ["L01", "N01"]
    assert found.lesions[0].longest_diameter_mm == pytest.approx(24.0, abs=1.5)
    assert found.lesions[1].short_axis_mm == pytest.approx(16.0, abs=1.5)
    assert found.model_version == "sha256:band"
    assert set(found.key_images) == {"L01", "N01"}
    assert all(png.startswith(b"\x89PNG") for png in found.key_images.values())
    assert all(0.5 < m.confidence <= 1.0 for m in found.lesions)


def test_measure_lvef_from_two_phases():
    phases = []
    radii = (25.0, 16.0)
    for radius in radii:
        vol = make_volume((10, 90, 90), (8.0, 1.5, 1.5))
        mask = ellipsoid_mask(
            vol, voxel_centre(vol, 45, 45, 4.5), (radius, radius, 1e6), np.eye(3)
        )
        mask[:1] = False
        mask[-1:] = False
        vol.pixels[:] = 0.0
        vol.pixels[mask] = 60.0
        phases.append(vol)
    finding = measure_lvef(phases, _segmenter())
    expected = [np.pi * r**2 * 8.0 * 8 / 1000 for r in radii]
    assert finding.result.edv_ml == pytest.approx(expected[0], rel=0.04)
    assert finding.result.esv_ml == pytest.approx(expected[1], rel=0.06)
    ef = 100 * (expected[0] - expected[1]) / expected[0]
    assert finding.result.ef_percent == pytest.approx(ef, abs=2.0)
    assert finding.key_image.startswith(b"\x89PNG")
    assert finding.confidence > 0.5


def test_measure_haemorrhage_volume_and_abc2():
    vol = make_volume((20, 100, 100), (5.0, 1.0, 1.0))
    semi = (20.0, 14.0, 16.0)
    mask = ellipsoid_mask(vol, voxel_centre(vol, 50, 50, 10), semi, np.eye(3))
    vol.pixels[:] = 0.0
    vol.pixels[mask] = 60.0
    finding = measure_haemorrhage(vol, _segmenter(spacing=(0.0, 1.2, 1.2)))
    true_ml = 4 / 3 * np.pi * np.prod(semi) / 1000
    assert finding.volume_ml == pytest.approx(true_ml, rel=0.05)
    assert finding.abc2.a_mm == pytest.approx(40.0, abs=2.0)
    assert finding.key_image is not None and finding.key_image.startswith(b"\x89PNG")
    empty = make_volume((6, 40, 40), (5.0, 1.0, 1.0))
    nothing = measure_haemorrhage(empty, _segmenter())
    assert nothing.volume_ml == 0.0 and nothing.key_image is None


class OutlineOff:
    """A stand-in network whose outline is the truth grown or shrunk by
    ``change`` pixels in plane, as an interpolated network outline can be."""

    def __init__(self, truths: list[np.ndarray], change: int) -> None:
        self.truths = list(truths)
        self.change = change

    def segment_with_probabilities(self, volume):
        from scipy import ndimage

        from models.inference import Segmentation

        truth = self.truths.pop(0)
        plane = np.zeros((3, 3, 3), dtype=bool)
        plane[1] = True
        if self.change > 0:
            drawn = ndimage.binary_dilation(truth, plane, iterations=self.change)
        else:
            drawn = ndimage.binary_erosion(truth, plane, iterations=-self.change)
        labels = drawn.astype(np.uint8)
        probabilities = np.stack([1.0 - labels, labels]).astype(np.float32)
        return Segmentation(labels, probabilities, "sha256:off")


@pytest.mark.parametrize("change", [-1, 1])
def test_lvef_is_measured_at_the_image_edge_not_the_network_outline(change):
    from models.phantoms import cmr_short_axis_phantom
    from models.training.lvef_cmr import phase_volume

    rng = np.random.default_rng(21)
    phantom = cmr_short_axis_phantom((12, 128, 128), (8.0, 1.6, 1.6), 150, 70, rng)
    phases = [phase_volume(phantom, p) for p in range(2)]
    network = OutlineOff([phantom.labels[p] == 1 for p in range(2)], change)
    finding = measure_lvef(phases, network)
    # One pixel all round is about 8 % of the end-systolic volume here.
    assert finding.result.edv_ml == pytest.approx(phantom.edv_ml, rel=0.02)
    assert finding.result.esv_ml == pytest.approx(phantom.esv_ml, rel=0.03)
    assert finding.result.ef_percent == pytest.approx(phantom.lvef_percent, abs=1.0)


@pytest.mark.parametrize("change", [-1, 1])
def test_haemorrhage_is_measured_at_the_image_edge(change):
    from models.phantoms import HaematomaSpec, head_ct_phantom
    from models.training.data import phantom_volume

    rng = np.random.default_rng(5)
    spec = HaematomaSpec((38.0, 5.0, 0.0), (14.0, 10.0, 11.0), 30.0, 62.0)
    phantom = head_ct_phantom((24, 128, 128), (5.0, 1.8, 1.8), spec, rng)
    volume = phantom_volume(phantom.hu, phantom.spacing_mm, phantom.origin_mm)
    finding = measure_haemorrhage(volume, OutlineOff([phantom.labels == 1], change))
    assert finding.volume_ml == pytest.approx(phantom.haematoma_volume_ml, rel=0.04)
