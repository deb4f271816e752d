"""Left-ventricular volumes, ejection fraction and CTRCD class.

Volumes follow the short-axis disc summation (SCMR post-processing
recommendations, JCMR 2020 22:19): the cavity area on each slice times the
distance between slice planes, the latter taken from the slice positions along
the plane normal, never from the nominal SliceThickness. The CTRCD class follows
the ESC 2022 cardio-oncology guideline (IC-OS 2021 definitions); a trial may
replace the thresholds with its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from models.quantify._planar import slice_spacing_mm
from triallens.errors import GeometryError
from triallens.geometry.volume import SeriesVolume

__all__ = [
    "ESC_2022",
    "CtrcdClass",
    "CtrcdThresholds",
    "LvefResult",
    "cavity_volume_ml",
    "ctrcd_class",
    "ejection_fraction",
    "largest_component",
    "lvef_from_phases",
]


class CtrcdClass(StrEnum):
    """Asymptomatic cancer-therapy-related cardiac dysfunction (ESC 2022)."""

    NONE = "none"
    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"


@dataclass(frozen=True)
class CtrcdThresholds:
    """LVEF thresholds (percent, points) for the CTRCD classes."""

    severe_below: float = 40.0
    moderate_below: float = 50.0
    moderate_drop_points: float = 10.0
    gls_relative_decline: float = 0.15


ESC_2022 = CtrcdThresholds()


@dataclass(frozen=True)
class LvefResult:
    """End-diastolic and end-systolic volumes (mL), EF (%) and their phases."""

    edv_ml: float
    esv_ml: float
    ef_percent: float
    ed_phase: int
    es_phase: int
    volumes_ml: tuple[float, ...]


def cavity_volume_ml(mask: np.ndarray, volume: SeriesVolume) -> float:
    """Volume of a cavity mask by summing slice areas times slice spacing.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean mask ``[k, j, i]`` on the grid of ``volume``.
    volume : SeriesVolume
        Short-axis stack; pixel area is the area spanned by the row and column
        steps, slice spacing the step projected on the plane normal.

    Returns
    -------
    float
        Volume in mL.

    Raises
    ------
    GeometryError
        If the mask does not match the volume's shape.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != volume.pixels.shape:
        raise GeometryError(
            f"mask shape {mask.shape} differs from volume shape "
            f"{volume.pixels.shape} (series {volume.series_uid})"
        )
    pixel_area = float(
        np.linalg.norm(np.cross(volume.affine[:3, 0], volume.affine[:3, 1]))
    )
    spacing = slice_spacing_mm(volume.affine)
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1) * pixel_area
    return float(areas.sum() * spacing / 1000.0)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 3D connected component (26-connectivity) of a mask.

    A cavity is one connected region; stray islands (a piece of the right
    ventricle, a vessel) are dropped before the volume is summed.
    """
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    parts, count = ndimage.label(mask, np.ones((3, 3, 3), dtype=bool))
    if count <= 1:
        return mask
    sizes = np.bincount(parts.ravel())
    sizes[0] = 0
    return parts == int(np.argmax(sizes))


def ejection_fraction(edv_ml: float, esv_ml: float) -> float:
    """EF in percent: (EDV - ESV) / EDV x 100.

    Raises
    ------
    ValueError
        If EDV is not positive.
    """
    if edv_ml <= 0:
        raise ValueError("end-diastolic volume must be positive")
    return 100.0 * (edv_ml - esv_ml) / edv_ml


def lvef_from_phases(
    masks: Sequence[np.ndarray], volumes: Sequence[SeriesVolume] | SeriesVolume
) -> LvefResult:
    """EDV, ESV and EF from the cavity masks of the cardiac phases.

    ED and ES are the phases with the largest and smallest cavity volume.

    Parameters
    ----------
    masks : sequence of numpy.ndarray
        One cavity mask per phase.
    volumes : SeriesVolume or sequence of SeriesVolume
        The stack of each phase, or one stack shared by all phases.
    """
    if not masks:
        raise ValueError("at least one phase is needed")
    stacks = (
        [volumes] * len(masks) if isinstance(volumes, SeriesVolume) else list(volumes)
    )
    values = tuple(cavity_volume_ml(m, v) for m, v in zip(masks, stacks, strict=True))
    ed, es = int(np.argmax(values)), int(np.argmin(values))
    return LvefResult(
        edv_ml=values[ed],
        esv_ml=values[es],
        ef_percent=ejection_fraction(values[ed], values[es]),
        ed_phase=ed,
        es_phase=es,
        volumes_ml=values,
    )


def ctrcd_class(
    baseline_lvef: float,
    current_lvef: float,
    *,
    gls_relative_decline: float | None = None,
    biomarker_rise: bool = False,
    thresholds: CtrcdThresholds = ESC_2022,
) -> CtrcdClass:
    """Classify asymptomatic CTRCD from LVEF (ESC 2022 by default).

    - Severe: LVEF falls to < 40 %.
    - Moderate: a fall of >= 10 points to 40-49 %, or a smaller fall to 40-49 %
      with a relative GLS decline > 15 % or a new biomarker rise.
    - Mild: LVEF >= 50 % with a relative GLS decline > 15 % and/or a new
      biomarker rise.

    Parameters
    ----------
    baseline_lvef, current_lvef : float
        LVEF in percent.
    gls_relative_decline : float, optional
        Relative decline of |GLS| as a fraction (0.15 = 15 %).
    biomarker_rise : bool
        New rise of troponin or natriuretic peptides.
    """
    gls_or_marker = biomarker_rise or (
        gls_relative_decline is not None
        and gls_relative_decline > thresholds.gls_relative_decline
    )
    if current_lvef < thresholds.severe_below:
        return CtrcdClass.SEVERE
    drop = baseline_lvef - current_lvef
    if current_lvef < thresholds.moderate_below:
        if drop >= thresholds.moderate_drop_points or (drop > 0 and gls_or_marker):
            return CtrcdClass.MODERATE
        return CtrcdClass.NONE
    return CtrcdClass.MILD if gls_or_marker else CtrcdClass.NONE
