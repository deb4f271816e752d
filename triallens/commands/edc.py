"""``triallens edc``: serve the embedded EDC over RWS; ODM export and import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

edc_app = typer.Typer(
    name="edc",
    help="The embedded EDC: RWS server, ODM export/import.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(edc_app)


@edc_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8780,
    database: Annotated[
        str | None, typer.Option(help="EDC database URL (default: settings).")
    ] = None,
    schema: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="ODM1-3-2.xsd: validate every posted ODM document against it.",
        ),
    ] = None,
) -> None:
    """Serve the embedded EDC as Rave Web Services (Basic auth: TrialLens users)."""
    import logging

    import uvicorn

    from tools.edc import EmbeddedEdc
    from tools.edc.server import build_rws_app
    from triallens.settings import get_settings
    from triallens.users import UserStore

    settings = get_settings()
    settings.ensure_dirs()
    edc = EmbeddedEdc(database or settings.resolved_edc_url)
    users = UserStore(edc.engine, audit=edc.audit)
    if not users.list_users():
        typer.echo(
            "note: no users yet; add a data_manager with `triallens users add` "
            "to post clinical data",
            err=True,
        )
    logging.getLogger(__name__).warning(
        "TrialLens RWS on http://%s:%d/RaveWebServices", host, port
    )
    uvicorn.run(
        build_rws_app(edc, users, schema_path=schema),
        host=host,
        port=port,
        log_level="warning",
    )


@edc_app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="ODM file to write.")],
    study: Annotated[str | None, typer.Option(help="Study OID (default: all).")] = None,
    transactional: Annotated[
        bool, typer.Option(help="Transactional file (Upsert) instead of Snapshot.")
    ] = False,
    schema: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="ODM1-3-2.xsd to validate the file against.",
        ),
    ] = None,
) -> None:
    """Export clinical data, with audit records and signatures, as ODM 1.3.2."""
    from tools.edc import EmbeddedEdc
    from tools.edc.odm import export_clinical_data, validate_odm
    from triallens.settings import get_settings

    edc = EmbeddedEdc(get_settings().resolved_edc_url)
    document = export_clinical_data(
        edc,
        study_oid=study,
        file_type="Transactional" if transactional else "Snapshot",
    )
    if schema is not None:
        validate_odm(document, schema)
    out.write_bytes(document)
    typer.echo(f"wrote {out} ({len(document)} bytes)")


@edc_app.command("import")
def import_(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="ODM 1.3.2 clinical-data file."
        ),
    ],
    user: Annotated[str, typer.Option(help="The data manager importing it.")],
    schema: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="ODM1-3-2.xsd to validate the file against.",
        ),
    ] = None,
) -> None:
    """Import an ODM file, all or nothing (asks for the user's password)."""
    import os

    from tools.edc import EmbeddedEdc
    from tools.edc.odm import import_clinical_data
    from triallens.settings import get_settings
    from triallens.users import Permission, UserStore, require

    edc = EmbeddedEdc(get_settings().resolved_edc_url)
    users = UserStore(edc.engine, audit=edc.audit)
    password = os.environ.get("TRIALLENS_PASSWORD") or typer.prompt(
        "Password", hide_input=True
    )
    account = users.check_password(user, password)
    require(account, Permission.WRITE_CLINICAL_DATA, "import clinical data")
    result = import_clinical_data(
        edc,
        path.read_bytes(),
        actor=account.username,
        role=account.role.value,
        schema_path=schema,
    )
    typer.echo(
        f"imported {path.name}: {len(result.created)} created, "
        f"{len(result.updated)} updated, {len(result.unchanged)} unchanged"
    )


@edc_app.command("show")
def show(
    record_id: Annotated[str, typer.Argument(help="The EDC record id.")],
) -> None:
    """Show one record: items, provenance, status and its e-signatures."""
    from tools.edc import EmbeddedEdc
    from triallens.settings import get_settings

    record = EmbeddedEdc(get_settings().resolved_edc_url).get_record(record_id)
    origin = "machine-derived" if record.machine_derived else "entered by a person"
    typer.echo(
        f"{record.form_oid} record {record.record_id} ({origin}), "
        f"status {record.status.value}, version {record.version}"
    )
    typer.echo(
        f"study {record.study_oid}, site {record.site_id or '-'}, subject "
        f"{record.subject_id}, time point {record.time_point_id}"
    )
    if record.machine_derived:
        typer.echo(
            f"model {record.model_version}, trace {record.trace_id or '-'}, "
            f"inputs {', '.join(record.input_hashes) or '-'}"
        )
    for item in record.items.values():
        unit = f" {item.unit}" if item.unit else ""
        note = ""
        if item.original_value is not None:
            note = f" (machine-derived value was {item.original_value})"
        typer.echo(f"  {item.item_oid} = {item.value}{unit}{note}")
    if not record.signatures:
        typer.echo("not signed")
    for signature in record.signatures:
        reason = f"; reason: {signature.reason}" if signature.reason else ""
        typer.echo(
            f"signed: {signature.manifestation()}; decision "
            f"{signature.decision}{reason}"
        )
