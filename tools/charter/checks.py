"""Charter checks: a study against its procedure, a subject against the schedule.

Each check returns :class:`Deviation` objects with the rule that was broken and
a reason a person can act on. Missing and out-of-window visits carry
``raise_query=True``: they become EDC queries.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from tools.charter.model import Charter, Condition, ContrastRule, RequiredSeries
from triallens.domain import Priority, StudyRef

__all__ = [
    "Deviation",
    "SeriesSummary",
    "VisitSeen",
    "check_schedule",
    "check_study",
    "priority_from_rules",
    "summarize_series",
]

logger = logging.getLogger(__name__)


_CONTRAST_KEYWORDS = (
    "ContrastBolusAgent",
    "ContrastBolusAgentSequence",
    "ContrastBolusRoute",
    "ContrastBolusVolume",
    "ContrastBolusIngredient",
    "ContrastBolusIngredientConcentration",
)


class Deviation(BaseModel):
    """One breach of the charter, with its reason."""

    code: str
    reason: str
    subject_id: str
    time_point_id: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    raise_query: bool = False

    @property
    def key(self) -> tuple[str, str, str | None]:
        """(code, subject, time point): what identifies a deviation in a trial."""
        return (self.code, self.subject_id, self.time_point_id)


class SeriesSummary(BaseModel):
    """What the charter checks need to know about one series."""

    series_uid: str
    modality: str
    description: str = ""
    body_part: str | None = None
    slice_thickness_mm: float | None = None
    contrast: bool = False
    localizer: bool = False
    axial: bool = False
    instances: int = 0
    positions: int = 0
    phases: int = 1
    burned_in_annotation: bool = False


class VisitSeen(BaseModel):
    """A time point seen for a subject, with its day from day zero."""

    subject_id: str
    time_point_id: str
    day: int


# --------------------------------------------------------------------------
# Study checks
# --------------------------------------------------------------------------


def summarize_series(datasets: Iterable[Any]) -> list[SeriesSummary]:
    """Summaries of the image series among ``datasets`` (pydicom datasets).

    Datasets may be read with ``stop_before_pixels=True``; objects without
    Rows (SR, KO, PR) are ignored.

    Contrast counts as given when any attribute of the Contrast/Bolus module
    (PS3.3 C.7.6.4) holds a value: the agent, its sequence, route, volume or
    ingredient. De-identification empties the free-text agent (PS3.15 E.1-1,
    Z/D) but keeps the others, so the check works on de-identified headers.
    A series is axial when its slice normal lies within about 25 degrees of
    the patient z axis.
    """
    groups: dict[str, list[Any]] = defaultdict(list)
    for ds in datasets:
        if "PixelData" not in ds and "Rows" not in ds:
            continue  # not an image (read with or without its pixels)
        groups[str(ds.SeriesInstanceUID)].append(ds)
    summaries = []
    for uid, items in groups.items():
        first = items[0]
        image_type = [str(v).upper() for v in getattr(first, "ImageType", [])]
        thickness = [
            float(ds.SliceThickness) for ds in items if ds.get("SliceThickness")
        ]
        positions = {
            tuple(round(float(v), 2) for v in ds.ImagePositionPatient)
            for ds in items
            if ds.get("ImagePositionPatient")
        }
        phases = {
            round(float(ds.TriggerTime), 1) for ds in items if ds.get("TriggerTime")
        }
        summaries.append(
            SeriesSummary(
                series_uid=uid,
                modality=str(getattr(first, "Modality", "")),
                description=str(getattr(first, "SeriesDescription", "")),
                body_part=str(first.BodyPartExamined)
                if first.get("BodyPartExamined")
                else None,
                slice_thickness_mm=max(thickness) if thickness else None,
                contrast=any(first.get(keyword) for keyword in _CONTRAST_KEYWORDS),
                localizer="LOCALIZER" in image_type,
                axial=_is_axial(first),
                instances=len(items),
                positions=len(positions),
                phases=max(len(phases), 1),
                burned_in_annotation=str(first.get("BurnedInAnnotation", "")).upper()
                == "YES",
            )
        )
    return sorted(summaries, key=lambda s: s.series_uid)


def check_study(
    charter: Charter,
    study: StudyRef,
    series: Sequence[SeriesSummary] | Iterable[Any],
    visit_day: int | None,
) -> list[Deviation]:
    """Check one study against the procedure scheduled at its time point.

    Parameters
    ----------
    charter
        The trial's charter.
    study
        The study (de-identified identifiers; ``time_point_id`` picks the visit).
    series
        :class:`SeriesSummary` objects, or pydicom datasets to summarise.
    visit_day
        Day of the study counted from day zero; ``None`` skips the window check.

    Returns
    -------
    list of Deviation
        Empty when the study meets the charter. When the modality is wrong, the
        other acquisition rules (written for the scheduled modality) are not
        applied and only the modality and window deviations are reported.
    """
    summaries = _as_summaries(series)
    found = charter.visit(study.time_point_id)

    def deviation(code: str, reason: str, series_uid: str | None = None) -> Deviation:
        return Deviation(
            code=code,
            reason=reason,
            subject_id=study.subject_id,
            time_point_id=study.time_point_id,
            study_uid=study.study_uid,
            series_uid=series_uid,
            raise_query=code in {"visit_out_of_window", "unscheduled_time_point"},
        )

    if found is None:
        return [
            deviation(
                "unscheduled_time_point",
                f"time point {study.time_point_id} is not in the charter's schedule",
            )
        ]
    cohort, visit = found
    procedure = charter.procedures[cohort.procedure]
    deviations: list[Deviation] = []

    # Visit window (charter schedule of assessments).
    if visit_day is not None and not visit.window[0] <= visit_day <= visit.window[1]:
        deviations.append(
            deviation(
                "visit_out_of_window",
                f"{visit.description} on day {visit_day}, outside its window "
                f"[{visit.window[0]}, {visit.window[1]}] (target day {visit.day})",
            )
        )

    diagnostic = [s for s in summaries if not s.localizer]
    modalities = sorted({s.modality for s in diagnostic} or {study.modality})
    if procedure.modality not in modalities:
        deviations.append(
            deviation(
                "wrong_modality",
                f"{procedure.name} requires {procedure.modality}; the study holds "
                f"{', '.join(modalities)}",
            )
        )
        return deviations

    main = [s for s in diagnostic if s.modality == procedure.modality]
    parts = {s.body_part.upper() for s in main if s.body_part}
    allowed = {p.upper() for p in procedure.body_parts}
    if parts and not parts & allowed:
        deviations.append(
            deviation(
                "wrong_body_part",
                f"{procedure.name} covers {', '.join(sorted(allowed))}; the study "
                f"shows {', '.join(sorted(parts))}",
            )
        )

    limit = procedure.max_slice_thickness_mm
    if limit is not None:
        for s in main:
            if s.slice_thickness_mm is not None and s.slice_thickness_mm > limit + 1e-6:
                deviations.append(
                    deviation(
                        "slice_thickness",
                        f"series '{s.description}' has {s.slice_thickness_mm:g} mm "
                        f"slices; the charter allows at most {limit:g} mm",
                        s.series_uid,
                    )
                )

    if procedure.contrast is ContrastRule.REQUIRED and main:
        if not any(s.contrast for s in main):
            deviations.append(
                deviation(
                    "contrast_missing",
                    f"{procedure.name} requires intravenous contrast; no series "
                    "records a contrast agent",
                )
            )
    elif procedure.contrast is ContrastRule.FORBIDDEN:
        for s in main:
            if s.contrast:
                deviations.append(
                    deviation(
                        "contrast_given",
                        f"{procedure.name} must be acquired without contrast; "
                        f"series '{s.description}' records a contrast agent",
                        s.series_uid,
                    )
                )

    for required in procedure.required_series:
        if not any(_satisfies(s, required) for s in summaries):
            deviations.append(
                deviation(
                    "missing_series",
                    f"required series '{required.name}' ({required.kind}, at least "
                    f"{required.min_instances} images) is absent",
                )
            )
    return deviations


def check_schedule(
    charter: Charter,
    visits_seen: Iterable[VisitSeen],
    as_of_day: Mapping[str, int] | int | None = None,
) -> list[Deviation]:
    """Missing and out-of-window visits of every subject seen.

    A required visit is missing when a later visit of the same cohort was seen,
    or when ``as_of_day`` (per subject or for all) is past its window.
    Time points the charter does not know are reported as unscheduled.
    """
    by_subject: dict[str, list[VisitSeen]] = defaultdict(list)
    for seen in visits_seen:
        by_subject[seen.subject_id].append(seen)

    deviations: list[Deviation] = []
    for subject_id in sorted(by_subject):
        seen = by_subject[subject_id]
        ids = {v.time_point_id for v in seen}
        cohorts = set()
        for v in sorted(seen, key=lambda item: (item.day, item.time_point_id)):
            found = charter.visit(v.time_point_id)
            if found is None:
                deviations.append(
                    Deviation(
                        code="unscheduled_time_point",
                        reason=f"time point {v.time_point_id} is not in the schedule",
                        subject_id=subject_id,
                        time_point_id=v.time_point_id,
                        raise_query=True,
                    )
                )
                continue
            cohort, visit = found
            cohorts.add(cohort.name)
            low, high = visit.window
            if not low <= v.day <= high:
                deviations.append(
                    Deviation(
                        code="visit_out_of_window",
                        reason=f"{visit.description} on day {v.day}, outside its "
                        f"window [{low}, {high}] (target day {visit.day})",
                        subject_id=subject_id,
                        time_point_id=v.time_point_id,
                        raise_query=True,
                    )
                )
        today = (
            as_of_day.get(subject_id) if isinstance(as_of_day, Mapping) else as_of_day
        )
        for name in sorted(cohorts):
            visits = charter.cohort(name).visits
            last_seen = max(
                (i for i, visit in enumerate(visits) if visit.time_point_id in ids),
                default=-1,
            )
            for index, visit in enumerate(visits):
                if visit.time_point_id in ids or not visit.required:
                    continue
                overdue = today is not None and today > visit.window[1]
                if index < last_seen or overdue:
                    deviations.append(
                        Deviation(
                            code="missing_visit",
                            reason=f"{visit.description} (day {visit.day}, window "
                            f"[{visit.window[0]}, {visit.window[1]}]) has no study",
                            subject_id=subject_id,
                            time_point_id=visit.time_point_id,
                            raise_query=True,
                        )
                    )
    return deviations


# --------------------------------------------------------------------------
# Priority
# --------------------------------------------------------------------------


def priority_from_rules(
    charter: Charter, facts: Mapping[str, Any]
) -> tuple[Priority, list[str]]:
    """The priority the charter's alert rules give to a set of facts.

    Every rule whose conditions all hold contributes its reason. HIGH wins over
    everything; EXPEDITED (a normal study fast-tracked for review) applies only
    when no HIGH or ROUTINE rule fired; with no rule firing the priority is
    ROUTINE.

    Returns
    -------
    (Priority, list of str)
        The priority and the reasons of every rule that fired, in charter order.
    """
    fired: list[tuple[Priority, str]] = []
    for rule in charter.alert_rules:
        if all(_holds(condition, facts) for condition in rule.when):
            try:
                reason = rule.reason.format(**facts)
            except (KeyError, IndexError, ValueError):
                reason = rule.reason
            fired.append((rule.priority, f"{rule.id}: {reason}"))
    levels = {priority for priority, _ in fired}
    if Priority.HIGH in levels:
        priority = Priority.HIGH
    elif Priority.ROUTINE in levels or not levels:
        priority = Priority.ROUTINE
    else:
        priority = Priority.EXPEDITED
    return priority, [reason for _, reason in fired]


def _holds(condition: Condition, facts: Mapping[str, Any]) -> bool:
    if condition.fact not in facts or facts[condition.fact] is None:
        return False
    value = facts[condition.fact]
    target = condition.value
    value = getattr(value, "value", value)
    try:
        if condition.op == "eq":
            return value == target
        if condition.op == "ne":
            return value != target
        if condition.op == "in":
            return value in target
        if condition.op == "lt":
            return value < target
        if condition.op == "le":
            return value <= target
        if condition.op == "gt":
            return value > target
        return value >= target
    except TypeError:
        logger.debug("fact %s cannot be compared with %r", condition.fact, target)
        return False


def _as_summaries(
    series: Sequence[SeriesSummary] | Iterable[Any],
) -> list[SeriesSummary]:
    items = list(series)
    if all(isinstance(s, SeriesSummary) for s in items):
        return items  # type: ignore[return-value]
    return summarize_series(items)


def _satisfies(summary: SeriesSummary, required: RequiredSeries) -> bool:
    if summary.instances < required.min_instances:
        return False
    if required.kind == "localizer":
        return summary.localizer
    if required.kind == "axial":
        return summary.axial and not summary.localizer
    if required.kind == "cine":
        return summary.phases > 1 and not summary.localizer
    return True


def _is_axial(ds: Any) -> bool:
    orientation = ds.get("ImageOrientationPatient")
    if not orientation or len(orientation) != 6:
        return False
    r = [float(v) for v in orientation[:3]]
    c = [float(v) for v in orientation[3:]]
    normal_z = r[0] * c[1] - r[1] * c[0]
    return abs(normal_z) > 0.9
