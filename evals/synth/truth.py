"""Expected results of each scenario, derived from the rendered truth.

RECIST responses come from :mod:`models.quantify.recist` (the one place the
RECIST 1.1 rules and the overall-response table live), CTRCD classes from
:func:`models.quantify.lvef.ctrcd_class` and haematoma expansion from
:func:`models.quantify.ich.haematoma_expansion`; nothing here re-implements a
rule. Priorities come from the charter's alert rules.
"""

from __future__ import annotations

from typing import Any

from tools.charter import Charter, priority_from_rules
from tools.charter.facts import priority_facts
from triallens.domain import LesionKind, LesionMeasurement, Response

__all__ = ["annotate_cardiac", "annotate_neuro", "annotate_oncology"]


def _measurement(lesion: dict[str, Any]) -> LesionMeasurement:
    return LesionMeasurement(
        lesion_id=lesion["lesion_id"],
        kind=LesionKind(lesion["kind"]),
        organ=lesion["organ"],
        longest_diameter_mm=lesion["longest_diameter_mm"],
        short_axis_mm=lesion["short_axis_mm"],
        centroid_mm=tuple(lesion["centre_mm"]),
        slice_index=lesion["slice_index"],
        volume_ml=lesion["volume_ml"],
    )


def annotate_oncology(
    visits: list[dict[str, Any]],
    roles: dict[str, str],
    charter: Charter,
    deviations: list[dict[str, Any]] | None = None,
) -> None:
    """Add sums, nadir and RECIST responses to each acquired visit in place."""
    from models.quantify import recist

    rules = recist.RecistRules()
    targets = sorted(k for k, role in roles.items() if role == "target")
    non_targets = sorted(k for k, role in roles.items() if role == "non_target")
    baseline_sum: float | None = None
    sums: list[float] = []
    nt_sums: list[float] = []
    for visit in visits:
        if visit.get("missing"):
            continue
        found = {
            lesion["lesion_id"]: lesion
            for lesion in visit["lesions"]
            if lesion["status"] in ("present", "too_small")
        }
        current = [_measurement(found[t]) if t in found else None for t in targets]
        current_nt = [
            _measurement(found[t]) if t in found else None for t in non_targets
        ]
        total = recist.sum_of_diameters(current, rules)
        nt_total = sum(m.recist_diameter_mm for m in current_nt if m is not None)
        new = sorted(k for k in found if roles.get(k) == "new")
        for lesion in visit["lesions"]:
            lesion["role"] = roles[lesion["lesion_id"]]
            if lesion["status"] == "too_small":
                lesion["recorded_diameter_mm"] = rules.too_small_mm
        visit["sum_of_diameters_mm"] = round(total, 3)
        visit["target_lesion_ids"] = targets
        visit["non_target_lesion_ids"] = non_targets
        visit["new_lesion_ids"] = new
        if baseline_sum is None:
            baseline_sum = total
            visit.update(
                {
                    "baseline_sum_mm": round(total, 3),
                    "nadir_sum_mm": round(total, 3),
                    "percent_change_from_baseline": 0.0,
                    "target_response": Response.BASELINE.value,
                    "non_target_response": Response.BASELINE.value
                    if non_targets
                    else None,
                    "overall_response": Response.BASELINE.value,
                }
            )
        else:
            nadir = min(sums)
            target = recist.target_response(current, baseline_sum, nadir, rules)
            non_target = (
                recist.non_target_response(current_nt, min(nt_sums), rules)
                if non_targets
                else None
            )
            overall = recist.overall_response(target, non_target, bool(new))
            visit.update(
                {
                    "baseline_sum_mm": round(baseline_sum, 3),
                    "nadir_sum_mm": round(nadir, 3),
                    "percent_change_from_baseline": round(
                        (total - baseline_sum) / baseline_sum * 100.0, 2
                    ),
                    "percent_change_from_nadir": round(
                        (total - nadir) / nadir * 100.0, 2
                    )
                    if nadir > 0
                    else None,
                    "target_response": target.value,
                    "non_target_response": non_target.value if non_target else None,
                    "overall_response": overall.value,
                }
            )
        sums.append(total)
        nt_sums.append(nt_total)
        facts = priority_facts(
            task="recist_ct",
            overall_response=visit["overall_response"],
            new_lesions=bool(new),
            deviation_count=_own_deviations(visit, deviations),
            # The truth is certain, but a visit with nothing to see has no
            # finding to be confident about (as in the triage graph).
            min_confidence=1.0 if found else None,
        )
        _prioritise(visit, charter, facts)


def annotate_cardiac(
    visits: list[dict[str, Any]],
    charter: Charter,
    deviations: list[dict[str, Any]] | None = None,
) -> None:
    """Add the LVEF change from baseline and the ESC 2022 CTRCD class."""
    from models.quantify.lvef import ctrcd_class

    baseline: float | None = None
    for visit in visits:
        if visit.get("missing"):
            continue
        lvef = visit["lvef_percent"]
        if baseline is None:
            baseline = lvef
        drop = round(baseline - lvef, 3)
        visit["lvef_baseline_percent"] = baseline
        visit["lvef_drop_points"] = drop
        visit["ctrcd"] = ctrcd_class(baseline, lvef).value
        facts = priority_facts(
            task="lvef_cmr",
            lvef_percent=lvef,
            lvef_drop_points=drop,
            deviation_count=_own_deviations(visit, deviations),
            min_confidence=1.0,
        )
        _prioritise(visit, charter, facts)


def annotate_neuro(
    visits: list[dict[str, Any]],
    charter: Charter,
    deviations: list[dict[str, Any]] | None = None,
) -> None:
    """Add the haematoma change from admission and the expansion flag."""
    from models.quantify.ich import haematoma_expansion

    baseline: float | None = None
    criteria = charter.response_criteria.ich
    for visit in visits:
        if visit.get("missing"):
            continue
        volume = visit["haematoma_volume_ml"]
        if baseline is None:
            baseline = volume
            visit["haematoma_expansion"] = False
            visit["haematoma_change_ml"] = 0.0
        else:
            change = haematoma_expansion(
                baseline,
                volume,
                absolute_ml=criteria.expansion_ml,
                relative=criteria.expansion_percent / 100.0,
            )
            visit["haematoma_change_ml"] = round(change.absolute_ml, 3)
            visit["haematoma_expansion"] = change.expanded
        facts = priority_facts(
            task="ich_ct",
            haematoma_expansion=visit["haematoma_expansion"],
            deviation_count=_own_deviations(visit, deviations),
            min_confidence=1.0,
        )
        _prioritise(visit, charter, facts)


def _own_deviations(
    visit: dict[str, Any], deviations: list[dict[str, Any]] | None
) -> int:
    """Deviations planted at this visit (a missing visit belongs to no study)."""
    return sum(
        1
        for d in deviations or []
        if d["time_point_id"] == visit["time_point_id"] and d["code"] != "missing_visit"
    )


def _prioritise(visit: dict[str, Any], charter: Charter, facts: dict[str, Any]) -> None:
    priority, reasons = priority_from_rules(charter, facts)
    visit["expected_priority"] = priority.value
    visit["expected_priority_reasons"] = reasons
