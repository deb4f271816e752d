"""Key images: outline and diameters drawn where they were measured."""

from __future__ import annotations

import io

import numpy as np
import pytest

from models.key_images import LONG_AXIS, OUTLINE, SHORT_AXIS, render_lesion_key_image
from models.quantify import measure_lesions_with_geometry
from tests._quantify_fixtures import ellipsoid_mask, make_volume, voxel_centre

Image = pytest.importorskip("PIL.Image")


def _colour_pixels(png: bytes, colour) -> np.ndarray:
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return np.argwhere(np.all(image == np.array(colour, dtype=np.uint8), axis=-1))


def test_key_image_shows_outline_and_axes_at_true_scale():
    # Anisotropic pixels: rows 1.6 mm, columns 0.8 mm; a 30 x 16 mm lesion.
    vol = make_volume((8, 60, 120), (4.0, 1.6, 0.8))
    mask = ellipsoid_mask(vol, voxel_centre(vol, 60, 30, 4), (15, 8, 8), np.eye(3))
    vol.pixels = np.where(mask, 60.0, 0.0).astype(np.float32)
    ((lesion, geometry),) = measure_lesions_with_geometry(mask.astype(np.uint8), vol)
    png = render_lesion_key_image(vol, lesion, geometry)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png))
    # Square display pixels of 0.8 mm: 96 mm x 96 mm field -> 120 x 120.
    assert image.size == (120, 120)
    assert len(_colour_pixels(png, OUTLINE)) > 20
    red = _colour_pixels(png, LONG_AXIS)
    cyan = _colour_pixels(png, SHORT_AXIS)
    # End dots reach 2 display pixels beyond each end of a segment.
    dots_mm = 4 * 0.8
    # The long axis spans about 30 mm horizontally.
    extent = (red[:, 1].max() - red[:, 1].min()) * 0.8 - dots_mm
    assert extent == pytest.approx(lesion.longest_diameter_mm, abs=1.6)
    assert (red[:, 0].max() - red[:, 0].min()) <= 6
    # The short axis is vertical and about 16 mm long.
    vertical = (cyan[:, 0].max() - cyan[:, 0].min()) * 0.8 - dots_mm
    assert vertical == pytest.approx(lesion.short_axis_mm, abs=1.6)
