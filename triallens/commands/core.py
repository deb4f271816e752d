"""Core commands: ``demo`` (the main job on embedded defaults) and ``triage``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register"]

_DICOM_UID = re.compile(r"(?=.{1,64}$)[0-9]+(\.[0-9]+)*")


def register(app: typer.Typer) -> None:
    app.command()(version)
    app.command()(demo)
    app.command()(triage)


def version() -> None:
    """Print the TrialLens version."""
    from triallens import __version__

    typer.echo(__version__)


def demo(
    subjects: Annotated[
        int, typer.Option(min=1, max=12, help="Synthetic subjects to generate.")
    ] = 2,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the synthetic trial.")] = 7,
) -> None:
    """Run the main job on a small synthetic trial (embedded defaults).

    Writes the trial, loads it into the embedded PACS and triages every
    study as if it had just arrived.
    """
    from rich.console import Console

    from agent.triage import TriageContext
    from agent.triage.demo import load_demo_trial, triage_all
    from triallens.settings import apply_offline_switches, get_settings

    apply_offline_switches()
    console = Console()
    settings = get_settings()
    settings.ensure_dirs()
    console.print(f"Data directory: [bold]{settings.data_dir}[/] (TRIALLENS_DATA_DIR)")

    ctx = TriageContext(settings=settings)
    studies = load_demo_trial(ctx, subjects=subjects, seed=seed, console=console)
    results = triage_all(ctx, studies, console=console)
    console.print(_results_table(results))
    console.print(
        f"EDC: {settings.resolved_edc_url}\nTraces: {settings.resolved_mlflow_uri}\n"
        "Next: review the drafts (`triallens mcp`), or open the traces with "
        f"`mlflow ui --backend-store-uri {settings.resolved_mlflow_uri}`."
    )


def triage(
    study: Annotated[str, typer.Option(help="Study Instance UID in the PACS.")],
    pacs: Annotated[
        str | None,
        typer.Option(help="DICOMweb base URL; the embedded store when omitted."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Triage one study from any DICOMweb PACS (or the embedded store)."""
    from rich.console import Console

    from agent.triage import TriageContext, run_triage
    from triallens.settings import apply_offline_switches, get_settings

    if not study.strip():
        raise typer.BadParameter("must not be empty", param_hint="'--study'")
    if not _DICOM_UID.fullmatch(study.strip()):
        raise typer.BadParameter(
            "not a DICOM UID (digits and dots, at most 64 characters)",
            param_hint="'--study'",
        )
    if pacs and "://" not in pacs and not Path(pacs).is_dir():
        raise typer.BadParameter(
            f"no PACS store folder at {pacs}", param_hint="'--pacs'"
        )
    apply_offline_switches()
    settings = get_settings()
    ctx = TriageContext(settings=settings, pacs_url=pacs)
    result = run_triage(study.strip(), ctx)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    Console().print(_results_table([result]))
    if result.outcome_reason:
        typer.echo(f"{result.outcome.value}: {result.outcome_reason}")


def _results_table(results: list[Any]) -> Any:
    from rich.table import Table

    table = Table(title="Triage results")
    for column in (
        "subject",
        "visit",
        "modality",
        "sum of diameters (mm)",
        "response vs baseline",
        "priority",
    ):
        table.add_column(column)
    table.add_column("EDC record", overflow="fold")
    table.add_column("trace id", overflow="fold")
    for result in results:
        assessment = result.assessment
        sod = (
            f"{assessment.sum_of_diameters_mm:.1f}"
            if assessment and assessment.sum_of_diameters_mm is not None
            else "-"
        )
        response = (
            assessment.overall_response.value
            if assessment and assessment.overall_response
            else result.outcome.value
        )
        table.add_row(
            result.study.subject_id,
            result.study.time_point_id,
            result.study.modality,
            sod,
            response,
            result.priority.value,
            result.edc_record_id or "-",
            result.trace_id or "-",
        )
    return table
