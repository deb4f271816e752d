"""The grounding check: numbers, dates and identifiers must be in the findings."""

from __future__ import annotations

import pytest

from agent.llm.grounding import check_grounding
from agent.llm.narrative import template_narrative
from tests._llm_fixtures import sample_result
from triallens.domain import Finding, QcFlag, TriageOutcome


def test_values_from_the_findings_are_grounded() -> None:
    result = sample_result()
    # 23.47 mm may be rounded to what the draft shows; the sum is 35.51 mm,
    # the change +22.45 %, baseline 29.0, nadir 28.0, two measured lesions.
    text = (
        "On 2024-03-05 the liver lesion L1 measured 23.5 mm (about 23 mm) and "
        "node N1 12.0 mm in short axis; the sum of diameters of the 2 target "
        "lesions was 35.5 mm, 22.4 % above the 29.0 mm baseline and above the "
        "28 mm nadir. New lesion L3 appeared. Target and overall response PD "
        "(progressive disease) under RECIST 1.1; priority HIGH."
    )
    assert check_grounding(text, sample_result()) == []
    assert result == sample_result()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Lesion L1 measured 31.0 mm.", "number '31.0'"),
        ("Lesion L1 measured 23.6 mm.", "number '23.6'"),
        ("The sum was 37 mm.", "number '37'"),
        ("Scanned on 2024-03-06.", "date '2024-03-06'"),
        ("Scanned on 6 March 2024.", "date '6 March 2024'"),
        ("Scanned on 20240306.", "date '20240306'"),
        ("Lesion L4 is new.", "identifier 'L4'"),
        ("Subject SUBJ-0004 progressed.", "identifier 'SUBJ-0004'"),
        ("This study has LOW priority.", "priority LOW"),
        ("Priority: routine.", "priority ROUTINE"),
        ("The target response is a partial response.", "response PR"),
        ("Overall SD.", "response SD"),
    ],
)
def test_invented_values_are_refused(text: str, problem: str) -> None:
    problems = check_grounding(text, sample_result())
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem)


def test_the_study_date_is_accepted_in_other_formats() -> None:
    result = sample_result()
    assert check_grounding("Acquired 5 March 2024.", result) == []
    assert check_grounding("Acquired March 5, 2024.", result) == []
    assert check_grounding("Acquired 20240305.", result) == []


def test_numbers_only_in_the_study_description_are_refused() -> None:
    result = sample_result(study_description="CT 3 PHASE LIVER 99 MM LESION")
    problems = check_grounding("A 99 mm lesion was seen in 3 phases.", result)
    assert problems == [
        "number '99' is not in the findings",
        "number '3' is not in the findings",
    ]


def test_values_inside_reason_texts_and_findings_are_grounded() -> None:
    result = sample_result().model_copy(
        update={
            "deviations": ["slice thickness 5.0 mm exceeds the maximum of 2.5 mm"],
            "qc_flags": [QcFlag(code="GAP2", reason="gap of 4 slices")],
            "findings": [
                Finding(name="lvef", value=47.25, unit="%", confidence=0.93),
            ],
        }
    )
    text = (
        "Slices are 5 mm thick against a 2.5 mm maximum (flag GAP2, a gap of "
        "4 slices). LVEF was 47.2 % with 93 % confidence."
    )
    assert check_grounding(text, result) == []


def test_a_draft_without_values_is_grounded() -> None:
    assert check_grounding("The findings are described below.", sample_result()) == []


@pytest.mark.parametrize("liver_mm", [4.0, 23.47, 101.26])
def test_the_template_is_always_grounded(liver_mm: float) -> None:
    result = sample_result(liver_mm=liver_mm).model_copy(
        update={
            "deviations": ["visit TP2 is 9 days outside its window"],
            "qc_flags": [QcFlag(code="THICK_SLICES", reason="5.0 mm slices")],
            "findings": [Finding(name="lvef", value=55.55, unit="%")],
        }
    )
    text = template_narrative(result)
    assert f"L1 (liver, lesion) {liver_mm:.1f} mm" in text
    assert check_grounding(text, result) == []


def test_the_template_for_a_failed_study_is_grounded() -> None:
    result = sample_result().model_copy(
        update={
            "outcome": TriageOutcome.FAILED,
            "outcome_reason": "no series with slices thinner than 5 mm",
            "assessment": None,
        }
    )
    text = template_narrative(result)
    assert "No measurement was made (no series with slices thinner than 5 mm)" in text
    assert check_grounding(text, result) == []
