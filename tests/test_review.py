"""Review with e-signatures: decisions, roles, wrong passwords, conflicts."""

from __future__ import annotations

import threading

import pytest

from tools.edc import EmbeddedEdc, RecordStatus
from triallens.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    EdcError,
)
from triallens.review import ReviewService
from triallens.users import UserStore

pytest_plugins = ["tests._db_fixtures"]

PASSWORDS = {
    "rita": "rita-password-1",
    "rolf": "rolf-password-2",
    "adam": "adam-password-3",
    "mona": "mona-password-4",
    "dana": "dana-password-5",
}
ROLES = {
    "rita": ("reader", "Rita Reader"),
    "rolf": ("reader", "Rolf Reader"),
    "adam": ("adjudicator", "Adam Adjudicator"),
    "mona": ("medical_monitor", "Mona Monitor"),
    "dana": ("data_manager", "Dana Manager"),
}


@pytest.fixture
def service(db_url: str) -> ReviewService:
    edc = EmbeddedEdc(db_url)
    users = UserStore(edc.engine, audit=edc.audit)
    for name, (role, printed) in ROLES.items():
        users.add_user(
            name, PASSWORDS[name], role, printed, actor="root", actor_role="admin"
        )
    return ReviewService(edc, users)


def _draft(service: ReviewService, key: str = "k") -> str:
    return service.edc.write_ai_findings(
        trial_id="TL-001",
        site_id="S1",
        subject_id="SUBJ-1",
        time_point_id="WEEK8",
        study_uid="2.25.7",
        items={"sum_of_diameters_mm": 48.5, "overall_response": "PR"},
        model_version="m@1",
        trace_id="t1",
        input_hashes=["h"],
        idempotency_key=key,
    )


def _actions(service: ReviewService, record_id: str) -> list[tuple[str, str]]:
    return [(e.actor, e.action) for e in service.audit.show(f"edc_record:{record_id}")]


def test_accept_is_signed_with_name_time_and_meaning(service: ReviewService) -> None:
    record_id = _draft(service)

    record = service.accept(record_id, username="rita", password=PASSWORDS["rita"])

    assert record.status is RecordStatus.CONFIRMED
    (signature,) = record.signatures
    assert signature.printed_name == "Rita Reader"
    assert signature.meaning == "review" and signature.decision == "confirmed"
    assert signature.signed_at.utcoffset().total_seconds() == 0
    assert "Rita Reader (rita), review," in signature.manifestation()
    assert ("rita", "edc.signature") in _actions(service, record_id)


def test_modify_keeps_the_original_value_and_reason(service: ReviewService) -> None:
    record_id = _draft(service)

    record = service.modify(
        record_id,
        username="adam",
        password=PASSWORDS["adam"],
        values={"sum_of_diameters_mm": 52.0},
        reason="lesion 2 boundary includes vessel",
    )

    item = record.items["sum_of_diameters_mm"]
    assert record.status is RecordStatus.MODIFIED
    assert item.value == 52.0 and item.original_value == 48.5
    assert not item.machine_derived
    assert record.items["overall_response"].machine_derived
    assert record.signatures[0].meaning == "approval"
    change = [
        e
        for e in service.audit.show(f"edc_record:{record_id}")
        if e.action == "edc.modify_item"
    ]
    assert (change[0].old, change[0].new) == (48.5, 52.0)
    assert change[0].reason == "lesion 2 boundary includes vessel"


def test_reject_needs_a_reason(service: ReviewService) -> None:
    record_id = _draft(service)
    with pytest.raises(EdcError, match="reason"):
        service.reject(
            record_id, username="rita", password=PASSWORDS["rita"], reason=" "
        )
    record = service.reject(
        record_id, username="rita", password=PASSWORDS["rita"], reason="wrong series"
    )
    assert record.status is RecordStatus.REJECTED
    assert record.signatures[0].reason == "wrong series"


def test_wrong_password_signs_nothing_and_is_audited(service: ReviewService) -> None:
    record_id = _draft(service)

    with pytest.raises(AuthenticationError):
        service.accept(record_id, username="rita", password="not-her-password")

    record = service.edc.get_record(record_id)
    assert record.status is RecordStatus.DRAFT and record.signatures == []
    assert ("rita", "review.accept.refused") in _actions(service, record_id)


def test_medical_monitor_cannot_sign(service: ReviewService) -> None:
    record_id = _draft(service)

    with pytest.raises(AuthorizationError, match="medical_monitor"):
        service.accept(record_id, username="mona", password=PASSWORDS["mona"])

    assert service.edc.get_record(record_id).signatures == []
    assert ("mona", "review.accept.refused") in _actions(service, record_id)


def test_reader_cannot_lock_and_drafts_cannot_lock(service: ReviewService) -> None:
    record_id = _draft(service)

    with pytest.raises(AuthorizationError):
        service.lock(record_id, username="rita", password=PASSWORDS["rita"])
    with pytest.raises(EdcError, match="machine-derived draft"):
        service.lock(record_id, username="dana", password=PASSWORDS["dana"])
    service.accept(record_id, username="rita", password=PASSWORDS["rita"])
    locked = service.lock(record_id, username="dana", password=PASSWORDS["dana"])

    assert locked.status is RecordStatus.LOCKED
    actions = _actions(service, record_id)
    assert ("rita", "review.lock.refused") in actions
    assert ("dana", "review.lock.refused") in actions
    assert actions[-1] == ("dana", "edc.set_status")


def test_two_reviewers_at_once_one_wins(service: ReviewService) -> None:
    record_id = _draft(service)
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def review(name: str, value: float) -> None:
        barrier.wait()
        try:
            outcomes[name] = service.modify(
                record_id,
                username=name,
                password=PASSWORDS[name],
                values={"sum_of_diameters_mm": value},
                reason=f"{name} remeasured",
                expected_version=1,
            )
        except Exception as exc:
            outcomes[name] = exc

    threads = [
        threading.Thread(target=review, args=("rita", 50.0)),
        threading.Thread(target=review, args=("rolf", 51.0)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    conflicts = [n for n, o in outcomes.items() if isinstance(o, ConflictError)]
    winners = [n for n, o in outcomes.items() if not isinstance(o, Exception)]
    assert len(conflicts) == 1 and len(winners) == 1, outcomes
    winner, loser = winners[0], conflicts[0]
    record = service.edc.get_record(record_id)
    expected = {"rita": 50.0, "rolf": 51.0}[winner]
    assert record.items["sum_of_diameters_mm"].value == expected
    assert [s.user_name for s in record.signatures] == [winner]
    history = service.audit.show(f"edc_record:{record_id}")
    refused = [e for e in history if e.action == "review.modify.refused"]
    assert [e.actor for e in refused] == [loser]
    assert refused[0].new["proposed_values"] == {
        "sum_of_diameters_mm": {"rita": 50.0, "rolf": 51.0}[loser]
    }
    assert service.audit.verify().ok
