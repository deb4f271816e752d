"""Lesions and lymph nodes from a label mask, measured in patient millimetres."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.quantify._planar import PlanarDiameters, slice_diameters
from models.quantify.refine import finding_instances, refine_labels
from triallens.domain import LesionKind, LesionMeasurement
from triallens.errors import GeometryError
from triallens.geometry.volume import SeriesVolume

__all__ = [
    "LABEL_CLASSES",
    "KeySliceGeometry",
    "measure_lesions",
    "measure_lesions_with_geometry",
]

logger = logging.getLogger(__name__)

#: Label value -> lesion kind, as produced by the CT lesion model.
LABEL_CLASSES: dict[int, LesionKind] = {1: LesionKind.LESION, 2: LesionKind.NODE}

_PREFIX = {LesionKind.LESION: "L", LesionKind.NODE: "N"}


@dataclass
class KeySliceGeometry:
    """Where a lesion was measured: slice, outline mask and diameter endpoints."""

    lesion_id: str
    slice_index: int
    mask2d: np.ndarray
    diameters: PlanarDiameters


def measure_lesions(
    labels: np.ndarray,
    volume: SeriesVolume,
    min_voxels: int = 8,
    *,
    probabilities: np.ndarray | None = None,
    organ_map: np.ndarray | None = None,
    organ_names: Mapping[int, str] | None = None,
    min_confidence: float = 0.0,
    refine: bool | None = None,
) -> list[LesionMeasurement]:
    """Measure every lesion and lymph node in a label mask.

    Each 3D connected component (26-connectivity) of label 1 is a lesion and of
    label 2 a lymph node. On every slice of a component the longest in-plane
    diameter and the short axis perpendicular to it are measured in mm through
    the volume's affine, so anisotropic pixels and tilted planes are handled.
    The key slice is the one with the largest RECIST diameter: the longest
    diameter for lesions, the short axis for nodes (RECIST 1.1 sec. 4.2).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer mask ``[k, j, i]`` on the grid of ``volume`` (0 background).
    volume : SeriesVolume
        The volume the mask belongs to; only its affine and shape are used.
    min_voxels : int
        Components with fewer voxels are ignored as noise.
    probabilities : numpy.ndarray, optional
        Class probabilities ``[c, k, j, i]``; the confidence of a finding is the
        mean probability of its class over its voxels. Without it, 1.0.
    organ_map : numpy.ndarray, optional
        Integer organ labels on the same grid; a lesion's organ is the most
        frequent non-zero organ label under it. Nodes are always "lymph node".
    organ_names : Mapping[int, str], optional
        Names of the organ labels.
    min_confidence : float
        Findings with a lower confidence are dropped.
    refine : bool, optional
        Redraw each finding at its half-contrast edge in the image before
        measuring (:func:`models.quantify.refine.refine_labels`). By default
        masks that come with ``probabilities`` (a model's output) are refined
        and masks without them are taken as exact. Refinement drops findings
        that differ from their surroundings by less than 20 HU: they have no
        visible edge (every lesion the phantoms plant differs by 40 HU or
        more). Findings that touch are then divided among their cores
        (:func:`models.quantify.refine.finding_instances`).

    Notes
    -----
    Touching voxels of different classes form one finding: a network that
    labels part of a node as lesion does not make two findings of it. The
    finding takes the class with the larger summed probability (or voxel
    count without probabilities).

    A network's outline, drawn on its own grid and interpolated back, can sit
    a voxel or more outside or inside the edge visible in the image; on
    homogeneous lesions that is a diameter error of 2-5 mm. Refinement places
    the edge where the intensity is half-way between the lesion and its
    surroundings, which is where a voxel is half covered by the lesion.

    Returns
    -------
    list of LesionMeasurement
        Lesions first (L01, L02, ...), then nodes (N01, ...), each ordered by
        decreasing RECIST diameter.

    Raises
    ------
    GeometryError
        If the mask does not have the volume's shape or the volume is not
        measurable.
    """
    found = measure_lesions_with_geometry(
        labels,
        volume,
        min_voxels,
        probabilities=probabilities,
        organ_map=organ_map,
        organ_names=organ_names,
        min_confidence=min_confidence,
        refine=refine,
    )
    return [m for m, _ in found]


def measure_lesions_with_geometry(
    labels: np.ndarray,
    volume: SeriesVolume,
    min_voxels: int = 8,
    *,
    probabilities: np.ndarray | None = None,
    organ_map: np.ndarray | None = None,
    organ_names: Mapping[int, str] | None = None,
    min_confidence: float = 0.0,
    refine: bool | None = None,
) -> list[tuple[LesionMeasurement, KeySliceGeometry]]:
    """Like :func:`measure_lesions`, with the key-slice geometry for drawing."""
    from scipy import ndimage

    labels = np.asarray(labels)
    if labels.shape != volume.pixels.shape:
        raise GeometryError(
            f"mask shape {labels.shape} differs from volume shape "
            f"{volume.pixels.shape} (series {volume.series_uid})"
        )
    if not volume.measurable:
        raise GeometryError(
            f"series {volume.series_uid} is not measurable: "
            f"{volume.not_measurable_reason or 'no reason given'}"
        )
    voxel_ml = volume.voxel_volume_mm3 / 1000.0
    structure = np.ones((3, 3, 3), dtype=bool)
    labels = _unify_touching_classes(labels, probabilities, structure)
    if refine is None:
        refine = probabilities is not None
    drawn = labels > 0
    if refine:
        labels, _ = refine_labels(
            labels, volume.pixels, tuple(LABEL_CLASSES), drop_low_contrast=True
        )
    instances = finding_instances(
        labels, volume.spacing, tuple(LABEL_CLASSES), split=refine
    )
    boxes = ndimage.find_objects(instances)
    classes = _instance_classes(instances, boxes, labels, probabilities)

    results: list[tuple[LesionMeasurement, KeySliceGeometry]] = []
    for label_value, kind in LABEL_CLASSES.items():
        per_kind: list[tuple[LesionMeasurement, KeySliceGeometry]] = []
        for index, box in enumerate(boxes, start=1):
            if box is None or classes[index] != label_value:
                continue
            component = instances[box] == index
            voxels = int(component.sum())
            if voxels < min_voxels:
                continue
            if probabilities is not None and min_confidence > 0:
                score = _confidence(
                    probabilities[label_value][box], component, drawn[box]
                )
                if score < min_confidence:
                    continue
            per_kind.append(
                _measure_component(
                    component,
                    box,
                    kind,
                    voxels,
                    voxel_ml,
                    volume,
                    label_value,
                    probabilities,
                    organ_map,
                    organ_names,
                    drawn[box],
                )
            )
        per_kind.sort(key=lambda item: -item[0].recist_diameter_mm)
        for number, (measurement, geometry) in enumerate(per_kind, start=1):
            lesion_id = f"{_PREFIX[kind]}{number:02d}"
            measurement.lesion_id = lesion_id
            geometry.lesion_id = lesion_id
            results.append((measurement, geometry))
    logger.debug("measured %d findings on series %s", len(results), volume.series_uid)
    return results


def _unify_touching_classes(
    labels: np.ndarray, probabilities: np.ndarray | None, structure: np.ndarray
) -> np.ndarray:
    """Give every connected foreground object a single finding class."""
    from scipy import ndimage

    classes = list(LABEL_CLASSES)
    objects, count = ndimage.label(np.isin(labels, classes), structure)
    if count == 0:
        return labels
    out = labels.copy()
    for index, box in enumerate(ndimage.find_objects(objects), start=1):
        if box is None:
            continue
        inside = objects[box] == index
        values = labels[box][inside]
        present = [c for c in classes if np.any(values == c)]
        if len(present) < 2:
            continue
        if probabilities is not None:
            votes = [float(probabilities[c][box][inside].sum()) for c in present]
        else:
            votes = [float(np.sum(values == c)) for c in present]
        winner = present[int(np.argmax(votes))]
        view = out[box]
        view[inside] = winner
    return out


def _instance_classes(
    instances: np.ndarray,
    boxes: list[Any],
    labels: np.ndarray,
    probabilities: np.ndarray | None,
) -> dict[int, int]:
    """The finding class of every instance.

    A finding divided from a touching neighbour takes its own class again: a
    node touching a lesion is one object (and one class) for refinement, but
    each part is the class with the larger summed probability over its own
    voxels. Without probabilities, the class drawn in the mask.
    """
    classes: dict[int, int] = {}
    for index, box in enumerate(boxes, start=1):
        if box is None:
            continue
        component = instances[box] == index
        if probabilities is None:
            classes[index] = int(labels[box][component][0])
            continue
        votes = {
            c: float(probabilities[c][box][component].sum()) for c in LABEL_CLASSES
        }
        classes[index] = max(votes, key=lambda c: votes[c])
    return classes


def _measure_component(
    component: np.ndarray,
    box: tuple[slice, slice, slice],
    kind: LesionKind,
    voxels: int,
    voxel_ml: float,
    volume: SeriesVolume,
    label_value: int,
    probabilities: np.ndarray | None,
    organ_map: np.ndarray | None,
    organ_names: Mapping[int, str] | None,
    drawn: np.ndarray,
) -> tuple[LesionMeasurement, KeySliceGeometry]:
    k0, j0, i0 = box[0].start, box[1].start, box[2].start
    best: tuple[float, int, PlanarDiameters] | None = None
    for dk in range(component.shape[0]):
        plane = component[dk]
        if not plane.any():
            continue
        diameters = slice_diameters(plane, volume.affine)
        score = diameters.short_mm if kind is LesionKind.NODE else diameters.longest_mm
        if best is None or score > best[0]:
            best = (score, dk, diameters)
    assert best is not None
    _, dk, local = best

    # Key-slice geometry on the full image grid.
    shift = (float(i0), float(j0))
    diameters = PlanarDiameters(
        longest_mm=local.longest_mm,
        short_mm=local.short_mm,
        long_endpoints_ij=_shifted(local.long_endpoints_ij, shift),
        short_endpoints_ij=_shifted(local.short_endpoints_ij, shift),
    )
    full_mask = np.zeros(volume.pixels.shape[1:], dtype=bool)
    full_mask[box[1], box[2]] = component[dk]

    kk, jj, ii = np.nonzero(component)
    centre_ijk = np.array([ii.mean() + i0, jj.mean() + j0, kk.mean() + k0])
    centroid = volume.index_to_patient(centre_ijk)

    confidence = 1.0
    if probabilities is not None:
        score = _confidence(probabilities[label_value][box], component, drawn)
        confidence = float(np.clip(score, 0.0, 1.0))
    organ: str | None = "lymph node" if kind is LesionKind.NODE else None
    if organ_map is not None and kind is LesionKind.LESION:
        under = organ_map[box][component]
        under = under[under > 0]
        if under.size:
            code = int(np.bincount(under.astype(np.int64)).argmax())
            organ = (organ_names or {}).get(code, f"organ-{code}")

    measurement = LesionMeasurement(
        lesion_id="",
        kind=kind,
        organ=organ,
        longest_diameter_mm=round(diameters.longest_mm, 2),
        short_axis_mm=round(diameters.short_mm, 2),
        centroid_mm=(float(centroid[0]), float(centroid[1]), float(centroid[2])),
        slice_index=int(k0 + dk),
        volume_ml=round(voxels * voxel_ml, 3),
        voxel_count=voxels,
        confidence=round(confidence, 4),
    )
    return measurement, KeySliceGeometry("", int(k0 + dk), full_mask, diameters)


def _confidence(
    probability: np.ndarray, component: np.ndarray, drawn: np.ndarray
) -> float:
    """Mean class probability over the voxels the network itself drew.

    Refinement may add edge voxels the network left out; the confidence stays
    the network's own (over the finding's voxels it labelled, or the whole
    finding when refinement moved all of them).
    """
    own = component & drawn
    values = probability[own] if own.any() else probability[component]
    return float(values.mean())


def _shifted(
    points: tuple[tuple[float, float], tuple[float, float]], shift: tuple[float, float]
) -> tuple[tuple[float, float], tuple[float, float]]:
    (a, b), (c, d) = points
    return ((a + shift[0], b + shift[1]), (c + shift[0], d + shift[1]))
