"""Helpers that re-measure phantoms and synthetic trials from their pixels."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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


def edge_diameters_mm(
    image: np.ndarray,
    region: np.ndarray,
    threshold: float,
    row_mm: float,
    col_mm: float,
    smooth_px: float = 0.7,
) -> tuple[float, float]:
    """Longest diameter and perpendicular width from sub-pixel edge points.

    Edge points are where the lightly smoothed image crosses ``threshold``
    between a pixel of ``region`` and a 4-neighbour outside it (linear
    interpolation, as marching squares does). Returns (longest, short) in mm.
    """
    smoothed = ndimage.gaussian_filter(image.astype(np.float32), smooth_px)
    points = []
    for axis in (0, 1):
        a = region[:-1, :] if axis == 0 else region[:, :-1]
        b = region[1:, :] if axis == 0 else region[:, 1:]
        va = smoothed[:-1, :] if axis == 0 else smoothed[:, :-1]
        vb = smoothed[1:, :] if axis == 0 else smoothed[:, 1:]
        rows, cols = np.nonzero(a != b)
        first, second = va[rows, cols], vb[rows, cols]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.clip((threshold - first) / (second - first), 0.0, 1.0)
        t = np.nan_to_num(t, nan=0.5)
        if axis == 0:
            points.append(np.stack([cols * col_mm, (rows + t) * row_mm], axis=1))
        else:
            points.append(np.stack([(cols + t) * col_mm, rows * row_mm], axis=1))
    xy = np.concatenate(points)
    if xy.shape[0] < 3:
        return 0.0, 0.0
    from scipy.spatial import ConvexHull

    hull = xy[ConvexHull(xy).vertices]
    diff = hull[:, None, :] - hull[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    i, j = np.unravel_index(np.argmax(dist), dist.shape)
    axis_dir = diff[i, j] / dist[i, j]
    normal = np.array([-axis_dir[1], axis_dir[0]])
    spread = xy @ normal
    return float(dist[i, j]), float(spread.max() - spread.min())


def stored_recist_baseline(tmp_path: Path) -> tuple[Any, Path, str]:
    """One recist_pr subject's baseline CT stored in an embedded PACS.

    Returns the triage context over ``tmp_path / "data"``, that data folder
    and the study's (PACS) UID.
    """
    import pydicom

    from agent.triage import TriageContext
    from evals.synth import generate_trial
    from triallens.settings import Settings

    trial = tmp_path / "trial"
    generate_trial(trial, subjects=1, seed=3, small=True, scenarios=["recist_pr"])
    baseline = sorted((trial / "dicom").glob("*/BASELINE"))[0]
    datasets = [pydicom.dcmread(p) for p in sorted(baseline.rglob("*.dcm"))]
    data_dir = tmp_path / "data"
    ctx = TriageContext(settings=Settings(data_dir=data_dir))
    ctx.pacs.store(datasets)
    return ctx, data_dir, str(datasets[0].StudyInstanceUID)
