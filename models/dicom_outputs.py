"""DICOM outputs of a measurement: Segmentation and TID 1500 measurement report.

Both objects are written with highdicom. The SEG holds one segment per finding
class (lesion, lymph node, ...), with the algorithm name and the model version
in its Algorithm Identification. The SR (Comprehensive 3D SR, TID 1500) holds
one planar ROI measurement group per finding, each with its own Tracking
Identifier (TID 4108) so a lesion can be followed across time points, the time
point context (TID 1502), the outline on the key slice and the long axis, short
axis and volume in UCUM units (PS3.16 TID 1500, 1410, 1419).

:func:`read_measurement_report` reads a report back with highdicom, so a round
trip can be checked value for value.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from models.quantify.lesions import KeySliceGeometry
from triallens.domain import LesionKind, LesionMeasurement
from triallens.errors import GeometryError

__all__ = [
    "ReportedLesion",
    "read_measurement_report",
    "sort_source_images",
    "write_measurement_report",
    "write_segmentation",
]

if TYPE_CHECKING:
    from pydicom import Dataset

logger = logging.getLogger(__name__)

MANUFACTURER = "TrialLens"


@dataclass(frozen=True)
class ReportedLesion:
    """One measurement group as read back from a report."""

    tracking_identifier: str
    tracking_uid: str
    finding_type: str
    long_axis_mm: float | None
    short_axis_mm: float | None
    volume_ml: float | None
    time_point: str | None
    referenced_sop_instance_uid: str | None


def sort_source_images(
    images: Sequence[Dataset], sop_instance_uids: Sequence[str] = ()
) -> list[Dataset]:
    """Order source images like the volume's slices.

    By the volume's SOP Instance UIDs when given, otherwise by position along
    the slice normal (PS3.3 C.7.6.2.1.1).
    """
    if sop_instance_uids:
        by_uid = {str(ds.SOPInstanceUID): ds for ds in images}
        missing = [uid for uid in sop_instance_uids if uid not in by_uid]
        if missing:
            raise GeometryError(
                f"{len(missing)} slices of the volume are not among the source images"
            )
        return [by_uid[uid] for uid in sop_instance_uids]
    first = images[0]
    orientation = np.array(first.ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    return sorted(
        images,
        key=lambda ds: float(
            np.dot(normal, np.array(ds.ImagePositionPatient, dtype=float))
        ),
    )


def write_segmentation(
    source_images: Sequence[Dataset],
    labels: np.ndarray,
    segment_names: Mapping[int, str],
    *,
    model_name: str,
    model_version: str,
    series_number: int = 901,
    series_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> object:
    """A DICOM Segmentation of a label mask.

    Parameters
    ----------
    source_images : sequence of pydicom.Dataset
        The single-frame images of the series, in the order of ``labels``'
        first axis (see :func:`sort_source_images`).
    labels : numpy.ndarray
        Integer mask ``[k, j, i]``; label value ``n`` becomes segment ``n``.
    segment_names : Mapping[int, str]
        Label value -> name ("lesion", "lymph node", "haemorrhage", ...);
        background (0) is ignored.
    model_name, model_version : str
        Written to the Algorithm Identification Sequence.

    Returns
    -------
    highdicom.seg.Segmentation
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    if labels.shape[0] != len(source_images):
        raise GeometryError(
            f"mask has {labels.shape[0]} slices but {len(source_images)} source images"
        )
    algorithm = hd.AlgorithmIdentificationSequence(
        name=model_name,
        family=hd.sr.CodedConcept("123110", "DCM", "Artificial Intelligence"),
        version=model_version,
    )
    present = sorted(int(v) for v in np.unique(labels) if v != 0)
    descriptions = []
    numbers = {}
    for number, value in enumerate(present, start=1):
        name = segment_names.get(value, f"label {value}")
        category, kind = _segment_codes(name)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name,
                segmented_property_category=category,
                segmented_property_type=kind,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
            )
        )
        numbers[value] = number
    if not descriptions:
        raise GeometryError("the mask is empty: nothing to store in a segmentation")
    remapped = np.zeros(labels.shape, dtype=np.uint8)
    for value, number in numbers.items():
        remapped[labels == value] = number
    seg = hd.seg.Segmentation(
        source_images=list(source_images),
        pixel_array=remapped,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_uid or generate_uid(),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=model_name,
        software_versions=model_version,
        device_serial_number=model_version[-12:],
        series_description=f"{model_name} segmentation (machine-derived)",
    )
    return seg


def write_measurement_report(
    source_images: Sequence[Dataset],
    measured: Sequence[tuple[LesionMeasurement, KeySliceGeometry]],
    *,
    time_point: str,
    model_name: str,
    model_version: str,
    tracking: Mapping[str, str] | None = None,
    tracking_uids: Mapping[str, str] | None = None,
    series_number: int = 902,
    series_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> object:
    """A TID 1500 measurement report with one group per finding.

    Parameters
    ----------
    source_images : sequence of pydicom.Dataset
        The images of the measured series, in slice order.
    measured : sequence of (LesionMeasurement, KeySliceGeometry)
        From :func:`models.quantify.measure_lesions_with_geometry`.
    time_point : str
        The time point identifier (e.g. "W08").
    tracking : Mapping[str, str], optional
        ``lesion_id -> tracking identifier`` (e.g. "T01"); default the lesion id.
    tracking_uids : Mapping[str, str], optional
        ``lesion_id -> tracking UID``; give the same UID at every time point to
        follow a lesion. Default: a new UID.

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    images = list(source_images)
    algorithm = hd.sr.AlgorithmIdentification(name=model_name, version=model_version)
    observation = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=generate_uid(entropy_srcs=[model_name, model_version]),
                name=model_name,
                manufacturer_name=MANUFACTURER,
                model_name=model_version,
            ),
        )
    )
    time_context = hd.sr.TimePointContext(time_point=time_point)
    mm = hd.sr.CodedConcept("mm", "UCUM", "millimeter")
    ml = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
    groups = []
    for lesion, geometry in measured:
        image = images[geometry.slice_index]
        identifier = (tracking or {}).get(lesion.lesion_id, lesion.lesion_id)
        uid = (tracking_uids or {}).get(lesion.lesion_id) or generate_uid()
        outline = _outline_polyline(geometry)
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=outline,
            source_image=hd.sr.SourceImageForRegion(
                referenced_sop_class_uid=image.SOPClassUID,
                referenced_sop_instance_uid=image.SOPInstanceUID,
            ),
        )
        measurements = [
            hd.sr.Measurement(
                name=codes.SCT.LongAxis,
                value=float(lesion.longest_diameter_mm),
                unit=mm,
                algorithm_id=algorithm,
            ),
            hd.sr.Measurement(
                name=codes.SCT.ShortAxis,
                value=float(lesion.short_axis_mm),
                unit=mm,
                algorithm_id=algorithm,
            ),
        ]
        if lesion.volume_ml is not None:
            measurements.append(
                hd.sr.Measurement(
                    name=codes.SCT.Volume,
                    value=float(lesion.volume_ml),
                    unit=ml,
                    algorithm_id=algorithm,
                )
            )
        finding = (
            codes.SCT.LymphNode if lesion.kind is LesionKind.NODE else codes.SCT.Lesion
        )
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=uid, identifier=identifier
                ),
                referenced_region=region,
                time_point_context=time_context,
                finding_type=finding,
                algorithm_id=algorithm,
                measurements=measurements,
            )
        )
    report = hd.sr.MeasurementReport(
        observation_context=observation,
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion
        if str(getattr(images[0], "Modality", "CT")) == "CT"
        else hd.sr.CodedConcept("25045-6", "LN", "Unspecified body region"),
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=images,
        content=report,
        series_instance_uid=series_uid or generate_uid(),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=f"{model_name} measurements (machine-derived)",
    )


def read_measurement_report(dataset: object) -> list[ReportedLesion]:
    """Read the lesion groups of a TID 1500 report back with highdicom."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    report = (
        dataset
        if isinstance(dataset, hd.sr.Comprehensive3DSR)
        else hd.sr.Comprehensive3DSR.from_dataset(dataset)
    )
    out = []
    for group in report.content.get_planar_roi_measurement_groups():
        values: dict[str, float] = {}
        for measurement in group.get_measurements():
            values[measurement.name.value] = float(measurement.value)
        region = group.roi
        referenced = None
        if region is not None and hasattr(region, "SourceImageForRegion"):
            referenced = None
        try:
            referenced = (
                region.ContentSequence[0]
                .ReferencedSOPSequence[0]
                .ReferencedSOPInstanceUID
            )  # type: ignore[union-attr]
        except (AttributeError, IndexError):
            referenced = None
        out.append(
            ReportedLesion(
                tracking_identifier=str(group.tracking_identifier),
                tracking_uid=str(group.tracking_uid),
                finding_type=str(group.finding_type.meaning)
                if group.finding_type
                else "",
                long_axis_mm=values.get(codes.SCT.LongAxis.value),
                short_axis_mm=values.get(codes.SCT.ShortAxis.value),
                volume_ml=values.get(codes.SCT.Volume.value),
                time_point=_time_point(group),
                referenced_sop_instance_uid=referenced,
            )
        )
    return out


_TIME_POINT_CODES = {"C2348792", "126072"}  # UMLS and DCM codes of "Time Point"


def _time_point(group: Any) -> str | None:
    """The Time Point item of a group's time point context (TID 1502)."""
    # A highdicom template is a sequence holding the group's container item.
    containers = [group] if hasattr(group, "ContentSequence") else list(group)
    for container in containers:
        for item in getattr(container, "ContentSequence", []):
            if item.ConceptNameCodeSequence[0].CodeValue in _TIME_POINT_CODES:
                return str(item.TextValue)
    return None


def _outline_polyline(geometry: KeySliceGeometry) -> np.ndarray:
    """Closed convex outline of the key-slice mask in (column, row) pixel units.

    DICOM 2D coordinates put the top-left corner of the image at (0, 0), so a
    pixel centre (i, j) is at (i + 0.5, j + 0.5).
    """
    from scipy.spatial import ConvexHull, QhullError

    from models.quantify._planar import boundary_points

    points = boundary_points(geometry.mask2d, smoothing_px=0.0)
    if len(points) >= 3:
        with contextlib.suppress(QhullError):
            points = points[ConvexHull(points).vertices]
    points = points + 0.5
    closed = np.vstack([points, points[:1]])
    return closed.astype(np.float32)


def _segment_codes(name: str) -> tuple[object, object]:
    """Segmented property category and type codes for a segment name."""
    from highdicom.sr import CodedConcept
    from pydicom.sr.codedict import codes

    altered = CodedConcept("49755003", "SCT", "Morphologically Altered Structure")
    lowered = name.lower()
    if "node" in lowered:
        return altered, codes.SCT.LymphNode
    if "haem" in lowered or "hem" in lowered:
        return altered, codes.SCT.Hemorrhage
    if "ventric" in lowered:
        return codes.SCT.AnatomicalStructure, codes.SCT.LeftVentricle
    return altered, codes.SCT.Lesion
