"""``triallens watch``: run event sources and triage each new study version."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register"]


class SourceName(StrEnum):
    QIDO = "qido"
    ORTHANC = "orthanc"
    DIMSE = "dimse"
    HL7 = "hl7"
    WEBHOOK = "webhook"


def register(app: typer.Typer) -> None:
    app.command()(watch)


def watch(
    source: Annotated[
        list[SourceName],
        typer.Option("--source", "-s", help="Event source; repeat for several."),
    ],
    pacs: Annotated[
        str | None,
        typer.Option(help="DICOMweb base URL; the embedded store when omitted."),
    ] = None,
    orthanc_url: Annotated[
        str | None,
        typer.Option(help="Orthanc REST root for --source orthanc (from --pacs)."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address the listeners bind to.")
    ] = "127.0.0.1",
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between QIDO/Orthanc polls.")
    ] = 30.0,
    stable: Annotated[
        float, typer.Option(min=0, help="QIDO: seconds a study must stay unchanged.")
    ] = 60.0,
    lookback_days: Annotated[
        int | None, typer.Option(help="QIDO: only studies dated this recently.")
    ] = None,
    from_start: Annotated[
        bool, typer.Option(help="Orthanc: read the whole change feed once.")
    ] = False,
    ae_title: Annotated[str, typer.Option(help="DIMSE: the SCP's AE title.")] = (
        "TRIALLENS"
    ),
    dicom_port: Annotated[int, typer.Option(help="DIMSE: port to listen on.")] = 11112,
    quiet: Annotated[
        float, typer.Option(min=0, help="DIMSE: seconds of quiet that end a study.")
    ] = 10.0,
    hl7_port: Annotated[int, typer.Option(help="HL7: MLLP port.")] = 2575,
    webhook_port: Annotated[int, typer.Option(help="Webhook: HTTP port.")] = 8765,
    webhook_secret: Annotated[
        str | None,
        typer.Option(
            envvar="TRIALLENS_WEBHOOK_SECRET",
            help="Webhook: the shared HMAC secret.",
            show_default=False,
        ),
    ] = None,
    exit_when_idle: Annotated[
        bool, typer.Option(help="Stop once no event is due (scripts and checks).")
    ] = False,
) -> None:
    """Watch the PACS (and RIS) for new studies and triage each one.

    Every event is recorded in the durable event log first; a study version is
    triaged once, failures are retried with backoff, and Ctrl-C stops after the
    event in hand.
    """
    from rich.console import Console

    from tools.pacs import open_pacs
    from tools.pacs.watch import Watcher
    from triallens.db import make_engine
    from triallens.errors import ConfigurationError
    from triallens.events import EventLog
    from triallens.settings import apply_offline_switches, get_settings

    apply_offline_switches()
    console = Console(stderr=True)
    settings = get_settings()
    settings.ensure_dirs()
    pacs_url = pacs or settings.pacs_url
    the_pacs = open_pacs(pacs_url, settings)
    event_log = EventLog(make_engine(settings.resolved_database_url))

    options: dict[str, Any] = {
        "host": host,
        "interval": interval,
        "stable": stable,
        "lookback_days": lookback_days,
        "from_start": from_start,
        "ae_title": ae_title,
        "dicom_port": dicom_port,
        "quiet": quiet,
        "hl7_port": hl7_port,
        "webhook_port": webhook_port,
        "webhook_secret": webhook_secret,
        "orthanc_url": orthanc_url or _orthanc_root(pacs_url),
        "spool_dir": settings.data_dir / "dimse-spool",
    }
    sources = [
        _build_source(name, the_pacs, event_log, settings, options)
        for name in dict.fromkeys(source)
    ]
    if not sources:
        raise ConfigurationError("name at least one --source")

    handler = _triage_handler(settings, pacs_url)
    watcher = Watcher(sources, event_log, handler, pacs=the_pacs)
    names = ", ".join(s.name for s in sources)
    console.print(f"Watching [bold]{names}[/]; event log in {_where(settings)}.")
    console.print("Ctrl-C stops after the event in hand.")
    until = None
    if exit_when_idle:

        def until() -> bool:
            return not watcher.process_next()

    watcher.run(until=until)
    counts = event_log.counts()
    console.print(
        f"Stopped: {watcher.processed} events processed; log holds "
        + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing")
    )


def _build_source(
    name: SourceName, pacs: Any, event_log: Any, settings: Any, options: dict[str, Any]
) -> Any:
    from triallens.errors import ConfigurationError

    if name is SourceName.QIDO:
        from tools.pacs.sources.qido import QidoPollingSource

        return QidoPollingSource(
            pacs,
            event_log,
            interval_s=options["interval"],
            stable_s=options["stable"],
            lookback_days=options["lookback_days"],
        )
    if name is SourceName.ORTHANC:
        from tools.pacs.sources.orthanc import OrthancChangesSource

        if not options["orthanc_url"]:
            raise ConfigurationError(
                "--source orthanc needs --orthanc-url "
                "(or a --pacs URL ending in /dicom-web)"
            )
        password = settings.pacs_password
        return OrthancChangesSource(
            options["orthanc_url"],
            event_log,
            username=settings.pacs_username,
            password=password.get_secret_value() if password else None,
            interval_s=options["interval"],
            from_start=options["from_start"],
            timeout_s=settings.pacs_timeout_s,
        )
    if name is SourceName.DIMSE:
        from tools.pacs.sources.dimse import DimseSource

        return DimseSource(
            pacs,
            Path(options["spool_dir"]),
            ae_title=options["ae_title"],
            port=options["dicom_port"],
            host=options["host"],
            quiet_s=options["quiet"],
        )
    if name is SourceName.HL7:
        from tools.pacs.sources.hl7 import Hl7Source

        return Hl7Source(port=options["hl7_port"], host=options["host"])
    from tools.pacs.sources.webhook import WebhookSource

    if not options["webhook_secret"]:
        raise ConfigurationError(
            "--source webhook needs a shared secret: --webhook-secret or "
            "TRIALLENS_WEBHOOK_SECRET"
        )
    return WebhookSource(
        options["webhook_secret"],
        event_log,
        port=options["webhook_port"],
        host=options["host"],
    )


def _triage_handler(settings: Any, pacs_url: str | None) -> Any:
    from agent.service import handle_study_event

    def handler(event: Any) -> None:
        handle_study_event(event, settings, pacs_url)

    return handler


def _orthanc_root(pacs_url: str | None) -> str | None:
    if pacs_url and pacs_url.rstrip("/").endswith("/dicom-web"):
        return pacs_url.rstrip("/").removesuffix("/dicom-web")
    return None


def _where(settings: Any) -> str:
    url = settings.resolved_database_url
    return url.split("@")[-1] if "@" in url else url
