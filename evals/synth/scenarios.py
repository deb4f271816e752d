"""Scenarios: what happens to each synthetic subject, visit by visit.

A scenario fixes the cohort, the trajectory of every lesion (or of the LV
volumes, or of the haematoma) and the charter deviations planted in it. The
plans here are pure data; :mod:`evals.synth.generator` renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ALL_SCENARIOS",
    "DEMO_SCENARIOS",
    "SCENARIOS",
    "LesionTrack",
    "PlantedDeviation",
    "Scenario",
]

Factor = float | Literal["small"] | None


@dataclass(frozen=True)
class LesionTrack:
    """One lesion across the visits of a scenario.

    ``factors[v]`` scales the baseline semi-axes at visit ``v``; ``0`` means the
    lesion has disappeared, ``None`` that it does not exist yet (a new lesion
    before it appears), ``"small"`` that it is present but too small to
    measure (about 4 mm). ``slot`` names the anatomical position (see
    :data:`evals.synth.generator.SLOTS`).
    """

    lesion_id: str
    role: Literal["target", "non_target", "new"]
    kind: Literal["lesion", "node"]
    organ: str
    slot: str
    semi_axes_mm: tuple[float, float, float]
    angle_deg: float
    factors: tuple[Factor, ...]


@dataclass(frozen=True)
class PlantedDeviation:
    """A charter deviation planted at one visit of a scenario."""

    code: Literal[
        "slice_thickness",
        "contrast_missing",
        "wrong_modality",
        "visit_out_of_window",
        "missing_visit",
    ]
    visit: int
    detail: str


@dataclass(frozen=True)
class Scenario:
    """A subject's story: cohort, trajectories, deviations, site values."""

    name: str
    cohort: Literal["oncology", "cardiac", "neuro"]
    summary: str
    lesions: tuple[LesionTrack, ...] = ()
    lv_volumes_ml: tuple[tuple[float, float], ...] = ()
    haematoma_ml: tuple[float, ...] = ()
    haematoma_hu: tuple[float, ...] = ()
    deviations: tuple[PlantedDeviation, ...] = ()
    discordant: dict[int, tuple[str, float]] = field(default_factory=dict)
    burned_in_visit: int | None = None


def _track(
    lesion_id: str,
    role: Literal["target", "non_target", "new"],
    template: str,
    factors: tuple[Factor, ...],
    slot: str | None = None,
) -> LesionTrack:
    kind, organ, default_slot, axes, angle = _TEMPLATES[template]
    return LesionTrack(
        lesion_id=lesion_id,
        role=role,
        kind=kind,  # type: ignore[arg-type]
        organ=organ,
        slot=slot or default_slot,
        semi_axes_mm=axes,
        angle_deg=angle,
        factors=factors,
    )


# Lesion templates: kind, organ, default slot, semi-axes (a, b, c) mm, angle.
_TEMPLATES: dict[str, tuple[str, str, str, tuple[float, float, float], float]] = {
    "liver_large": ("lesion", "liver", "liver_a", (16.0, 11.0, 12.0), 25.0),
    "liver_medium": ("lesion", "liver", "liver_b", (10.0, 7.5, 8.0), -40.0),
    "liver_new": ("lesion", "liver", "liver_c", (7.0, 6.0, 6.0), 0.0),
    "lung": ("lesion", "lung_left", "lung", (11.0, 8.0, 9.0), 60.0),
    "node_target": ("node", "lymph node", "node_a", (13.0, 9.0, 7.0), 10.0),
    "node_target_2": ("node", "lymph node", "node_b", (12.0, 8.0, 7.0), -20.0),
    "node_non_target": ("node", "lymph node", "node_b", (8.0, 6.0, 6.0), 0.0),
}

SCENARIOS: dict[str, Scenario] = {}


def _add(scenario: Scenario) -> None:
    SCENARIOS[scenario.name] = scenario


_add(
    Scenario(
        name="recist_pr",
        cohort="oncology",
        summary="Partial response; the lung target becomes too small to measure "
        "at week 24; week 16 scanned outside its window.",
        lesions=(
            _track("T01", "target", "liver_large", (1.0, 0.62, 0.5, 0.45)),
            _track("T02", "target", "lung", (1.0, 0.6, 0.45, "small")),
            _track("T03", "target", "node_target", (1.0, 0.7, 0.62, 0.58)),
            _track("NT01", "non_target", "node_non_target", (1.0, 0.95, 0.9, 0.9)),
        ),
        deviations=(PlantedDeviation("visit_out_of_window", 2, "scanned on day 126"),),
        discordant={1: ("SUMDIAM", 1.35)},
        burned_in_visit=0,
    )
)
_add(
    Scenario(
        name="recist_sd",
        cohort="oncology",
        summary="Stable disease throughout; week 16 acquired with 7.5 mm slices.",
        lesions=(
            _track("T01", "target", "liver_large", (1.0, 0.9, 0.85, 0.95)),
            _track("T02", "target", "liver_medium", (1.0, 0.92, 0.88, 0.95)),
            _track("T03", "target", "lung", (1.0, 0.95, 0.9, 0.98)),
            _track("NT01", "non_target", "node_non_target", (1.0, 1.0, 1.0, 1.0)),
        ),
        deviations=(PlantedDeviation("slice_thickness", 2, "7.5 mm slices"),),
        discordant={3: ("SUMDIAM", 0.75)},
    )
)
_add(
    Scenario(
        name="recist_pd_growth",
        cohort="oncology",
        summary="Nadir at week 8, then progression by growth (>= 20 % and >= 5 mm "
        "over the nadir) at week 16; week 8 acquired without contrast.",
        lesions=(
            _track("T01", "target", "liver_large", (1.0, 0.8, 1.0, 1.15)),
            _track("T02", "target", "lung", (1.0, 0.8, 1.0, 1.15)),
            _track("T03", "target", "node_target", (1.0, 0.8, 1.0, 1.15)),
            _track("NT01", "non_target", "node_non_target", (1.0, 1.0, 1.0, 1.0)),
        ),
        deviations=(PlantedDeviation("contrast_missing", 1, "no contrast agent"),),
    )
)
_add(
    Scenario(
        name="recist_pd_new_lesion",
        cohort="oncology",
        summary="Targets shrink slightly; a new liver lesion at week 16 is "
        "progression; week 8 acquired as MR instead of CT.",
        lesions=(
            _track("T01", "target", "liver_large", (1.0, 0.75, 0.7, 0.72)),
            _track("T02", "target", "liver_medium", (1.0, 0.8, 0.75, 0.75)),
            _track("T03", "target", "node_target", (1.0, 0.8, 0.78, 0.8)),
            _track("NT01", "non_target", "node_non_target", (1.0, 1.0, 1.0, 1.0)),
            _track("NEW01", "new", "liver_new", (None, None, 1.0, 1.3)),
        ),
        deviations=(PlantedDeviation("wrong_modality", 1, "MR instead of CT"),),
    )
)
_add(
    Scenario(
        name="recist_cr",
        cohort="oncology",
        summary="Complete response from week 16: non-nodal targets disappear, the "
        "nodal target's short axis falls below 10 mm (and stays in the sum).",
        lesions=(
            _track("T01", "target", "liver_medium", (1.0, 0.5, 0.0, 0.0)),
            _track("T02", "target", "lung", (1.0, 0.45, 0.0, 0.0)),
            _track("T03", "target", "node_target", (1.0, 0.7, 0.5, 0.45)),
            _track("NT01", "non_target", "node_non_target", (1.0, 0.9, 0.75, 0.7)),
        ),
    )
)
_add(
    Scenario(
        name="recist_node_target",
        cohort="oncology",
        summary="Two nodal targets measured on their short axis and a liver "
        "target; partial response at week 24; the week 16 visit is missing.",
        lesions=(
            _track("T01", "target", "node_target", (1.0, 0.8, 0.65, 0.6)),
            _track("T02", "target", "node_target_2", (1.0, 0.8, 0.65, 0.6)),
            _track("T03", "target", "liver_large", (1.0, 0.85, 0.7, 0.68)),
        ),
        deviations=(PlantedDeviation("missing_visit", 2, "no week 16 study"),),
    )
)
_add(
    Scenario(
        name="lvef_ctrcd",
        cohort="cardiac",
        summary="LVEF falls by more than 10 points to below 50 % at month 6 "
        "(moderate CTRCD, ESC 2022).",
        lv_volumes_ml=((140.0, 52.0), (142.0, 57.0), (150.0, 78.0), (152.0, 80.0)),
        discordant={2: ("LVEF", 58.0 / 48.0)},
    )
)
_add(
    Scenario(
        name="lvef_no_ctrcd",
        cohort="cardiac",
        summary="LVEF drifts down by less than 10 points and stays above 50 %.",
        lv_volumes_ml=((130.0, 50.0), (132.0, 55.0), (134.0, 60.0), (135.0, 62.0)),
    )
)
_add(
    Scenario(
        name="ich_expansion",
        cohort="neuro",
        summary="Haematoma expands by more than 6 mL at 24 hours, then resorbs.",
        haematoma_ml=(14.0, 23.5, 22.0, 9.0),
        haematoma_hu=(62.0, 64.0, 52.0, 40.0),
        discordant={1: ("ICHVOL", 0.64)},
    )
)
_add(
    Scenario(
        name="ich_stable",
        cohort="neuro",
        summary="Haematoma without expansion (under 6 mL and 33 %), then resorbs.",
        haematoma_ml=(18.0, 19.5, 18.0, 8.0),
        haematoma_hu=(62.0, 63.0, 52.0, 40.0),
    )
)

ALL_SCENARIOS: tuple[str, ...] = tuple(SCENARIOS)
DEMO_SCENARIOS: tuple[str, ...] = ("recist_pr", "recist_pd_growth")
