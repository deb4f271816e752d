"""Volumes from DICOM datasets: group, split, order, check and stack.

Slices are ordered by projecting Image Position (Patient) on the slice normal
(row direction x column direction, PS3.3 C.7.6.2.1.1); every gap is compared
with the typical gap within a tolerance. What cannot be stacked (localizers,
other orientations or matrix sizes) is split off or dropped, each with a QC
flag that says why.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from triallens.domain import QcFlag
from triallens.geometry.frames import Frame, frames_of
from triallens.geometry.volume import SeriesVolume

__all__ = ["GeometryTolerances", "QcCode", "build_volumes"]

logger = logging.getLogger(__name__)


class QcCode:
    """The QC flag codes that geometry reports."""

    LOCALIZER = "localizer_dropped"
    MIXED_ORIENTATION = "mixed_orientation"
    MIXED_MATRIX = "mixed_matrix_size"
    DUPLICATE = "duplicate_slices"
    MISSING = "missing_slices"
    UNEVEN = "uneven_slice_spacing"
    GANTRY_TILT = "gantry_tilt"
    TOO_FEW = "too_few_slices"
    SPACING_UNKNOWN = "spacing_unknown"
    NO_GEOMETRY = "no_plane_geometry"
    PHASES = "inconsistent_phases"
    DECODE = "pixel_decode_failed"
    MIXED_TYPE = "mixed_image_type"
    DUPLICATE_INSTANCE = "duplicate_instances"


@dataclass(frozen=True)
class GeometryTolerances:
    """Tolerances for stacking; a charter may set its own.

    ``gap_mm`` and ``gap_fraction``: a gap differs from the typical one when it
    is off by more than the larger of the two. ``orientation``: largest
    difference between direction cosines still treated as one orientation.
    ``tilt_degrees``: angle between the stacking direction and the slice
    normal above which the stack is tilted. ``min_slices``: fewer slices than
    this refuse measurement.
    """

    gap_mm: float = 0.05
    gap_fraction: float = 0.02
    duplicate_mm: float = 0.01
    orientation: float = 1e-3
    tilt_degrees: float = 0.5
    min_slices: int = 3
    min_spacing_mm: float = 0.05
    max_spacing_mm: float = 50.0


def build_volumes(
    datasets: Sequence[Any], tolerances: GeometryTolerances | None = None
) -> list[SeriesVolume]:
    """Build one volume per stackable group of frames.

    Parameters
    ----------
    datasets
        pydicom datasets of one study (any mix of series, single- or
        multi-frame).
    tolerances
        Stacking tolerances; the defaults of :class:`GeometryTolerances`.

    Returns
    -------
    list of SeriesVolume
        Ordered by series, then orientation group, then temporal position.
        Volumes that cannot carry millimetre measurements have
        ``measurable=False`` and ``not_measurable_reason`` set.
    """
    tol = tolerances or GeometryTolerances()
    by_series: dict[str, list[Frame]] = defaultdict(list)
    for order, ds in enumerate(datasets):
        if "PixelData" not in ds and "FloatPixelData" not in ds:
            continue
        for frame in frames_of(ds, order):
            by_series[frame.series_uid].append(frame)

    volumes: list[SeriesVolume] = []
    for series_uid, frames in by_series.items():
        unique: dict[tuple[str, int | None], Frame] = {}
        for frame in frames:
            unique.setdefault((frame.sop_instance_uid, frame.frame_index), frame)
        repeated = len(frames) - len(unique)
        built = _series_volumes(series_uid, list(unique.values()), tol)
        if repeated:
            flag = _flag(
                QcCode.DUPLICATE_INSTANCE,
                f"{repeated} frame(s) of instances received more than once ignored",
                series_uid,
            )
            for volume in built:
                volume.qc_flags.insert(0, flag)
        volumes.extend(built)
    return volumes


def _series_volumes(
    series_uid: str, frames: list[Frame], tol: GeometryTolerances
) -> list[SeriesVolume]:
    flags: list[QcFlag] = []

    # Localizers never stack with the images they locate.
    localizers = [f for f in frames if f.is_localizer]
    if localizers and len(localizers) == len(frames):
        volume = _stack(series_uid, frames, [], tol)
        volume.qc_flags = [
            _flag(QcCode.LOCALIZER, "localizer series, not for measurement", series_uid)
        ]
        volume.measurable = False
        volume.not_measurable_reason = "localizer series"
        return [volume]
    if localizers and len(localizers) < len(frames):
        frames = [f for f in frames if not f.is_localizer]
        flags.append(
            _flag(
                QcCode.LOCALIZER,
                f"{len(localizers)} localizer image(s) dropped",
                series_uid,
            )
        )

    # Split by orientation and matrix size: each group is a candidate volume.
    groups = _split(frames, tol)
    if len({key[0] for key in groups}) > 1:
        flags.append(
            _flag(
                QcCode.MIXED_ORIENTATION,
                f"{len({k[0] for k in groups})} slice orientations in one series; "
                "split into one volume per orientation",
                series_uid,
            )
        )
    if len({key[1] for key in groups}) > 1:
        flags.append(
            _flag(
                QcCode.MIXED_MATRIX,
                "matrix sizes differ within the series; split",
                series_uid,
            )
        )

    volumes: list[SeriesVolume] = []
    for group in groups.values():
        for typed, type_flags in _split_types(group, series_uid, tol):
            phases = _phases(typed, series_uid, tol)
            for phase_index, (phase, phase_flags) in enumerate(phases):
                volume = _stack(
                    series_uid, phase, [*flags, *type_flags, *phase_flags], tol
                )
                if len(phases) > 1:
                    volume.temporal_index = phase_index
                    volume.temporal_count = len(phases)
                volumes.append(volume)
    return volumes


def _split(
    frames: list[Frame], tol: GeometryTolerances
) -> dict[tuple[Any, ...], list[Frame]]:
    groups: dict[tuple[Any, ...], list[Frame]] = {}
    references: list[np.ndarray] = []
    for frame in frames:
        if frame.orientation is None:
            orient_key: Any = None
        else:
            orient_key = None
            for index, ref in enumerate(references):
                if np.max(np.abs(ref - frame.orientation)) <= tol.orientation:
                    orient_key = index
                    break
            if orient_key is None:
                references.append(frame.orientation)
                orient_key = len(references) - 1
        key = (orient_key, (frame.rows, frame.columns))
        groups.setdefault(key, []).append(frame)
    return groups


def _split_types(
    frames: list[Frame], series_uid: str, tol: GeometryTolerances
) -> list[tuple[list[Frame], list[QcFlag]]]:
    """Split images of different types (magnitude, phase, maps) at one position.

    Types are only split when positions repeat: image types that merely vary
    along a stack (an extra vendor value) still stack together.
    """
    types: dict[tuple[str, ...], list[Frame]] = defaultdict(list)
    for frame in frames:
        types[frame.frame_type].append(frame)
    if len(types) < 2 or not _positions_repeat(frames, tol):
        return [(frames, [])]
    kinds = ", ".join(sorted("/".join(kind) for kind in types))
    flag = _flag(
        QcCode.MIXED_TYPE,
        f"image types {kinds} overlap in one series; split by type",
        series_uid,
    )
    return [(group, [flag]) for group in types.values()]


def _positions_repeat(frames: list[Frame], tol: GeometryTolerances) -> bool:
    if any(f.position is None or f.orientation is None for f in frames):
        return False
    keys = _position_keys(frames, tol)
    return len(set(keys)) < len(keys)


def _position_keys(frames: list[Frame], tol: GeometryTolerances) -> list[int]:
    """A cluster number per frame: frames within tolerance share a position."""
    normal = _normal(frames[0].orientation)
    distances = [float(f.position @ normal) for f in frames]
    order = sorted(range(len(frames)), key=distances.__getitem__)
    keys = [0] * len(frames)
    cluster, anchor = 0, None
    for index in order:
        if anchor is not None and distances[index] - anchor > tol.duplicate_mm:
            cluster += 1
            anchor = distances[index]
        elif anchor is None:
            anchor = distances[index]
        keys[index] = cluster
    return keys


def _phases(
    frames: list[Frame], series_uid: str, tol: GeometryTolerances
) -> list[tuple[list[Frame], list[QcFlag]]]:
    """Split repeated positions into temporal phases when the headers allow."""
    if any(f.position is None or f.orientation is None for f in frames):
        return [(frames, [])]
    by_position: dict[int, list[Frame]] = defaultdict(list)
    for frame, key in zip(frames, _position_keys(frames, tol), strict=True):
        by_position[key].append(frame)
    counts = {len(v) for v in by_position.values()}
    if counts == {1}:
        return [(frames, [])]

    temporal_ok = all(
        len({f.temporal_key for f in group}) == len(group)
        for group in by_position.values()
    ) and all(f.temporal_key for f in frames)
    if not temporal_ok:
        return [(frames, [])]  # true duplicates: _stack reports them

    phases: dict[int, list[Frame]] = defaultdict(list)
    for group in by_position.values():
        for rank, frame in enumerate(sorted(group, key=lambda f: f.temporal_key)):
            phases[rank].append(frame)
    flags: list[QcFlag] = []
    if len(counts) > 1:
        flags.append(
            _flag(
                QcCode.PHASES,
                f"slice positions have {min(counts)} to {max(counts)} temporal phases",
                series_uid,
            )
        )
    return [(phases[rank], flags) for rank in sorted(phases)]


def _stack(
    series_uid: str, frames: list[Frame], flags: list[QcFlag], tol: GeometryTolerances
) -> SeriesVolume:
    flags = list(flags)
    reasons: list[str] = []
    first = frames[0]

    if first.orientation is None or any(f.position is None for f in frames):
        ordered = sorted(frames, key=lambda f: (f.instance_number, f.order_hint))
        flags.append(
            _flag(
                QcCode.NO_GEOMETRY,
                "image plane position or orientation missing",
                series_uid,
            )
        )
        return _volume(series_uid, ordered, np.eye(4), flags, "no image plane geometry")

    row_dir = _unit(first.orientation[:3])
    col_dir = _unit(first.orientation[3:])
    normal = _unit(np.cross(row_dir, col_dir))
    ordered = sorted(frames, key=lambda f: (float(f.position @ normal), f.order_hint))
    distances = np.array([float(f.position @ normal) for f in ordered])

    # Duplicates: same position along the normal. Keep the first of each
    # whose pixel data decodes (a broken copy must not spoil a good slice).
    groups: list[list[int]] = [[0]]
    for index in range(1, len(ordered)):
        if distances[index] - distances[groups[-1][0]] > tol.duplicate_mm:
            groups.append([index])
        else:
            groups[-1].append(index)
    keep = [_first_decodable(ordered, group) for group in groups]
    if len(keep) < len(ordered):
        flags.append(
            _flag(
                QcCode.DUPLICATE,
                f"{len(ordered) - len(keep)} slice(s) at an already occupied position "
                "dropped",
                series_uid,
            )
        )
        ordered = [ordered[i] for i in keep]
        distances = distances[keep]

    spacing = ordered[0].pixel_spacing
    affine = np.eye(4)
    affine[:3, 0] = row_dir * (spacing[1] if spacing else 1.0)
    affine[:3, 1] = col_dir * (spacing[0] if spacing else 1.0)
    affine[:3, 3] = ordered[0].position

    if spacing is None or min(spacing) <= 0 or max(spacing) > tol.max_spacing_mm:
        reasons.append("pixel spacing missing or implausible")
        flags.append(
            _flag(
                QcCode.SPACING_UNKNOWN,
                "pixel spacing missing or implausible",
                series_uid,
            )
        )

    if len(ordered) < 2:
        affine[:3, 2] = normal * (ordered[0].slice_thickness or 1.0)
        reasons.append("a single slice: slice spacing unknown")
        flags.append(
            _flag(QcCode.TOO_FEW, "only one distinct slice position", series_uid)
        )
        return _volume(series_uid, ordered, affine, flags, "; ".join(reasons))

    gaps = np.diff(distances)
    typical = float(np.median(gaps))
    allowed = max(tol.gap_mm, tol.gap_fraction * typical)
    uneven = np.abs(gaps - typical) > allowed
    multiples = np.round(gaps / typical)
    missing = (
        uneven & (multiples >= 2) & (np.abs(gaps - multiples * typical) <= allowed)
    )
    if missing.any():
        count = int((multiples[missing] - 1).sum())
        flags.append(
            _flag(
                QcCode.MISSING,
                f"{count} slice(s) missing: gap of {gaps[missing].max():.2f} mm where "
                f"{typical:.2f} mm is typical",
                series_uid,
            )
        )
        reasons.append("slices missing from the stack")
    other = uneven & ~missing
    if other.any():
        values = ", ".join(f"{g:.2f}" for g in sorted(set(np.round(gaps, 2))))
        flags.append(
            _flag(
                QcCode.UNEVEN,
                f"uneven slice gaps along the normal: {values} mm",
                series_uid,
            )
        )
        reasons.append("uneven slice spacing")

    # The stacking direction from the positions themselves; a tilted gantry
    # moves slices along the table while the plane is tilted.
    step = (ordered[-1].position - ordered[0].position) / (len(ordered) - 1)
    step_dir = _unit(step)
    angle = float(np.degrees(np.arccos(np.clip(abs(step_dir @ normal), -1.0, 1.0))))
    tag_tilt = _tilt_tag(first.dataset)
    if angle > tol.tilt_degrees:
        flags.append(
            _flag(
                QcCode.GANTRY_TILT,
                f"slices are stacked {angle:.1f} deg off the slice normal "
                "(gantry tilt); the affine is sheared",
                series_uid,
            )
        )
        affine[:3, 2] = step_dir * (typical / abs(float(step_dir @ normal)))
    else:
        affine[:3, 2] = normal * typical
        if tag_tilt:
            flags.append(
                _flag(
                    QcCode.GANTRY_TILT,
                    f"Gantry/Detector Tilt is {tag_tilt:.1f} deg but the positions "
                    "are stacked along the normal",
                    series_uid,
                )
            )

    if typical < tol.min_spacing_mm or typical > tol.max_spacing_mm:
        reasons.append(f"implausible slice spacing {typical:.3f} mm")
        flags.append(
            _flag(QcCode.SPACING_UNKNOWN, f"slice spacing {typical:.3f} mm", series_uid)
        )
    if len(ordered) < tol.min_slices:
        reasons.append(f"only {len(ordered)} slices")
        flags.append(
            _flag(
                QcCode.TOO_FEW,
                f"{len(ordered)} slices; at least {tol.min_slices} needed",
                series_uid,
            )
        )

    volume = _volume(series_uid, ordered, affine, flags, "; ".join(reasons) or None)
    volume.slice_positions_mm = [float(d) for d in distances]
    return volume


def _first_decodable(frames: list[Frame], group: list[int]) -> int:
    """The first frame of a same-position group whose pixels decode."""
    if len(group) == 1:
        return group[0]
    for index in group:
        try:
            frames[index].pixels()
        except Exception:  # corrupt or undecodable: try the next copy
            continue
        return index
    return group[0]


def _volume(
    series_uid: str,
    frames: list[Frame],
    affine: np.ndarray,
    flags: list[QcFlag],
    reason: str | None,
) -> SeriesVolume:
    first = frames[0]
    ds = first.dataset
    try:
        pixels = np.stack([f.pixels() for f in frames]).astype(np.float32, copy=False)
    except Exception as exc:  # decoder missing or corrupt pixel data
        logger.warning(
            "series %s: pixel data not decoded (%s)", series_uid, type(exc).__name__
        )
        pixels = np.zeros((len(frames), first.rows, first.columns), dtype=np.float32)
        flags.append(
            _flag(
                QcCode.DECODE,
                f"pixel data not decoded ({type(exc).__name__})",
                series_uid,
            )
        )
        reason = "; ".join(r for r in (reason, "pixel data not decoded") if r)
    uids = list(dict.fromkeys(f.sop_instance_uid for f in frames))
    return SeriesVolume(
        series_uid=series_uid,
        modality=str(ds.get("Modality", "") or ""),
        pixels=pixels,
        affine=affine,
        sop_instance_uids=uids,
        qc_flags=flags,
        measurable=reason is None,
        not_measurable_reason=reason,
        series_description=_text(ds, "SeriesDescription"),
        slice_thickness_mm=first.slice_thickness,
        study_uid=_text(ds, "StudyInstanceUID"),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
        image_type=first.frame_type,
        body_part=_text(ds, "BodyPartExamined"),
        protocol_name=_text(ds, "ProtocolName"),
        contrast_agent=_contrast(ds),
        trigger_times_ms=[t for f in frames for t in f.temporal_key[-1:]],
    )


def _flag(code: str, reason: str, series_uid: str) -> QcFlag:
    return QcFlag(code=code, reason=reason, series_uid=series_uid)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _normal(orientation: np.ndarray) -> np.ndarray:
    return _unit(np.cross(_unit(orientation[:3]), _unit(orientation[3:])))


def _tilt_tag(ds: Any) -> float:
    try:
        return float(ds.get("GantryDetectorTilt", 0) or 0)
    except (TypeError, ValueError):
        return 0.0


def _text(ds: Any, keyword: str) -> str | None:
    value = ds.get(keyword)
    return str(value) if value not in (None, "") else None


def _contrast(ds: Any) -> str | None:
    agent = _text(ds, "ContrastBolusAgent")
    if agent:
        return agent
    seq = ds.get("ContrastBolusAgentSequence")
    if seq:
        return str(seq[0].get("CodeMeaning", "contrast")) or "contrast"
    return None
