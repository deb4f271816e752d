"""``triallens deid``: de-identify a folder of DICOM files as the pipeline does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("deid")
    def deid(
        in_dir: Annotated[
            Path,
            typer.Argument(
                exists=True,
                file_okay=False,
                help="Folder of DICOM files (searched recursively).",
            ),
        ],
        out_dir: Annotated[
            Path, typer.Argument(help="Folder for the de-identified files.")
        ],
        trial: Annotated[
            str, typer.Option("--trial", help="Clinical Trial Protocol ID.")
        ],
        subject: Annotated[
            str | None,
            typer.Option(
                "--subject",
                help="Subject ID when files carry no Clinical Trial Subject ID.",
            ),
        ] = None,
        site: Annotated[
            str | None, typer.Option("--site", help="Clinical Trial Site ID.")
        ] = None,
        time_point: Annotated[
            str | None,
            typer.Option("--time-point", help="Clinical Trial Time Point ID."),
        ] = None,
        pixel_rules: Annotated[
            Path | None,
            typer.Option(
                "--pixel-rules",
                exists=True,
                dir_okay=False,
                help="JSON list of pixel cleaning rules (regions to blank in "
                "images with burned-in text); unmatched images are quarantined.",
            ),
        ] = None,
    ) -> None:
        """De-identify IN_DIR into OUT_DIR (PS3.15 Basic Profile, modified dates,
        clean descriptors); burned-in-text series are quarantined, never written.
        """
        from rich.console import Console
        from rich.progress import Progress
        from rich.table import Table

        from tools.deid import Deidentifier, load_rules
        from tools.deid.batch import Outcome, deidentify_files
        from triallens.errors import ConfigurationError
        from triallens.settings import get_settings

        settings = get_settings()
        if in_dir.resolve() == out_dir.resolve():
            raise ConfigurationError("OUT_DIR must differ from IN_DIR")
        deidentifier = Deidentifier(
            settings.deid_secret.get_secret_value(),
            trial,
            settings.sponsor,
            safe_private_tags=settings.safe_private_tags,
            pixel_cleaning=load_rules(pixel_rules) if pixel_rules else (),
        )
        files = sorted(p for p in in_dir.rglob("*") if p.is_file())
        console = Console()
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("de-identifying", total=len(files))
            outcomes = deidentify_files(
                files,
                out_dir,
                deidentifier,
                subject_id=subject,
                site_id=site,
                time_point_id=time_point,
                on_file=lambda _: progress.advance(task),
            )

        table = Table(title=f"De-identification of {len(files)} file(s)")
        table.add_column("file")
        table.add_column("outcome")
        table.add_column("reason or output")
        colours = {
            Outcome.WRITTEN: "green",
            Outcome.QUARANTINED: "yellow",
            Outcome.REJECTED: "red",
        }
        for item in outcomes:
            detail = (
                str(item.output.relative_to(out_dir)) if item.output else item.reason
            )
            table.add_row(
                str(item.source.relative_to(in_dir)),
                f"[{colours[item.outcome]}]{item.outcome.value}[/]",
                detail,
            )
        console.print(table)
        counts = {kind: sum(o.outcome is kind for o in outcomes) for kind in Outcome}
        console.print(
            f"{counts[Outcome.WRITTEN]} written, "
            f"{counts[Outcome.QUARANTINED]} quarantined, "
            f"{counts[Outcome.REJECTED]} rejected"
        )
        if counts[Outcome.QUARANTINED]:
            console.print(
                "Quarantined series may show identifying text in their pixels; "
                "review them or clean their pixels before sharing."
            )
