"""A follow-up that arrives before its baseline is not assessed against itself."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from agent.triage import TriageContext, run_triage
from triallens.settings import Settings

pytestmark = pytest.mark.slow


def test_follow_up_before_baseline_is_not_evaluable(tmp_path: Path) -> None:
    from evals.synth import generate_trial

    trial = tmp_path / "trial"
    generate_trial(trial, subjects=1, seed=6, small=True, scenarios=["recist_pr"])
    visits = json.loads((trial / "ground_truth.json").read_text())["subjects"][0][
        "visits"
    ]
    baseline, week8 = visits[0], visits[1]
    ctx = TriageContext(
        settings=Settings(
            data_dir=tmp_path / "data", charter_path=trial / "charter.yaml"
        )
    )
    for visit in (baseline, week8):
        files = sorted((trial / visit["path"]).rglob("*.dcm"))
        ctx.pacs.store([pydicom.dcmread(p) for p in files])

    early = run_triage(week8["study_uid"], ctx)
    first = run_triage(baseline["study_uid"], ctx)

    assert early.assessment.overall_response.value == "NE"
    assert "baseline_not_received" in {flag.code for flag in early.qc_flags}
    assert early.priority.value != "EXPEDITED"
    assert first.assessment.overall_response.value == "BASELINE"
