"""The imaging charter of the synthetic trial, built as a :class:`Charter`.

The YAML file and the protocol's prose are both rendered from this one object,
so they cannot disagree.
"""

from __future__ import annotations

from tools.charter.model import (
    AlertRule,
    Charter,
    Cohort,
    Condition,
    ContrastRule,
    DiscrepancyTolerance,
    Procedure,
    ReaderAssignment,
    RequiredSeries,
    Visit,
)
from triallens.domain import Priority

__all__ = ["CONTRAST_AGENT", "synthetic_charter"]

CONTRAST_AGENT = "Iohexol 350 mg I/mL"


def synthetic_charter(trial_id: str, sponsor: str, protocol_name: str) -> Charter:
    """The charter every synthetic trial follows."""
    procedures = {
        "ct_chest_abdomen": Procedure(
            name="Contrast-enhanced CT of chest and abdomen",
            task="recist_ct",
            modality="CT",
            body_parts=["CHEST", "ABDOMEN", "CHESTABDOMEN"],
            max_slice_thickness_mm=5.0,
            contrast=ContrastRule.REQUIRED,
            required_series=[
                RequiredSeries(name="Localizer", kind="localizer"),
                RequiredSeries(
                    name="Axial portal venous", kind="axial", min_instances=10
                ),
            ],
        ),
        "cmr_cine": Procedure(
            name="Cardiac MR short-axis cine",
            task="lvef_cmr",
            modality="MR",
            body_parts=["HEART", "CHEST"],
            max_slice_thickness_mm=10.0,
            contrast=ContrastRule.OPTIONAL,
            required_series=[
                RequiredSeries(name="Localizer", kind="localizer"),
                RequiredSeries(
                    name="Short-axis cine stack", kind="cine", min_instances=8
                ),
            ],
        ),
        "ct_head": Procedure(
            name="Non-contrast CT of the head",
            task="ich_ct",
            modality="CT",
            body_parts=["HEAD", "BRAIN"],
            max_slice_thickness_mm=5.0,
            contrast=ContrastRule.FORBIDDEN,
            required_series=[
                RequiredSeries(name="Localizer", kind="localizer"),
                RequiredSeries(name="Axial brain", kind="axial", min_instances=10),
            ],
        ),
    }
    cohorts = [
        Cohort(
            name="oncology",
            description="Solid tumours; response by RECIST 1.1 on CT.",
            procedure="ct_chest_abdomen",
            criteria="recist",
            visits=[
                Visit(
                    time_point_id="BASELINE",
                    description="Baseline",
                    day=-7,
                    window=(-28, 0),
                ),
                Visit(
                    time_point_id="WEEK8", description="Week 8", day=56, window=(49, 63)
                ),
                Visit(
                    time_point_id="WEEK16",
                    description="Week 16",
                    day=112,
                    window=(105, 119),
                ),
                Visit(
                    time_point_id="WEEK24",
                    description="Week 24",
                    day=168,
                    window=(161, 175),
                ),
            ],
        ),
        Cohort(
            name="cardiac",
            description="Cardiac safety during cardiotoxic therapy; LVEF on CMR.",
            procedure="cmr_cine",
            criteria="lvef",
            visits=[
                Visit(
                    time_point_id="CMR-BASELINE",
                    description="Cardiac baseline",
                    day=-7,
                    window=(-28, 0),
                ),
                Visit(
                    time_point_id="CMR-MONTH3",
                    description="Cardiac month 3",
                    day=84,
                    window=(70, 98),
                ),
                Visit(
                    time_point_id="CMR-MONTH6",
                    description="Cardiac month 6",
                    day=168,
                    window=(154, 182),
                ),
                Visit(
                    time_point_id="CMR-MONTH9",
                    description="Cardiac month 9",
                    day=252,
                    window=(238, 266),
                ),
            ],
        ),
        Cohort(
            name="neuro",
            description="Intracerebral haemorrhage on anticoagulation; haematoma "
            "volume on non-contrast CT. Day zero is the admission scan.",
            procedure="ct_head",
            criteria="ich",
            visits=[
                Visit(
                    time_point_id="ICH-ADMISSION",
                    description="Admission",
                    day=0,
                    window=(0, 0),
                ),
                Visit(
                    time_point_id="ICH-24H",
                    description="Follow-up 24 to 72 hours",
                    day=1,
                    window=(1, 3),
                ),
                Visit(
                    time_point_id="ICH-DAY7", description="Day 7", day=7, window=(5, 9)
                ),
                Visit(
                    time_point_id="ICH-DAY30",
                    description="Day 30",
                    day=30,
                    window=(23, 37),
                ),
            ],
        ),
    ]
    alert_rules = [
        AlertRule(
            id="recist-pd",
            when=[Condition(fact="overall_response", op="eq", value="PD")],
            priority=Priority.HIGH,
            reason="overall response is progressive disease (RECIST 1.1)",
        ),
        AlertRule(
            id="lvef-drop",
            when=[
                Condition(fact="lvef_drop_points", op="ge", value=10.0),
                Condition(fact="lvef_percent", op="lt", value=50.0),
            ],
            priority=Priority.HIGH,
            reason="LVEF fell {lvef_drop_points:.1f} points to {lvef_percent:.1f} %",
        ),
        AlertRule(
            id="lvef-severe",
            when=[Condition(fact="lvef_percent", op="lt", value=40.0)],
            priority=Priority.HIGH,
            reason="LVEF below 40 % ({lvef_percent:.1f} %)",
        ),
        AlertRule(
            id="ich-expansion",
            when=[Condition(fact="haematoma_expansion", op="eq", value=True)],
            priority=Priority.HIGH,
            reason="haematoma expansion (> 6 mL or > 33 % over admission)",
        ),
        AlertRule(
            id="expedite-normal",
            when=[
                Condition(fact="normal", op="eq", value=True),
                Condition(fact="min_confidence", op="ge", value=0.9),
                Condition(fact="deviation_count", op="eq", value=0),
            ],
            priority=Priority.EXPEDITED,
            reason="no progression, high-confidence measurements, no deviation",
        ),
    ]
    return Charter(
        trial_id=trial_id,
        title=protocol_name,
        sponsor=sponsor,
        version="1.0",
        procedures=procedures,
        cohorts=cohorts,
        alert_rules=alert_rules,
        discrepancy_tolerance=DiscrepancyTolerance(
            default_relative_percent=20.0,
            per_item={"LVEF": 10.0, "SUMDIAM": 20.0, "ICHVOL": 20.0},
        ),
        reader_assignment=ReaderAssignment(
            readers_per_time_point=2,
            same_reader_across_time_points=True,
            blinded_to_site_assessment=True,
            adjudicate_when=[
                "overall response differs between readers",
                "date of progression differs between readers",
                "machine and reader sums of diameters differ by more than 20 %",
            ],
        ),
    )
