"""Boundary refinement of segmented findings from the image intensities.

A network's outline on a coarse working grid can be off by a fraction of a
voxel, which matters when diameters must be right to the millimetre. For a
homogeneous finding on a homogeneous background the half-way intensity between
the two is where the true edge lies (a partial-volume voxel is half covered at
that value), so each finding is re-thresholded there inside a thin shell around
its segmented outline. Only the finding's own shell is touched; its class is
kept.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["refine_by_intensity"]

logger = logging.getLogger(__name__)


def refine_by_intensity(
    labels: np.ndarray,
    pixels: np.ndarray,
    *,
    shell_voxels: int = 2,
    min_contrast: float = 20.0,
) -> np.ndarray:
    """Re-threshold each connected finding at the mid-point intensity.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer mask ``[k, j, i]`` (0 background).
    pixels : numpy.ndarray
        The image on the same grid (HU for CT).
    shell_voxels : int
        In-plane width of the band (inside and outside the outline) in which
        voxels may change.
    min_contrast : float
        Findings whose inside and surrounding medians differ by less than this
        are left as segmented.

    Returns
    -------
    numpy.ndarray
        A new label array.
    """
    from scipy import ndimage

    out = labels.copy()
    plane = np.zeros((3, 3, 3), dtype=bool)
    plane[1] = ndimage.generate_binary_structure(2, 1)
    for value in (int(v) for v in np.unique(labels) if v != 0):
        components, _ = ndimage.label(labels == value, np.ones((3, 3, 3), bool))
        for index, box in enumerate(ndimage.find_objects(components), start=1):
            if box is None:
                continue
            pad = shell_voxels + 2
            region = tuple(
                slice(
                    max(s.start - (1 if n == 0 else pad), 0),
                    s.stop + (1 if n == 0 else pad),
                )
                for n, s in enumerate(box)
            )
            mask = components[region] == index
            image = pixels[region]
            grown = ndimage.binary_dilation(mask, plane, iterations=shell_voxels)
            shrunk = ndimage.binary_erosion(mask, plane, iterations=shell_voxels)
            ring = ndimage.binary_dilation(grown, plane, iterations=2) & ~grown
            core = shrunk if shrunk.sum() >= 4 else mask
            others = (labels[region] != 0) & ~mask
            ring &= ~others
            if ring.sum() < 8:
                continue
            inside, outside = (
                float(np.median(image[core])),
                float(np.median(image[ring])),
            )
            if abs(inside - outside) < min_contrast:
                continue
            threshold = 0.5 * (inside + outside)
            brighter = inside > outside
            candidate = (image > threshold) if brighter else (image < threshold)
            refined = (shrunk | (candidate & grown)) & ~others
            refined = _largest_component(refined, ndimage)
            if refined.sum() == 0:
                continue
            view = out[region]
            view[mask & ~refined] = 0
            view[refined & (view == 0)] = value
    return out


def _largest_component(mask: np.ndarray, ndimage: object) -> np.ndarray:
    parts, count = ndimage.label(mask, np.ones((3, 3, 3), bool))  # type: ignore[attr-defined]
    if count <= 1:
        return mask
    sizes = np.bincount(parts.ravel())
    sizes[0] = 0
    return parts == int(np.argmax(sizes))
