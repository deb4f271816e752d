"""Measurement accuracy of the shipped models on held-out phantom subjects.

``triallens eval measurements --seed S`` builds subjects from a random stream
that no training run uses (``SeedSequence([S, 0xE7A1])``), runs the shipped
bundles on them and compares with the phantoms' exact truth:

- RECIST: each subject has a baseline and two follow-ups (partial response,
  stable disease, progression or a new lesion, with size changes well away from
  the thresholds). Truth and prediction go through the same rules
  (:func:`models.quantify.recist.assess_timeline`); the sum of diameters
  error and the agreement of the overall response are reported.
- LVEF: a four-phase cine stack measured as the triage pipeline measures it
  (:func:`models.measure.measure_lvef`), against the disc-summed truth.
- Haemorrhage: volume measured as the pipeline does
  (:func:`models.measure.measure_haemorrhage`) against the disc-summed truth.

Targets (issue acceptance): SOD MAE <= 1.5 mm, response agreement >= 95 %,
LVEF MAE <= 3 points, haemorrhage volume error <= 10 %.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["TARGETS", "MeasurementReport", "evaluate_measurements"]

logger = logging.getLogger(__name__)

#: Metric -> (comparison, threshold) from the acceptance criteria.
TARGETS: dict[str, tuple[str, float]] = {
    "sod_mae_mm": ("<=", 1.5),
    "overall_response_agreement": (">=", 0.95),
    "lvef_mae_points": ("<=", 3.0),
    "haemorrhage_volume_error": ("<=", 0.10),
}

_LAYOUTS = (((24, 160, 160), (5.0, 1.6, 1.6)), ((40, 192, 192), (3.0, 1.4, 1.4)))
_SCENARIOS = ("PR", "SD", "PD", "NEW")


@dataclass
class MeasurementReport:
    """Metrics and the per-visit rows behind them."""

    seed: int
    metrics: dict[str, float] = field(default_factory=dict)
    recist_rows: list[dict[str, object]] = field(default_factory=list)
    lvef_rows: list[dict[str, float]] = field(default_factory=list)
    ich_rows: list[dict[str, float]] = field(default_factory=list)

    def passed(self) -> dict[str, bool]:
        """Whether each available metric meets its target."""
        out = {}
        for name, (op, limit) in TARGETS.items():
            value = self.metrics.get(name)
            if value is None or math.isnan(value):
                continue
            out[name] = value <= limit if op == "<=" else value >= limit
        return out


def evaluate_measurements(
    seed: int,
    *,
    recist_subjects: int = 8,
    lvef_subjects: int = 8,
    ich_subjects: int = 8,
    progress: Callable[[str], None] | None = None,
) -> MeasurementReport:
    """Run the shipped bundles on held-out phantoms and compute the metrics."""
    say = progress or (lambda message: logger.info("%s", message))
    streams = np.random.SeedSequence([seed, 0xE7A1]).spawn(3)
    report = MeasurementReport(seed=seed)
    if recist_subjects:
        _evaluate_recist(
            report, np.random.default_rng(streams[0]), recist_subjects, say
        )
    if lvef_subjects:
        _evaluate_lvef(report, np.random.default_rng(streams[1]), lvef_subjects, say)
    if ich_subjects:
        _evaluate_ich(report, np.random.default_rng(streams[2]), ich_subjects, say)
    return report


# ---------------------------------------------------------------------------
# RECIST


def _evaluate_recist(
    report: MeasurementReport,
    rng: np.random.Generator,
    count: int,
    say: Callable[[str], None],
) -> None:
    from models import default_bundle_path
    from models.bundle import load_bundle
    from models.inference import Segmenter
    from models.quantify import measure_lesions
    from models.quantify.recist import assess_timeline

    segmenter = Segmenter(load_bundle(default_bundle_path("recist_ct")), device="cpu")
    sod_errors: list[float] = []
    agree = total = 0
    for subject in range(count):
        scenario = _SCENARIOS[subject % len(_SCENARIOS)]
        truth_visits, predicted_visits = [], []
        for visit, (phantom, volume, anatomy) in enumerate(_timeline(rng, scenario)):
            truth = [_truth_measurement(t, anatomy) for t in phantom.lesions]
            seg = segmenter.segment_with_probabilities(volume)
            found = measure_lesions(
                seg.labels, volume, probabilities=seg.probabilities, min_confidence=0.6
            )
            for m in found:
                m.organ = _organ_at(anatomy, m.centroid_mm, m.kind.value)
            truth_visits.append(truth)
            predicted_visits.append(found)
            say(f"recist subject {subject + 1}/{count} ({scenario}) visit {visit}")
        expected = assess_timeline(truth_visits)
        measured = assess_timeline(predicted_visits)
        for e, m in zip(expected, measured, strict=True):
            sod_errors.append(m.sum_mm - e.sum_mm)
            row: dict[str, object] = {
                "subject": subject + 1,
                "scenario": scenario,
                "visit": e.visit_index,
                "sod_truth_mm": round(e.sum_mm, 2),
                "sod_measured_mm": round(m.sum_mm, 2),
                "response_truth": e.overall_response.value,
                "response_measured": m.overall_response.value,
            }
            report.recist_rows.append(row)
            if e.visit_index > 0:
                total += 1
                agree += int(e.overall_response is m.overall_response)
    report.metrics["sod_mae_mm"] = float(np.mean(np.abs(sod_errors)))
    report.metrics["sod_max_abs_error_mm"] = float(np.max(np.abs(sod_errors)))
    report.metrics["overall_response_agreement"] = agree / total if total else math.nan


def _timeline(
    rng: np.random.Generator, scenario: str
) -> Iterator[tuple[Any, Any, Any]]:
    """Three visits of one subject: same anatomy, lesions scaled per visit."""
    from models.lesion_sampling import sample_lesion, sample_node
    from models.phantoms import LesionSpec, ct_torso_phantom, torso_anatomy
    from models.training.data import phantom_volume

    shape, spacing = _LAYOUTS[int(rng.integers(len(_LAYOUTS)))]
    anatomy = torso_anatomy(shape, spacing, rng)
    half = (shape[0] - 1) * spacing[0] / 2.0
    z_range = (-half + 10.0, half - 10.0)
    grid = (np.arange(shape[0]) - (shape[0] - 1) / 2.0) * spacing[0]
    specs: list[LesionSpec] = []
    for n, organ in enumerate(("liver", "liver", "lung_left")):
        spec = sample_lesion(
            anatomy, organ, z_range, float(rng.uniform(16.0, 40.0)), rng, f"L{n}"
        )
        if spec is not None and not any(_close(spec, s) for s in specs):
            specs.append(spec)
    node = sample_node(anatomy, z_range, float(rng.uniform(17.0, 26.0)), rng, "N0")
    if node is not None and not any(_close(node, s) for s in specs):
        specs.append(node)
    specs = [_snap(s, grid) for s in specs]
    factors = {
        "PR": (1.0, 0.6, 0.5),
        "SD": (1.0, 0.95, 1.02),
        "PD": (1.0, 0.97, 1.4),
        "NEW": (1.0, 1.0, 0.98),
    }[scenario]
    new_lesion = None
    if scenario == "NEW":
        for attempt in range(40):
            organ = ("liver", "spleen", "lung_right")[attempt % 3]
            candidate = sample_lesion(anatomy, organ, z_range, 14.0, rng, "NEW")
            if candidate is not None and not any(_close(candidate, s) for s in specs):
                new_lesion = _snap(candidate, grid)
                break
    for visit, factor in enumerate(factors):
        visit_specs = [_scaled(s, factor) for s in specs]
        if new_lesion is not None and visit == 2:
            visit_specs.append(new_lesion)
        phantom = ct_torso_phantom(shape, spacing, visit_specs, rng, anatomy=anatomy)
        volume = phantom_volume(phantom.hu, spacing, phantom.origin_mm)
        yield phantom, volume, anatomy


def _scaled(spec: Any, factor: float) -> Any:
    from models.phantoms import LesionSpec

    a, b, c = spec.semi_axes_mm
    return LesionSpec(
        spec.lesion_id,
        spec.centre_mm,
        (a * factor, b * factor, max(c * factor, 3.0)),
        spec.kind,
        spec.organ,
        spec.angle_deg,
    )


def _snap(spec: Any, grid: np.ndarray) -> Any:
    from models.phantoms import LesionSpec

    x, y, z = spec.centre_mm
    z = float(grid[int(np.argmin(np.abs(grid - z)))])
    return LesionSpec(
        spec.lesion_id,
        (x, y, z),
        spec.semi_axes_mm,
        spec.kind,
        spec.organ,
        spec.angle_deg,
    )


def _close(one: Any, other: Any) -> bool:
    gap = math.dist(one.centre_mm, other.centre_mm)
    return gap < max(one.semi_axes_mm) * 1.5 + max(other.semi_axes_mm) * 1.5 + 10.0


def _truth_measurement(truth: Any, anatomy: Any) -> Any:
    from triallens.domain import LesionKind, LesionMeasurement

    kind = LesionKind.NODE if truth.kind == "node" else LesionKind.LESION
    return LesionMeasurement(
        lesion_id=truth.lesion_id,
        kind=kind,
        organ=_organ_at(anatomy, truth.centre_mm, truth.kind),
        longest_diameter_mm=truth.longest_diameter_mm,
        short_axis_mm=truth.short_axis_mm,
        centroid_mm=truth.centre_mm,
        slice_index=truth.slice_index,
        volume_ml=truth.volume_ml,
        voxel_count=truth.voxel_count,
    )


def _organ_at(anatomy: Any, point: Any, kind: str) -> str | None:
    """The phantom organ holding a point (an atlas lookup, for the eval only)."""
    from models.lesion_sampling import inside

    if kind == "node":
        return "lymph node"
    for name in (
        "liver",
        "spleen",
        "lung_right",
        "lung_left",
        "kidney_right",
        "kidney_left",
    ):
        if inside(anatomy.organ(name), point):
            return name
    return None


# ---------------------------------------------------------------------------
# LVEF and haemorrhage


def _evaluate_lvef(
    report: MeasurementReport,
    rng: np.random.Generator,
    count: int,
    say: Callable[[str], None],
) -> None:
    from models import default_bundle_path
    from models.bundle import load_bundle
    from models.inference import Segmenter
    from models.measure import measure_lvef
    from models.phantoms import cmr_short_axis_phantom
    from models.training.lvef_cmr import phase_volume

    segmenter = Segmenter(load_bundle(default_bundle_path("lvef_cmr")), device="cpu")
    errors = []
    for subject in range(count):
        shape, spacing = (
            ((10, 112, 112), (8.0, 1.8, 1.8))
            if subject % 2
            else ((12, 160, 160), (8.0, 1.5, 1.5))
        )
        edv = float(rng.uniform(110.0, 200.0))
        esv = edv * (1.0 - float(rng.uniform(0.3, 0.65)))
        phantom = cmr_short_axis_phantom(shape, spacing, edv, esv, rng, n_phases=4)
        volumes = [phase_volume(phantom, p) for p in range(phantom.images.shape[0])]
        result = measure_lvef(volumes, segmenter).result
        errors.append(result.ef_percent - phantom.lvef_percent)
        report.lvef_rows.append(
            {
                "subject": subject + 1,
                "lvef_truth": round(phantom.lvef_percent, 2),
                "lvef_measured": round(result.ef_percent, 2),
                "edv_truth_ml": round(phantom.edv_ml, 1),
                "edv_measured_ml": round(result.edv_ml, 1),
            }
        )
        say(f"lvef subject {subject + 1}/{count}")
    report.metrics["lvef_mae_points"] = float(np.mean(np.abs(errors)))
    report.metrics["lvef_max_abs_error_points"] = float(np.max(np.abs(errors)))


def _evaluate_ich(
    report: MeasurementReport,
    rng: np.random.Generator,
    count: int,
    say: Callable[[str], None],
) -> None:
    from models import default_bundle_path
    from models.bundle import load_bundle
    from models.inference import Segmenter
    from models.measure import measure_haemorrhage
    from models.phantoms import HaematomaSpec, head_ct_phantom
    from models.training.data import phantom_volume

    segmenter = Segmenter(load_bundle(default_bundle_path("ich_ct")), device="cpu")
    errors = []
    for subject in range(count):
        shape, spacing = (
            ((24, 128, 128), (5.0, 1.8, 1.8))
            if subject % 2
            else ((28, 224, 224), (5.0, 1.0, 1.0))
        )
        grid = (np.arange(shape[0]) - (shape[0] - 1) / 2.0) * spacing[0]
        target_ml = float(rng.uniform(8.0, 60.0))
        ratio = (1.0, 0.72, 0.8)
        scale = (target_ml * 1000.0 / (4.0 / 3.0 * math.pi * math.prod(ratio))) ** (
            1 / 3
        )
        side = -1.0 if rng.random() < 0.5 else 1.0
        z = float(grid[int(np.argmin(np.abs(grid - rng.uniform(-10.0, 10.0))))])
        spec = HaematomaSpec(
            centre_mm=(side * 26.0, float(rng.uniform(-5.0, 15.0)), z),
            semi_axes_mm=tuple(scale * r for r in ratio),  # type: ignore[arg-type]
            angle_deg=float(rng.uniform(0.0, 180.0)),
            hu=float(rng.uniform(55.0, 80.0)),
        )
        phantom = head_ct_phantom(shape, spacing, spec, rng)
        volume = phantom_volume(phantom.hu, spacing, phantom.origin_mm)
        measured = measure_haemorrhage(volume, segmenter).volume_ml
        truth = phantom.haematoma_volume_ml
        errors.append((measured - truth) / truth)
        report.ich_rows.append(
            {
                "subject": subject + 1,
                "volume_truth_ml": round(truth, 2),
                "volume_measured_ml": round(measured, 2),
            }
        )
        say(f"haemorrhage subject {subject + 1}/{count}")
    report.metrics["haemorrhage_volume_error"] = float(np.mean(np.abs(errors)))
    report.metrics["haemorrhage_max_volume_error"] = float(np.max(np.abs(errors)))
