"""``triallens deid IN_DIR OUT_DIR --trial ID`` end to end."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
import typer
from typer.testing import CliRunner

from tests._deid_fixtures import PATIENT_NAME, ct_series, ct_slice
from triallens.commands import deid as deid_command
from triallens.phi import PhiGuard


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    deid_command.register(app)
    return app


def test_folder_written_quarantined_rejected(
    app: typer.Typer, tmp_path: Path, data_dir: Path
) -> None:
    in_dir = tmp_path / "in"
    (in_dir / "nested").mkdir(parents=True)
    series = ct_series(3, subject_id="101-004")
    for index, ds in enumerate(series):
        ds.save_as(in_dir / "nested" / f"ct{index}.dcm", enforce_file_format=True)
    us = ct_slice(0)
    us.Modality = "US"
    us.save_as(in_dir / "us.dcm", enforce_file_format=True)
    (in_dir / "notes.txt").write_text("not dicom", encoding="utf-8")
    out_dir = tmp_path / "out"

    result = CliRunner().invoke(
        app, ["deid", str(in_dir), str(out_dir), "--trial", "TRIAL-9", "--site", "101"]
    )
    assert result.exit_code == 0, result.output
    assert "3 written, 1 quarantined, 1 rejected" in result.output
    assert "modality US" in result.output
    assert "not a DICOM file" in result.output
    assert PATIENT_NAME not in result.output

    written = sorted(out_dir.rglob("*.dcm"))
    assert len(written) == 3
    assert {p.relative_to(out_dir).parts[0] for p in written} == {"101-004"}
    guard = PhiGuard.from_datasets(series)
    for path in written:
        ds = pydicom.dcmread(path)
        assert ds.ClinicalTrialProtocolID == "TRIAL-9"
        assert ds.ClinicalTrialSiteID == "101"
        assert guard.scan(ds) == []


def test_same_folder_refused(app: typer.Typer, tmp_path: Path, data_dir: Path) -> None:
    from triallens.errors import ConfigurationError

    result = CliRunner().invoke(
        app, ["deid", str(tmp_path), str(tmp_path), "--trial", "T"]
    )
    assert isinstance(result.exception, ConfigurationError)


def test_pixel_rules_file_cleans_instead_of_quarantine(
    app: typer.Typer, tmp_path: Path, data_dir: Path
) -> None:
    import json

    in_dir = tmp_path / "in"
    in_dir.mkdir()
    us = ct_slice(0)
    us.Modality = "US"
    us.save_as(in_dir / "us.dcm", enforce_file_format=True)
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"modality": "US", "regions": [[0, 0, 4, 16]]}]))
    out_dir = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "deid",
            str(in_dir),
            str(out_dir),
            "--trial",
            "T",
            "--pixel-rules",
            str(rules),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 written, 0 quarantined, 0 rejected" in result.output
    (path,) = out_dir.rglob("*.dcm")
    pixels = pydicom.dcmread(path).pixel_array
    assert not pixels[:4].any()
    assert (pixels[4:] == us.pixel_array[4:]).all()
