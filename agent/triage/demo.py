"""The demo: a synthetic trial through the embedded PACS and the triage graph."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.triage.context import TriageContext
from agent.triage.graph import NODE_ORDER, run_triage
from triallens.domain import TriageResult

__all__ = ["ArrivedStudy", "load_demo_trial", "load_site_values", "triage_all"]


@dataclass(frozen=True)
class ArrivedStudy:
    """A study in the PACS, in the order it would have arrived."""

    study_uid: str
    study_date: str
    subject_key: str


def load_demo_trial(
    ctx: TriageContext, subjects: int, seed: int, console: Any
) -> list[ArrivedStudy]:
    """Write a small synthetic trial and store every file in the PACS."""
    import pydicom

    from evals.synth import generate_trial

    out_dir = ctx.settings.data_dir / "demo-trial"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    with console.status("Writing the synthetic trial"):
        generate_trial(
            out_dir,
            subjects=subjects,
            seed=seed,
            small=True,
            scenarios=_demo_scenarios(),
        )
    console.print(f"Synthetic trial written to [bold]{out_dir}[/]")
    from tools.charter import load_charter

    ctx.overrides["charter"] = load_charter(out_dir / "charter.yaml")
    load_site_values(ctx, out_dir / "edc_site_values.json")

    files = sorted((out_dir / "dicom").rglob("*.dcm"))
    datasets = [pydicom.dcmread(path) for path in files]
    with console.status(f"Storing {len(datasets)} instances in the embedded PACS"):
        ctx.pacs.store(datasets)

    studies: dict[str, ArrivedStudy] = {}
    for ds in datasets:
        uid = str(ds.StudyInstanceUID)
        studies.setdefault(
            uid,
            ArrivedStudy(
                study_uid=uid,
                study_date=str(getattr(ds, "StudyDate", "")),
                subject_key=str(getattr(ds, "ClinicalTrialSubjectID", "")),
            ),
        )
    return sorted(studies.values(), key=lambda s: (s.study_date, s.subject_key))


def load_site_values(ctx: TriageContext, path: Path) -> int:
    """Enter the sites' own imaging values into the EDC, as sites would.

    Returns the number of visit forms written (replays write nothing new).
    """
    payload = json.loads(path.read_text(encoding="utf-8"))
    trial_id = payload.get("trial_id") or ctx.settings.trial_id
    written = 0
    for subject in payload.get("subjects", []):
        for visit in subject.get("visits", []):
            items = {
                re.sub(r"[^A-Za-z0-9_]", "_", name): value
                for name, value in visit.get("values", {}).items()
            }
            if not items:
                continue
            ctx.edc.write_site_values(
                trial_id=trial_id,
                site_id=subject.get("site_id"),
                subject_id=subject["subject_id"],
                time_point_id=visit["time_point_id"],
                items=items,
                idempotency_key=(
                    f"site:{trial_id}:{subject['subject_id']}:{visit['time_point_id']}"
                ),
            )
            written += 1
    return written


def _demo_scenarios() -> list[str] | None:
    """Oncology CT scenarios for the demo, when the generator names them."""
    from evals import synth

    names = getattr(synth, "DEMO_SCENARIOS", None)
    return list(names) if names else None


def triage_all(
    ctx: TriageContext, studies: list[ArrivedStudy], console: Any
) -> list[TriageResult]:
    """Triage each study in arrival order with a progress bar per step."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    results: list[TriageResult] = []
    steps = len(NODE_ORDER)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("Triage", total=len(studies) * steps)
        for number, study in enumerate(studies, start=1):
            done_before = (number - 1) * steps
            progress.update(
                bar,
                completed=done_before,
                description=f"Study {number}/{len(studies)}",
            )

            def advance(node: str, number: int = number) -> None:
                progress.update(bar, advance=1, description=f"Study {number}: {node}")

            results.append(run_triage(study.study_uid, ctx, on_node=advance))
            progress.update(bar, completed=number * steps)
    return results
