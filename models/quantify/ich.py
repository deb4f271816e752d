"""Intracerebral haemorrhage: volume from a mask, ABC/2 and expansion.

ABC/2 follows Kothari et al. 1996 (Stroke 27:1304): A is the largest diameter on
the slice with the largest bleed, B the largest diameter perpendicular to A on
that slice, C the number of slices with blood times the slice spacing, each
slice weighted 1 when its bleed area is >= 75 % of the largest, 0.5 when
25-75 %, 0 below 25 %. The segmentation volume is the better number for
irregular bleeds; ABC/2 is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.quantify._planar import PlanarDiameters, slice_diameters, slice_spacing_mm
from triallens.errors import GeometryError
from triallens.geometry.volume import SeriesVolume

_EPS = 1e-9

__all__ = [
    "Abc2Result",
    "Expansion",
    "abc2",
    "haematoma_expansion",
    "haemorrhage_volume_ml",
]


@dataclass(frozen=True)
class Abc2Result:
    """ABC/2 estimate: the three diameters (mm) and the volume (mL)."""

    a_mm: float
    b_mm: float
    c_mm: float
    volume_ml: float
    slice_index: int
    diameters: PlanarDiameters


@dataclass(frozen=True)
class Expansion:
    """Change of haematoma volume between two scans."""

    absolute_ml: float
    relative: float | None
    expanded: bool


def haemorrhage_volume_ml(mask: np.ndarray, volume: SeriesVolume) -> float:
    """Volume of a haemorrhage mask in mL (voxel count x voxel volume).

    Raises
    ------
    GeometryError
        If the mask does not match the volume's shape.
    """
    mask = _checked(mask, volume)
    return float(mask.sum() * volume.voxel_volume_mm3 / 1000.0)


def abc2(mask: np.ndarray, volume: SeriesVolume) -> Abc2Result:
    """ABC/2 volume estimate with Kothari's slice weights.

    Returns a zero result for an empty mask.
    """
    mask = _checked(mask, volume)
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1).astype(float)
    if areas.max(initial=0.0) == 0:
        zero = slice_diameters(np.zeros((1, 1), dtype=bool), volume.affine)
        return Abc2Result(0.0, 0.0, 0.0, 0.0, 0, zero)
    key = int(np.argmax(areas))
    diameters = slice_diameters(mask[key], volume.affine)
    ratio = areas / areas[key]
    weights = np.where(ratio >= 0.75, 1.0, np.where(ratio >= 0.25, 0.5, 0.0))
    c_mm = float(weights.sum() * slice_spacing_mm(volume.affine))
    a_mm, b_mm = diameters.longest_mm, diameters.short_mm
    return Abc2Result(
        a_mm=a_mm,
        b_mm=b_mm,
        c_mm=c_mm,
        volume_ml=a_mm * b_mm * c_mm / 2.0 / 1000.0,
        slice_index=key,
        diameters=diameters,
    )


def haematoma_expansion(
    baseline_ml: float,
    follow_up_ml: float,
    *,
    absolute_ml: float = 6.0,
    relative: float = 0.33,
) -> Expansion:
    """Haematoma expansion: growth > 6 mL or > 33 % (thresholds overridable)."""
    growth = follow_up_ml - baseline_ml
    fraction = growth / baseline_ml if baseline_ml > 0 else None
    # A tolerance keeps values exactly on a threshold (6 mL, 33 %) below it.
    expanded = growth > absolute_ml + _EPS or (
        fraction is not None and fraction > relative + _EPS
    )
    return Expansion(absolute_ml=growth, relative=fraction, expanded=expanded)


def _checked(mask: np.ndarray, volume: SeriesVolume) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != volume.pixels.shape:
        raise GeometryError(
            f"mask shape {mask.shape} differs from volume shape "
            f"{volume.pixels.shape} (series {volume.series_uid})"
        )
    return mask
