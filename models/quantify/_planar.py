"""In-plane geometry shared by the measurements: diameters in millimetres.

A binary mask on one slice is turned into boundary points placed on the pixel
edges between an inside and an outside pixel. Mapping those points through the
affine gives millimetre positions that respect anisotropic pixels and tilted or
oblique image planes. The longest diameter is the largest distance between two
boundary points (found on their convex hull); the short axis is the extent of the
points across the long axis, which equals the longest perpendicular chord of a
convex outline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PlanarDiameters", "plane_basis", "slice_diameters", "slice_spacing_mm"]


@dataclass(frozen=True)
class PlanarDiameters:
    """Longest diameter and short axis of one outline on one slice.

    Endpoints are given as (i, j) pixel coordinates (column, row, fractional),
    ready to be drawn on the slice.
    """

    longest_mm: float
    short_mm: float
    long_endpoints_ij: tuple[tuple[float, float], tuple[float, float]]
    short_endpoints_ij: tuple[tuple[float, float], tuple[float, float]]


def plane_basis(affine: np.ndarray) -> np.ndarray:
    """Return the 2x2 matrix mapping in-plane (di, dj) offsets to plane mm.

    Parameters
    ----------
    affine : numpy.ndarray
        4x4 index-to-patient matrix of the volume.

    Returns
    -------
    numpy.ndarray
        ``M`` such that ``M @ [di, dj]`` are coordinates in mm on an orthonormal
        basis of the image plane (first axis along the row direction).
    """
    col_step = affine[:3, 0].astype(float)
    row_step = affine[:3, 1].astype(float)
    e1 = col_step / np.linalg.norm(col_step)
    e2 = row_step - np.dot(row_step, e1) * e1
    e2 = e2 / np.linalg.norm(e2)
    basis = np.stack([e1, e2])
    return basis @ np.stack([col_step, row_step], axis=1)


def slice_spacing_mm(affine: np.ndarray) -> float:
    """Distance between adjacent slices along the plane normal (mm).

    The slice step of the affine is projected on the normal of the image plane,
    so a gantry tilt or a sheared stack gives the true spacing between planes,
    not the length of the step (PS3.3 C.7.6.2.1.1).
    """
    normal = np.cross(affine[:3, 0], affine[:3, 1])
    normal = normal / np.linalg.norm(normal)
    return float(abs(np.dot(affine[:3, 2], normal)))


def boundary_points(mask2d: np.ndarray, smoothing_px: float = 0.7) -> np.ndarray:
    """Sub-pixel outline points of a mask on one slice, as (i, j) coordinates.

    The mask is blurred with a small Gaussian and the 0.5 level is located by
    linear interpolation between neighbouring pixel centres. This removes most
    of the staircase bias of a binary outline (an unsmoothed outline measures
    about a third of a pixel too long). A mask too small to survive the blur
    falls back to the midpoints of its pixel edges.
    """
    from scipy import ndimage

    mask = np.asarray(mask2d, dtype=bool)
    pad = 3
    field = np.pad(mask.astype(float), pad)
    if smoothing_px > 0:
        field = ndimage.gaussian_filter(field, smoothing_px)
    points: list[np.ndarray] = []
    for axis in (0, 1):
        first = field[:-1, :] if axis == 0 else field[:, :-1]
        second = field[1:, :] if axis == 0 else field[:, 1:]
        rows, cols = np.nonzero((first - 0.5) * (second - 0.5) < 0)
        frac = (0.5 - first[rows, cols]) / (second[rows, cols] - first[rows, cols])
        if axis == 0:
            points.append(np.stack([cols, rows + frac], axis=1))
        else:
            points.append(np.stack([cols + frac, rows], axis=1))
    found = np.concatenate(points) - pad
    if len(found) >= 2 or smoothing_px == 0:
        return found
    return boundary_points(mask, smoothing_px=0.0)


def _hull(points: np.ndarray) -> np.ndarray:
    if len(points) < 4:
        return points
    try:
        from scipy.spatial import ConvexHull, QhullError

        try:
            return points[ConvexHull(points).vertices]
        except QhullError:
            return points
    except ImportError:  # pragma: no cover - scipy is a dependency
        return points


def slice_diameters(mask2d: np.ndarray, affine: np.ndarray) -> PlanarDiameters:
    """Measure the longest diameter and the short axis of a mask on one slice.

    Parameters
    ----------
    mask2d : numpy.ndarray
        Boolean mask indexed ``[j, i]`` (row, column).
    affine : numpy.ndarray
        4x4 index-to-patient matrix of the volume the slice belongs to.

    Returns
    -------
    PlanarDiameters
        Zero diameters when the mask is empty.
    """
    points_ij = boundary_points(mask2d)
    if len(points_ij) == 0:
        zero = ((0.0, 0.0), (0.0, 0.0))
        return PlanarDiameters(0.0, 0.0, zero, zero)
    to_mm = plane_basis(affine)
    hull_ij = _hull(points_ij)
    hull_mm = hull_ij @ to_mm.T

    # Longest diameter: the farthest pair of hull vertices.
    diff = hull_mm[:, None, :] - hull_mm[None, :, :]
    dist = np.sqrt((diff**2).sum(axis=-1))
    a, b = np.unravel_index(int(np.argmax(dist)), dist.shape)
    longest = float(dist[a, b])
    if longest == 0.0:
        p = tuple(float(v) for v in hull_ij[0])
        return PlanarDiameters(0.0, 0.0, (p, p), (p, p))
    axis = (hull_mm[b] - hull_mm[a]) / longest
    perp = np.array([-axis[1], axis[0]])

    # Short axis: extent across the long axis, drawn through the widest place.
    across = hull_mm @ perp
    lo, hi = int(np.argmin(across)), int(np.argmax(across))
    short = float(across[hi] - across[lo])
    along = 0.5 * (hull_mm[lo] + hull_mm[hi]) @ axis
    mid_across = 0.5 * (across[hi] + across[lo])
    half = 0.5 * short
    s0 = along * axis + (mid_across - half) * perp
    s1 = along * axis + (mid_across + half) * perp
    from_mm = np.linalg.inv(to_mm)
    s0_ij, s1_ij = from_mm @ s0, from_mm @ s1
    return PlanarDiameters(
        longest_mm=longest,
        short_mm=short,
        long_endpoints_ij=(
            (float(hull_ij[a][0]), float(hull_ij[a][1])),
            (float(hull_ij[b][0]), float(hull_ij[b][1])),
        ),
        short_endpoints_ij=(
            (float(s0_ij[0]), float(s0_ij[1])),
            (float(s1_ij[0]), float(s1_ij[1])),
        ),
    )
