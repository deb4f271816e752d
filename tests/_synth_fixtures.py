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
    upper: float | None = None,
) -> np.ndarray:
    """Region grown from ``seed`` on a lightly smoothed, thresholded image."""
    smoothed = ndimage.gaussian_filter(image.astype(np.float32), smooth_px)
    mask = smoothed < threshold if below else smoothed > threshold
    if upper is not None:
        mask &= smoothed < upper
    region = component_at(mask, seed)
    if region.ndim == 2:
        return ndimage.binary_fill_holes(region)
    return region


def read_series(folder: Path) -> tuple[np.ndarray, list, np.ndarray]:
    """Rescaled pixels ``[k, j, i]`` sorted along the slice normal.

    Returns the stack, the sorted datasets and each slice's position.
    """
    import pydicom

    datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    orientation = np.array(datasets[0].ImageOrientationPatient, float)
    normal = np.cross(orientation[:3], orientation[3:])
    datasets.sort(key=lambda d: float(np.dot(normal, d.ImagePositionPatient)))
    slope = float(getattr(datasets[0], "RescaleSlope", 1.0))
    intercept = float(getattr(datasets[0], "RescaleIntercept", 0.0))
    stack = np.stack([d.pixel_array.astype(np.float32) for d in datasets])
    positions = np.array([[float(v) for v in d.ImagePositionPatient] for d in datasets])
    return stack * slope + intercept, datasets, positions


def pixel_of(point_mm, dataset) -> tuple[int, int]:
    """(row, column) of the pixel nearest a patient point, in one image's plane."""
    orientation = np.array(dataset.ImageOrientationPatient, float)
    origin = np.array(dataset.ImagePositionPatient, float)
    row_mm, col_mm = (float(v) for v in dataset.PixelSpacing)
    delta = np.asarray(point_mm, float) - origin
    column = float(np.dot(delta, orientation[:3])) / col_mm
    row = float(np.dot(delta, orientation[3:])) / row_mm
    return round(row), round(column)


def otsu(values: np.ndarray) -> float:
    """Otsu's threshold of a sample of values."""
    hist, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    total = weight[-1]
    mean = np.cumsum(hist * centres)
    between = (mean[-1] * weight / total - mean) ** 2 / (
        weight * (total - weight) / total + 1e-9
    )
    return float(centres[int(np.argmax(between[:-1]))])


def profile_diameters_mm(
    image: np.ndarray,
    region: np.ndarray,
    threshold: float,
    row_mm: float,
    col_mm: float,
    smooth_px: float = 1.0,
) -> tuple[float, float]:
    """Diameters along the region's principal axes, to sub-pixel precision.

    From the region's centroid, the lightly smoothed image is sampled (linear
    interpolation) along each principal axis in both directions until it
    crosses ``threshold``; each diameter is the distance between the crossings.
    Returns (major, minor) in mm.
    """
    smoothed = ndimage.gaussian_filter(image.astype(np.float32), smooth_px)
    rows, cols = np.nonzero(region)
    points = np.stack([cols * col_mm, rows * row_mm], axis=1)
    centre = points.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(points.T))
    inside_high = (
        smoothed[int(rows.mean().round()), int(cols.mean().round())] > threshold
    )
    step = 0.05 * min(row_mm, col_mm)
    limit = 2.0 * math.hypot(np.ptp(points[:, 0]), np.ptp(points[:, 1])) + 5.0
    distances = np.arange(0.0, limit, step)
    diameters = []
    for vector in (vectors[:, 1], vectors[:, 0]):
        total = 0.0
        for sign in (1.0, -1.0):
            xy = centre[None, :] + sign * distances[:, None] * vector[None, :]
            samples = ndimage.map_coordinates(
                smoothed,
                [xy[:, 1] / row_mm, xy[:, 0] / col_mm],
                order=1,
                mode="nearest",
            )
            outside = samples <= threshold if inside_high else samples >= threshold
            first = int(np.argmax(outside))
            if first == 0:
                return 0.0, 0.0
            before, after = samples[first - 1], samples[first]
            fraction = (before - threshold) / (before - after) if before != after else 0
            total += distances[first - 1] + fraction * step
        diameters.append(total)
    return float(diameters[0]), float(diameters[1])


def moment_diameters_mm(
    image: np.ndarray,
    region: np.ndarray,
    inside_level: float,
    outside_level: float,
    row_mm: float,
    col_mm: float,
    margin_px: int = 2,
) -> tuple[float, float]:
    """Diameters of an elliptical region from intensity-weighted moments.

    Each pixel within ``margin_px`` of ``region`` is weighted by its fraction
    between ``outside_level`` and ``inside_level`` (partial volume, noise left
    unclipped so that it averages out). For a filled ellipse the variance
    along an axis is (semi-axis)^2 / 4, so each diameter is four times the
    square root of the covariance eigenvalue, after removing the variance of
    a pixel's own extent. Returns (major, minor) in mm.
    """
    band = ndimage.binary_dilation(region, iterations=margin_px)
    rows, cols = np.nonzero(band)
    weights = (image[rows, cols] - outside_level) / (inside_level - outside_level)
    points = np.stack([cols * col_mm, rows * row_mm], axis=1)
    total = weights.sum()
    centre = (weights[:, None] * points).sum(axis=0) / total
    offset = points - centre
    cov = (weights[:, None, None] * offset[:, :, None] * offset[:, None, :]).sum(0)
    cov = cov / total - np.diag([col_mm**2 / 12.0, row_mm**2 / 12.0])
    values = np.clip(np.linalg.eigvalsh(cov), 0.0, None)
    return float(4.0 * math.sqrt(values[1])), float(4.0 * math.sqrt(values[0]))
