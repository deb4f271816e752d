"""One record per image frame, with geometry from wherever the object keeps it.

Single-frame images carry their geometry at the top level. Enhanced
multi-frame images keep it in functional groups (PS3.3 C.7.6.16): the
per-frame group wins, then the shared group, then the top-level attribute.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Frame", "frames_of"]

logger = logging.getLogger(__name__)

_LOCALIZER_WORDS = ("LOCALIZER", "SCOUT", "TOPOGRAM", "SURVEY")


@dataclass
class Frame:
    """One 2-D image with its geometry and rescale, before stacking."""

    dataset: Any
    frame_index: int | None
    series_uid: str
    position: np.ndarray | None
    orientation: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    slope: float
    intercept: float
    rows: int
    columns: int
    frame_type: tuple[str, ...]
    temporal_key: tuple[float, ...] = ()
    instance_number: int = 0
    order_hint: int = 0
    sop_instance_uid: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_localizer(self) -> bool:
        return any(
            word in value for value in self.frame_type for word in _LOCALIZER_WORDS
        )

    def pixels(self) -> np.ndarray:
        """Stored values times slope plus intercept, as float32."""
        array = self.dataset.pixel_array
        if self.frame_index is not None and _frame_count(self.dataset) > 1:
            array = array[self.frame_index]
        array = np.asarray(array)
        if array.ndim == 3:  # colour samples: keep luminance-like mean
            array = array.mean(axis=-1)
        out = array.astype(np.float32)
        if self.slope != 1.0:
            out *= np.float32(self.slope)
        if self.intercept != 0.0:
            out += np.float32(self.intercept)
        return out


def frames_of(ds: Any, order_hint: int = 0) -> list[Frame]:
    """Every frame of a dataset (one for single-frame images)."""
    series_uid = str(ds.get("SeriesInstanceUID", "") or "")
    rows = int(ds.get("Rows", 0) or 0)
    columns = int(ds.get("Columns", 0) or 0)
    top_type = _strings(ds.get("ImageType"))
    number = _int(ds.get("InstanceNumber"))
    sop_uid = str(ds.get("SOPInstanceUID", "") or "")
    count = _frame_count(ds)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None

    if per_frame is None and shared is None:
        slope, intercept = _rescale(ds)
        frame = Frame(
            dataset=ds,
            frame_index=None if count <= 1 else 0,
            series_uid=series_uid,
            position=_vector(ds.get("ImagePositionPatient"), 3),
            orientation=_vector(ds.get("ImageOrientationPatient"), 6),
            pixel_spacing=_spacing(ds.get("PixelSpacing")),
            slice_thickness=_float(ds.get("SliceThickness")),
            slope=slope,
            intercept=intercept,
            rows=rows,
            columns=columns,
            frame_type=top_type,
            temporal_key=_temporal_single(ds),
            instance_number=number,
            order_hint=order_hint,
            sop_instance_uid=sop_uid,
        )
        if count > 1:
            # A multi-frame object without functional groups: frames share the
            # top-level plane and cannot be placed in space one by one.
            return [_replace_index(frame, i) for i in range(count)]
        return [frame]

    frames: list[Frame] = []
    for index in range(count):
        item = (
            per_frame[index]
            if per_frame is not None and index < len(per_frame)
            else None
        )
        groups = [g for g in (item, shared) if g is not None]
        position = _group_value(groups, "PlanePositionSequence", "ImagePositionPatient")
        orientation = _group_value(
            groups, "PlaneOrientationSequence", "ImageOrientationPatient"
        )
        spacing = _group_value(groups, "PixelMeasuresSequence", "PixelSpacing")
        thickness = _group_value(groups, "PixelMeasuresSequence", "SliceThickness")
        slope = _group_value(groups, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _group_value(
            groups, "PixelValueTransformationSequence", "RescaleIntercept"
        )
        frame_type = _strings(
            _group_value(groups, "MRImageFrameTypeSequence", "FrameType")
            or _group_value(groups, "CTImageFrameTypeSequence", "FrameType")
        )
        temporal = _group_value(groups, "FrameContentSequence", "TemporalPositionIndex")
        trigger = _group_value(
            groups, "CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"
        )
        top_slope, top_intercept = _rescale(ds)
        frames.append(
            Frame(
                dataset=ds,
                frame_index=index,
                series_uid=series_uid,
                position=_vector(
                    position
                    if position is not None
                    else ds.get("ImagePositionPatient"),
                    3,
                ),
                orientation=_vector(
                    orientation
                    if orientation is not None
                    else ds.get("ImageOrientationPatient"),
                    6,
                ),
                pixel_spacing=_spacing(
                    spacing if spacing is not None else ds.get("PixelSpacing")
                ),
                slice_thickness=_float(
                    thickness if thickness is not None else ds.get("SliceThickness")
                ),
                slope=_float(slope) if slope is not None else top_slope,
                intercept=_float(intercept) if intercept is not None else top_intercept,
                rows=rows,
                columns=columns,
                frame_type=frame_type or top_type,
                temporal_key=tuple(
                    float(v) for v in (temporal, trigger) if v is not None
                ),
                instance_number=number,
                order_hint=order_hint * 100000 + index,
                sop_instance_uid=sop_uid,
            )
        )
    return frames


# Attribute helpers -----------------------------------------------------------


def _replace_index(frame: Frame, index: int) -> Frame:
    clone = Frame(**{**frame.__dict__, "frame_index": index})
    clone.order_hint = frame.order_hint * 100000 + index
    return clone


def _frame_count(ds: Any) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _group_value(groups: Sequence[Any], sequence: str, keyword: str) -> Any:
    for group in groups:
        seq = group.get(sequence)
        if seq:
            value = seq[0].get(keyword)
            if value is not None and value != "":
                return value
    return None


def _temporal_single(ds: Any) -> tuple[float, ...]:
    keys = []
    for keyword in ("TemporalPositionIdentifier", "TriggerTime"):
        value = _float(ds.get(keyword))
        if value is not None:
            keys.append(value)
    return tuple(keys)


def _rescale(ds: Any) -> tuple[float, float]:
    slope = _float(ds.get("RescaleSlope"))
    intercept = _float(ds.get("RescaleIntercept"))
    return (1.0 if slope is None else slope, 0.0 if intercept is None else intercept)


def _strings(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip().upper() for v in value.split("\\"))
    return tuple(str(v).strip().upper() for v in value)


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, str | int | float) and len(value) >= 1:
            value = value[0]
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if np.isfinite(result) else None


def _int(value: Any) -> int:
    result = _float(value)
    return int(result) if result is not None else 0


def _vector(value: Any, size: int) -> np.ndarray | None:
    if value is None or value == "":
        return None
    try:
        array = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    if array.shape != (size,) or not np.all(np.isfinite(array)):
        return None
    return array


def _spacing(value: Any) -> tuple[float, float] | None:
    array = _vector(value, 2)
    if array is None:
        return None
    return (float(array[0]), float(array[1]))
