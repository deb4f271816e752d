"""The volume type every measurement works on.

Index convention: ``pixels[k, j, i]`` with ``k`` the slice (ordered along the
slice normal), ``j`` the row and ``i`` the column. ``affine`` maps the
homogeneous index ``(i, j, k, 1)`` to patient coordinates (LPS, mm), so
``affine @ [i, j, k, 1]`` is the centre of that voxel (PS3.3 C.7.6.2.1.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from triallens.domain import QcFlag

__all__ = ["SeriesVolume"]


@dataclass
class SeriesVolume:
    """A stack of slices with its geometry, in rescaled units (HU for CT)."""

    series_uid: str
    modality: str
    pixels: np.ndarray
    affine: np.ndarray
    sop_instance_uids: list[str] = field(default_factory=list)
    qc_flags: list[QcFlag] = field(default_factory=list)
    measurable: bool = True
    not_measurable_reason: str | None = None
    series_description: str | None = None
    slice_thickness_mm: float | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        k, j, i = self.pixels.shape
        return (k, j, i)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size as (slice step, row spacing, column spacing) in mm."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(norms[2]), float(norms[1]), float(norms[0]))

    @property
    def row_direction(self) -> np.ndarray:
        col = self.affine[:3, 0]
        return col / np.linalg.norm(col)

    @property
    def column_direction(self) -> np.ndarray:
        col = self.affine[:3, 1]
        return col / np.linalg.norm(col)

    @property
    def slice_normal(self) -> np.ndarray:
        col = self.affine[:3, 2]
        return col / np.linalg.norm(col)

    def index_to_patient(self, ijk: np.ndarray) -> np.ndarray:
        """Patient coordinates (mm) of voxel indices given as (..., 3) i, j, k."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]
