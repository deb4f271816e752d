"""``triallens users``: add users, list them, issue API tokens."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from triallens.users import UserStore

__all__ = ["register"]

users_app = typer.Typer(
    name="users", help="Users, roles and API tokens.", no_args_is_help=True
)

PASSWORD_ENV = "TRIALLENS_NEW_PASSWORD"


def register(app: typer.Typer) -> None:
    app.add_typer(users_app)


def _store() -> UserStore:
    from tools.edc import EmbeddedEdc
    from triallens.settings import get_settings
    from triallens.users import UserStore

    settings = get_settings()
    settings.ensure_dirs()
    edc = EmbeddedEdc(settings.resolved_edc_url)
    return UserStore(edc.engine, audit=edc.audit)


def _operator() -> str:
    """The local operator running the CLI (an administrator of this machine)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


@users_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[
        str,
        typer.Option(
            help="reader, adjudicator, medical_monitor, data_manager or admin."
        ),
    ],
    name: Annotated[
        str, typer.Option("--name", help="Printed name shown with signatures.")
    ],
) -> None:
    """Add a user. The password is asked for (or read from TRIALLENS_NEW_PASSWORD)."""
    password = os.environ.get(PASSWORD_ENV) or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    user = _store().add_user(
        username, password, role, name, actor=_operator(), actor_role="admin"
    )
    typer.echo(f"added {user.username} ({user.role}, {user.printed_name})")


@users_app.command("list")
def list_users() -> None:
    """List users with their roles."""
    from rich.console import Console
    from rich.table import Table

    store = _store()
    table = Table(title="TrialLens users")
    for column in ("user", "printed name", "role", "active", "API tokens"):
        table.add_column(column)
    for user in store.list_users():
        tokens = [t for t in store.list_tokens(user.username) if t.revoked_at is None]
        table.add_row(
            user.username,
            user.printed_name,
            user.role.value,
            "yes" if user.active else "no",
            ", ".join(t.name for t in tokens),
        )
    Console().print(table)


@users_app.command("token")
def token(
    username: Annotated[str, typer.Argument(help="The user the token acts as.")],
    label: Annotated[
        str, typer.Option(help="What the token is for, e.g. mcp-client.")
    ] = "api",
) -> None:
    """Create an API token (printed once; only its hash is stored)."""
    value = _store().create_token(
        username, label, actor=_operator(), actor_role="admin"
    )
    typer.echo(value)
    typer.echo("Store this token now; TrialLens keeps only its hash.", err=True)


@users_app.command("set-role")
def set_role(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Argument(help="The new role.")],
) -> None:
    """Change a user's role (audited)."""
    user = _store().set_role(username, role, actor=_operator(), actor_role="admin")
    typer.echo(f"{user.username} is now {user.role}")
