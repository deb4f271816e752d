"""What the MCP tools talk to: results, EDC, users, reviews and the audit trail.

The stores open on first use, so building the server (and starting the stdio
transport) costs no database work. Every call into another TrialLens package
goes through this module, which keeps the tool modules free of storage detail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from triallens.errors import AuthenticationError, NotFoundError

if TYPE_CHECKING:
    from tools.edc import EdcQuery, EdcRecord, EmbeddedEdc
    from triallens.audit import AuditTrail
    from triallens.domain import TriageResult
    from triallens.settings import Settings
    from triallens.store import ResultStore
    from triallens.users import User, UserStore

__all__ = ["Backend", "Identity"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """The TrialLens user behind one MCP request.

    Attributes
    ----------
    user_name, role, printed_name
        The TrialLens account and its role at the time of the request.
    client
        How the request arrived: ``"stdio"`` (the configured user), or
        ``"http"`` (a bearer token), as written to the audit trail.
    """

    user_name: str
    role: str
    printed_name: str
    client: str


class Backend:
    """The TrialLens stores one MCP server reads and writes.

    Parameters
    ----------
    settings
        Where the databases are (``resolved_database_url`` holds triage
        results and users, ``resolved_edc_url`` the EDC and its audit trail).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # Stores, opened on first use --------------------------------------------

    @cached_property
    def results(self) -> ResultStore:
        from triallens.store import ResultStore

        return ResultStore(self.settings.resolved_database_url)

    @cached_property
    def edc(self) -> EmbeddedEdc:
        from tools.edc import EmbeddedEdc

        return EmbeddedEdc(self.settings.resolved_edc_url)

    @cached_property
    def audit(self) -> AuditTrail:
        return self.edc.audit

    @cached_property
    def users(self) -> UserStore:
        from triallens.users import UserStore

        return UserStore(self.edc.engine, audit=self.audit)

    # Identity -----------------------------------------------------------------

    def identity_for_token(self, token: str) -> Identity | None:
        """The active user an API token belongs to, or None."""
        try:
            user = self.users.authenticate_token(token)
        except AuthenticationError:
            return None
        except NotFoundError:
            return None
        return _identity(user, client="http")

    def identity_for_user(self, user_name: str, client: str) -> Identity:
        """The configured user of a stdio server, looked up on every request.

        Raises
        ------
        AuthenticationError
            When the user does not exist or is deactivated.
        """
        try:
            user = self.users.get_user(user_name)
        except NotFoundError:
            user = None
        if user is None or not user.active:
            raise AuthenticationError(
                "the configured MCP user is unknown or inactive; set "
                "TRIALLENS_MCP_USER to an active TrialLens user"
            )
        return _identity(user, client=client)

    # Triage results -----------------------------------------------------------

    def study(self, study_uid: str) -> TriageResult:
        """The newest triage result of a study.

        Raises
        ------
        NotFoundError
            When TrialLens has not triaged this study.
        """
        result = self.results.get_study(study_uid)
        if result is None:
            raise NotFoundError(
                f"no triage result for study {study_uid}; list the worklist to "
                "see the studies TrialLens has triaged"
            )
        return result

    def timeline(self, trial_id: str, subject_id: str) -> list[TriageResult]:
        """The subject's triage results in visit order.

        Raises
        ------
        NotFoundError
            When no study of this subject has been triaged.
        """
        results = self.results.subject_timeline(trial_id, subject_id)
        if not results:
            raise NotFoundError(
                f"no triaged studies for subject {subject_id} in trial {trial_id}"
            )
        return results

    def record(self, result: TriageResult) -> EdcRecord | None:
        """The EDC findings record written for a triage result, if any."""
        if not result.edc_record_id:
            return None
        try:
            return self.edc.get_record(result.edc_record_id)
        except NotFoundError:
            logger.warning("triage result names an EDC record the EDC lacks")
            return None

    # Writes -------------------------------------------------------------------

    def review(
        self,
        identity: Identity,
        record_id: str,
        *,
        decision: str,
        password: str,
        reason: str | None,
        new_values: dict[str, float | str] | None,
        expected_version: int | None = None,
    ) -> EdcRecord:
        """Sign a decision on an EDC findings record (password re-entered).

        Raises
        ------
        AuthenticationError
            When the password is wrong (nothing is signed).
        AuthorizationError
            When the user's role may not sign findings.
        ConflictError
            When someone else decided on the record first.
        """
        from triallens.review import ReviewService

        return ReviewService(self.edc, self.users).decide(
            record_id,
            decision,
            username=identity.user_name,
            password=password,
            values=new_values,
            reason=reason,
            expected_version=expected_version,
        )

    def resume_triage(self, study_uid: str, decision: dict[str, Any]) -> bool:
        """Hand a signed decision to the study's triage thread, if one waits.

        The decision is already signed and stored in the EDC; a failure here
        is logged for the operator and does not undo it.
        """
        try:
            from agent.triage import TriageContext
            from agent.triage.graph import resume_review

            return resume_review(study_uid, decision, TriageContext(self.settings))
        except Exception:
            logger.warning("triage thread not resumed after a review", exc_info=True)
            return False

    def raise_query(self, identity: Identity, **fields: Any) -> EdcQuery:
        """Open an EDC query as ``identity`` (audited by the EDC)."""
        return self.edc.raise_query(
            actor=identity.user_name, role=identity.role, **fields
        )

    def audit_call(
        self,
        identity: Identity,
        action: str,
        entity: str,
        *,
        new: Any = None,
        reason: str | None = None,
    ) -> str:
        """Write one audit record for an MCP request, naming the client."""
        payload = {"client": identity.client, "via": "mcp"}
        if isinstance(new, dict):
            payload.update(new)
        elif new is not None:
            payload["value"] = new
        return self.audit.record(
            identity.user_name,
            identity.role,
            action,
            entity,
            new=payload,
            reason=reason,
        )


def _identity(user: User, client: str) -> Identity:
    return Identity(
        user_name=user.username,
        role=user.role.value,
        printed_name=user.printed_name,
        client=client,
    )
