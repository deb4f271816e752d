"""The imaging charter as data: schedule, acquisition rules, criteria, alerts.

A charter is written once per trial (YAML, see :func:`tools.charter.load_charter`)
and drives every check TrialLens makes on a study before measuring it. Visit
days count from the trial's reference event (``day_zero``, usually the first
dose); windows are inclusive ``[earliest, latest]`` day numbers.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from triallens.domain import Priority

__all__ = [
    "AlertRule",
    "Charter",
    "Cohort",
    "Condition",
    "ContrastRule",
    "DiscrepancyTolerance",
    "IchCriteria",
    "LvefCriteria",
    "Procedure",
    "ReaderAssignment",
    "RecistCriteria",
    "RequiredSeries",
    "ResponseCriteria",
    "Visit",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContrastRule(StrEnum):
    REQUIRED = "required"
    FORBIDDEN = "forbidden"
    OPTIONAL = "optional"


class RequiredSeries(_Strict):
    """A series every study of a procedure must contain.

    ``kind`` is ``axial`` (a stack of axial images), ``localizer`` (ImageType
    LOCALIZER) or ``cine`` (several cardiac phases per position).
    """

    name: str
    kind: Literal["axial", "localizer", "cine", "any"] = "any"
    min_instances: int = 1


class Procedure(_Strict):
    """Acquisition requirements of one imaging procedure."""

    name: str
    task: str
    modality: str
    body_parts: list[str]
    max_slice_thickness_mm: float | None = None
    contrast: ContrastRule = ContrastRule.OPTIONAL
    required_series: list[RequiredSeries] = Field(default_factory=list)


class Visit(_Strict):
    """One scheduled time point with its window in days from day zero."""

    time_point_id: str
    description: str
    day: int
    window: tuple[int, int]
    required: bool = True

    @model_validator(mode="after")
    def _window_holds_day(self) -> Visit:
        low, high = self.window
        if not low <= self.day <= high:
            raise ValueError(
                f"visit {self.time_point_id}: day {self.day} lies outside its "
                f"window [{low}, {high}]"
            )
        return self


class Cohort(_Strict):
    """Subjects followed with one procedure on one schedule."""

    name: str
    description: str = ""
    procedure: str
    criteria: Literal["recist", "lvef", "ich"]
    visits: list[Visit]


class RecistCriteria(_Strict):
    name: str = "RECIST 1.1"
    max_targets: int = 5
    max_targets_per_organ: int = 2
    min_measurable_mm: float = 10.0
    min_target_node_short_axis_mm: float = 15.0
    pr_decrease_percent: float = 30.0
    pd_increase_percent: float = 20.0
    pd_absolute_mm: float = 5.0
    too_small_mm: float = 5.0


class LvefCriteria(_Strict):
    name: str = "ESC 2022 cardio-oncology (CTRCD)"
    drop_points: float = 10.0
    lower_limit_percent: float = 50.0
    moderate_floor_percent: float = 40.0


class IchCriteria(_Strict):
    name: str = "Haematoma expansion"
    expansion_ml: float = 6.0
    expansion_percent: float = 33.0


class ResponseCriteria(_Strict):
    recist: RecistCriteria = Field(default_factory=RecistCriteria)
    lvef: LvefCriteria = Field(default_factory=LvefCriteria)
    ich: IchCriteria = Field(default_factory=IchCriteria)


class Condition(_Strict):
    """``fact op value``; a missing fact makes the condition false."""

    fact: str
    op: Literal["eq", "ne", "lt", "le", "gt", "ge", "in"]
    value: Any


class AlertRule(_Strict):
    """A priority given when all conditions hold; ``reason`` may use {facts}."""

    id: str
    when: list[Condition]
    priority: Priority
    reason: str


class DiscrepancyTolerance(_Strict):
    """How far a site value may differ from the machine value (per cent)."""

    default_relative_percent: float = 20.0
    per_item: dict[str, float] = Field(default_factory=dict)

    def for_item(self, item: str) -> float:
        return self.per_item.get(item, self.default_relative_percent)


class ReaderAssignment(_Strict):
    readers_per_time_point: int = 2
    same_reader_across_time_points: bool = True
    blinded_to_site_assessment: bool = True
    adjudicate_when: list[str] = Field(default_factory=list)


class Charter(_Strict):
    """A trial's imaging charter."""

    trial_id: str
    title: str
    sponsor: str
    version: str
    day_zero: str = "first dose of study treatment (C1D1)"
    procedures: dict[str, Procedure]
    cohorts: list[Cohort]
    response_criteria: ResponseCriteria = Field(default_factory=ResponseCriteria)
    alert_rules: list[AlertRule] = Field(default_factory=list)
    discrepancy_tolerance: DiscrepancyTolerance = Field(
        default_factory=DiscrepancyTolerance
    )
    reader_assignment: ReaderAssignment = Field(default_factory=ReaderAssignment)

    @model_validator(mode="after")
    def _references_resolve(self) -> Charter:
        seen: set[str] = set()
        for cohort in self.cohorts:
            if cohort.procedure not in self.procedures:
                raise ValueError(
                    f"cohort {cohort.name}: unknown procedure {cohort.procedure!r}"
                )
            for visit in cohort.visits:
                if visit.time_point_id in seen:
                    raise ValueError(
                        f"time point {visit.time_point_id} appears in two cohorts"
                    )
                seen.add(visit.time_point_id)
        return self

    def cohort(self, name: str) -> Cohort:
        """The cohort called ``name``."""
        for cohort in self.cohorts:
            if cohort.name == name:
                return cohort
        raise KeyError(f"no cohort {name!r} in charter {self.trial_id}")

    def visit(self, time_point_id: str) -> tuple[Cohort, Visit] | None:
        """The cohort and scheduled visit with this time point ID, if any."""
        for cohort in self.cohorts:
            for visit in cohort.visits:
                if visit.time_point_id == time_point_id:
                    return cohort, visit
        return None

    def procedure_for(self, time_point_id: str) -> Procedure | None:
        """The procedure scheduled at a time point, if the time point is known."""
        found = self.visit(time_point_id)
        return self.procedures[found[0].procedure] if found else None
