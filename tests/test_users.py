"""The user store: Argon2 passwords, roles, hashed API tokens, audited changes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from triallens.errors import AuthenticationError, AuthorizationError, TrialLensError
from triallens.users import (
    Permission,
    Role,
    UserStore,
    api_tokens_table,
    require,
    users_table,
)

pytest_plugins = ["tests._db_fixtures"]

ADMIN = {"actor": "admin1", "actor_role": "admin"}


def test_passwords_are_argon2_hashed_and_checked(db_url: str) -> None:
    store = UserStore(db_url)
    store.add_user("alice", "correct horse battery", "reader", "Alice Reader", **ADMIN)

    with store.engine.connect() as conn:
        stored = conn.execute(select(users_table.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    user = store.check_password("alice", "correct horse battery")
    assert (user.username, user.role, user.printed_name) == (
        "alice",
        Role.READER,
        "Alice Reader",
    )
    with pytest.raises(AuthenticationError):
        store.check_password("alice", "wrong password!!")
    with pytest.raises(AuthenticationError):
        store.check_password("nobody", "correct horse battery")


def test_user_and_role_changes_are_audited(db_url: str) -> None:
    store = UserStore(db_url)
    store.add_user("bob", "a long password", "reader", "Bob B", **ADMIN)
    store.set_role("bob", "adjudicator", **ADMIN)
    store.set_password("bob", "another long one", **ADMIN)
    store.set_active("bob", False, **ADMIN)

    history = store.audit.show("user:bob")

    assert [e.action for e in history] == [
        "user.add",
        "user.set_role",
        "user.set_password",
        "user.set_active",
    ]
    assert (history[1].old, history[1].new) == ("reader", "adjudicator")
    assert all(e.actor == "admin1" and e.role == "admin" for e in history)
    assert "another long one" not in str([(e.old, e.new) for e in history])
    assert store.get_user("bob").role is Role.ADJUDICATOR
    with pytest.raises(AuthenticationError):
        store.check_password("bob", "another long one")
    assert store.audit.verify().ok


def test_api_tokens_are_stored_hashed_and_can_be_revoked(db_url: str) -> None:
    store = UserStore(db_url)
    store.add_user("svc", "service password", "reader", "MCP service", **ADMIN)
    token = store.create_token("svc", "mcp", **ADMIN)

    with store.engine.connect() as conn:
        stored = conn.execute(select(api_tokens_table.c.token_hash)).scalar_one()
    assert token not in stored and len(stored) == 64
    assert store.authenticate_token(token).username == "svc"
    with pytest.raises(AuthenticationError):
        store.authenticate_token(token + "x")

    (listed,) = store.list_tokens("svc")
    store.revoke_token(listed.token_id, **ADMIN)
    with pytest.raises(AuthenticationError, match="revoked"):
        store.authenticate_token(token)
    actions = [e.action for e in store.audit.show("user:svc")]
    assert actions == ["user.add", "token.create", "token.revoke"]
    assert token not in str([e.new for e in store.audit.show("user:svc")])


def test_bad_input_is_refused(db_url: str) -> None:
    store = UserStore(db_url)
    with pytest.raises(TrialLensError, match="at least"):
        store.add_user("c", "short", "reader", "C", **ADMIN)
    with pytest.raises(TrialLensError, match="unknown role"):
        store.add_user("c", "long enough pw", "superuser", "C", **ADMIN)
    store.add_user("c", "long enough pw", "reader", "C", **ADMIN)
    with pytest.raises(TrialLensError, match="already exists"):
        store.add_user("c", "long enough pw", "reader", "C", **ADMIN)
    assert [u.username for u in store.list_users()] == ["c"]


def test_role_permissions() -> None:
    from triallens.users import User

    monitor = User("m", "M", Role.MEDICAL_MONITOR, True)
    reader = User("r", "R", Role.READER, True)
    assert reader.can(Permission.SIGN_FINDINGS)
    assert not reader.can(Permission.LOCK_RECORDS)
    assert not monitor.can(Permission.SIGN_FINDINGS)
    assert User("d", "D", Role.DATA_MANAGER, True).can(Permission.MANAGE_QUERIES)
    assert User("a", "A", Role.ADMIN, True).can(Permission.MANAGE_USERS)
    assert not User("r2", "R", Role.READER, False).can(Permission.READ)
    with pytest.raises(AuthorizationError, match="medical_monitor"):
        require(monitor, Permission.SIGN_FINDINGS, "sign findings")
