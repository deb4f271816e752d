"""The audit trail: append-only, hash-chained, tamper found and named."""

from __future__ import annotations

import threading

from sqlalchemy import text

from triallens.audit import AuditTrail
from triallens.db import make_engine

pytest_plugins = ["tests._db_fixtures"]


def _trail_with(url: str, count: int) -> AuditTrail:
    trail = AuditTrail(url)
    for index in range(count):
        trail.record(
            f"user{index}",
            "reader",
            "review.accept",
            f"edc_record:R{index % 2}",
            field="status",
            old="draft",
            new="confirmed",
            reason=f"reason {index}",
            model_version="model-abc" if index == 0 else None,
            trace_id="trace-1" if index == 0 else None,
        )
    return trail


def test_records_keep_every_field_and_verify(db_url: str) -> None:
    trail = _trail_with(db_url, 4)

    history = trail.show("edc_record:R0")

    assert [entry.seq for entry in history] == [1, 3]
    first = history[0]
    assert (first.actor, first.role, first.action) == (
        "user0",
        "reader",
        "review.accept",
    )
    assert (first.field, first.old, first.new) == ("status", "draft", "confirmed")
    assert first.model_version == "model-abc" and first.trace_id == "trace-1"
    assert first.recorded_at.endswith("+00:00")
    assert trail.verify().ok
    assert trail.verify().checked == 4
    assert len(trail.show()) == 4
    assert [e.seq for e in trail.show("edc_record:*")] == [1, 2, 3, 4]


def test_values_of_any_json_type_round_trip(db_url: str) -> None:
    trail = AuditTrail(db_url)
    trail.record("a", "admin", "x", "e", old={"k": [1, 2.5]}, new=None)
    entry = trail.show("e")[0]
    assert entry.old == {"k": [1, 2.5]} and entry.new is None


def _execute(url: str, *statements: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def test_an_edited_record_is_named(db_url: str) -> None:
    trail = _trail_with(db_url, 5)
    _execute(
        db_url, "UPDATE audit_records SET new_value = '\"rejected\"' WHERE seq = 3"
    )

    report = trail.verify()

    assert not report.ok
    assert [(p.seq, p.kind) for p in report.problems] == [(3, "changed")]
    assert "record #3" in str(report)


def test_a_deleted_record_is_named(db_url: str) -> None:
    trail = _trail_with(db_url, 5)
    _execute(db_url, "DELETE FROM audit_records WHERE seq = 2")

    report = trail.verify()

    assert [(p.seq, p.kind) for p in report.problems] == [(3, "deleted")]
    assert "#2" in report.problems[0].detail


def test_a_deleted_last_record_is_found(db_url: str) -> None:
    trail = _trail_with(db_url, 5)
    _execute(db_url, "DELETE FROM audit_records WHERE seq = 5")

    report = trail.verify()

    assert [(p.seq, p.kind) for p in report.problems] == [(5, "deleted")]


def test_reordered_records_are_named(db_url: str) -> None:
    trail = _trail_with(db_url, 5)
    _execute(
        db_url,
        "UPDATE audit_records SET seq = 100 WHERE seq = 2",
        "UPDATE audit_records SET seq = 2 WHERE seq = 3",
        "UPDATE audit_records SET seq = 3 WHERE seq = 100",
    )

    report = trail.verify()

    kinds = {(p.seq, p.kind) for p in report.problems}
    assert (2, "reordered") in kinds and (3, "reordered") in kinds
    assert all(p.kind == "reordered" for p in report.problems)


def test_a_rehashed_edit_still_breaks_the_chain(db_url: str) -> None:
    from triallens.audit import compute_hash

    trail = _trail_with(db_url, 4)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        row = dict(
            conn.execute(text("SELECT * FROM audit_records WHERE seq = 2"))
            .mappings()
            .one()
        )
        row["reason"] = "forged"
        conn.execute(
            text("UPDATE audit_records SET reason = :r, hash = :h WHERE seq = 2"),
            {"r": "forged", "h": compute_hash(row)},
        )
    engine.dispose()

    report = trail.verify()

    assert not report.ok
    assert report.problems[0].seq == 3


def test_concurrent_writers_keep_one_chain(db_url: str) -> None:
    trail = AuditTrail(db_url)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            own = AuditTrail(db_url)
            for index in range(10):
                own.record(f"w{worker}", "system", "tick", f"e{worker}", new=index)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    report = trail.verify()
    assert report.ok, str(report)
    assert report.checked == 40
    assert [e.new for e in trail.show("e2")] == list(range(10))
