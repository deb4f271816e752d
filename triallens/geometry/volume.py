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
    study_uid: str | None = None
    frame_of_reference_uid: str | None = None
    image_type: tuple[str, ...] = ()
    body_part: str | None = None
    protocol_name: str | None = None
    contrast_agent: str | None = None
    temporal_index: int | None = None
    temporal_count: int = 1
    trigger_times_ms: list[float] = field(default_factory=list)
    slice_positions_mm: list[float] = field(default_factory=list)

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

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel (exact for sheared, gantry-tilted stacks too)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def flag_codes(self) -> list[str]:
        return [flag.code for flag in self.qc_flags]

    def index_to_patient(self, ijk: np.ndarray) -> np.ndarray:
        """Patient coordinates (mm) of voxel indices given as (..., 3) i, j, k."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]
