"""`triallens triage --pacs ... --study ...` against a real Orthanc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._orthanc_fixtures import OrthancServer, orthanc
from tests._shared import shared_data

__all__ = ["orthanc"]

pytestmark = [pytest.mark.slow, pytest.mark.orthanc]


def _triage(data_dir: Path, pacs_url: str, study_uid: str) -> dict[str, Any]:
    env = dict(os.environ, TRIALLENS_DATA_DIR=str(data_dir))
    command = [sys.executable, "-m", "triallens", "triage", "--pacs", pacs_url]
    proc = subprocess.run(
        [*command, "--study", study_uid, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


def test_synthetic_study_pushed_with_storescu(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    from evals.synth import generate_trial
    from tools.edc import EmbeddedEdc

    trial = tmp_path / "trial"
    generate_trial(
        trial, subjects=1, seed=5, small=True, scenarios=["recist_pd_growth"]
    )
    truth = json.loads((trial / "ground_truth.json").read_text())
    visits = [v for v in truth["subjects"][0]["visits"] if not v["missing"]][:2]
    for visit in visits:
        orthanc.storescu(sorted((trial / visit["path"]).rglob("*.dcm")))

    data_dir = tmp_path / "data"
    results = [
        _triage(data_dir, orthanc.dicomweb_url, visit["study_uid"]) for visit in visits
    ]

    edc = EmbeddedEdc(f"sqlite:///{data_dir / 'edc.db'}")
    for visit, result in zip(visits, results, strict=True):
        assessment = result["assessment"]
        assert result["outcome"] == "measured"
        assert result["study"]["subject_id"] == truth["subjects"][0]["subject_id"]
        assert assessment["sum_of_diameters_mm"] == pytest.approx(
            visit["sum_of_diameters_mm"], abs=4.0
        )
        assert assessment["overall_response"] == visit["overall_response"]
        record = edc.get_record(result["edc_record_id"])
        assert record.status == "draft"
        assert record.machine_derived
        assert record.values()["sum_of_diameters_mm"] == pytest.approx(
            assessment["sum_of_diameters_mm"], abs=0.05
        )


def test_real_gantry_tilted_head_ct(orthanc: OrthancServer, tmp_path: Path) -> None:
    import pydicom

    folder = shared_data("ct_head_gantry_tilt_variable_spacing_ge")
    files = sorted(folder.glob("*.dcm"))
    orthanc.storescu(files)
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)

    result = _triage(tmp_path / "data", orthanc.dicomweb_url, study_uid)

    assert result["outcome"] in {"measured", "not_applicable"}
    if result["outcome"] == "not_applicable":
        assert result["outcome_reason"]
    codes = {flag["code"] for flag in result["qc_flags"]}
    assert {"gantry_tilt", "uneven_slice_spacing"} <= codes
