"""Rendering one visit of one subject into DICOM series, with its truth.

Each ``render_*`` function builds the phantom for a visit, writes its series
with :func:`evals.synth.dicom_writer.write_series` and returns the truth that
``ground_truth.json`` records for the visit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evals.synth.dicom_writer import (
    SeriesGeometry,
    SeriesSpec,
    StudyContext,
    UidFactory,
    write_series,
)
from evals.synth.scenarios import LesionTrack
from models.phantoms import (
    HaematomaSpec,
    LesionSpec,
    TorsoAnatomy,
    ct_torso_phantom,
    head_ct_phantom,
)

__all__ = [
    "FULL",
    "SMALL",
    "Layout",
    "RenderedVisit",
    "folder_slug",
    "lesion_centres",
    "render_head_ct",
    "render_torso",
    "series_record",
    "slice_grid",
]

# Patient coordinates (LPS mm) of each phantom's centre.
TORSO_CENTRE = (0.0, 0.0, -280.0)
HEAD_CENTRE = (0.0, 10.0, 60.0)
TOO_SMALL_SEMI_AXES = (2.0, 1.5, 2.0)


@dataclass(frozen=True)
class Layout:
    """Matrix and voxel sizes of each kind of study."""

    torso_shape: tuple[int, int, int]
    torso_spacing: tuple[float, float, float]
    cmr_shape: tuple[int, int, int]
    cmr_spacing: tuple[float, float, float]
    cmr_phases: int
    head_shape: tuple[int, int, int]
    head_spacing: tuple[float, float, float]


SMALL = Layout(
    torso_shape=(24, 160, 160),
    torso_spacing=(5.0, 1.6, 1.6),
    cmr_shape=(10, 112, 112),
    cmr_spacing=(8.0, 1.8, 1.8),
    cmr_phases=4,
    head_shape=(24, 128, 128),
    head_spacing=(5.0, 1.8, 1.8),
)
FULL = Layout(
    torso_shape=(56, 256, 256),
    torso_spacing=(3.0, 1.4, 1.4),
    cmr_shape=(12, 160, 160),
    cmr_spacing=(8.0, 1.5, 1.5),
    cmr_phases=8,
    head_shape=(28, 224, 224),
    head_spacing=(5.0, 1.0, 1.0),
)


@dataclass
class RenderedVisit:
    """What one visit wrote and what is true about it."""

    series: list[dict[str, Any]]
    truth: dict[str, Any]
    files: int


def slice_grid(n: int, step: float) -> np.ndarray:
    """Slice-centre positions (mm) of ``n`` slices centred on zero."""
    return (np.arange(n) - (n - 1) / 2.0) * step


def _snap(value: float, grid: np.ndarray) -> float:
    return float(grid[int(np.argmin(np.abs(grid - value)))])


def lesion_centres(
    anatomy: TorsoAnatomy, layout: Layout
) -> dict[str, tuple[float, float, float]]:
    """Anatomical slots for lesions (phantom mm), on slice centres."""
    nz = layout.torso_shape[0]
    dz = layout.torso_spacing[0]
    grid = slice_grid(nz, dz)
    hz = nz * dz / 2.0
    liver = anatomy.liver
    lx, ly, lz = liver.centre
    la, lb, lc = liver.semi_axes
    lung = anatomy.lungs[1]
    body_a = anatomy.body.semi_axes[0]
    fat_x, fat_y, _ = anatomy.mesenteric_fat.centre
    slots = {
        "liver_a": (lx - 0.3 * la, ly + 0.25 * lb, lz),
        "liver_b": (lx + 0.3 * la, ly - 0.3 * lb, lz + 0.3 * lc),
        "liver_c": (lx - 0.2 * la, ly - 0.35 * lb, lz - 0.4 * lc),
        "lung": (lung.centre[0], lung.centre[1] - 0.1 * lung.semi_axes[1], 0.5 * hz),
        "node_a": (fat_x + 0.06 * body_a, fat_y, -0.35 * hz),
        "node_b": (fat_x - 0.06 * body_a, fat_y, -0.62 * hz),
    }
    return {name: (x, y, _snap(z, grid)) for name, (x, y, z) in slots.items()}


def _lesion_specs(
    tracks: tuple[LesionTrack, ...],
    visit: int,
    slots: dict[str, tuple[float, float, float]],
) -> tuple[list[LesionSpec], dict[str, str]]:
    specs: list[LesionSpec] = []
    status: dict[str, str] = {}
    for track in tracks:
        factor = track.factors[visit]
        if factor is None:
            status[track.lesion_id] = "absent"
            continue
        if factor == 0:
            status[track.lesion_id] = "disappeared"
            continue
        if factor == "small":
            axes = TOO_SMALL_SEMI_AXES
            status[track.lesion_id] = "too_small"
        else:
            a, b, c = track.semi_axes_mm
            f = float(factor)
            axes = (a * f, b * f, max(c * f, 3.0))
            status[track.lesion_id] = "present"
        specs.append(
            LesionSpec(
                lesion_id=track.lesion_id,
                centre_mm=slots[track.slot],
                semi_axes_mm=axes,
                kind=track.kind,
                organ=track.organ,
                angle_deg=track.angle_deg,
            )
        )
    return specs, status


def _hu_to_stored(hu: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(hu + 1024.0), 0, 4095).astype(np.int16)


def _hu_to_mr(hu: np.ndarray) -> np.ndarray:
    # A T1-weighted, gadolinium-enhanced look: fat bright, bone and air dark.
    knots = [-1000.0, -850.0, -100.0, 0.0, 45.0, 105.0, 180.0, 700.0]
    signal = [0.0, 15.0, 420.0, 140.0, 170.0, 260.0, 320.0, 60.0]
    return np.clip(np.rint(np.interp(hu, knots, signal)), 0, 4095).astype(np.uint16)


CT_ACQUISITION: dict[str, object] = {
    "KVP": 120,
    "XRayTubeCurrent": 220,
    "ExposureTime": 500,
    "ConvolutionKernel": "STANDARD",
    "DataCollectionDiameter": 500.0,
    "DistanceSourceToDetector": 1040.0,
    "DistanceSourceToPatient": 570.0,
    "GantryDetectorTilt": 0.0,
    "TableHeight": 150.0,
    "RotationDirection": "CW",
    "FilterType": "BODY",
    "RevolutionTime": 0.5,
    "SingleCollimationWidth": 0.625,
    "TotalCollimationWidth": 40.0,
    "SpiralPitchFactor": 0.984,
}


def _axial_geometry(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    centre: tuple[float, float, float],
    thickness: float,
) -> SeriesGeometry:
    nz, ny, nx = shape
    dz, dy, dx = spacing
    x0 = centre[0] - (nx - 1) / 2.0 * dx
    y0 = centre[1] - (ny - 1) / 2.0 * dy
    positions = [(x0, y0, centre[2] + z) for z in slice_grid(nz, dz)]
    return SeriesGeometry(
        row_direction=(1.0, 0.0, 0.0),
        column_direction=(0.0, 1.0, 0.0),
        positions=positions,
        pixel_spacing=(dy, dx),
        slice_thickness=thickness,
        spacing_between_slices=dz,
    )


def _projection(
    volume: np.ndarray,
    spacing: tuple[float, float, float],
    centre: tuple[float, float, float],
    axis: int,
) -> tuple[np.ndarray, SeriesGeometry]:
    """A localizer: the volume averaged along ``axis`` (1 = AP, 2 = lateral)."""
    dz, dy, dx = spacing
    image = volume.mean(axis=axis)[::-1]
    in_plane = dx if axis == 1 else dy
    repeat = max(1, round(dz / in_plane))
    image = np.repeat(image, repeat, axis=0)
    nz = volume.shape[0]
    top = centre[2] + (nz - 1) / 2.0 * dz + dz / 2.0 - dz / repeat / 2.0
    if axis == 1:
        width = volume.shape[2]
        start = centre[0] - (width - 1) / 2.0 * dx
        position = (start, centre[1], top)
        row = (1.0, 0.0, 0.0)
    else:
        width = volume.shape[1]
        start = centre[1] - (width - 1) / 2.0 * dy
        position = (centre[0], start, top)
        row = (0.0, 1.0, 0.0)
    geometry = SeriesGeometry(
        row_direction=row,
        column_direction=(0.0, 0.0, -1.0),
        positions=[position],
        pixel_spacing=(dz / repeat, in_plane),
        slice_thickness=None,
    )
    return image[None], geometry


def render_torso(
    folder: Path,
    context: StudyContext,
    uids: UidFactory,
    layout: Layout,
    anatomy: TorsoAnatomy,
    tracks: tuple[LesionTrack, ...],
    visit: int,
    rng: np.random.Generator,
    *,
    contrast: bool,
    modality: str,
    slice_mm: float,
    burned_in_text: str | None,
    contrast_agent: str,
) -> RenderedVisit:
    """A CT (or, as a planted deviation, MR) of chest and abdomen."""
    nz0 = layout.torso_shape[0]
    extent = nz0 * layout.torso_spacing[0]
    nz = max(8, round(extent / slice_mm))
    shape = (nz, *layout.torso_shape[1:])
    spacing = (slice_mm, *layout.torso_spacing[1:])
    slots = lesion_centres(anatomy, layout)
    specs, status = _lesion_specs(tracks, visit, slots)
    # Quantum noise falls with the square root of the reconstructed thickness.
    phantom = ct_torso_phantom(
        shape,
        spacing,
        specs,
        rng,
        contrast=contrast,
        anatomy=anatomy,
        noise_sigma_hu=12.0 * math.sqrt(2.5 / slice_mm),
    )

    series: list[SeriesSpec] = []
    is_ct = modality == "CT"
    agent = contrast_agent if contrast else None
    loc_pixels, loc_geometry = _projection(phantom.hu, spacing, TORSO_CENTRE, 1)
    series.append(
        SeriesSpec(
            series_uid=uids(context.study_uid, "series", 1),
            series_number=1,
            description="Topogram 0.6 T20f" if is_ct else "Localizer",
            modality=modality,
            body_part="CHESTABDOMEN" if is_ct else "ABDOMEN",
            image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"],
            pixels=_hu_to_stored(loc_pixels) if is_ct else _hu_to_mr(loc_pixels),
            geometry=loc_geometry,
            rescale=(1.0, -1024.0) if is_ct else None,
            acquisition={"KVP": 120, "XRayTubeCurrent": 35} if is_ct else _mr_abdomen(),
        )
    )
    geometry = _axial_geometry(shape, spacing, TORSO_CENTRE, slice_mm)
    axial_pixels = _hu_to_stored(phantom.hu) if is_ct else _hu_to_mr(phantom.hu)
    description = (
        f"Thorax-Abdomen {'PV' if contrast else 'nativ'} {slice_mm:g}mm"
        if is_ct
        else "T1 VIBE post-contrast axial"
    )
    series.append(
        SeriesSpec(
            series_uid=uids(context.study_uid, "series", 2),
            series_number=2,
            description=description,
            modality=modality,
            body_part="CHESTABDOMEN" if is_ct else "ABDOMEN",
            image_type=["ORIGINAL", "PRIMARY", "AXIAL" if is_ct else "OTHER"],
            pixels=axial_pixels,
            geometry=geometry,
            rescale=(1.0, -1024.0) if is_ct else None,
            window=(40.0, 400.0) if is_ct else (200.0, 500.0),
            contrast_agent=agent if is_ct else None,
            acquisition=dict(CT_ACQUISITION) if is_ct else _mr_abdomen(),
        )
    )
    if burned_in_text and is_ct:
        series.append(
            _burned_in_series(
                context, uids, phantom, geometry, axial_pixels, burned_in_text
            )
        )

    files = 0
    written: list[dict[str, Any]] = []
    for spec in series:
        name = f"{spec.series_number}_{folder_slug(spec.description)}"
        files += len(write_series(context, spec, folder / name, uids))
        written.append(series_record(spec, name))

    z_offset = TORSO_CENTRE
    lesions = []
    for truth in phantom.lesions:
        x, y, z = truth.centre_mm
        lesions.append(
            {
                "lesion_id": truth.lesion_id,
                "kind": truth.kind,
                "organ": truth.organ,
                "status": status[truth.lesion_id],
                "longest_diameter_mm": round(truth.longest_diameter_mm, 3),
                "short_axis_mm": round(truth.short_axis_mm, 3),
                "centre_mm": [
                    round(x + z_offset[0], 3),
                    round(y + z_offset[1], 3),
                    round(z + z_offset[2], 3),
                ],
                "slice_index": truth.slice_index,
                "volume_ml": round(truth.volume_ml, 4),
                "hu": truth.hu,
            }
        )
    for lesion_id, state in status.items():
        if state in ("absent", "disappeared"):
            lesions.append({"lesion_id": lesion_id, "status": state})
    truth_out = {
        "lesions": lesions,
        "slice_thickness_mm": slice_mm,
        "contrast": bool(contrast and is_ct),
        "modality": modality,
        "axial_series_uid": series[1].series_uid,
        "axial_slices": nz,
    }
    return RenderedVisit(series=written, truth=truth_out, files=files)


def _burned_in_series(
    context: StudyContext,
    uids: UidFactory,
    phantom: Any,
    geometry: SeriesGeometry,
    pixels: np.ndarray,
    text: str,
) -> SeriesSpec:
    from PIL import Image, ImageDraw, ImageFont

    centre = phantom.lesions[0].slice_index if phantom.lesions else pixels.shape[0] // 2
    picks = [k for k in (centre - 1, centre, centre + 1) if 0 <= k < pixels.shape[0]]
    rows, columns = pixels.shape[1:]
    canvas = Image.new("L", (columns, rows), 0)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(8, rows // 16))
    draw.text((3, 2), text, fill=255, font=font)
    draw.text((3, rows - rows // 12), "KEY IMAGE", fill=255, font=font)
    mask = np.asarray(canvas) > 96
    stack = pixels[picks].copy()
    stack[:, mask] = 3000
    positions = [geometry.positions[k] for k in picks]
    return SeriesSpec(
        series_uid=uids(context.study_uid, "series", 3),
        series_number=3,
        description="Key images annotated",
        modality="CT",
        body_part="CHESTABDOMEN",
        image_type=["DERIVED", "SECONDARY", "AXIAL"],
        pixels=stack,
        geometry=SeriesGeometry(
            row_direction=geometry.row_direction,
            column_direction=geometry.column_direction,
            positions=positions,
            pixel_spacing=geometry.pixel_spacing,
            slice_thickness=geometry.slice_thickness,
        ),
        burned_in=True,
        acquisition=dict(CT_ACQUISITION),
    )


def _mr_abdomen() -> dict[str, object]:
    return {
        "ScanningSequence": "GR",
        "SequenceVariant": "SP",
        "ScanOptions": "",
        "MRAcquisitionType": "3D",
        "RepetitionTime": 4.1,
        "EchoTime": 1.9,
        "EchoTrainLength": 1,
        "FlipAngle": 10,
        "MagneticFieldStrength": 1.5,
        "ImagingFrequency": 63.87,
        "ImagedNucleus": "1H",
        "NumberOfAverages": 1,
        "SequenceName": "fl3d1",
        "AngioFlag": "N",
    }


def render_head_ct(
    folder: Path,
    context: StudyContext,
    uids: UidFactory,
    layout: Layout,
    target_ml: float,
    hu: float,
    rng: np.random.Generator,
) -> RenderedVisit:
    """A non-contrast head CT with a right basal-ganglia haematoma."""
    shape, spacing = layout.head_shape, layout.head_spacing
    grid = slice_grid(shape[0], spacing[0])
    # The cranio-caudal semi-axis ends half-way between slices, so that no
    # slice cuts only the tip of the clot.
    dz = spacing[0]
    nominal_c = 0.8 * (target_ml * 1000.0 / (4.0 / 3.0 * math.pi * 0.72 * 0.8)) ** (
        1 / 3
    )
    c = (max(1, round(nominal_c / dz - 0.5)) + 0.5) * dz
    a = math.sqrt(target_ml * 1000.0 / (4.0 / 3.0 * math.pi * 0.72 * c))
    axes = (a, 0.72 * a, c)
    centre = (-36.0, 14.0, _snap(0.0, grid))
    spec = HaematomaSpec(centre_mm=centre, semi_axes_mm=axes, angle_deg=15.0, hu=hu)
    phantom = head_ct_phantom(shape, spacing, spec, rng)
    geometry = _axial_geometry(shape, spacing, HEAD_CENTRE, spacing[0])
    loc_pixels, loc_geometry = _projection(phantom.hu, spacing, HEAD_CENTRE, 2)
    acquisition = dict(CT_ACQUISITION)
    acquisition.update({"FilterType": "HEAD", "ConvolutionKernel": "H30s"})
    series = [
        SeriesSpec(
            series_uid=uids(context.study_uid, "series", 1),
            series_number=1,
            description="Topogram lateral",
            modality="CT",
            body_part="HEAD",
            image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"],
            pixels=_hu_to_stored(loc_pixels),
            geometry=loc_geometry,
            acquisition={"KVP": 120, "XRayTubeCurrent": 30},
        ),
        SeriesSpec(
            series_uid=uids(context.study_uid, "series", 2),
            series_number=2,
            description=f"Head axial {spacing[0]:g}mm",
            modality="CT",
            body_part="HEAD",
            image_type=["ORIGINAL", "PRIMARY", "AXIAL"],
            pixels=_hu_to_stored(phantom.hu),
            geometry=geometry,
            window=(40.0, 80.0),
            acquisition=acquisition,
        ),
    ]
    files = 0
    written = []
    for s in series:
        name = f"{s.series_number}_{folder_slug(s.description)}"
        files += len(write_series(context, s, folder / name, uids))
        written.append(series_record(s, name))
    truth = {
        "haematoma_volume_ml": round(phantom.haematoma_volume_ml, 4),
        "haematoma_hu": hu,
        "haematoma_centre_mm": [
            round(c + o, 3) for c, o in zip(centre, HEAD_CENTRE, strict=True)
        ],
        "axial_series_uid": series[1].series_uid,
        "modality": "CT",
        "contrast": False,
    }
    return RenderedVisit(series=written, truth=truth, files=files)


def folder_slug(text: str) -> str:
    """A series description made safe for a folder name."""
    keep = [c if c.isalnum() else "_" for c in text]
    return "".join(keep).strip("_")[:40]


def series_record(spec: SeriesSpec, folder: str) -> dict[str, Any]:
    """What ground_truth.json records about a written series."""
    return {
        "series_uid": spec.series_uid,
        "series_number": spec.series_number,
        "description": spec.description,
        "modality": spec.modality,
        "folder": folder,
        "instances": int(spec.pixels.shape[0]),
        "slice_thickness_mm": spec.geometry.slice_thickness,
        "contrast_agent": spec.contrast_agent,
        "burned_in_annotation": spec.burned_in,
        "localizer": "LOCALIZER" in spec.image_type,
    }
