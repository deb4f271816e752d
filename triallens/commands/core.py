"""Core commands: demo, triage."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print the TrialLens version."""
        from triallens import __version__

        typer.echo(__version__)
