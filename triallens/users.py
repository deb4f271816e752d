"""Local users, roles, API tokens and password checks for e-signatures.

Passwords are hashed with Argon2id; API tokens are random 256-bit strings of
which only a SHA-256 digest is stored (a token is shown once, when created).
Every change to a user, a role or a token is written to the audit trail.

Roles and what they may do:

============== ==========================================================
reader         read; sign findings (accept, modify, reject)
adjudicator    read; sign findings and adjudication decisions
medical_monitor read only
data_manager   read; raise and close queries; lock records; export; post
               clinical data (the EDC web-service account)
admin          read; manage users and tokens
============== ==========================================================
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    ForeignKey,
    MetaData,
    RowMapping,
    String,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from triallens.audit import AuditTrail
from triallens.db import make_engine
from triallens.errors import (
    AuthenticationError,
    AuthorizationError,
    NotFoundError,
    TrialLensError,
)

__all__ = [
    "PERMISSIONS",
    "ApiToken",
    "Permission",
    "Role",
    "User",
    "UserStore",
    "require",
]

logger = logging.getLogger(__name__)


class Role(StrEnum):
    READER = "reader"
    ADJUDICATOR = "adjudicator"
    MEDICAL_MONITOR = "medical_monitor"
    DATA_MANAGER = "data_manager"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"
    SIGN_FINDINGS = "sign_findings"
    ADJUDICATE = "adjudicate"
    MANAGE_QUERIES = "manage_queries"
    LOCK_RECORDS = "lock_records"
    EXPORT = "export"
    WRITE_CLINICAL_DATA = "write_clinical_data"
    MANAGE_USERS = "manage_users"


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.READER: frozenset({Permission.READ, Permission.SIGN_FINDINGS}),
    Role.ADJUDICATOR: frozenset(
        {Permission.READ, Permission.SIGN_FINDINGS, Permission.ADJUDICATE}
    ),
    Role.MEDICAL_MONITOR: frozenset({Permission.READ}),
    Role.DATA_MANAGER: frozenset(
        {
            Permission.READ,
            Permission.MANAGE_QUERIES,
            Permission.LOCK_RECORDS,
            Permission.EXPORT,
            Permission.WRITE_CLINICAL_DATA,
        }
    ),
    Role.ADMIN: frozenset({Permission.READ, Permission.MANAGE_USERS}),
}

MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "tlk_"

users_metadata = MetaData()

users_table = Table(
    "users",
    users_metadata,
    Column("username", String(100), primary_key=True),
    Column("printed_name", String(200), nullable=False),
    Column("role", String(30), nullable=False),
    Column("password_hash", String(300), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
)

api_tokens_table = Table(
    "api_tokens",
    users_metadata,
    Column("token_id", String(36), primary_key=True),
    Column("username", String(100), ForeignKey("users.username"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", String(40), nullable=False),
    Column("revoked_at", String(40)),
)


@dataclass(frozen=True)
class User:
    """A person or service account (never a trial subject)."""

    username: str
    printed_name: str
    role: Role
    active: bool

    def can(self, permission: Permission) -> bool:
        return self.active and permission in PERMISSIONS[self.role]


@dataclass(frozen=True)
class ApiToken:
    token_id: str
    username: str
    name: str
    created_at: str
    revoked_at: str | None


def require(user: User, permission: Permission, action: str) -> None:
    """Raise :class:`AuthorizationError` unless ``user`` holds ``permission``."""
    if not user.can(permission):
        raise AuthorizationError(
            f"user {user.username} ({user.role}) may not {action}; "
            f"it needs a role with the {permission} permission"
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class UserStore:
    """Users, roles and API tokens in a SQLite or PostgreSQL database.

    Parameters
    ----------
    engine_or_url
        An engine or a database URL; tables are created when missing.
    audit
        Where user and role changes are recorded; by default an
        :class:`AuditTrail` in the same database.
    """

    def __init__(
        self, engine_or_url: Engine | str, audit: AuditTrail | None = None
    ) -> None:
        if isinstance(engine_or_url, str):
            engine_or_url = make_engine(engine_or_url)
        self.engine: Engine = engine_or_url
        users_metadata.create_all(self.engine)
        self.audit = audit or AuditTrail(self.engine)
        self._hasher = PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))

    # Users -------------------------------------------------------------------

    def add_user(
        self,
        username: str,
        password: str,
        role: Role | str,
        printed_name: str,
        *,
        actor: str,
        actor_role: str,
    ) -> User:
        """Create a user.

        Raises
        ------
        TrialLensError
            When the name is taken, the role unknown or the password too short.
        """
        role = _role(role)
        _check_password(password)
        if (
            not username
            or not username.replace(".", "").replace("-", "").replace("_", "").isalnum()
        ):
            raise TrialLensError(
                "a user name may hold letters, digits, '.', '-' and '_' only"
            )
        now = _now()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(users_table).values(
                        username=username,
                        printed_name=printed_name,
                        role=role.value,
                        password_hash=self._hasher.hash(password),
                        active=True,
                        created_at=now,
                        updated_at=now,
                    )
                )
                self.audit.record(
                    actor,
                    actor_role,
                    "user.add",
                    f"user:{username}",
                    new={"role": role.value, "printed_name": printed_name},
                    connection=conn,
                )
        except IntegrityError as exc:
            raise TrialLensError(f"user {username} already exists") from exc
        return self.get_user(username)

    def get_user(self, username: str) -> User:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(users_table).where(users_table.c.username == username)
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFoundError(f"no user {username}")
        return _user(row)

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(select(users_table).order_by(users_table.c.username))
                .mappings()
                .all()
            )
        return [_user(row) for row in rows]

    def set_role(
        self, username: str, role: Role | str, *, actor: str, actor_role: str
    ) -> User:
        """Change a user's role (audited with the old and new role)."""
        role = _role(role)
        old = self.get_user(username)
        with self.engine.begin() as conn:
            conn.execute(
                update(users_table)
                .where(users_table.c.username == username)
                .values(role=role.value, updated_at=_now())
            )
            self.audit.record(
                actor,
                actor_role,
                "user.set_role",
                f"user:{username}",
                field="role",
                old=old.role.value,
                new=role.value,
                connection=conn,
            )
        return self.get_user(username)

    def set_active(
        self, username: str, active: bool, *, actor: str, actor_role: str
    ) -> User:
        """Enable or disable a user (a disabled user can neither log in nor sign)."""
        old = self.get_user(username)
        with self.engine.begin() as conn:
            conn.execute(
                update(users_table)
                .where(users_table.c.username == username)
                .values(active=active, updated_at=_now())
            )
            self.audit.record(
                actor,
                actor_role,
                "user.set_active",
                f"user:{username}",
                field="active",
                old=old.active,
                new=active,
                connection=conn,
            )
        return self.get_user(username)

    def set_password(
        self, username: str, password: str, *, actor: str, actor_role: str
    ) -> None:
        """Replace a password (the audit says it changed, never what it is)."""
        _check_password(password)
        self.get_user(username)
        with self.engine.begin() as conn:
            conn.execute(
                update(users_table)
                .where(users_table.c.username == username)
                .values(password_hash=self._hasher.hash(password), updated_at=_now())
            )
            self.audit.record(
                actor,
                actor_role,
                "user.set_password",
                f"user:{username}",
                field="password",
                connection=conn,
            )

    # Authentication ------------------------------------------------------------

    def check_password(self, username: str, password: str) -> User:
        """The user, when ``password`` is theirs and they are active.

        Raises
        ------
        AuthenticationError
            For an unknown user, a wrong password or a disabled account (the
            message does not say which).
        """
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(users_table).where(users_table.c.username == username)
                )
                .mappings()
                .first()
            )
        stored = row["password_hash"] if row is not None else self._dummy_hash
        try:
            self._hasher.verify(stored, password)
            valid = row is not None and bool(row["active"])
        except (VerificationError, InvalidHashError):
            valid = False
        if not valid or row is None:
            raise AuthenticationError(
                f"user name or password is wrong for {username}; try again"
            )
        if self._hasher.check_needs_rehash(stored):
            with self.engine.begin() as conn:
                conn.execute(
                    update(users_table)
                    .where(users_table.c.username == username)
                    .values(password_hash=self._hasher.hash(password))
                )
        return _user(row)

    # API tokens ----------------------------------------------------------------

    def create_token(
        self, username: str, name: str, *, actor: str, actor_role: str
    ) -> str:
        """A new API token for ``username``; returned once, stored only hashed."""
        self.get_user(username)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(
                insert(api_tokens_table).values(
                    token_id=token_id,
                    username=username,
                    name=name,
                    token_hash=_token_digest(token),
                    created_at=_now(),
                )
            )
            self.audit.record(
                actor,
                actor_role,
                "token.create",
                f"user:{username}",
                field="api_token",
                new={"token_id": token_id, "name": name},
                connection=conn,
            )
        return token

    def authenticate_token(self, token: str) -> User:
        """The user an API token belongs to.

        Raises
        ------
        AuthenticationError
            For an unknown or revoked token, or a disabled user.
        """
        digest = _token_digest(token)
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(api_tokens_table).where(
                        api_tokens_table.c.token_hash == digest
                    )
                )
                .mappings()
                .first()
            )
        if (
            row is None
            or row["revoked_at"] is not None
            or not hmac.compare_digest(row["token_hash"], digest)
        ):
            raise AuthenticationError("the API token is unknown or revoked")
        user = self.get_user(row["username"])
        if not user.active:
            raise AuthenticationError("the API token's user is disabled")
        return user

    def list_tokens(self, username: str | None = None) -> list[ApiToken]:
        query = select(api_tokens_table).order_by(api_tokens_table.c.created_at)
        if username is not None:
            query = query.where(api_tokens_table.c.username == username)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            ApiToken(
                token_id=row["token_id"],
                username=row["username"],
                name=row["name"],
                created_at=row["created_at"],
                revoked_at=row["revoked_at"],
            )
            for row in rows
        ]

    def revoke_token(self, token_id: str, *, actor: str, actor_role: str) -> None:
        with self.engine.begin() as conn:
            row = (
                conn.execute(
                    select(api_tokens_table).where(
                        api_tokens_table.c.token_id == token_id
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise NotFoundError(f"no API token {token_id}")
            conn.execute(
                update(api_tokens_table)
                .where(api_tokens_table.c.token_id == token_id)
                .values(revoked_at=_now())
            )
            self.audit.record(
                actor,
                actor_role,
                "token.revoke",
                f"user:{row['username']}",
                field="api_token",
                old={"token_id": token_id, "name": row["name"]},
                connection=conn,
            )


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError as exc:
        known = ", ".join(r.value for r in Role)
        raise TrialLensError(f"unknown role {role!r}; use one of {known}") from exc


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise TrialLensError(
            f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
        )


def _user(row: RowMapping) -> User:
    return User(
        username=row["username"],
        printed_name=row["printed_name"],
        role=Role(row["role"]),
        active=bool(row["active"]),
    )
