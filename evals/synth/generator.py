"""``generate_trial``: subjects, visits, DICOM, truth, charter, protocol, EDC."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from evals.synth.charter import CONTRAST_AGENT, synthetic_charter
from evals.synth.dicom_writer import (
    PRIVATE_CREATOR,
    PRIVATE_NAME_TAG,
    StudyContext,
    UidFactory,
)
from evals.synth.documents import write_edc_values, write_protocol
from evals.synth.phi import SITES, Site, subject_phi, visit_phi
from evals.synth.render import (
    FULL,
    SMALL,
    Layout,
    RenderedVisit,
    render_head_ct,
    render_torso,
)
from evals.synth.render_cardiac import render_cmr
from evals.synth.scenarios import ALL_SCENARIOS, SCENARIOS, Scenario
from evals.synth.truth import annotate_cardiac, annotate_neuro, annotate_oncology
from models.phantoms import TorsoAnatomy, torso_anatomy
from tools.charter import Charter, dump_charter

__all__ = ["SubjectManifest", "TrialManifest", "VisitManifest", "generate_trial"]

logger = logging.getLogger(__name__)

TRIAL_ID = "TL-DEMO-001"
SPONSOR = "TrialLens Demo Sponsor"
PROTOCOL_NAME = (
    "TL-DEMO-001: an open-label phase II study of an investigational agent with "
    "central imaging assessment of tumour response, cardiac safety and "
    "haemorrhage evolution"
)
FIRST_DAY_ZERO = date(2025, 2, 3)
EQUIPMENT = {
    "CT": {
        "Manufacturer": "Synthetic Medical Systems",
        "ManufacturerModelName": "PhantomScan 64",
        "DeviceSerialNumber": "PS64-00231",
        "SoftwareVersions": "VA40A",
    },
    "MR": {
        "Manufacturer": "Synthetic Medical Systems",
        "ManufacturerModelName": "PhantomField 1.5T",
        "DeviceSerialNumber": "PF15-01877",
        "SoftwareVersions": "E11C",
    },
}


class VisitManifest(BaseModel):
    time_point_id: str
    day: int | None
    study_uid: str | None
    path: str | None
    files: int = 0
    missing: bool = False


class SubjectManifest(BaseModel):
    subject_id: str
    site_id: str
    scenario: str
    cohort: str
    visits: list[VisitManifest]


class TrialManifest(BaseModel):
    """What :func:`generate_trial` wrote."""

    out_dir: str
    trial_id: str
    seed: int
    small: bool
    subjects: list[SubjectManifest]
    files: int
    seconds: float
    ground_truth: str
    charter: str
    protocol_md: str
    protocol_pdf: str | None
    edc_site_values: str
    deviations: list[dict[str, Any]] = Field(default_factory=list)


def generate_trial(
    out_dir: Path,
    subjects: int,
    seed: int,
    small: bool = False,
    scenarios: Sequence[str] | None = None,
    on_visit: Callable[[str, str], None] | None = None,
    overwrite: bool = False,
) -> TrialManifest:
    """Write a whole synthetic trial under ``out_dir``.

    Parameters
    ----------
    out_dir
        Output folder, created when absent.
    subjects
        Number of subjects; subject ``n`` follows ``scenarios[n % len(scenarios)]``.
    seed
        Everything written is a function of the seed (and the other arguments).
    small
        Tiny studies for tests (160 x 160 CT, 24 slices of 5 mm).
    scenarios
        Scenario names (see :data:`evals.synth.ALL_SCENARIOS`); default all.
    on_visit
        Called with (subject ID, time point ID) after each scheduled visit.
    overwrite
        Remove an existing ``out_dir/dicom`` first; without it a non-empty
        ``out_dir/dicom`` is an error (stale studies would mix with new ones).

    Returns
    -------
    TrialManifest

    Raises
    ------
    FileExistsError
        ``out_dir/dicom`` holds files and ``overwrite`` is off.
    ValueError
        ``subjects`` is below 1 or a scenario name is unknown.
    """
    started = time.perf_counter()
    if subjects < 1:
        raise ValueError("subjects must be at least 1")
    names = list(scenarios) if scenarios else list(ALL_SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; known: {list(SCENARIOS)}")
    out_dir = Path(out_dir)
    dicom_dir = out_dir / "dicom"
    if dicom_dir.is_dir() and any(dicom_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{dicom_dir} already holds studies; choose an empty folder or "
                "overwrite it"
            )
        shutil.rmtree(dicom_dir)
    dicom_dir.mkdir(parents=True, exist_ok=True)
    layout = SMALL if small else FULL
    uids = UidFactory(seed)
    charter = synthetic_charter(TRIAL_ID, SPONSOR, PROTOCOL_NAME)

    truth_subjects: list[dict[str, Any]] = []
    manifests: list[SubjectManifest] = []
    deviations: list[dict[str, Any]] = []
    files = 0
    per_site: dict[str, int] = {}
    for index in range(subjects):
        scenario = SCENARIOS[names[index % len(names)]]
        site = SITES[index % len(SITES)]
        per_site[site.site_id] = per_site.get(site.site_id, 0) + 1
        subject_id = f"{site.site_id}-{per_site[site.site_id]:03d}"
        rng = np.random.default_rng([seed, index])
        subject, manifest, planted, count = _generate_subject(
            out_dir,
            index,
            subject_id,
            site,
            scenario,
            charter,
            layout,
            uids,
            rng,
            on_visit,
        )
        truth_subjects.append(subject)
        manifests.append(manifest)
        deviations.extend(planted)
        files += count

    charter_path = dump_charter(charter, out_dir / "charter.yaml")
    md_path, pdf_path = write_protocol(charter, out_dir, PROTOCOL_NAME)
    edc_path = write_edc_values(out_dir, charter, truth_subjects, seed)
    truth = {
        "schema_version": 1,
        "trial_id": TRIAL_ID,
        "sponsor": SPONSOR,
        "protocol_name": PROTOCOL_NAME,
        "seed": seed,
        "small": small,
        "private_name_tag": {
            "group": f"{PRIVATE_NAME_TAG[0]:04X}",
            "creator": PRIVATE_CREATOR,
            "element": f"{PRIVATE_NAME_TAG[1]:04X}",
        },
        "subjects": truth_subjects,
        "deviations": deviations,
    }
    truth_path = out_dir / "ground_truth.json"
    truth_path.write_text(
        json.dumps(truth, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    seconds = time.perf_counter() - started
    logger.info("synthetic trial: %d subjects, %d files", subjects, files)
    return TrialManifest(
        out_dir=str(out_dir),
        trial_id=TRIAL_ID,
        seed=seed,
        small=small,
        subjects=manifests,
        files=files,
        seconds=round(seconds, 3),
        ground_truth=str(truth_path),
        charter=str(charter_path),
        protocol_md=str(md_path),
        protocol_pdf=str(pdf_path) if pdf_path else None,
        edc_site_values=str(edc_path),
        deviations=deviations,
    )


def _generate_subject(
    out_dir: Path,
    index: int,
    subject_id: str,
    site: Site,
    scenario: Scenario,
    charter: Charter,
    layout: Layout,
    uids: UidFactory,
    rng: np.random.Generator,
    on_visit: Callable[[str, str], None] | None,
) -> tuple[dict[str, Any], SubjectManifest, list[dict[str, Any]], int]:
    cohort = charter.cohort(scenario.cohort)
    patient = subject_phi(index, site, rng)
    day_zero = FIRST_DAY_ZERO + timedelta(days=7 * index + int(rng.integers(0, 7)))
    anatomy = (
        torso_anatomy(layout.torso_shape, layout.torso_spacing, rng)
        if scenario.cohort == "oncology"
        else None
    )
    planted = {(d.code, d.visit): d for d in scenario.deviations}
    visits_truth: list[dict[str, Any]] = []
    manifests: list[VisitManifest] = []
    deviations: list[dict[str, Any]] = []
    files = 0
    phi_visits: list[dict[str, Any]] = []
    for number, visit in enumerate(cohort.visits):
        jitter = int(rng.integers(-3, 4))
        day = visit.day if visit.window[0] == visit.window[1] else visit.day + jitter
        day = min(max(day, visit.window[0]), visit.window[1])
        if ("visit_out_of_window", number) in planted:
            day = visit.window[1] + 7
        visit_rng = np.random.default_rng([int(rng.integers(0, 2**31)), number])
        record: dict[str, Any] = {
            "time_point_id": visit.time_point_id,
            "time_point_description": visit.description,
            "visit_index": number,
        }
        for code, where in planted:
            if where == number:
                deviations.append(
                    {
                        "code": code,
                        "subject_id": subject_id,
                        "time_point_id": visit.time_point_id,
                        "detail": planted[(code, where)].detail,
                    }
                )
        if ("missing_visit", number) in planted:
            record.update({"missing": True, "visit_day": None, "study_uid": None})
            visits_truth.append(record)
            manifests.append(
                VisitManifest(
                    time_point_id=visit.time_point_id,
                    day=None,
                    study_uid=None,
                    path=None,
                    missing=True,
                )
            )
            if on_visit is not None:
                on_visit(subject_id, visit.time_point_id)
            continue

        study_date = day_zero + timedelta(days=day)
        seconds = 8 * 3600 + int(rng.integers(0, 9 * 3600))
        study_time = f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"
        phi = visit_phi(patient, study_date, rng)
        study_uid = uids(subject_id, visit.time_point_id, "study")
        modality = "MR" if scenario.cohort == "cardiac" else "CT"
        if ("wrong_modality", number) in planted:
            modality = "MR"
        context = StudyContext(
            study_uid=study_uid,
            frame_of_reference_uid=uids(subject_id, visit.time_point_id, "for"),
            study_date=f"{study_date:%Y%m%d}",
            study_time=study_time,
            study_description=_study_description(scenario.cohort, modality),
            phi=phi,
            trial={
                "ClinicalTrialSponsorName": SPONSOR,
                "ClinicalTrialProtocolID": TRIAL_ID,
                "ClinicalTrialProtocolName": PROTOCOL_NAME[:64],
                "ClinicalTrialSiteID": site.site_id,
                "ClinicalTrialSiteName": site.site_name,
                "ClinicalTrialSubjectID": subject_id,
                "ClinicalTrialTimePointID": visit.time_point_id,
                "ClinicalTrialTimePointDescription": visit.description,
                "LongitudinalTemporalOffsetFromEvent": float(day),
                "LongitudinalTemporalEventType": "ENROLLMENT",
            },
            equipment=EQUIPMENT[modality],
        )
        folder = out_dir / "dicom" / subject_id / visit.time_point_id
        rendered = _render(
            scenario,
            number,
            folder,
            context,
            uids,
            layout,
            anatomy,
            visit_rng,
            planted,
            modality,
            phi,
        )
        files += rendered.files
        record.update(
            {
                "missing": False,
                "visit_day": day,
                "study_date": context.study_date,
                "study_uid": study_uid,
                "path": str(folder.relative_to(out_dir)),
                "series": rendered.series,
                **rendered.truth,
            }
        )
        visits_truth.append(record)
        phi_visits.append(
            {
                "time_point_id": visit.time_point_id,
                "StudyDate": context.study_date,
                "StudyTime": study_time,
                "AccessionNumber": phi["AccessionNumber"],
                "StudyID": phi["StudyID"],
                "PatientAge": phi["PatientAge"],
                "burned_in_text": _burned_in_text(phi)
                if scenario.burned_in_visit == number
                else None,
            }
        )
        manifests.append(
            VisitManifest(
                time_point_id=visit.time_point_id,
                day=day,
                study_uid=study_uid,
                path=str(folder),
                files=rendered.files,
            )
        )
        if on_visit is not None:
            on_visit(subject_id, visit.time_point_id)

    if scenario.cohort == "oncology":
        roles = {track.lesion_id: track.role for track in scenario.lesions}
        annotate_oncology(visits_truth, roles, charter, deviations)
    elif scenario.cohort == "cardiac":
        annotate_cardiac(visits_truth, charter, deviations)
    else:
        annotate_neuro(visits_truth, charter, deviations)

    subject = {
        "subject_id": subject_id,
        "site_id": site.site_id,
        "site_name": site.site_name,
        "scenario": scenario.name,
        "scenario_summary": scenario.summary,
        "cohort": scenario.cohort,
        "criteria": cohort.criteria,
        "day_zero_date": f"{day_zero:%Y%m%d}",
        "visits": visits_truth,
        "deviations": deviations,
        "phi": {
            **patient,
            "private_tag_value": patient["PatientName"].replace("^", " ")[:64],
            "visits": phi_visits,
        },
    }
    manifest = SubjectManifest(
        subject_id=subject_id,
        site_id=site.site_id,
        scenario=scenario.name,
        cohort=scenario.cohort,
        visits=manifests,
    )
    return subject, manifest, deviations, files


def _render(
    scenario: Scenario,
    number: int,
    folder: Path,
    context: StudyContext,
    uids: UidFactory,
    layout: Layout,
    anatomy: TorsoAnatomy | None,
    rng: np.random.Generator,
    planted: dict[tuple[str, int], Any],
    modality: str,
    phi: dict[str, str],
) -> RenderedVisit:
    if scenario.cohort == "oncology":
        if anatomy is None:
            raise ValueError("an oncology subject needs its torso anatomy")
        thick = ("slice_thickness", number) in planted
        return render_torso(
            folder,
            context,
            uids,
            layout,
            anatomy,
            scenario.lesions,
            number,
            rng,
            contrast=("contrast_missing", number) not in planted,
            modality=modality,
            slice_mm=7.5 if thick else layout.torso_spacing[0],
            burned_in_text=_burned_in_text(phi)
            if scenario.burned_in_visit == number
            else None,
            contrast_agent=CONTRAST_AGENT,
        )
    if scenario.cohort == "cardiac":
        edv, esv = scenario.lv_volumes_ml[number]
        return render_cmr(folder, context, uids, layout, edv, esv, rng)
    return render_head_ct(
        folder,
        context,
        uids,
        layout,
        scenario.haematoma_ml[number],
        scenario.haematoma_hu[number],
        rng,
    )


def _study_description(cohort: str, modality: str) -> str:
    if cohort == "cardiac":
        return "MR Herz Funktion"
    if cohort == "neuro":
        return "CT Schädel nativ"
    return "CT Thorax/Abdomen KM" if modality == "CT" else "MR Abdomen"


def _burned_in_text(phi: dict[str, str]) -> str:
    name = phi["PatientName"].replace("^", ", ")
    return f"{name}  {phi['PatientID']}  DOB {phi['PatientBirthDate']}"
