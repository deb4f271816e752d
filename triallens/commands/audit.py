"""``triallens audit``: verify the hash chain, show an entity's history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

audit_app = typer.Typer(
    name="audit",
    help="Audit trail: verify integrity, show history.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app)


def _databases(database: list[str] | None) -> list[str]:
    from triallens.settings import get_settings

    if database:
        return list(dict.fromkeys(database))
    settings = get_settings()
    return list(
        dict.fromkeys([settings.resolved_database_url, settings.resolved_edc_url])
    )


@audit_app.command("verify")
def verify(
    database: Annotated[
        list[str] | None,
        typer.Option(
            help="Database URL to check (repeatable); default: the TrialLens "
            "and EDC databases of the settings."
        ),
    ] = None,
) -> None:
    """Check every audit record's hash and link; name any record changed,
    deleted or reordered. Exits with 1 when the trail is broken."""
    from rich.console import Console

    from triallens.audit import AuditTrail
    from triallens.db import display_url
    from triallens.errors import ConfigurationError

    console = Console(soft_wrap=True)
    broken = False
    for url in _databases(database):
        label = display_url(url)
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
            if database:
                # A database named on the command line: more likely a typo.
                raise ConfigurationError(f"no database at {label}")
            broken = True
            console.print(f"[bold red]MISSING[/] {label}: no such database")
            continue
        report = AuditTrail(url).verify()
        audited = _audited_rows(url)
        if report.ok and report.checked == 0 and audited:
            broken = True
            console.print(
                f"[bold red]BROKEN[/] {label}: the audit trail is empty but the "
                f"database holds {audited} audited rows (EDC forms, triage "
                "results)",
                highlight=False,
            )
            continue
        if report.ok:
            console.print(
                f"[green]intact[/] {label}: {report.checked} records verified"
            )
            continue
        broken = True
        console.print(
            f"[bold red]BROKEN[/] {label}: {len(report.problems)} problem(s) "
            f"in {report.checked} records",
            highlight=False,
        )
        for problem in report.problems:
            console.print(f"  {problem}", highlight=False)
    if broken:
        console.print(
            "The audit trail was altered outside TrialLens. Keep the database as "
            "it is and report it to the system owner (QA)."
        )
        raise typer.Exit(1)


def _audited_rows(url: str) -> int:
    """Rows of tables every write to which is audited (EDC forms, results)."""
    from sqlalchemy import inspect, text

    from triallens.db import make_engine

    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        total = 0
        with engine.connect() as conn:
            for table in ("edc_forms", "triage_results"):
                if table in tables:
                    total += int(
                        conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                        or 0
                    )
        return total
    finally:
        engine.dispose()


@audit_app.command("show")
def show(
    entity: Annotated[
        str | None,
        typer.Argument(
            help="Entity, e.g. edc_record:<id> or user:<name>; a trailing * "
            "matches a prefix. Omit for the whole trail."
        ),
    ] = None,
    database: Annotated[
        list[str] | None, typer.Option(help="Database URL (repeatable).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, max=1_000_000, help="At most N records.")
    ] = None,
) -> None:
    """List the audit history of an entity, oldest first (one record a line)."""
    import json

    from rich.console import Console
    from rich.markup import escape

    from triallens.audit import AuditTrail
    from triallens.db import display_url

    def compact(value: object) -> str:
        return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)

    console = Console()
    for url in _databases(database):
        entries = AuditTrail(url).show(entity, limit=limit)
        if not entries:
            console.print(
                f"no audit records for {entity or 'any entity'} in {display_url(url)}",
                highlight=False,
            )
            continue
        console.print(f"[bold]{display_url(url)}[/]", highlight=False)
        for entry in entries:
            line = (
                f"#{entry.seq} {entry.recorded_at} {entry.actor} ({entry.role}) "
                f"{entry.action} {entry.entity}"
            )
            if entry.field:
                line += f" [{entry.field}]"
            if entry.old is not None:
                line += f" {compact(entry.old)} ->"
            if entry.new is not None:
                line += f" {compact(entry.new)}"
            if entry.reason:
                line += f" reason: {entry.reason}"
            if entry.model_version or entry.trace_id:
                line += f" model {entry.model_version} trace {entry.trace_id}"
            console.print(escape(line), highlight=False, soft_wrap=True)
