"""RECIST 1.1 rules in one place (Eisenhauer et al. 2009, Eur J Cancer 45:228).

Everything a trial charter may change lives in :class:`RecistRules`; the
defaults are the published values. The functions are pure: they take
:class:`~triallens.domain.LesionMeasurement` objects and numbers and return
:class:`~triallens.domain.Response` values, so the same code derives the
expected response of a synthetic subject and the measured one of a real study.

Typical use::

    results = assess_timeline([baseline_lesions, week8_lesions, week16_lesions])
    results[2].overall_response   # Response.PR, ...

Conventions
-----------
- A target lesion's diameter is its longest diameter (LD), a nodal target's is
  its short axis (SA) (sec. 4.2 and 4.3.2).
- A target that is present but smaller than ``too_small_mm`` is recorded as
  ``too_small_mm`` (5 mm); one that has disappeared (no matching lesion) is 0.
- Lesions are matched across visits by distance between centroids in patient
  coordinates; the visits must share a frame of reference (same position of the
  patient or registered images).
- Target lesions without a known organ each count as their own organ for the
  two-per-organ limit; all nodes together are one organ.
- Unequivocal non-target progression cannot be judged by a reader here; the
  machine proxy is a rise of the summed non-target diameters by at least
  ``non_target_pd_increase`` over its smallest value and at least
  ``non_target_pd_absolute_mm``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from triallens.domain import Assessment, LesionKind, LesionMeasurement, Response

__all__ = [
    "DEFAULT_RULES",
    "RecistRules",
    "TargetSelection",
    "VisitResult",
    "assess_timeline",
    "classify_target_response",
    "confirmation_needed",
    "is_target_candidate",
    "match_lesions",
    "non_target_response",
    "overall_response",
    "select_targets",
    "sum_of_diameters",
    "target_diameter_mm",
    "target_response",
]

_EPS = 1e-6
NODE_ORGAN = "lymph node"


@dataclass(frozen=True)
class RecistRules:
    """Thresholds of RECIST 1.1; override any of them from a trial charter."""

    max_targets: int = 5
    max_targets_per_organ: int = 2
    min_lesion_diameter_mm: float = 10.0
    thick_slice_limit_mm: float = 5.0
    min_target_node_short_axis_mm: float = 15.0
    pathological_node_short_axis_mm: float = 10.0
    too_small_mm: float = 5.0
    pr_decrease: float = 0.30
    pd_increase: float = 0.20
    pd_absolute_mm: float = 5.0
    non_target_pd_increase: float = 0.50
    non_target_pd_absolute_mm: float = 10.0
    new_lesion_min_diameter_mm: float = 5.0
    match_distance_mm: float = 15.0
    confirm_responses: bool = True
    confirmation_interval_days: float = 28.0
    sd_min_interval_days: float = 42.0


DEFAULT_RULES = RecistRules()


@dataclass
class TargetSelection:
    """The baseline split into target, non-target and normal (ignored) findings."""

    targets: list[LesionMeasurement]
    non_targets: list[LesionMeasurement]
    normal_nodes: list[LesionMeasurement] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Baseline: measurability and target selection (sec. 3.1, 3.3)


def is_target_candidate(
    lesion: LesionMeasurement,
    rules: RecistRules = DEFAULT_RULES,
    slice_thickness_mm: float | None = None,
) -> bool:
    """Whether a baseline finding is measurable and may be a target lesion.

    Non-nodal lesions need LD >= 10 mm, or >= 2 x slice thickness when slices
    are thicker than 5 mm. Nodes need SA >= 15 mm.
    """
    if lesion.kind is LesionKind.NODE:
        return lesion.short_axis_mm >= rules.min_target_node_short_axis_mm - _EPS
    minimum = rules.min_lesion_diameter_mm
    if (
        slice_thickness_mm is not None
        and slice_thickness_mm > rules.thick_slice_limit_mm
    ):
        minimum = max(minimum, 2.0 * slice_thickness_mm)
    return lesion.longest_diameter_mm >= minimum - _EPS


def select_targets(
    lesions: Iterable[LesionMeasurement],
    rules: RecistRules = DEFAULT_RULES,
    slice_thickness_mm: float | None = None,
) -> TargetSelection:
    """Choose target lesions at baseline.

    The largest measurable findings (by RECIST diameter, ties by ``lesion_id``)
    are taken until ``max_targets`` (5) in total and ``max_targets_per_organ``
    (2) per organ; all nodes together count as one organ. The rest of the
    lesions and the pathological nodes (SA >= 10 mm) are non-targets; nodes
    with SA < 10 mm are normal and not followed.

    Returns
    -------
    TargetSelection
    """
    ordered = sorted(lesions, key=lambda m: (-m.recist_diameter_mm, m.lesion_id))
    per_organ: dict[str, int] = {}
    selection = TargetSelection(targets=[], non_targets=[])
    for lesion in ordered:
        if lesion.kind is LesionKind.NODE and (
            lesion.short_axis_mm < rules.pathological_node_short_axis_mm - _EPS
        ):
            selection.normal_nodes.append(lesion)
            continue
        organ = _organ_key(lesion)
        if (
            len(selection.targets) < rules.max_targets
            and per_organ.get(organ, 0) < rules.max_targets_per_organ
            and is_target_candidate(lesion, rules, slice_thickness_mm)
        ):
            selection.targets.append(lesion)
            per_organ[organ] = per_organ.get(organ, 0) + 1
        else:
            selection.non_targets.append(lesion)
    return selection


def _organ_key(lesion: LesionMeasurement) -> str:
    if lesion.kind is LesionKind.NODE:
        return NODE_ORGAN
    return lesion.organ or f"unknown:{lesion.lesion_id}"


# ---------------------------------------------------------------------------
# Sum of diameters (sec. 4.3.1, appendix I)


def target_diameter_mm(
    lesion: LesionMeasurement | None, rules: RecistRules = DEFAULT_RULES
) -> float:
    """The diameter a target contributes to the sum.

    ``None`` (disappeared) gives 0; a present lesion below ``too_small_mm``
    gives ``too_small_mm`` (5 mm); otherwise LD, or SA for nodes.
    """
    if lesion is None:
        return 0.0
    return max(lesion.recist_diameter_mm, rules.too_small_mm)


def sum_of_diameters(
    lesions: Iterable[LesionMeasurement | None], rules: RecistRules = DEFAULT_RULES
) -> float:
    """Sum of the target diameters (LD non-nodal + SA nodal), in mm."""
    return float(sum(target_diameter_mm(m, rules) for m in lesions))


# ---------------------------------------------------------------------------
# Responses (sec. 4.3.1 to 4.3.4, table 1 and 2)


def classify_target_response(
    current_sum_mm: float,
    baseline_sum_mm: float,
    nadir_sum_mm: float,
    *,
    all_targets_resolved: bool,
    evaluable: bool = True,
    rules: RecistRules = DEFAULT_RULES,
) -> Response:
    """Target response from sums of diameters.

    PD: sum up >= 20 % over the nadir and by >= 5 mm. CR: every target gone and
    every nodal target SA < 10 mm (``all_targets_resolved``). PR: sum down
    >= 30 % from baseline. SD otherwise. If some target was not evaluated the
    response is NE unless the assessed targets alone already show PD.
    """
    increase = current_sum_mm - nadir_sum_mm
    if increase >= rules.pd_absolute_mm - _EPS and (
        increase >= rules.pd_increase * nadir_sum_mm - _EPS
    ):
        return Response.PD
    if not evaluable:
        return Response.NE
    if all_targets_resolved:
        return Response.CR
    if baseline_sum_mm > 0 and (
        baseline_sum_mm - current_sum_mm >= rules.pr_decrease * baseline_sum_mm - _EPS
    ):
        return Response.PR
    return Response.SD


def target_response(
    current_targets: Sequence[LesionMeasurement | None],
    baseline_sum_mm: float,
    nadir_sum_mm: float,
    rules: RecistRules = DEFAULT_RULES,
    *,
    evaluable: bool = True,
) -> Response:
    """Target response for the targets as found now (``None`` = disappeared)."""
    resolved = all(
        m is None
        or (
            m.kind is LesionKind.NODE
            and m.short_axis_mm < rules.pathological_node_short_axis_mm - _EPS
        )
        for m in current_targets
    )
    return classify_target_response(
        sum_of_diameters(current_targets, rules),
        baseline_sum_mm,
        nadir_sum_mm,
        all_targets_resolved=resolved,
        evaluable=evaluable,
        rules=rules,
    )


def non_target_response(
    current_non_targets: Sequence[LesionMeasurement | None],
    reference_sum_mm: float,
    rules: RecistRules = DEFAULT_RULES,
) -> Response | None:
    """Non-target response; ``None`` when there were no non-targets at baseline.

    CR: all gone and nodes SA < 10 mm. PD (machine proxy for unequivocal
    progression): summed RECIST diameters up by ``non_target_pd_increase`` and
    ``non_target_pd_absolute_mm`` over ``reference_sum_mm`` (the smallest sum
    so far). NON-CR/NON-PD otherwise.
    """
    if not current_non_targets:
        return None
    current = sum(m.recist_diameter_mm for m in current_non_targets if m is not None)
    increase = current - reference_sum_mm
    if increase >= rules.non_target_pd_absolute_mm - _EPS and (
        increase >= rules.non_target_pd_increase * reference_sum_mm - _EPS
    ):
        return Response.PD
    resolved = all(
        m is None
        or (
            m.kind is LesionKind.NODE
            and m.short_axis_mm < rules.pathological_node_short_axis_mm - _EPS
        )
        for m in current_non_targets
    )
    return Response.CR if resolved else Response.NON_CR_NON_PD


def overall_response(
    target: Response | None, non_target: Response | None, new_lesions: bool
) -> Response:
    """Overall response at one time point (RECIST 1.1 tables 1 and 2).

    Parameters
    ----------
    target : Response or None
        CR, PR, SD, PD or NE; ``None`` when the subject has no target lesions.
    non_target : Response or None
        CR, NON-CR/NON-PD, PD or NE; ``None`` when there are no non-targets.
    new_lesions : bool
        Whether an unequivocal new lesion was found.
    """
    if new_lesions or target is Response.PD or non_target is Response.PD:
        return Response.PD
    if target is None:
        # Non-target disease only (table 2).
        if non_target in (Response.CR, Response.NON_CR_NON_PD, Response.NE):
            return non_target
        return Response.NE
    if target is Response.CR:
        if non_target in (Response.CR, None):
            return Response.CR
        return Response.PR
    if target in (Response.PR, Response.SD, Response.NE):
        return target
    raise ValueError(f"not a target response: {target}")


def confirmation_needed(
    overall: Response,
    previous: Sequence[tuple[Response, float | None]] = (),
    days_since_baseline: float | None = None,
    rules: RecistRules = DEFAULT_RULES,
) -> str | None:
    """Say why a response still needs confirmation, or ``None``.

    CR and PR need the same or a better response on a scan at least
    ``confirmation_interval_days`` (28) apart (sec. 4.6); SD must be reached at
    least ``sd_min_interval_days`` after baseline. PD needs no confirmation.

    Parameters
    ----------
    previous : sequence of (Response, days since baseline)
        Earlier follow-up overall responses, oldest first.
    """
    if overall in (Response.CR, Response.PR) and rules.confirm_responses:
        accepted = (
            {Response.CR} if overall is Response.CR else {Response.CR, Response.PR}
        )
        for response, day in reversed(previous):
            if response not in accepted:
                break
            if (
                day is None
                or days_since_baseline is None
                or days_since_baseline - day >= rules.confirmation_interval_days - _EPS
            ):
                return None
        return (
            f"{overall.value} needs confirmation on a scan >= "
            f"{rules.confirmation_interval_days:g} days later"
        )
    if (
        overall is Response.SD
        and days_since_baseline is not None
        and days_since_baseline < rules.sd_min_interval_days - _EPS
    ):
        return f"SD before the minimum interval of {rules.sd_min_interval_days:g} days"
    return None


# ---------------------------------------------------------------------------
# Following lesions across visits


def match_lesions(
    previous: Sequence[LesionMeasurement],
    current: Sequence[LesionMeasurement],
    rules: RecistRules = DEFAULT_RULES,
) -> dict[str, str]:
    """Pair findings of two visits by centroid distance in patient coordinates.

    Only findings of the same kind pair up, and only within
    ``max(match_distance_mm, half the larger LD)``. The pairing minimises the
    total distance (Hungarian assignment).

    Returns
    -------
    dict
        ``previous lesion_id -> current lesion_id`` for the matched pairs.
    """
    from scipy.optimize import linear_sum_assignment

    if not previous or not current:
        return {}
    big = 1e9
    cost = np.full((len(previous), len(current)), big)
    for a, old in enumerate(previous):
        for b, new in enumerate(current):
            if old.kind is not new.kind:
                continue
            distance = float(
                np.linalg.norm(np.subtract(old.centroid_mm, new.centroid_mm))
            )
            limit = max(
                rules.match_distance_mm,
                0.5 * max(old.longest_diameter_mm, new.longest_diameter_mm),
            )
            if distance <= limit:
                cost[a, b] = distance
    rows, cols = linear_sum_assignment(cost)
    return {
        previous[a].lesion_id: current[b].lesion_id
        for a, b in zip(rows, cols, strict=True)
        if cost[a, b] < big
    }


@dataclass
class VisitResult:
    """RECIST 1.1 evaluation of one visit of a timeline.

    ``tracking`` maps each tracking identifier (T01.. targets, NT01.. non-
    targets, NEW01.. new lesions) to the ``lesion_id`` found at this visit, or
    ``None`` when it was not found (disappeared). ``not_found`` gives, for
    each target not found at this visit, its last measured RECIST diameter
    (mm): counted as disappeared, it is for a reader to confirm.
    ``not_imaged`` gives the targets whose last position lies outside the
    visit's scanned range: not evaluated, so the target response is NE
    unless the targets that were imaged already show PD.
    """

    visit_index: int
    sum_mm: float
    baseline_sum_mm: float
    nadir_sum_mm: float
    percent_change_from_baseline: float | None
    percent_change_from_nadir: float | None
    target_response: Response | None
    non_target_response: Response | None
    new_lesion_ids: list[str]
    overall_response: Response
    confirmation: str | None
    tracking: dict[str, str | None]
    target_ids: list[str]
    not_found: dict[str, float] = field(default_factory=dict)
    not_imaged: dict[str, float] = field(default_factory=dict)

    def to_assessment(
        self,
        subject_id: str,
        time_point_id: str,
        lesions: Sequence[LesionMeasurement],
    ) -> Assessment:
        """Build the domain :class:`~triallens.domain.Assessment` of this visit."""
        return Assessment(
            subject_id=subject_id,
            time_point_id=time_point_id,
            lesions=list(lesions),
            sum_of_diameters_mm=round(self.sum_mm, 2),
            baseline_sum_mm=round(self.baseline_sum_mm, 2),
            nadir_sum_mm=round(self.nadir_sum_mm, 2),
            percent_change_from_baseline=self.percent_change_from_baseline,
            target_response=(
                Response.BASELINE if self.visit_index == 0 else self.target_response
            ),
            overall_response=self.overall_response,
            new_lesions=list(self.new_lesion_ids),
        )


def assess_timeline(
    visits: Sequence[Sequence[LesionMeasurement]],
    days_since_baseline: Sequence[float | None] | None = None,
    rules: RecistRules = DEFAULT_RULES,
    slice_thickness_mm: float | None = None,
    coverage_mm: Sequence[Sequence[Sequence[float]] | None] | None = None,
) -> list[VisitResult]:
    """Evaluate a subject's visits: baseline first, then follow-ups in order.

    ``coverage_mm`` gives, per visit, the box (lowest and highest x, y, z in
    patient mm) its scan images, or ``None`` where unknown; a target not
    found whose last position lies outside its visit's box was not imaged
    rather than gone.

    Targets are chosen at baseline; at every follow-up each followed lesion is
    matched to the nearest finding of its kind (against its last known
    position), the sum of diameters, nadir and responses are computed, and
    findings that match nothing followed are new lesions when unequivocal
    (LD >= ``new_lesion_min_diameter_mm``, nodes SA >= 10 mm). An unmatched
    finding that overlaps a followed lesion's extent is a fragment of it (a
    split lesion): its diameter is added to the sum, it is not new.

    Returns
    -------
    list of VisitResult
        One per visit; the baseline one has ``overall_response`` BASELINE.
    """
    if not visits:
        return []
    days = list(days_since_baseline or [None] * len(visits))
    selection = select_targets(visits[0], rules, slice_thickness_mm)
    last_seen: dict[str, LesionMeasurement] = {}
    for prefix, group in (
        ("T", selection.targets),
        ("NT", selection.non_targets),
        ("NN", selection.normal_nodes),
    ):
        for number, lesion in enumerate(group, start=1):
            last_seen[f"{prefix}{number:02d}"] = lesion
    target_ids = [t for t in last_seen if t.startswith("T")]
    non_target_ids = [t for t in last_seen if t.startswith("NT")]

    baseline_sum = sum_of_diameters(selection.targets, rules)
    baseline_nt = sum(m.recist_diameter_mm for m in selection.non_targets)
    results = [
        VisitResult(
            visit_index=0,
            sum_mm=baseline_sum,
            baseline_sum_mm=baseline_sum,
            nadir_sum_mm=baseline_sum,
            percent_change_from_baseline=None,
            percent_change_from_nadir=None,
            target_response=None,
            non_target_response=None,
            new_lesion_ids=[],
            overall_response=Response.BASELINE,
            confirmation=None,
            tracking={t: m.lesion_id for t, m in last_seen.items()},
            target_ids=target_ids,
        )
    ]
    nadir, nt_nadir = baseline_sum, baseline_nt
    history: list[tuple[Response, float | None]] = []
    new_count = 0
    for index in range(1, len(visits)):
        current = list(visits[index])
        followed = list(last_seen.items())
        pairs = match_lesions([m for _, m in followed], current, rules)
        by_id = {m.lesion_id: m for m in current}
        tracking: dict[str, str | None] = {}
        found: dict[str, LesionMeasurement | None] = {}
        for tid, old in followed:
            new_id = pairs.get(old.lesion_id)
            tracking[tid] = new_id
            found[tid] = by_id[new_id] if new_id is not None else None

        matched = set(pairs.values())
        fragments: dict[str, list[LesionMeasurement]] = {}
        new_ids: list[str] = []
        for lesion in current:
            if lesion.lesion_id in matched:
                continue
            # A split lesion: its fragments add up (RECIST 1.1 FAQ).
            parent = _fragment_of(lesion, followed, rules)
            if parent is not None:
                fragments.setdefault(parent, []).append(lesion)
                tracking[f"{parent}.{len(fragments[parent])}"] = lesion.lesion_id
                continue
            if not _unequivocal(lesion, rules):
                continue
            new_count += 1
            tid = f"NEW{new_count:02d}"
            tracking[tid] = lesion.lesion_id
            found[tid] = lesion
            new_ids.append(lesion.lesion_id)
        earlier_new = [t for t in last_seen if t.startswith("NEW")]

        box = coverage_mm[index] if coverage_mm and index < len(coverage_mm) else None
        missing = [t for t in target_ids if found[t] is None and not fragments.get(t)]
        not_imaged = {
            t: last_seen[t].recist_diameter_mm
            for t in missing
            if box is not None and not _inside(last_seen[t], box)
        }
        not_found = {
            t: last_seen[t].recist_diameter_mm for t in missing if t not in not_imaged
        }
        now = [found[t] for t in target_ids if t not in not_imaged]
        now += [f for t in target_ids for f in fragments.get(t, [])]
        current_sum = sum_of_diameters(now, rules)
        t_resp = (
            target_response(now, baseline_sum, nadir, rules, evaluable=not not_imaged)
            if target_ids
            else None
        )
        nt_resp = non_target_response(
            [found[t] for t in non_target_ids], nt_nadir, rules
        )
        overall = overall_response(t_resp, nt_resp, bool(new_ids or earlier_new))
        day = days[index] if index < len(days) else None
        results.append(
            VisitResult(
                visit_index=index,
                sum_mm=current_sum,
                baseline_sum_mm=baseline_sum,
                nadir_sum_mm=nadir,
                percent_change_from_baseline=_percent(current_sum, baseline_sum),
                percent_change_from_nadir=_percent(current_sum, nadir),
                target_response=t_resp,
                non_target_response=nt_resp,
                new_lesion_ids=new_ids,
                overall_response=overall,
                confirmation=confirmation_needed(overall, history, day, rules),
                tracking=tracking,
                target_ids=target_ids,
                not_found=not_found,
                not_imaged=not_imaged,
            )
        )
        history.append((overall, day))
        nadir = min(nadir, current_sum)
        if non_target_ids:
            nt_nadir = min(
                nt_nadir,
                sum(
                    found[t].recist_diameter_mm  # type: ignore[union-attr]
                    for t in non_target_ids
                    if found[t] is not None
                ),
            )
        for tid, lesion in found.items():
            if lesion is not None:
                last_seen[tid] = lesion
    return results


def _inside(lesion: LesionMeasurement, box: Sequence[Sequence[float]]) -> bool:
    """Whether a lesion's centroid lies in a scanned box, allowing half its
    diameter beyond the edge (a lesion at the edge is still imaged)."""
    margin = lesion.longest_diameter_mm / 2.0
    low, high = box
    return all(
        lo - margin <= value <= hi + margin
        for value, lo, hi in zip(lesion.centroid_mm, low, high, strict=True)
    )


def _fragment_of(
    lesion: LesionMeasurement,
    followed: Sequence[tuple[str, LesionMeasurement]],
    rules: RecistRules,
) -> str | None:
    """The followed lesion an unmatched finding lies within, if any."""
    for tid, old in followed:
        if old.kind is not lesion.kind or tid.startswith("NN"):
            continue
        gap = float(np.linalg.norm(np.subtract(old.centroid_mm, lesion.centroid_mm)))
        reach = 0.5 * (old.longest_diameter_mm + lesion.longest_diameter_mm)
        if gap <= reach:
            return tid
    return None


def _unequivocal(lesion: LesionMeasurement, rules: RecistRules) -> bool:
    if lesion.kind is LesionKind.NODE:
        return lesion.short_axis_mm >= rules.pathological_node_short_axis_mm - _EPS
    return lesion.longest_diameter_mm >= rules.new_lesion_min_diameter_mm - _EPS


def _percent(value: float, reference: float) -> float | None:
    if reference <= 0:
        return None
    return round(100.0 * (value - reference) / reference, 2)
