"""Key images: one slice with the finding's outline and measured diameters.

The slice is windowed to grey levels, resampled to square display pixels (so a
diameter looks as long as it is), the outline drawn in yellow, the longest
diameter in red and the short axis in cyan, with the values in mm written in a
corner. Images carry no patient data: only the pixels and the measurement.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.quantify._planar import PlanarDiameters
from models.quantify.lesions import KeySliceGeometry
from triallens.domain import LesionMeasurement
from triallens.geometry.volume import SeriesVolume

__all__ = [
    "Line",
    "render_key_image",
    "render_lesion_key_image",
    "render_mask_key_image",
]

OUTLINE = (255, 220, 0)
LONG_AXIS = (255, 60, 60)
SHORT_AXIS = (60, 220, 255)


@dataclass(frozen=True)
class Line:
    """A measured segment in (i, j) pixel coordinates of the slice."""

    start_ij: tuple[float, float]
    end_ij: tuple[float, float]
    colour: tuple[int, int, int]


def render_key_image(
    slice_pixels: np.ndarray,
    mask2d: np.ndarray | None,
    pixel_spacing_mm: tuple[float, float],
    lines: Sequence[Line] = (),
    caption: str = "",
    window: tuple[float, float] = (40.0, 400.0),
    display_mm_per_pixel: float | None = None,
) -> bytes:
    """Render one annotated slice as PNG bytes.

    Parameters
    ----------
    slice_pixels : numpy.ndarray
        The slice ``[j, i]`` in stored units (HU for CT).
    mask2d : numpy.ndarray, optional
        The outline to draw (boolean ``[j, i]``).
    pixel_spacing_mm : tuple of float
        (row spacing, column spacing) in mm.
    lines : sequence of Line
        Segments to draw.
    caption : str
        Text written in the top-left corner.
    window : tuple of float
        Window centre and width.
    display_mm_per_pixel : float, optional
        Size of a display pixel; defaults to the smaller pixel spacing, capped
        so the image is at most about 1024 pixels wide.
    """
    from PIL import Image, ImageDraw

    centre, width = window
    low = centre - width / 2.0
    grey = np.clip((np.asarray(slice_pixels, dtype=float) - low) / width, 0.0, 1.0)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    if mask2d is not None:
        mask = np.asarray(mask2d, dtype=bool)
        edge = mask & ~_eroded(mask)
        rgb[edge] = OUTLINE

    rows, cols = rgb.shape[:2]
    row_mm, col_mm = pixel_spacing_mm
    step = display_mm_per_pixel or min(row_mm, col_mm)
    step = max(step, max(rows * row_mm, cols * col_mm) / 1024.0)
    size = (max(1, round(cols * col_mm / step)), max(1, round(rows * row_mm / step)))
    image = Image.fromarray(rgb).resize(size, Image.Resampling.NEAREST)
    sx, sy = size[0] / cols, size[1] / rows

    draw = ImageDraw.Draw(image)
    for line in lines:
        a = ((line.start_ij[0] + 0.5) * sx, (line.start_ij[1] + 0.5) * sy)
        b = ((line.end_ij[0] + 0.5) * sx, (line.end_ij[1] + 0.5) * sy)
        draw.line([a, b], fill=line.colour, width=2)
        for point in (a, b):
            draw.ellipse(
                [point[0] - 2, point[1] - 2, point[0] + 2, point[1] + 2],
                fill=line.colour,
            )
    if caption:
        draw.rectangle([0, 0, 8 + 6 * len(caption), 16], fill=(0, 0, 0))
        draw.text((4, 3), caption, fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def render_lesion_key_image(
    volume: SeriesVolume,
    lesion: LesionMeasurement,
    geometry: KeySliceGeometry,
    window: tuple[float, float] = (40.0, 400.0),
) -> bytes:
    """The key image of one measured lesion or node (PNG bytes)."""
    d: PlanarDiameters = geometry.diameters
    caption = (
        f"{lesion.lesion_id} {lesion.kind.value}: "
        f"LD {lesion.longest_diameter_mm:.1f} mm, SA {lesion.short_axis_mm:.1f} mm"
    )
    _, row_mm, col_mm = volume.spacing
    return render_key_image(
        volume.pixels[geometry.slice_index],
        geometry.mask2d,
        (row_mm, col_mm),
        [
            Line(*d.long_endpoints_ij, LONG_AXIS),
            Line(*d.short_endpoints_ij, SHORT_AXIS),
        ],
        caption=caption,
        window=window,
    )


def _eroded(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    return (
        padded[1:-1, 1:-1]
        & padded[:-2, 1:-1]
        & padded[2:, 1:-1]
        & padded[1:-1, :-2]
        & padded[1:-1, 2:]
    )


def render_mask_key_image(
    volume: SeriesVolume,
    mask: np.ndarray,
    slice_index: int,
    caption: str,
    diameters: PlanarDiameters | None = None,
    window: tuple[float, float] = (40.0, 400.0),
) -> bytes:
    """Key image of a 3D mask on one slice, optionally with its diameters."""
    lines: list[Line] = []
    if diameters is not None:
        lines = [
            Line(*diameters.long_endpoints_ij, LONG_AXIS),
            Line(*diameters.short_endpoints_ij, SHORT_AXIS),
        ]
    _, row_mm, col_mm = volume.spacing
    return render_key_image(
        volume.pixels[slice_index],
        np.asarray(mask[slice_index], dtype=bool),
        (row_mm, col_mm),
        lines,
        caption=caption,
        window=window,
    )
