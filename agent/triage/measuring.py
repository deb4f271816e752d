"""The measuring nodes: choose a task and series, segment, quantify, compare.

Tasks: ``recist_ct`` (lesions and nodes, RECIST 1.1), ``lvef_cmr`` (LV
volumes and EF from a short-axis cine) and ``ich_ct`` (haemorrhage volume).
Each finding carries the model version and a key image written under the
data directory.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from typing import Any

from agent.triage.context import TriageContext
from agent.triage.state import TriageState
from triallens.domain import LesionMeasurement, QcFlag, StudyRef, TriageOutcome

__all__ = ["compare_with_priors", "measure"]

logger = logging.getLogger(__name__)

# Tried in order for each modality; the first task with a suitable series wins.
_TASKS_BY_MODALITY: dict[str, tuple[str, ...]] = {
    "CT": ("ich_ct", "recist_ct"),
    "MR": ("lvef_cmr",),
}

# Deviations from acquisition rules that still leave a series measurable: the
# charter check reports them; the measurement goes ahead and says so.
_RELAXED_RECIST = {"contrast": None, "max_slice_thickness_mm": None}


def measure(state: TriageState, ctx: TriageContext) -> TriageState:
    """Build volumes, choose the task and series, segment and quantify."""
    import pydicom

    from triallens.geometry import build_volumes

    paths = sorted(Path(state["work_dir"]).glob("*.dcm"))
    volumes = build_volumes([pydicom.dcmread(path) for path in paths])
    qc = list(state.get("qc_flags", []))
    qc += [
        flag.model_dump(mode="json") for volume in volumes for flag in volume.qc_flags
    ]

    task, selection, reasons = _choose_task(state["study"]["modality"], volumes, qc)
    if selection is None or task is None:
        return _not_applicable(task, qc, "no task for this study: " + reasons)
    volume = selection.volume
    if not volume.measurable:
        reason = "no millimetre measurement: " + (volume.not_measurable_reason or "")
        return _not_applicable(task, qc, reason, volume.series_uid)

    study_uid = state["study"]["study_uid"]
    images_dir = ctx.settings.key_images_dir / study_uid
    segmenter = ctx.segmenter(task)
    update: TriageState = {
        "task": task,
        "series_uid": volume.series_uid,
        "outcome": TriageOutcome.MEASURED.value,
        "outcome_reason": None,
        "qc_flags": qc,
        "lesions": [],
        "measurements": {},
        "model_version": segmenter.bundle.version,
    }
    if task == "recist_ct":
        found = _segment_recist(volume, segmenter)
        update["lesions"] = _recist_lesions(found, images_dir)
        update["coverage_mm"] = _coverage_mm(volume)
        update["dicom_outputs"] = _store_dicom_outputs(
            ctx, state, volume, paths, found, segmenter.bundle
        )
    elif task == "lvef_cmr":
        update["measurements"] = _measure_lvef(selection, segmenter, images_dir)
    else:
        update["measurements"] = _measure_ich(volume, segmenter, images_dir)
    return update


def _choose_task(
    modality: str, volumes: list[Any], qc: list[dict[str, Any]]
) -> tuple[str | None, Any, str]:
    from triallens.selection import select_series

    tasks: list[str] = []
    for part in modality.split("/"):
        tasks += _TASKS_BY_MODALITY.get(part, ())
    if not tasks:
        return None, None, f"TrialLens measures CT and cardiac MR, not {modality}"
    reasons: list[str] = []
    for task in tasks:
        selection = select_series(volumes, task)
        if selection.volume is not None:
            return task, selection, ""
        reasons.append(f"{task}: {selection.reason}")
    if "recist_ct" in tasks:
        relaxed = select_series(volumes, "recist_ct", _RELAXED_RECIST)
        if relaxed.volume is not None:
            qc.append(
                QcFlag(
                    code="acquisition_deviation",
                    reason="measured on a series that breaks the acquisition rules "
                    "(contrast or slice thickness); see the deviations",
                    series_uid=relaxed.volume.series_uid,
                ).model_dump(mode="json")
            )
            return "recist_ct", relaxed, ""
    return tasks[0], None, "; ".join(reasons)


def _not_applicable(
    task: str | None,
    qc: list[dict[str, Any]],
    reason: str,
    series_uid: str | None = None,
) -> TriageState:
    return {
        "task": task,
        "series_uid": series_uid,
        "outcome": TriageOutcome.NOT_APPLICABLE.value,
        "outcome_reason": reason,
        "qc_flags": qc,
        "lesions": [],
        "measurements": {},
    }


def _write_png(folder: Path, name: str, data: bytes | None) -> str | None:
    if not data:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    path.write_bytes(data)
    return str(path)


def _segment_recist(volume: Any, segmenter: Any) -> Any:
    from models.measure import measure_ct_lesions

    return measure_ct_lesions(volume, segmenter)


def _recist_lesions(found: Any, images: Path) -> list[dict[str, Any]]:
    lesions = []
    for lesion in found.lesions:
        png = found.key_images.get(lesion.lesion_id)
        path = _write_png(images, lesion.lesion_id, png)
        lesion = lesion.model_copy(update={"key_image": path})
        lesions.append(lesion.model_dump(mode="json"))
    return lesions


def _store_dicom_outputs(
    ctx: TriageContext,
    state: TriageState,
    volume: Any,
    paths: list[Path],
    found: Any,
    bundle: Any,
) -> dict[str, str]:
    """A DICOM SEG of the lesion mask and a TID 1500 SR of the measurements.

    Both reference the de-identified images and go to the results archive
    (``TRIALLENS_RESULTS_PACS_URL``, or the embedded one). Their UIDs derive
    from the study version, so a replayed run stores the same objects again.
    """
    if not found.lesions:
        return {}
    import pydicom

    from models.dicom_outputs import sort_source_images

    wanted = set(volume.sop_instance_uids)
    headers = [pydicom.dcmread(p) for p in paths if p.stem in wanted]
    images = sort_source_images(headers, volume.sop_instance_uids)
    with warnings.catch_warnings():
        # The de-identified PatientName is the subject ID, one component by design.
        warnings.filterwarnings("ignore", message=".*intended person name")
        seg, report = _seg_and_sr(state, found, bundle, images)
    ctx.results_pacs.store([seg, report])
    return {"seg": str(seg.SOPInstanceUID), "sr": str(report.SOPInstanceUID)}


def _seg_and_sr(state: TriageState, found: Any, bundle: Any, images: list[Any]) -> Any:
    from models.dicom_outputs import write_measurement_report, write_segmentation

    version = state["study_version"]
    names = {1: "lesion", 2: "lymph node"}
    seg = write_segmentation(
        images,
        found.labels,
        {k: v for k, v in names.items() if (found.labels == k).any()},
        model_name=bundle.task,
        model_version=bundle.version,
        series_uid=_derived_uid(version, "seg-series"),
        sop_instance_uid=_derived_uid(version, "seg"),
    )
    report = write_measurement_report(
        images,
        list(zip(found.lesions, found.geometries, strict=True)),
        time_point=state["study"]["time_point_id"],
        model_name=bundle.task,
        model_version=bundle.version,
        series_uid=_derived_uid(version, "sr-series"),
        sop_instance_uid=_derived_uid(version, "sr"),
    )
    return seg, report


def _derived_uid(study_version: str, what: str) -> str:
    """A UID under 2.25 derived from the study version (deterministic)."""
    digest = hashlib.sha256(f"{study_version}:{what}".encode()).hexdigest()
    return "2.25." + str(int(digest[:30], 16))


def _measure_lvef(selection: Any, segmenter: Any, images: Path) -> dict[str, Any]:
    from models.measure import measure_lvef

    phases = selection.volumes or [selection.volume]
    found = measure_lvef(phases, segmenter)
    result = found.result
    return {
        "lvef_percent": round(result.ef_percent, 1),
        "edv_ml": round(result.edv_ml, 1),
        "esv_ml": round(result.esv_ml, 1),
        "ed_phase": result.ed_phase,
        "es_phase": result.es_phase,
        "confidence": round(found.confidence, 3),
        "key_image": _write_png(images, "lv_cavity", found.key_image),
    }


def _measure_ich(volume: Any, segmenter: Any, images: Path) -> dict[str, Any]:
    from models.measure import measure_haemorrhage

    found = measure_haemorrhage(volume, segmenter)
    return {
        "haemorrhage_volume_ml": round(found.volume_ml, 2),
        "abc2_volume_ml": round(found.abc2.volume_ml, 2),
        "confidence": round(found.confidence, 3),
        "key_image": _write_png(images, "haemorrhage", found.key_image),
    }


def compare_with_priors(state: TriageState, ctx: TriageContext) -> TriageState:
    """Compare with the subject's earlier visits (baseline, nadir, prior)."""
    if state.get("outcome") != TriageOutcome.MEASURED.value:
        return {"assessment": None}
    study = StudyRef.model_validate(state["study"])
    priors = [
        r
        for r in ctx.store.subject_timeline(study.trial_id, study.subject_id)
        if r.study.study_uid != study.study_uid
        and r.task == state.get("task")
        and r.outcome is TriageOutcome.MEASURED
        and (r.study.study_date or "") <= (study.study_date or "")
    ]
    if state.get("task") == "recist_ct":
        if not priors and not _is_first_visit(ctx, study.time_point_id):
            return _without_baseline(state, study)
        return _recist_assessment(state, study, priors)
    measurements = dict(state.get("measurements", {}))
    baseline = _baseline_value(priors, state["task"])
    if state.get("task") == "lvef_cmr":
        measurements.update(_lvef_change(measurements, baseline))
    else:
        measurements.update(_haematoma_change(measurements, baseline, ctx.charter))
    return {"assessment": None, "measurements": measurements}


def _is_first_visit(ctx: TriageContext, time_point_id: str) -> bool:
    """True when the charter schedules this time point first (or has no charter)."""
    charter = ctx.charter
    if charter is None:
        return True
    found = charter.visit(time_point_id)
    if found is None:
        return True
    cohort, visit = found
    return bool(cohort.visits) and cohort.visits[0].time_point_id == visit.time_point_id


def _without_baseline(state: TriageState, study: StudyRef) -> TriageState:
    """A follow-up that arrived before its baseline: measured, not assessable.

    RECIST 1.1 compares with baseline; until the baseline is triaged the
    response is NE and the study says why.
    """
    from triallens.domain import Assessment, Response

    lesions = [LesionMeasurement.model_validate(x) for x in state["lesions"]]
    assessment = Assessment(
        subject_id=study.subject_id,
        time_point_id=study.time_point_id,
        lesions=lesions,
        target_response=Response.NE,
        overall_response=Response.NE,
    )
    flag = QcFlag(
        code="baseline_not_received",
        reason=f"no baseline triaged for subject {study.subject_id} before "
        f"{study.time_point_id}: response not evaluable; re-triage this study "
        "once the baseline is in",
    )
    return {
        "assessment": assessment.model_dump(mode="json"),
        "qc_flags": [*state.get("qc_flags", []), flag.model_dump(mode="json")],
    }


def _coverage_mm(volume: Any) -> list[list[float]]:
    """The box in patient coordinates (mm) that the series images: the
    lowest and highest x, y and z of its voxel centres."""
    import numpy as np

    k, j, i = (n - 1 for n in volume.pixels.shape)
    corners = np.array(
        [[a, b, c] for a in (0, i) for b in (0, j) for c in (0, k)], dtype=float
    )
    points = volume.index_to_patient(corners)
    return [points.min(axis=0).tolist(), points.max(axis=0).tolist()]


def _recist_assessment(
    state: TriageState, study: StudyRef, priors: list[Any]
) -> TriageState:
    from models.quantify import recist

    lesions = [LesionMeasurement.model_validate(x) for x in state["lesions"]]
    with_lesions = [r for r in priors if r.assessment is not None]
    visits = [r.assessment.lesions for r in with_lesions]
    visits.append(lesions)
    dates = [r.study.study_date for r in with_lesions] + [study.study_date]
    coverage = [None] * (len(visits) - 1) + [state.get("coverage_mm")]
    evaluations = recist.assess_timeline(
        visits, _days_since_first(dates), coverage_mm=coverage
    )
    assessment = evaluations[-1].to_assessment(
        study.subject_id, study.time_point_id, lesions
    )
    baseline_ids = evaluations[0].tracking
    flags = [
        QcFlag(
            code="target_not_found",
            reason=f"target {target} (baseline {baseline_ids.get(target)}, last "
            f"{diameter:.1f} mm) not found at {study.time_point_id}: counted as "
            "disappeared; a reader must confirm it is gone",
        ).model_dump(mode="json")
        for target, diameter in evaluations[-1].not_found.items()
    ]
    flags += [
        QcFlag(
            code="target_not_imaged",
            reason=f"target {target} (baseline {baseline_ids.get(target)}, last "
            f"{diameter:.1f} mm) lies outside the scanned range at "
            f"{study.time_point_id}: not evaluated, target response NE",
        ).model_dump(mode="json")
        for target, diameter in evaluations[-1].not_imaged.items()
    ]
    return {
        "assessment": assessment.model_dump(mode="json"),
        "qc_flags": [*state.get("qc_flags", []), *flags],
    }


def _baseline_value(priors: list[Any], task: str) -> float | None:
    name = "lvef_percent" if task == "lvef_cmr" else "haemorrhage_volume_ml"
    for prior in priors:
        for finding in prior.findings:
            if finding.name == name and isinstance(finding.value, int | float):
                return float(finding.value)
    return None


def _lvef_change(values: dict[str, Any], baseline: float | None) -> dict[str, Any]:
    from models.quantify.lvef import ctrcd_class

    current = float(values["lvef_percent"])
    if baseline is None:
        baseline = current
    return {
        "lvef_baseline_percent": baseline,
        "lvef_drop_points": round(baseline - current, 1),
        "ctrcd": ctrcd_class(baseline, current).value,
    }


def _haematoma_change(
    values: dict[str, Any], baseline: float | None, charter: Any
) -> dict[str, Any]:
    from models.quantify.ich import haematoma_expansion

    if baseline is None:
        return {"haematoma_change_ml": 0.0, "haematoma_expansion": False}
    thresholds: dict[str, float] = {}
    if charter is not None:
        criteria = charter.response_criteria.ich
        thresholds = {
            "absolute_ml": criteria.expansion_ml,
            "relative": criteria.expansion_percent / 100.0,
        }
    current = float(values["haemorrhage_volume_ml"])
    change = haematoma_expansion(baseline, current, **thresholds)
    return {
        "haematoma_baseline_ml": baseline,
        "haematoma_change_ml": round(change.absolute_ml, 2),
        "haematoma_expansion": bool(change.expanded),
    }


def _days_since_first(dates: list[str | None]) -> list[float | None]:
    from datetime import datetime

    parsed = []
    for value in dates:
        try:
            parsed.append(datetime.strptime(value or "", "%Y%m%d"))
        except ValueError:
            parsed.append(None)
    first = parsed[0]
    return [
        float((day - first).days) if day is not None and first is not None else None
        for day in parsed
    ]
