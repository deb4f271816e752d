"""Helpers that re-measure phantoms and synthetic trials from their pixels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage


def feret_axes_mm(
    mask2d: np.ndarray, row_mm: float, col_mm: float
) -> tuple[float, float]:
    """Longest diameter and the widest extent perpendicular to it, in mm.

    Distances run between pixel centres plus one pixel (half a pixel at each
    end), so a region of one pixel measures one pixel across.
    """
    rows, cols = np.nonzero(mask2d)
    if rows.size == 0:
        return 0.0, 0.0
    points = np.stack([cols * col_mm, rows * row_mm], axis=1).astype(float)
    if points.shape[0] > 3:
        from scipy.spatial import ConvexHull

        try:
            hull = points[ConvexHull(points).vertices]
        except Exception:
            hull = points
    else:
        hull = points
    diff = hull[:, None, :] - hull[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    i, j = np.unravel_index(np.argmax(dist), dist.shape)
    axis = diff[i, j] / (dist[i, j] or 1.0)
    normal = np.array([-axis[1], axis[0]])
    spread = points @ normal
    pixel = math.hypot(abs(axis[0]) * col_mm, abs(axis[1]) * row_mm)
    pixel_n = math.hypot(abs(normal[0]) * col_mm, abs(normal[1]) * row_mm)
    return float(dist[i, j] + pixel), float(spread.max() - spread.min() + pixel_n)


def component_at(mask: np.ndarray, seed: tuple[int, ...]) -> np.ndarray:
    """The connected component of ``mask`` that contains ``seed``."""
    labelled, _ = ndimage.label(mask)
    value = labelled[seed]
    if value == 0:
        return np.zeros_like(mask, dtype=bool)
    return labelled == value


@pytest.fixture(scope="session")
def small_trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic trial written once per test session."""
    from evals.synth import generate_trial

    out = tmp_path_factory.mktemp("synth-trial")
    generate_trial(out, subjects=10, seed=7, small=True)
    return out


def threshold_region(
    image: np.ndarray,
    threshold: float,
    seed: tuple[int, ...],
    below: bool = False,
    smooth_px: float = 1.0,
) -> np.ndarray:
    """Region grown from ``seed`` on a lightly smoothed, thresholded image."""
    smoothed = ndimage.gaussian_filter(image.astype(np.float32), smooth_px)
    mask = smoothed < threshold if below else smoothed > threshold
    region = component_at(mask, seed)
    if region.ndim == 2:
        return ndimage.binary_fill_holes(region)
    return region
