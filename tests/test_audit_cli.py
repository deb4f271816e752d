"""``triallens audit verify|show`` and ``triallens users`` through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from tools.edc import EmbeddedEdc
from triallens.db import make_engine

pytest_plugins = ["tests._db_fixtures"]


def _cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from triallens.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def _populate(url: str) -> str:
    edc = EmbeddedEdc(url)
    record_id = edc.write_ai_findings(
        trial_id="TL-001",
        subject_id="SUBJ-1",
        time_point_id="WEEK8",
        items={"lvef_percent": 47.0},
        model_version="lvef@1",
        trace_id="tr-42",
        input_hashes=["h"],
        idempotency_key="k",
    )
    edc.set_status(record_id, "rejected", actor="rita", role="reader", reason="motion")
    edc.set_status(record_id, "locked", actor="dana", role="data_manager")
    edc.engine.dispose()
    return record_id


def test_verify_reports_intact_then_names_the_tampered_record(db_url: str) -> None:
    record_id = _populate(db_url)

    intact = _cli("audit", "verify", "--database", db_url)
    assert intact.returncode == 0, intact.stderr
    assert "intact" in intact.stdout and "3 records verified" in intact.stdout

    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_records SET new_value = '\"confirmed\"' WHERE seq = 2")
        )
    engine.dispose()
    broken = _cli("audit", "verify", "--database", db_url)

    assert broken.returncode == 1
    assert "BROKEN" in broken.stdout
    assert "record #2" in broken.stdout and "changed" in broken.stdout
    history = _cli("audit", "show", f"edc_record:{record_id}", "--database", db_url)
    assert history.returncode == 0
    assert "edc.write_ai_findings" in history.stdout
    assert "reason: motion" in history.stdout
    assert "model lvef@1 trace tr-42" in history.stdout


def test_verify_names_a_deleted_record(db_url: str) -> None:
    _populate(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq = 2"))
    engine.dispose()

    broken = _cli("audit", "verify", "--database", db_url)

    assert broken.returncode == 1
    assert "record #3" in broken.stdout and "deleted" in broken.stdout


def test_users_add_list_token_are_audited(tmp_path: Path) -> None:
    env = {
        "TRIALLENS_DATA_DIR": str(tmp_path / "data"),
        "TRIALLENS_NEW_PASSWORD": "a-long-password",
    }

    added = _cli(
        "users", "add", "dana", "--role", "data_manager", "--name", "Dana M", env=env
    )
    listed = _cli("users", "list", env=env)
    token = _cli("users", "token", "dana", "--label", "pipeline", env=env)
    bad = _cli("users", "add", "x", "--role", "wizard", "--name", "X", env=env)
    shown = _cli("audit", "show", "user:dana", env=env)

    assert added.returncode == 0, added.stderr
    assert "dana" in listed.stdout and "data_manager" in listed.stdout
    assert token.returncode == 0 and token.stdout.strip().startswith("tlk_")
    assert bad.returncode == 2 and "unknown role" in bad.stderr
    assert "user.add" in shown.stdout and "token.create" in shown.stdout
    assert token.stdout.strip() not in shown.stdout


def test_verify_names_reordered_records(db_url: str) -> None:
    _populate(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET seq = 100 WHERE seq = 1"))
        conn.execute(text("UPDATE audit_records SET seq = 1 WHERE seq = 2"))
        conn.execute(text("UPDATE audit_records SET seq = 2 WHERE seq = 100"))
    engine.dispose()

    broken = _cli("audit", "verify", "--database", db_url)

    assert broken.returncode == 1
    assert "record #1" in broken.stdout and "record #2" in broken.stdout
    assert broken.stdout.count("reordered") >= 2 and "changed" not in broken.stdout


def test_verify_catches_a_wiped_trail(db_url: str) -> None:
    _populate(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records"))
        conn.execute(text("DELETE FROM audit_chain_head"))
    engine.dispose()

    broken = _cli("audit", "verify", "--database", db_url)

    assert broken.returncode == 1
    assert "audit trail is empty" in broken.stdout


def test_verify_of_a_missing_database_fails(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    proc = _cli("audit", "verify", "--database", f"sqlite:///{missing}")

    # Named on the command line: a clear error, and nothing is created.
    assert proc.returncode == 2
    assert f"no database at sqlite:///{missing}" in proc.stderr
    assert not missing.exists()


def test_verify_of_the_settings_databases_gone_is_reported_as_missing(
    tmp_path: Path,
) -> None:
    proc = _cli("audit", "verify", env={"TRIALLENS_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 1
    assert "MISSING" in proc.stdout and "report it" in proc.stdout
    assert not list(tmp_path.glob("*.db"))
