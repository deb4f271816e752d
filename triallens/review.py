"""Human review of machine-derived findings, signed electronically.

A reviewer accepts, modifies (new value and reason) or rejects (reason) a
draft, and signs the decision by entering their password again (21 CFR 11.200:
user name and password). The signature stores the printed name, the UTC time
and its meaning (review or approval) and is linked to the record (11.50,
11.70). Every attempt is audited, including a wrong password, a role that may
not act and a decision that lost a race with another reviewer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING

from triallens.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    EdcError,
    NotFoundError,
    TrialLensError,
)
from triallens.users import Permission, Role, User, UserStore, require

if TYPE_CHECKING:
    from tools.edc.embedded import EmbeddedEdc
    from tools.edc.models import EdcRecord

__all__ = ["Decision", "ReviewService", "SignatureMeaning"]

logger = logging.getLogger(__name__)


class Decision(StrEnum):
    ACCEPT = "accept"
    MODIFY = "modify"
    REJECT = "reject"


class SignatureMeaning(StrEnum):
    REVIEW = "review"
    APPROVAL = "approval"


class ReviewService:
    """Signed decisions on EDC records, with roles enforced and every try audited.

    Parameters
    ----------
    edc
        The embedded EDC holding the records (its audit trail records the
        attempts, next to the changes they describe).
    users
        The user store that checks passwords and roles.
    """

    def __init__(self, edc: EmbeddedEdc, users: UserStore) -> None:
        self.edc = edc
        self.users = users
        self.audit = edc.audit

    def accept(
        self,
        record_id: str,
        *,
        username: str,
        password: str,
        expected_version: int | None = None,
        meaning: SignatureMeaning | None = None,
    ) -> EdcRecord:
        """Confirm a draft as it stands, signed."""
        return self.decide(
            record_id,
            Decision.ACCEPT,
            username=username,
            password=password,
            expected_version=expected_version,
            meaning=meaning,
        )

    def modify(
        self,
        record_id: str,
        *,
        username: str,
        password: str,
        values: Mapping[str, float | int | str | None],
        reason: str,
        expected_version: int | None = None,
        meaning: SignatureMeaning | None = None,
    ) -> EdcRecord:
        """Replace item values with the reviewer's, with a reason, signed."""
        return self.decide(
            record_id,
            Decision.MODIFY,
            username=username,
            password=password,
            values=values,
            reason=reason,
            expected_version=expected_version,
            meaning=meaning,
        )

    def reject(
        self,
        record_id: str,
        *,
        username: str,
        password: str,
        reason: str,
        expected_version: int | None = None,
        meaning: SignatureMeaning | None = None,
    ) -> EdcRecord:
        """Reject a draft with a reason, signed."""
        return self.decide(
            record_id,
            Decision.REJECT,
            username=username,
            password=password,
            reason=reason,
            expected_version=expected_version,
            meaning=meaning,
        )

    def decide(
        self,
        record_id: str,
        decision: Decision | str,
        *,
        username: str,
        password: str,
        values: Mapping[str, float | int | str | None] | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
        meaning: SignatureMeaning | None = None,
    ) -> EdcRecord:
        """Apply one signed decision to a machine-derived draft.

        Parameters
        ----------
        record_id
            The EDC record (an "AI Imaging Findings" draft).
        decision
            accept, modify or reject.
        username, password
            The signer; the password is checked again for every signature.
        values, reason
            New item values (modify) and the reason (modify, reject).
        expected_version
            The record version the reviewer saw; a newer one is a conflict.
        meaning
            The signature's meaning; by default ``review`` for readers and
            ``approval`` for adjudicators.

        Returns
        -------
        EdcRecord
            The record after the decision, with its signatures.

        Raises
        ------
        AuthenticationError
            Wrong password (nothing is signed).
        AuthorizationError
            The user's role may not sign findings (medical monitors, data
            managers, admins).
        ConflictError
            Another reviewer decided first; reload and look again.
        EdcError
            A missing reason or value for the decision, or an unknown item.
        """
        decision = Decision(decision)
        entity = f"edc_record:{record_id}"
        action = f"review.{decision.value}"
        user = self._signer(username, password, action, entity)
        role = user.role.value
        try:
            require(user, Permission.SIGN_FINDINGS, f"{decision} findings")
            _check_inputs(decision, values, reason)
            record = self.edc.get_record(record_id)
            version = (
                expected_version if expected_version is not None else (record.version)
            )
            from tools.edc.models import RecordStatus

            status = {
                Decision.ACCEPT: RecordStatus.CONFIRMED,
                Decision.MODIFY: RecordStatus.MODIFIED,
                Decision.REJECT: RecordStatus.REJECTED,
            }[decision]
            result = self.edc.apply_review(
                record_id,
                decision=status,
                actor=user.username,
                role=role,
                printed_name=user.printed_name,
                meaning=(meaning or _default_meaning(user)).value,
                reason=reason,
                expected_version=version,
                new_values=values if decision is Decision.MODIFY else None,
            )
        except (AuthorizationError, ConflictError, EdcError, NotFoundError) as exc:
            self._audit_refusal(
                user.username, role, action, entity, exc, reason, values
            )
            raise
        logger.info("record %s %s by a %s", record_id, status.value, role)
        return result

    def lock(
        self,
        record_id: str,
        *,
        username: str,
        password: str,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> EdcRecord:
        """Lock a reviewed record (data managers only), after a password check.

        Raises
        ------
        AuthorizationError
            The user's role may not lock (readers, adjudicators, ...).
        EdcError
            The record is a machine-derived draft that no person decided on.
        """
        entity = f"edc_record:{record_id}"
        user = self._signer(username, password, "review.lock", entity)
        try:
            require(user, Permission.LOCK_RECORDS, "lock records")
            return self.edc.set_status(
                record_id,
                "locked",
                actor=user.username,
                role=user.role.value,
                reason=reason,
                expected_version=expected_version,
            )
        except (AuthorizationError, ConflictError, EdcError, NotFoundError) as exc:
            self._audit_refusal(
                user.username, user.role.value, "review.lock", entity, exc, reason
            )
            raise

    # Helpers -------------------------------------------------------------------

    def _signer(self, username: str, password: str, action: str, entity: str) -> User:
        try:
            return self.users.check_password(username, password)
        except AuthenticationError:
            self.audit.record(
                username,
                _known_role(self.users, username),
                f"{action}.refused",
                entity,
                field="signature",
                new="authentication failed",
                reason="wrong user name or password; nothing signed",
            )
            raise

    def _audit_refusal(
        self,
        username: str,
        role: str,
        action: str,
        entity: str,
        exc: TrialLensError,
        reason: str | None,
        values: Mapping[str, float | int | str | None] | None = None,
    ) -> None:
        kind = {
            AuthorizationError: "not permitted",
            ConflictError: "conflict",
        }.get(type(exc), "refused")
        self.audit.record(
            username,
            role,
            f"{action}.refused",
            entity,
            field="signature",
            new={
                "outcome": f"{kind}: {exc}",
                "proposed_values": dict(values) if values else None,
            },
            reason=reason,
        )


def _check_inputs(
    decision: Decision,
    values: Mapping[str, float | int | str | None] | None,
    reason: str | None,
) -> None:
    if decision in (Decision.MODIFY, Decision.REJECT) and not (reason or "").strip():
        raise EdcError(f"a reason is required to {decision} a finding")
    if decision is Decision.MODIFY and not values:
        raise EdcError("modify needs the new value of at least one item")


def _default_meaning(user: User) -> SignatureMeaning:
    if user.role is Role.ADJUDICATOR:
        return SignatureMeaning.APPROVAL
    return SignatureMeaning.REVIEW


def _known_role(users: UserStore, username: str) -> str:
    try:
        return users.get_user(username).role.value
    except NotFoundError:
        return "unknown"
