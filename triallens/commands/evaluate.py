"""``triallens eval measurements``: accuracy of the shipped models on phantoms."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

__all__ = ["register"]

eval_app = typer.Typer(
    help="Evaluate TrialLens against synthetic data.", no_args_is_help=True
)


class EvalTask(StrEnum):
    """The tasks ``triallens eval measurements`` can measure."""

    RECIST = "recist"
    LVEF = "lvef"
    ICH = "ich"


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")


@eval_app.command("measurements")
def measurements(
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the held-out phantoms.")
    ] = 1,
    subjects: Annotated[
        int,
        typer.Option(min=1, help="Subjects per task (RECIST, LVEF, haemorrhage)."),
    ] = 8,
    task: Annotated[
        list[EvalTask] | None,
        typer.Option(help="Only these tasks (repeatable); all three by default."),
    ] = None,
) -> None:
    """Measure held-out phantom subjects with the shipped models and print the
    sum-of-diameters error, response agreement, LVEF and haemorrhage errors."""
    import torch
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from evals.measurements import TARGETS, evaluate_measurements

    torch.set_num_threads(min(torch.get_num_threads(), 2))
    chosen = {t.value for t in task} if task else {t.value for t in EvalTask}
    console = Console()
    with Progress(console=console, transient=True) as progress:
        job = progress.add_task("measuring phantoms", total=None)
        report = evaluate_measurements(
            seed,
            recist_subjects=subjects if "recist" in chosen else 0,
            lvef_subjects=subjects if "lvef" in chosen else 0,
            ich_subjects=subjects if "ich" in chosen else 0,
            progress=lambda message: progress.update(job, description=message),
        )

    if report.recist_rows:
        table = Table(title="RECIST 1.1 on held-out phantoms")
        for column in (
            "subject",
            "scenario",
            "visit",
            "SOD truth",
            "SOD measured",
            "response truth",
            "response measured",
        ):
            table.add_column(column)
        for row in report.recist_rows:
            table.add_row(*(str(v) for v in row.values()))
        console.print(table)

    passed = report.passed()
    summary = Table(title=f"Measurement accuracy (seed {seed})")
    for column in ("metric", "value", "target", "met"):
        summary.add_column(column)
    for name, value in report.metrics.items():
        target = TARGETS.get(name)
        met = passed.get(name)
        summary.add_row(
            name,
            f"{value:.4g}",
            f"{target[0]} {target[1]:g}" if target else "",
            "" if met is None else ("yes" if met else "NO"),
        )
    console.print(summary)
    if not all(passed.values()):
        raise typer.Exit(code=1)
