"""``triallens synth``: write a synthetic trial with its ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Attach the ``synth`` command to ``app``."""

    @app.command()
    def synth(
        out: Annotated[
            Path, typer.Option("--out", help="Folder to write the trial into.")
        ],
        subjects: Annotated[
            int, typer.Option("--subjects", min=1, max=500, help="Number of subjects.")
        ] = 10,
        seed: Annotated[
            int, typer.Option("--seed", min=0, help="Seed; same seed, same trial.")
        ] = 7,
        small: Annotated[
            bool, typer.Option("--small", help="Tiny studies for fast tests.")
        ] = False,
        overwrite: Annotated[
            bool,
            typer.Option("--overwrite", help="Replace studies already in OUT/dicom."),
        ] = False,
        scenario: Annotated[
            list[str] | None,
            typer.Option(
                "--scenario",
                help="Limit to these scenarios (repeatable); default: all of them.",
            ),
        ] = None,
    ) -> None:
        """Generate a synthetic trial: DICOM, ground truth, charter, protocol, EDC."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
        from rich.table import Table

        from evals.synth import SCENARIOS, generate_trial

        console = Console()
        names = list(scenario) if scenario else None
        unknown = [n for n in names or [] if n not in SCENARIOS]
        if unknown:
            raise typer.BadParameter(
                f"unknown scenario(s) {', '.join(unknown)}; choose from "
                f"{', '.join(SCENARIOS)}",
                param_hint="--scenario",
            )
        existing = out / "dicom"
        if existing.is_dir() and any(existing.iterdir()) and not overwrite:
            raise typer.BadParameter(
                f"{existing} already holds studies; pick another folder or add "
                "--overwrite",
                param_hint="--out",
            )
        visits = 4
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
        ) as progress:
            bar = progress.add_task("Writing visits", total=subjects * visits)

            def advance(subject_id: str, time_point_id: str) -> None:
                progress.update(
                    bar, advance=1, description=f"{subject_id} {time_point_id}"
                )

            manifest = generate_trial(
                out,
                subjects=subjects,
                seed=seed,
                small=small,
                scenarios=names,
                on_visit=advance,
                overwrite=overwrite,
            )

        table = Table(title=f"Synthetic trial {manifest.trial_id} (seed {seed})")
        for column in ("Subject", "Site", "Scenario", "Visits", "Missing", "Files"):
            table.add_column(column)
        for subject in manifest.subjects:
            table.add_row(
                subject.subject_id,
                subject.site_id,
                subject.scenario,
                str(sum(not v.missing for v in subject.visits)),
                ", ".join(v.time_point_id for v in subject.visits if v.missing) or "-",
                str(sum(v.files for v in subject.visits)),
            )
        console.print(table)
        console.print(
            f"{manifest.files} DICOM files, {len(manifest.deviations)} planted "
            f"deviations, in {manifest.seconds:.1f} s"
        )
        console.print(f"Ground truth: {manifest.ground_truth}")
        console.print(f"Charter: {manifest.charter}; protocol: {manifest.protocol_md}")
        console.print(f"Next: load {out / 'dicom'} into the PACS and run triage.")
