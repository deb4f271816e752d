"""The protocol document (Markdown and PDF) and the site-reported EDC values."""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from evals.synth.scenarios import SCENARIOS
from tools.charter import Charter

__all__ = ["protocol_markdown", "write_edc_values", "write_protocol"]

logger = logging.getLogger(__name__)


def protocol_markdown(charter: Charter, protocol_name: str) -> str:
    """The imaging sections of the protocol, rendered from the charter."""
    lines = [
        f"# {protocol_name}",
        "",
        f"Protocol ID: {charter.trial_id}  ",
        f"Sponsor: {charter.sponsor}  ",
        f"Imaging charter version: {charter.version}",
        "",
        "## 1. Imaging objectives",
        "",
        "Imaging is read centrally by the imaging core lab, blinded to the site's "
        "assessment. Tumour response is assessed by RECIST 1.1, cardiac safety by "
        "left ventricular ejection fraction (LVEF) on cardiac MR, and intracerebral "
        "haemorrhage by haematoma volume on non-contrast CT.",
        "",
        "## 2. Schedule of assessments",
        "",
        f"Visit days count from day zero, the {charter.day_zero}, unless the "
        "cohort says otherwise. A visit is within its window when its day lies "
        "between the earliest and the latest day, both included.",
        "",
    ]
    for cohort in charter.cohorts:
        procedure = charter.procedures[cohort.procedure]
        lines += [
            f"### Cohort {cohort.name}: {procedure.name}",
            "",
            cohort.description,
            "",
            "| Time point ID | Visit | Target day | Window (days) |",
            "|---|---|---|---|",
        ]
        for visit in cohort.visits:
            lines.append(
                f"| {visit.time_point_id} | {visit.description} | {visit.day} | "
                f"{visit.window[0]} to {visit.window[1]} |"
            )
        lines.append("")
    lines += ["## 3. Image acquisition requirements", ""]
    for key, procedure in charter.procedures.items():
        limit = (
            f"at most {procedure.max_slice_thickness_mm:g} mm"
            if procedure.max_slice_thickness_mm
            else "no limit"
        )
        contrast = {
            "required": "intravenous contrast required",
            "forbidden": "no contrast (non-contrast acquisition)",
            "optional": "contrast optional",
        }[procedure.contrast.value]
        lines += [
            f"### {procedure.name} (`{key}`)",
            "",
            f"- Modality: {procedure.modality}",
            f"- Body part: {', '.join(procedure.body_parts)}",
            f"- Reconstructed slice thickness: {limit}",
            f"- Contrast: {contrast}",
            "- Required series: "
            + "; ".join(
                f"{s.name} ({s.kind}, at least {s.min_instances} images)"
                for s in procedure.required_series
            ),
            "",
        ]
    recist = charter.response_criteria.recist
    lvef = charter.response_criteria.lvef
    ich = charter.response_criteria.ich
    lines += [
        "## 4. Response criteria",
        "",
        f"- {recist.name}: up to {recist.max_targets} target lesions, at most "
        f"{recist.max_targets_per_organ} per organ; measurable lesions have a "
        f"longest diameter of at least {recist.min_measurable_mm:g} mm; target "
        f"lymph nodes a short axis of at least "
        f"{recist.min_target_node_short_axis_mm:g} mm. Partial response: sum of "
        f"diameters down at least {recist.pr_decrease_percent:g} % from baseline. "
        f"Progression: sum up at least {recist.pd_increase_percent:g} % and "
        f"{recist.pd_absolute_mm:g} mm over the nadir, or a new lesion. A target "
        f"too small to measure is recorded as {recist.too_small_mm:g} mm.",
        f"- {lvef.name}: a fall of at least {lvef.drop_points:g} percentage points "
        f"to below {lvef.lower_limit_percent:g} % is cardiac dysfunction; below "
        f"{lvef.moderate_floor_percent:g} % is severe.",
        f"- {ich.name}: growth of more than {ich.expansion_ml:g} mL or more than "
        f"{ich.expansion_percent:g} % over the admission scan.",
        "",
        "## 5. Alert rules",
        "",
        "| Rule | Priority | When |",
        "|---|---|---|",
    ]
    for rule in charter.alert_rules:
        when = " and ".join(f"{c.fact} {c.op} {c.value}" for c in rule.when)
        lines.append(f"| {rule.id} | {rule.priority.value} | {when} |")
    tolerance = charter.discrepancy_tolerance
    per_item = ", ".join(f"{k} {v:g} %" for k, v in tolerance.per_item.items())
    readers = charter.reader_assignment
    lines += [
        "",
        "## 6. Site and central values",
        "",
        "A site value that differs from the central value by more than "
        f"{tolerance.default_relative_percent:g} % (per item: {per_item}) raises a "
        "data query.",
        "",
        "## 7. Reader assignment",
        "",
        f"Each time point is read by {readers.readers_per_time_point} independent "
        "readers"
        + (
            ", the same reader for all of a subject's time points"
            if readers.same_reader_across_time_points
            else ""
        )
        + ". Adjudication when: "
        + "; ".join(readers.adjudicate_when)
        + ".",
        "",
    ]
    return "\n".join(lines)


def write_protocol(
    charter: Charter, out_dir: Path, protocol_name: str
) -> tuple[Path, Path | None]:
    """Write protocol.md and protocol.pdf; the PDF is skipped without reportlab."""
    text = protocol_markdown(charter, protocol_name)
    md_path = out_dir / "protocol.md"
    md_path.write_text(text, encoding="utf-8")
    try:
        pdf_path = _markdown_pdf(text, out_dir / "protocol.pdf")
    except ImportError:
        logger.warning("reportlab is not installed; protocol.pdf not written")
        pdf_path = None
    return md_path, pdf_path


def _markdown_pdf(text: str, path: Path) -> Path:
    from xml.sax.saxutils import escape

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table

    styles = getSampleStyleSheet()
    story: list[Any] = []
    table: list[list[str]] = []

    def flush_table() -> None:
        if table:
            story.append(Table([row[:] for row in table], hAlign="LEFT"))
            story.append(Spacer(1, 6))
            table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                table.append(cells)
            continue
        flush_table()
        if not line.strip():
            continue
        if line.startswith("### "):
            story.append(Paragraph(escape(line[4:]), styles["Heading3"]))
        elif line.startswith("## "):
            story.append(Paragraph(escape(line[3:]), styles["Heading2"]))
        elif line.startswith("# "):
            story.append(Paragraph(escape(line[2:]), styles["Title"]))
        else:
            story.append(Paragraph(escape(line.replace("`", "")), styles["BodyText"]))
    flush_table()
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        title="Imaging protocol",
        author="TrialLens",
        invariant=1,
    )
    doc.build(story)
    return path


# --------------------------------------------------------------------------
# EDC
# --------------------------------------------------------------------------


def write_edc_values(
    out_dir: Path, charter: Charter, subjects: list[dict[str, Any]], seed: int
) -> Path:
    """Site-reported values and clinical context, as a site would enter them.

    Site values are the truth with small reading noise (within 4 %) except the
    planted discordant items, which differ by more than 20 %. Each visit in
    ``subjects`` (the ground truth) gains a ``site_reported`` entry saying
    which values were entered and which are discordant.
    """
    records = []
    for index, subject in enumerate(subjects):
        rng = np.random.default_rng([seed, index, 99])
        scenario = SCENARIOS[subject["scenario"]]
        visits = []
        for visit in subject["visits"]:
            if visit.get("missing"):
                continue
            discordant = scenario.discordant.get(visit["visit_index"])
            values = _site_values(subject["cohort"], visit, rng, discordant)
            visit["site_reported"] = {
                "values": values,
                "discordant_items": [discordant[0]] if discordant else [],
            }
            visits.append(
                {
                    "time_point_id": visit["time_point_id"],
                    "visit_date": visit["study_date"],
                    "values": values,
                }
            )
        records.append(
            {
                "subject_id": subject["subject_id"],
                "site_id": subject["site_id"],
                "cohort": subject["cohort"],
                "context": _clinical_context(subject, rng),
                "visits": visits,
            }
        )
    data = {"trial_id": charter.trial_id, "subjects": records}
    path = out_dir / "edc_site_values.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return path


def _noisy(value: float, rng: np.random.Generator) -> float:
    return round(value * (1.0 + float(rng.uniform(-0.04, 0.04))), 1)


def _site_values(
    cohort: str,
    visit: dict[str, Any],
    rng: np.random.Generator,
    discordant: tuple[str, float] | None,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if cohort == "oncology":
        for lesion in visit["lesions"]:
            if lesion.get("role") != "target":
                continue
            if lesion["status"] == "disappeared":
                values[f"{lesion['lesion_id']}.LDIAM"] = 0.0
                continue
            item = "LPERP" if lesion["kind"] == "node" else "LDIAM"
            if lesion["status"] == "too_small":
                values[f"{lesion['lesion_id']}.{item}"] = "TOO SMALL TO MEASURE"
                continue
            size = (
                lesion["short_axis_mm"]
                if lesion["kind"] == "node"
                else lesion["longest_diameter_mm"]
            )
            values[f"{lesion['lesion_id']}.{item}"] = _noisy(size, rng)
        values["SUMDIAM"] = _noisy(visit["sum_of_diameters_mm"], rng)
        values["OVRLRESP"] = visit["overall_response"]
    elif cohort == "cardiac":
        values["LVEF"] = _noisy(visit["lvef_percent"], rng)
        values["LVEDV"] = _noisy(visit["edv_ml"], rng)
        values["LVESV"] = _noisy(visit["esv_ml"], rng)
    else:
        values["ICHVOL"] = _noisy(visit["haematoma_volume_ml"], rng)
    if discordant:
        item, factor = discordant
        truth = {
            "SUMDIAM": visit.get("sum_of_diameters_mm"),
            "LVEF": visit.get("lvef_percent"),
            "ICHVOL": visit.get("haematoma_volume_ml"),
        }[item]
        values[item] = round(float(truth) * factor, 1)
    return values


def _clinical_context(
    subject: dict[str, Any], rng: np.random.Generator
) -> dict[str, Any]:
    day_zero = date(
        int(subject["day_zero_date"][:4]),
        int(subject["day_zero_date"][4:6]),
        int(subject["day_zero_date"][6:]),
    )
    cohort = subject["cohort"]
    arm = (
        "A: investigational agent + standard of care"
        if rng.random() < 0.5
        else ("B: standard of care")
    )
    acquired = [v for v in subject["visits"] if not v.get("missing")]
    last_day = max(v["visit_day"] for v in acquired)
    context: dict[str, Any] = {
        "arm": arm,
        "treatment_start": f"{day_zero:%Y-%m-%d}",
        "treatment_end": None,
        "labs": [],
        "adverse_events": [],
        "concomitant_medications": [],
    }
    progressed = [v for v in acquired if v.get("overall_response") == "PD"]
    if progressed:
        end = day_zero + timedelta(days=progressed[0]["visit_day"] + 7)
        context["treatment_end"] = f"{end:%Y-%m-%d}"
        context["adverse_events"].append(
            {
                "term": "Abdominal pain",
                "grade": 2,
                "start_day": progressed[0]["visit_day"],
            }
        )
    for visit in acquired:
        day = visit["visit_day"]
        if cohort == "oncology":
            context["labs"] += [
                {
                    "day": day,
                    "test": "HGB",
                    "value": round(11 + 3 * rng.random(), 1),
                    "unit": "g/dL",
                },
                {
                    "day": day,
                    "test": "ALT",
                    "value": int(15 + 30 * rng.random()),
                    "unit": "U/L",
                },
                {
                    "day": day,
                    "test": "CREAT",
                    "value": round(0.7 + 0.5 * rng.random(), 2),
                    "unit": "mg/dL",
                },
            ]
        elif cohort == "cardiac":
            dysfunction = visit.get("ctrcd") not in (None, "none")
            context["labs"] += [
                {
                    "day": day,
                    "test": "NTPROBNP",
                    "value": int(450 + 200 * rng.random())
                    if dysfunction
                    else int(40 + 60 * rng.random()),
                    "unit": "pg/mL",
                },
                {
                    "day": day,
                    "test": "TROPT",
                    "value": round((30 if dysfunction else 6) + 4 * rng.random(), 1),
                    "unit": "ng/L",
                },
            ]
        else:
            context["labs"] += [
                {
                    "day": day,
                    "test": "INR",
                    "value": round(1.0 + 1.5 * rng.random(), 2),
                    "unit": "1",
                },
                {
                    "day": day,
                    "test": "PLAT",
                    "value": int(150 + 150 * rng.random()),
                    "unit": "10^9/L",
                },
            ]
    if cohort == "oncology":
        context["adverse_events"].append(
            {"term": "Fatigue", "grade": 1, "start_day": 10}
        )
    elif cohort == "cardiac":
        context["concomitant_medications"].append("doxorubicin then trastuzumab")
        for visit in acquired:
            if visit.get("ctrcd") not in (None, "none"):
                context["adverse_events"].append(
                    {
                        "term": "Ejection fraction decreased",
                        "grade": 2,
                        "start_day": visit["visit_day"],
                    }
                )
                break
    else:
        context["concomitant_medications"].append("apixaban (held on admission)")
        for visit in acquired:
            if visit.get("haematoma_expansion"):
                context["adverse_events"].append(
                    {
                        "term": "Neurological deterioration",
                        "grade": 3,
                        "start_day": visit["visit_day"],
                    }
                )
                break
    context["last_contact_day"] = last_day
    return context
