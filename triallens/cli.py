"""The ``triallens`` command line.

Commands import their heavy dependencies inside the command body so that
``triallens --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys

import typer
from rich.console import Console

from triallens.errors import TrialLensError

try:  # typer ships its own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - typer releases that use click itself
    from click.exceptions import NoArgsIsHelpError, UsageError

__all__ = ["app", "main"]

app = typer.Typer(
    name="triallens",
    help="AI triage and measurement for clinical-trial imaging.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """AI triage and measurement for clinical-trial imaging."""


console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _register_commands() -> None:
    """Attach every command group. Each module keeps its imports light."""
    # Registration block: one line per command module.
    from triallens.commands import audit as audit_command
    from triallens.commands import core
    from triallens.commands import deid as deid_command
    from triallens.commands import edc as edc_command
    from triallens.commands import evaluate as evaluate_command
    from triallens.commands import mcp as mcp_command
    from triallens.commands import synth as synth_command
    from triallens.commands import trace as trace_command
    from triallens.commands import users as users_command
    from triallens.commands import watch as watch_command

    core.register(app)
    trace_command.register(app)
    mcp_command.register(app)
    deid_command.register(app)
    audit_command.register(app)
    edc_command.register(app)
    users_command.register(app)
    synth_command.register(app)
    watch_command.register(app)
    evaluate_command.register(app)


def _command_path(exc: UsageError, args: list[str]) -> str:
    """The command a usage error is about, for the ``--help`` hint.

    An option missing its value fails while the root group still parses, so
    the error's own context can be the root; the command words given on the
    command line then name the sub-command.
    """
    ctx = exc.ctx
    if ctx is None:
        root = typer.main.get_command(app)
        ctx = root.make_context("triallens", [], resilient_parsing=True)
    path = ctx.command_path
    command = ctx.command
    for word in args[len(path.split()) - 1 :]:
        get = getattr(command, "get_command", None)
        if word.startswith("-") or get is None:
            break
        found = get(ctx, word)
        if found is None:
            break
        path, command = f"{path} {word}", found
    return path


def main() -> None:
    """Entry point: run the CLI and turn TrialLens errors into one clear line."""
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from triallens.settings import apply_offline_switches

    apply_offline_switches()
    # MLflow and its migrations announce the creation of a new store at INFO.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _register_commands()
    try:
        status = app(standalone_mode=False, prog_name="triallens")
    except NoArgsIsHelpError as exc:
        console.print(exc.ctx.get_help() if exc.ctx else str(exc), highlight=False)
        sys.exit(2)
    except UsageError as exc:
        command = _command_path(exc, sys.argv[1:])
        message = " ".join(exc.format_message().split())
        err_console.print(
            f"[bold red]error:[/] {message} (see '{command} --help')",
            highlight=False,
        )
        sys.exit(2)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except TrialLensError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except OSError as exc:
        # A path the user gave that cannot be read or written.
        where = f": {exc.filename}" if exc.filename else ""
        err_console.print(
            f"[bold red]error:[/] {exc.strerror or exc}{where}", highlight=False
        )
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        if os.environ.get("TRIALLENS_DEBUG"):
            raise
        err_console.print(
            f"[bold red]error:[/] unexpected {type(exc).__name__}; "
            "rerun with TRIALLENS_DEBUG=1 for details",
            highlight=False,
        )
        sys.exit(1)
    if isinstance(status, int) and status:
        sys.exit(status)
