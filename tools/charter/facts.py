"""The facts a charter's alert rules are evaluated on, built in one place.

Both the triage graph (from measurements) and the synthetic ground truth
(from the known truth) call :func:`priority_facts`, so a rule means the same
thing to both.
"""

from __future__ import annotations

from typing import Any

__all__ = ["priority_facts"]

_NO_PROGRESSION = {"CR", "PR", "SD"}


def priority_facts(
    *,
    task: str | None,
    overall_response: str | None = None,
    new_lesions: bool = False,
    lvef_percent: float | None = None,
    lvef_drop_points: float | None = None,
    haematoma_expansion: bool | None = None,
    deviation_count: int = 0,
    min_confidence: float | None = None,
) -> dict[str, Any]:
    """Facts for :func:`tools.charter.priority_from_rules`.

    ``normal`` marks a study a reviewer can expedite: a RECIST follow-up with
    no progression and no new lesion, or a cardiac MR with LVEF of at least
    50 % and no fall of 10 points or more. A haemorrhage is never normal.
    ``deviation_count`` counts the deviations of this study's own time point.
    """
    if task == "recist_ct":
        normal = overall_response in _NO_PROGRESSION and not new_lesions
    elif task == "lvef_cmr":
        normal = (
            lvef_percent is not None
            and lvef_percent >= 50.0
            and (lvef_drop_points or 0.0) < 10.0
        )
    else:
        normal = False
    facts: dict[str, Any] = {
        "task": task,
        "normal": normal,
        "deviation_count": deviation_count,
        "min_confidence": min_confidence,
    }
    optional = {
        "overall_response": overall_response,
        "lvef_percent": lvef_percent,
        "lvef_drop_points": lvef_drop_points,
        "haematoma_expansion": haematoma_expansion,
    }
    facts.update({key: value for key, value in optional.items() if value is not None})
    return facts
