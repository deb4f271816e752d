"""The imaging charter: model, YAML loader and the checks it drives.

Entry points: ``load_charter(path) -> Charter``, ``check_study(charter, study,
series, visit_day)``, ``check_schedule(charter, visits_seen)`` and
``priority_from_rules(charter, facts)``.
"""

from tools.charter.checks import (
    Deviation,
    SeriesSummary,
    VisitSeen,
    check_schedule,
    check_study,
    priority_from_rules,
    summarize_series,
)
from tools.charter.loader import charter_to_yaml, dump_charter, load_charter
from tools.charter.model import (
    AlertRule,
    Charter,
    Cohort,
    Condition,
    ContrastRule,
    Procedure,
    RequiredSeries,
    Visit,
)

__all__ = [
    "AlertRule",
    "Charter",
    "Cohort",
    "Condition",
    "ContrastRule",
    "Deviation",
    "Procedure",
    "RequiredSeries",
    "SeriesSummary",
    "Visit",
    "VisitSeen",
    "charter_to_yaml",
    "check_schedule",
    "check_study",
    "dump_charter",
    "load_charter",
    "priority_from_rules",
    "summarize_series",
]
