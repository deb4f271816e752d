"""``triallens eval measurements``: metric logic and a small real run."""

from __future__ import annotations

import math

import pytest

from evals.measurements import TARGETS, MeasurementReport, evaluate_measurements
from models import default_bundle_path
from triallens.errors import ModelError


def test_passed_compares_each_metric_with_its_target():
    report = MeasurementReport(seed=1)
    report.metrics = {
        "sod_mae_mm": 1.2,
        "overall_response_agreement": 0.9,
        "lvef_mae_points": math.nan,
        "haemorrhage_volume_error": 0.10,
        "sod_max_abs_error_mm": 4.0,
    }
    assert report.passed() == {
        "sod_mae_mm": True,
        "overall_response_agreement": False,
        "haemorrhage_volume_error": True,
    }
    assert set(TARGETS) == {
        "sod_mae_mm",
        "overall_response_agreement",
        "lvef_mae_points",
        "haemorrhage_volume_error",
    }


@pytest.mark.slow
def test_recist_evaluation_on_two_subjects_meets_the_targets():
    try:
        default_bundle_path("recist_ct")
    except ModelError:
        pytest.skip("the recist_ct bundle has not been trained in this checkout")
    report = evaluate_measurements(
        11, recist_subjects=2, lvef_subjects=0, ich_subjects=0
    )
    assert len(report.recist_rows) == 6  # two subjects, three visits
    baseline = report.recist_rows[0]
    assert baseline["response_truth"] == "BASELINE"
    assert baseline["sod_truth_mm"] > 16.0
    assert report.passed() == {"sod_mae_mm": True, "overall_response_agreement": True}
