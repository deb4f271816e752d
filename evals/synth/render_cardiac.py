"""Rendering a cardiac MR visit: a short-axis cine stack and its localizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evals.synth.dicom_writer import (
    SeriesGeometry,
    SeriesSpec,
    StudyContext,
    UidFactory,
    write_series,
)
from evals.synth.render import (
    Layout,
    RenderedVisit,
    folder_slug,
    series_record,
    slice_grid,
)
from models.phantoms import cmr_short_axis_phantom

__all__ = ["HEART_CENTRE", "RR_INTERVAL_MS", "render_cmr"]

# Patient coordinates (LPS mm) of the heart phantom's centre; R-R interval.
HEART_CENTRE = (25.0, 15.0, -170.0)
RR_INTERVAL_MS = 923.0


def _cmr_acquisition(phases: int, thickness: float) -> dict[str, object]:
    return {
        "ScanningSequence": "GR",
        "SequenceVariant": "SS",
        "ScanOptions": "CG",
        "MRAcquisitionType": "2D",
        "RepetitionTime": 3.2,
        "EchoTime": 1.4,
        "EchoTrainLength": 1,
        "FlipAngle": 60,
        "MagneticFieldStrength": 1.5,
        "ImagingFrequency": 63.87,
        "ImagedNucleus": "1H",
        "NumberOfAverages": 1,
        "SequenceName": "tfi2d1",
        "AngioFlag": "N",
        "HeartRate": round(60000.0 / RR_INTERVAL_MS),
        "NominalInterval": RR_INTERVAL_MS,
        "CardiacNumberOfImages": phases,
    }


def _short_axis_frame() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column and normal directions of a typical short-axis plane."""
    normal = np.array([-0.55, 0.45, 0.70])  # from apex towards base
    normal /= np.linalg.norm(normal)
    row = np.cross(normal, np.array([0.0, 0.0, 1.0]))
    row /= np.linalg.norm(row)
    column = np.cross(normal, row)
    return row, column, normal


def render_cmr(
    folder: Path,
    context: StudyContext,
    uids: UidFactory,
    layout: Layout,
    edv_ml: float,
    esv_ml: float,
    rng: np.random.Generator,
) -> RenderedVisit:
    """A short-axis cine stack and a low-resolution localizer."""
    shape, spacing, phases = layout.cmr_shape, layout.cmr_spacing, layout.cmr_phases
    phantom = cmr_short_axis_phantom(shape, spacing, edv_ml, esv_ml, rng, phases)
    nz, ny, nx = shape
    dz, dy, dx = spacing
    row, column, normal = _short_axis_frame()
    centre = np.asarray(HEART_CENTRE)
    x0, y0 = -(nx - 1) / 2.0 * dx, -(ny - 1) / 2.0 * dy
    positions = [
        centre + x0 * row + y0 * column + z * normal for z in slice_grid(nz, dz)
    ]
    stored = np.clip(np.rint(phantom.images), 0, 4095).astype(np.uint16)
    pixels = stored.transpose(1, 0, 2, 3).reshape(nz * phases, ny, nx)
    trigger = [p * RR_INTERVAL_MS / phases for _ in range(nz) for p in range(phases)]
    position_index = [k for k in range(nz) for _ in range(phases)]
    geometry = SeriesGeometry(
        row_direction=tuple(row),
        column_direction=tuple(column),
        positions=positions,
        pixel_spacing=(dy, dx),
        slice_thickness=dz,
        spacing_between_slices=dz,
    )
    mid = nz // 2
    localizer = stored[0, mid, ::2, ::2][None]
    loc_geometry = SeriesGeometry(
        row_direction=tuple(row),
        column_direction=tuple(column),
        positions=[positions[mid] - 0.5 * dx * row - 0.5 * dy * column],
        pixel_spacing=(2 * dy, 2 * dx),
        slice_thickness=dz,
    )
    series = [
        SeriesSpec(
            series_uid=uids(context.study_uid, "series", 1),
            series_number=1,
            description="Localizer short axis",
            modality="MR",
            body_part="HEART",
            image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"],
            pixels=np.ascontiguousarray(localizer),
            geometry=loc_geometry,
            rescale=None,
            window=(300.0, 700.0),
            trigger_times=[0.0],
            acquisition=_cmr_acquisition(1, dz),
        ),
        SeriesSpec(
            series_uid=uids(context.study_uid, "series", 2),
            series_number=2,
            description="SA cine bSSFP",
            modality="MR",
            body_part="HEART",
            image_type=["ORIGINAL", "PRIMARY", "OTHER"],
            pixels=pixels,
            geometry=geometry,
            rescale=None,
            window=(300.0, 700.0),
            trigger_times=trigger,
            position_index=position_index,
            acquisition=_cmr_acquisition(phases, dz),
        ),
    ]
    files = 0
    written = []
    for spec in series:
        name = f"{spec.series_number}_{folder_slug(spec.description)}"
        files += len(write_series(context, spec, folder / name, uids))
        written.append(series_record(spec, name))
    truth = {
        "edv_ml": round(phantom.edv_ml, 3),
        "esv_ml": round(phantom.esv_ml, 3),
        "lvef_percent": round(phantom.lvef_percent, 3),
        "ed_trigger_time_ms": round(phantom.ed_phase * RR_INTERVAL_MS / phases, 2),
        "es_trigger_time_ms": round(phantom.es_phase * RR_INTERVAL_MS / phases, 2),
        "volumes_ml_per_phase": [round(v, 3) for v in phantom.volumes_ml],
        "cine_series_uid": series[1].series_uid,
        "lv_axis_point_mm": [
            round(float(v), 3)
            for v in centre
            + phantom.lv_centre_mm[0] * row
            + phantom.lv_centre_mm[1] * column
        ],
        "lv_axis_direction": [round(float(v), 6) for v in normal],
        "modality": "MR",
    }
    return RenderedVisit(series=written, truth=truth, files=files)
