"""``triallens trace show STUDY``: a study's MLflow trace as a tree."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

__all__ = ["register"]

trace_app = typer.Typer(help="Read MLflow traces of triage runs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(trace_app, name="trace")


@trace_app.command("show")
def show(
    study: Annotated[
        str,
        typer.Argument(help="Study Instance UID: the PACS's or the de-identified one."),
    ],
) -> None:
    """Print the trace of a study's newest triage run as a tree of spans."""
    from rich.console import Console

    from triallens.errors import NotFoundError
    from triallens.settings import apply_offline_switches, get_settings
    from triallens.store import ResultStore, source_key
    from triallens.tracing import get_tracer

    apply_offline_switches()
    settings = get_settings()
    key = source_key(study, settings.deid_secret.get_secret_value())
    result = ResultStore(settings.resolved_database_url).get_study(study, key)
    if result is None or not result.trace_id:
        raise NotFoundError(
            f"no triage result for study {study} in {settings.data_dir}; "
            "run `triallens triage --study UID` first"
        )
    trace = get_tracer(settings).get(result.trace_id)
    if trace is None:
        raise NotFoundError(f"trace {result.trace_id} is not in the tracking store")
    Console().print(render_trace_tree(trace))


def render_trace_tree(trace: Any) -> Any:
    """A rich Tree of a trace's spans with durations, tags and outputs."""
    from rich.tree import Tree

    info = trace.info
    tags = {k: v for k, v in (info.tags or {}).items() if k.startswith("triallens.")}
    root = Tree(f"[bold]trace {info.trace_id}[/] ({info.state})")
    for key, value in sorted(tags.items()):
        root.add(f"[dim]{key}[/] = {value}")
    spans = list(trace.data.spans)
    children: dict[str | None, list[Any]] = {}
    for span in spans:
        children.setdefault(span.parent_id, []).append(span)

    def add(node: Any, span: Any) -> None:
        duration_ms = (span.end_time_ns - span.start_time_ns) / 1e6
        branch = node.add(f"[bold]{span.name}[/] {duration_ms:.0f} ms")
        outputs = span.outputs
        if outputs:
            text = json.dumps(outputs, default=str)
            branch.add(f"[dim]outputs[/] {text[:300]}")
        for child in sorted(
            children.get(span.span_id, []), key=lambda s: s.start_time_ns
        ):
            add(branch, child)

    for top in children.get(None, []):
        add(root, top)
    return root
