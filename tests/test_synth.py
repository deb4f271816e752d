"""The synthetic trial: pixels re-measured against ground_truth.json, headers,
determinism, documents and EDC values."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests._synth_fixtures import (
    edge_diameters_mm,
    otsu,
    pixel_of,
    read_series,
    small_trial,
    threshold_region,
)

__all__ = ["small_trial"]


def _truth(trial: Path) -> dict:
    return json.loads((trial / "ground_truth.json").read_text(encoding="utf-8"))


def _visits(truth: dict, cohort: str):
    for subject in truth["subjects"]:
        if subject["cohort"] != cohort:
            continue
        for visit in subject["visits"]:
            if not visit["missing"]:
                yield subject, visit


def _series_folder(trial: Path, visit: dict, series_uid: str) -> Path:
    record = next(s for s in visit["series"] if s["series_uid"] == series_uid)
    return trial / visit["path"] / record["folder"]


def test_layout_and_every_scenario(small_trial: Path) -> None:
    truth = _truth(small_trial)
    assert [s["scenario"] for s in truth["subjects"]] == [
        "recist_pr",
        "recist_sd",
        "recist_pd_growth",
        "recist_pd_new_lesion",
        "recist_cr",
        "recist_node_target",
        "lvef_ctrcd",
        "lvef_no_ctrcd",
        "ich_expansion",
        "ich_stable",
    ]
    for name in ("charter.yaml", "protocol.md", "protocol.pdf", "edc_site_values.json"):
        assert (small_trial / name).is_file(), name
    assert (small_trial / "protocol.pdf").read_bytes().startswith(b"%PDF")
    for subject in truth["subjects"]:
        for visit in subject["visits"]:
            if visit["missing"]:
                assert not (
                    small_trial
                    / "dicom"
                    / subject["subject_id"]
                    / visit["time_point_id"]
                ).exists()
                continue
            folders = sorted((small_trial / visit["path"]).iterdir())
            assert len(folders) >= 2
            assert any(s["localizer"] for s in visit["series"])
            for record in visit["series"]:
                files = list(
                    (small_trial / visit["path"] / record["folder"]).glob("*.dcm")
                )
                assert len(files) == record["instances"]


def test_ct_lesions_remeasured_from_pixels(small_trial: Path) -> None:
    truth = _truth(small_trial)
    checked = 0
    for _subject, visit in _visits(truth, "oncology"):
        if visit["modality"] != "CT":
            continue
        folder = _series_folder(small_trial, visit, visit["axial_series_uid"])
        stack, datasets, positions = read_series(folder)
        for lesion in visit["lesions"]:
            if lesion["status"] != "present":
                continue
            k = int(np.argmin(np.abs(positions[:, 2] - lesion["centre_mm"][2])))
            ds = datasets[k]
            row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
            seed = pixel_of(lesion["centre_mm"], ds)
            image = stack[k]
            radius = lesion["longest_diameter_mm"] / 2 / col_mm
            rr, cc = np.ogrid[: image.shape[0], : image.shape[1]]
            distance = np.hypot(rr - seed[0], cc - seed[1])
            core = np.median(image[distance <= 2])
            ring = np.median(image[(distance > radius + 2) & (distance < radius + 4)])
            threshold = (core + ring) / 2
            region = threshold_region(
                image, threshold, seed, below=bool(core < ring), smooth_px=0.7
            )
            longest, short = edge_diameters_mm(image, region, threshold, row_mm, col_mm)
            assert longest == pytest.approx(
                lesion["longest_diameter_mm"], abs=col_mm
            ), (
                visit["time_point_id"],
                lesion,
            )
            assert short == pytest.approx(lesion["short_axis_mm"], abs=col_mm), lesion
            checked += 1
    assert checked >= 40


def test_cmr_volumes_remeasured_from_pixels(small_trial: Path) -> None:
    truth = _truth(small_trial)
    checked = 0
    for _subject, visit in _visits(truth, "cardiac"):
        folder = _series_folder(small_trial, visit, visit["cine_series_uid"])
        datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
        normal = np.array(visit["lv_axis_direction"])
        axis_point = np.array(visit["lv_axis_point_mm"])
        for phase_ms, expected in (
            (visit["ed_trigger_time_ms"], visit["edv_ml"]),
            (visit["es_trigger_time_ms"], visit["esv_ml"]),
        ):
            frames = [d for d in datasets if abs(float(d.TriggerTime) - phase_ms) < 0.5]
            frames.sort(key=lambda d: float(np.dot(normal, d.ImagePositionPatient)))
            levels = [float(np.dot(normal, d.ImagePositionPatient)) for d in frames]
            spacing = float(np.median(np.diff(levels)))
            mid = frames[len(frames) // 2]
            image = mid.pixel_array.astype(np.float32)
            seed = pixel_of(_on_plane(axis_point, normal, mid), mid)
            rr, cc = np.ogrid[: image.shape[0], : image.shape[1]]
            near = np.hypot(rr - seed[0], cc - seed[1]) < 40
            threshold = otsu(image[near])
            area_px = 0
            for frame in frames:
                seed = pixel_of(_on_plane(axis_point, normal, frame), frame)
                pixels = frame.pixel_array.astype(np.float32)
                area_px += threshold_region(pixels, threshold, seed).sum()
            row_mm, col_mm = (float(v) for v in frames[0].PixelSpacing)
            measured = area_px * row_mm * col_mm * spacing / 1000.0
            assert measured == pytest.approx(expected, rel=0.03), visit["time_point_id"]
            checked += 1
        lvef = (visit["edv_ml"] - visit["esv_ml"]) / visit["edv_ml"] * 100
        assert visit["lvef_percent"] == pytest.approx(lvef, abs=0.01)
    assert checked == 16


def _on_plane(point: np.ndarray, normal: np.ndarray, dataset) -> np.ndarray:
    origin = np.array(dataset.ImagePositionPatient, float)
    return point + normal * float(np.dot(origin - point, normal))


def test_haematoma_volume_remeasured_from_pixels(small_trial: Path) -> None:
    truth = _truth(small_trial)
    checked = 0
    for _subject, visit in _visits(truth, "neuro"):
        if visit["haematoma_hu"] < 50:
            continue  # a late, near-isodense clot cannot be thresholded
        folder = _series_folder(small_trial, visit, visit["axial_series_uid"])
        stack, datasets, positions = read_series(folder)
        centre = visit["haematoma_centre_mm"]
        k = int(np.argmin(np.abs(positions[:, 2] - centre[2])))
        seed = pixel_of(centre, datasets[k])
        window = stack[k][seed[0] - 3 : seed[0] + 4, seed[1] - 3 : seed[1] + 4]
        core = float(np.median(window))
        brain = stack[k][(stack[k] > 15) & (stack[k] < core - 15)]
        threshold = (core + float(np.median(brain))) / 2
        voxels = 0
        for index in range(stack.shape[0]):
            voxels += threshold_region(
                stack[index], threshold, seed, upper=core + 30, smooth_px=0.5
            ).sum()
        row_mm, col_mm = (float(v) for v in datasets[0].PixelSpacing)
        dz = float(np.median(np.diff(positions[:, 2])))
        measured = voxels * row_mm * col_mm * dz / 1000.0
        assert measured == pytest.approx(visit["haematoma_volume_ml"], rel=0.03)
        checked += 1
    assert checked == 6


def test_scenarios_follow_their_story(small_trial: Path) -> None:
    by_name = {s["scenario"]: s for s in _truth(small_trial)["subjects"]}

    def responses(name: str) -> list:
        return [v.get("overall_response") for v in by_name[name]["visits"]]

    assert responses("recist_pr") == ["BASELINE", "PR", "PR", "PR"]
    assert responses("recist_sd") == ["BASELINE", "SD", "SD", "SD"]
    assert responses("recist_pd_growth") == ["BASELINE", "SD", "PD", "PD"]
    assert responses("recist_pd_new_lesion") == ["BASELINE", "SD", "PD", "PD"]
    assert responses("recist_cr") == ["BASELINE", "PR", "CR", "CR"]
    assert responses("recist_node_target") == ["BASELINE", "SD", None, "PR"]

    growth = by_name["recist_pd_growth"]["visits"][2]
    assert growth["percent_change_from_nadir"] >= 20
    assert growth["sum_of_diameters_mm"] - growth["nadir_sum_mm"] >= 5
    new = by_name["recist_pd_new_lesion"]["visits"][2]
    assert new["target_response"] == "SD" and new["new_lesion_ids"] == ["NEW01"]

    pr_last = by_name["recist_pr"]["visits"][3]
    small = next(x for x in pr_last["lesions"] if x["status"] == "too_small")
    assert small["recorded_diameter_mm"] == 5 and small["longest_diameter_mm"] < 5
    for visit in by_name["recist_pr"]["visits"]:
        expected = sum(
            x.get("recorded_diameter_mm")
            or (x["short_axis_mm"] if x["kind"] == "node" else x["longest_diameter_mm"])
            for x in visit["lesions"]
            if x["role"] == "target" and x["status"] in ("present", "too_small")
        )
        assert visit["sum_of_diameters_mm"] == pytest.approx(expected, abs=0.01)

    cr = by_name["recist_cr"]["visits"][2]
    node = next(x for x in cr["lesions"] if x["lesion_id"] == "T03")
    assert node["short_axis_mm"] < 10
    assert cr["sum_of_diameters_mm"] == pytest.approx(node["short_axis_mm"], abs=0.01)
    nodes = by_name["recist_node_target"]["visits"][0]["lesions"]
    assert sum(x["kind"] == "node" and x["role"] == "target" for x in nodes) == 2

    ctrcd = [v["ctrcd"] for v in by_name["lvef_ctrcd"]["visits"]]
    assert ctrcd == ["none", "none", "moderate", "moderate"]
    month6 = by_name["lvef_ctrcd"]["visits"][2]
    assert month6["lvef_drop_points"] >= 10 and month6["lvef_percent"] < 50
    assert month6["expected_priority"] == "HIGH"
    assert {v["ctrcd"] for v in by_name["lvef_no_ctrcd"]["visits"]} == {"none"}

    expansion = by_name["ich_expansion"]["visits"][1]
    assert expansion["haematoma_expansion"] and expansion["haematoma_change_ml"] > 6
    stable = by_name["ich_stable"]["visits"][1]
    assert not stable["haematoma_expansion"]
    assert stable["haematoma_change_ml"] < 6
    assert (
        stable["haematoma_change_ml"]
        / by_name["ich_stable"]["visits"][0]["haematoma_volume_ml"]
        < 0.33
    )


def test_headers_trial_modules_and_planted_phi(small_trial: Path) -> None:
    truth = _truth(small_trial)
    private = truth["private_name_tag"]
    non_ascii = 0
    for subject in truth["subjects"]:
        phi = subject["phi"]
        non_ascii += not phi["PatientName"].isascii()
        for visit, phi_visit in zip(
            (v for v in subject["visits"] if not v["missing"]),
            phi["visits"],
            strict=True,
        ):
            path = next((small_trial / visit["path"]).rglob("*.dcm"))
            ds = pydicom.dcmread(path)
            assert ds.SpecificCharacterSet == "ISO_IR 192"
            assert str(ds.PatientName) == phi["PatientName"]
            assert ds.PatientID == phi["PatientID"]
            assert ds.PatientBirthDate == phi["PatientBirthDate"]
            assert ds.AccessionNumber == phi_visit["AccessionNumber"]
            assert ds.StudyDate == phi_visit["StudyDate"] == visit["study_date"]
            assert ds.InstitutionName == phi["InstitutionName"]
            assert str(ds.ReferringPhysicianName) == phi["ReferringPhysicianName"]
            block = ds.private_block(int(private["group"], 16), private["creator"])
            assert (
                block[int(private["element"], 16) & 0xFF].value
                == phi["private_tag_value"]
            )
            assert ds.StudyInstanceUID == visit["study_uid"]
            assert ds.ClinicalTrialProtocolID == truth["trial_id"]
            assert ds.ClinicalTrialSponsorName == truth["sponsor"]
            assert ds.ClinicalTrialSiteID == subject["site_id"]
            assert ds.ClinicalTrialSubjectID == subject["subject_id"]
            assert ds.ClinicalTrialTimePointID == visit["time_point_id"]
            assert (
                ds.ClinicalTrialTimePointDescription == visit["time_point_description"]
            )
            assert float(ds.LongitudinalTemporalOffsetFromEvent) == visit["visit_day"]
    assert non_ascii >= 5
    burned = [
        s
        for subject in truth["subjects"]
        for v in subject["visits"]
        for s in v.get("series", [])
        if s["burned_in_annotation"]
    ]
    assert len(burned) == 1
    subject = truth["subjects"][0]
    folder = small_trial / subject["visits"][0]["path"] / burned[0]["folder"]
    ds = pydicom.dcmread(next(folder.glob("*.dcm")))
    assert ds.BurnedInAnnotation == "YES"
    assert subject["phi"]["visits"][0]["burned_in_text"].startswith(
        subject["phi"]["PatientName"].split("^")[0]
    )
    # The drawn text saturates pixels near the top-left corner of the image.
    assert (ds.pixel_array[:12, :80] >= 3000).sum() > 20


def test_pixels_and_geometry_read_back_with_highdicom(small_trial: Path) -> None:
    import highdicom as hd

    truth = _truth(small_trial)
    by_name = {s["scenario"]: s for s in truth["subjects"]}
    stacks = [
        (by_name["recist_pr"]["visits"][0], "axial_series_uid"),
        (by_name["recist_pd_new_lesion"]["visits"][1], "axial_series_uid"),  # MR
        (by_name["lvef_ctrcd"]["visits"][0], "cine_series_uid"),
        (by_name["ich_expansion"]["visits"][1], "axial_series_uid"),
    ]
    for visit, key in stacks:
        folder = _series_folder(small_trial, visit, visit[key])
        datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
        legacy = (
            hd.legacy.LegacyConvertedEnhancedMRImage
            if datasets[0].Modality == "MR"
            else hd.legacy.LegacyConvertedEnhancedCTImage
        )
        enhanced = legacy(
            legacy_datasets=datasets,
            series_instance_uid=hd.UID(),
            series_number=99,
            sop_instance_uid=hd.UID(),
            instance_number=1,
        )
        assert int(enhanced.NumberOfFrames) == len(datasets)
    image = hd.imread(next(folder.glob("*.dcm")))
    assert image.SOPInstanceUID in {d.SOPInstanceUID for d in datasets}
    for path in sorted((small_trial / "dicom").rglob("*.dcm"))[::37]:
        ds = pydicom.dcmread(path)
        assert ds.pixel_array.shape == (ds.Rows, ds.Columns)


@pytest.mark.slow
def test_every_series_passes_dciodvfy(small_trial: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("dciodvfy") is None:
        pytest.skip(
            "dciodvfy (dicom3tools) is not installed; run scripts/system-deps.sh"
        )
    folders = sorted({p.parent for p in (small_trial / "dicom").rglob("*.dcm")})
    for folder in folders:
        files = sorted(folder.glob("*.dcm"))
        for path in {files[0], files[-1]}:
            result = subprocess.run(
                ["dciodvfy", str(path)], capture_output=True, text=True, check=False
            )
            errors = [
                line
                for line in (result.stdout + result.stderr).splitlines()
                if line.startswith("Error")
            ]
            assert not errors, (path.relative_to(small_trial), errors)


def test_same_seed_same_trial(small_trial: Path, tmp_path: Path) -> None:
    from evals.synth import generate_trial

    again = tmp_path / "again"
    generate_trial(again, subjects=10, seed=7, small=True)

    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    assert digest(again) == digest(small_trial)
    other = tmp_path / "other"
    generate_trial(other, subjects=1, seed=8, small=True)
    first = _truth(small_trial)["subjects"][0]["visits"][0]["study_uid"]
    assert _truth(other)["subjects"][0]["visits"][0]["study_uid"] != first


def test_site_values_discordance(small_trial: Path) -> None:
    truth = _truth(small_trial)
    edc = json.loads((small_trial / "edc_site_values.json").read_text("utf-8"))
    assert [s["subject_id"] for s in edc["subjects"]] == [
        s["subject_id"] for s in truth["subjects"]
    ]
    discordant = 0
    item_truth = {
        "SUMDIAM": "sum_of_diameters_mm",
        "LVEF": "lvef_percent",
        "ICHVOL": "haematoma_volume_ml",
    }
    for subject in truth["subjects"]:
        for visit in subject["visits"]:
            if visit["missing"]:
                continue
            reported = visit["site_reported"]
            for item, key in item_truth.items():
                if item not in reported["values"]:
                    continue
                value, actual = reported["values"][item], visit[key]
                relative = abs(value - actual) / actual
                if item in reported["discordant_items"]:
                    assert relative > 0.20
                    discordant += 1
                else:
                    assert relative <= 0.045
    assert discordant == 4
    context = edc["subjects"][0]["context"]
    assert context["arm"] and context["labs"] and context["adverse_events"]


def test_protocol_prose_matches_charter(small_trial: Path) -> None:
    from tools.charter import load_charter

    charter = load_charter(small_trial / "charter.yaml")
    text = (small_trial / "protocol.md").read_text("utf-8")
    for cohort in charter.cohorts:
        for visit in cohort.visits:
            row = (
                f"| {visit.time_point_id} | {visit.description} | {visit.day} | "
                f"{visit.window[0]} to {visit.window[1]} |"
            )
            assert row in text
    for procedure in charter.procedures.values():
        if procedure.max_slice_thickness_mm:
            assert f"at most {procedure.max_slice_thickness_mm:g} mm" in text
    assert "at least 20 % and 5 mm over the nadir" in text
    for rule in charter.alert_rules:
        assert f"| {rule.id} | {rule.priority.value} |" in text
    assert math.isclose(charter.response_criteria.lvef.drop_points, 10.0)


def test_synth_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from triallens.cli import _register_commands, app

    _register_commands()
    out = tmp_path / "cli-trial"
    result = CliRunner().invoke(
        app,
        [
            "synth",
            "--out",
            str(out),
            "--subjects",
            "2",
            "--seed",
            "3",
            "--small",
            "--scenario",
            "recist_pr",
            "--scenario",
            "lvef_ctrcd",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "recist_pr" in result.output and "lvef_ctrcd" in result.output
    truth = _truth(out)
    assert [s["scenario"] for s in truth["subjects"]] == ["recist_pr", "lvef_ctrcd"]
    bad = CliRunner().invoke(
        app, ["synth", "--out", str(tmp_path / "x"), "--scenario", "nonsense"]
    )
    assert bad.exit_code != 0 and "unknown scenario" in bad.output
    again = ["synth", "--out", str(out), "--subjects", "1", "--small"]
    refused = CliRunner().invoke(app, again)
    assert refused.exit_code != 0 and "--overwrite" in refused.output
    replaced = CliRunner().invoke(app, [*again, "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert [s["scenario"] for s in _truth(out)["subjects"]] == ["recist_pr"]
    assert not (out / "dicom" / "102-001").exists()


def test_expected_responses_agree_with_the_timeline_rules(small_trial: Path) -> None:
    """The truth's responses (known lesion identities) match what the RECIST
    timeline evaluation finds from the lesions alone (matching by position)."""
    from evals.synth.truth import _measurement
    from models.quantify import recist

    for subject in _truth(small_trial)["subjects"]:
        if subject["cohort"] != "oncology":
            continue
        visits = [v for v in subject["visits"] if not v["missing"]]
        findings = [
            [
                _measurement(lesion)
                for lesion in visit["lesions"]
                if lesion["status"] in ("present", "too_small")
            ]
            for visit in visits
        ]
        results = recist.assess_timeline(findings, [v["visit_day"] for v in visits])
        assert [r.overall_response.value for r in results] == [
            v["overall_response"] for v in visits
        ], subject["scenario"]
        for result, visit in zip(results, visits, strict=True):
            assert result.sum_mm == pytest.approx(
                visit["sum_of_diameters_mm"], abs=0.01
            )
