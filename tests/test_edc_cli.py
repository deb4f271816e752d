"""``triallens edc serve|export|import|show`` through the real CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._shared import shared_standard
from tools.edc import EmbeddedEdc, RecordStatus
from tools.edc.rws import RwsEdc
from triallens.review import ReviewService
from triallens.users import UserStore

CLI = [sys.executable, "-c", "from triallens.cli import main; main()"]


def _env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "TRIALLENS_DATA_DIR": str(data_dir)}


def _run(data_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env={**_env(data_dir), **extra},
        timeout=120,
        check=False,
    )


def _seed(data_dir: Path) -> tuple[EmbeddedEdc, str]:
    edc = EmbeddedEdc(f"sqlite:///{data_dir / 'edc.db'}")
    users = UserStore(edc.engine, audit=edc.audit)
    users.add_user(
        "rita", "rita-password", "reader", "Rita Reader", actor="t", actor_role="admin"
    )
    users.add_user(
        "dana", "dana-password", "data_manager", "Dana M", actor="t", actor_role="admin"
    )
    record_id = edc.write_ai_findings(
        trial_id="TL-001",
        subject_id="SUBJ-1",
        time_point_id="WEEK8",
        items={"sum_of_diameters_mm": 30.0},
        model_version="recist@1",
        input_hashes=["sha256:q"],
        idempotency_key="k",
    )
    ReviewService(edc, users).modify(
        record_id,
        username="rita",
        password="rita-password",
        values={"sum_of_diameters_mm": 33.0},
        reason="missed lesion",
    )
    return edc, record_id


def test_show_prints_the_signature_manifestation(tmp_path: Path) -> None:
    _, record_id = _seed(tmp_path)

    shown = _run(tmp_path, "edc", "show", record_id)

    assert shown.returncode == 0, shown.stderr
    assert "status modified" in shown.stdout
    assert "= 33.0 mm (machine-derived value was 30.0)" in shown.stdout
    assert "signed: Rita Reader (rita), review," in shown.stdout
    assert "reason: missed lesion" in shown.stdout


def test_export_then_import_into_another_data_dir(tmp_path: Path) -> None:
    schema = shared_standard("odm-1.3.2/ODM1-3-2.xsd")
    source_dir, target_dir = tmp_path / "a", tmp_path / "b"
    source_dir.mkdir()
    _, record_id = _seed(source_dir)
    _seed_users_only(target_dir)
    odm = tmp_path / "export.xml"

    exported = _run(
        source_dir, "edc", "export", "--out", str(odm), "--schema", str(schema)
    )
    refused = _run(
        target_dir, "edc", "import", str(odm), "--user", "rita",
        TRIALLENS_PASSWORD="rita-password",
    )  # fmt: skip
    imported = _run(
        target_dir, "edc", "import", str(odm), "--user", "dana",
        "--schema", str(schema), TRIALLENS_PASSWORD="dana-password",
    )  # fmt: skip

    assert exported.returncode == 0, exported.stderr
    assert refused.returncode == 2 and "may not import" in refused.stderr
    assert imported.returncode == 0, imported.stderr
    assert "1 created" in imported.stdout
    copy = EmbeddedEdc(f"sqlite:///{target_dir / 'edc.db'}").get_record(record_id)
    assert copy.status is RecordStatus.MODIFIED
    assert copy.values() == {"sum_of_diameters_mm": 33.0}


def _seed_users_only(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    edc = EmbeddedEdc(f"sqlite:///{data_dir / 'edc.db'}")
    users = UserStore(edc.engine, audit=edc.audit)
    users.add_user(
        "rita", "rita-password", "reader", "Rita", actor="t", actor_role="admin"
    )
    users.add_user(
        "dana", "dana-password", "data_manager", "Dana", actor="t", actor_role="admin"
    )
    edc.engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_edc_serve_answers_the_rws_adapter(tmp_path: Path) -> None:
    _seed_users_only(tmp_path)
    port = _free_port()
    server = subprocess.Popen(
        [*CLI, "edc", "serve", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        rws = RwsEdc(
            f"http://127.0.0.1:{port}/RaveWebServices", "dana", "dana-password", "TL-7"
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                assert rws.version().startswith("1.0.0")
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        record_id = rws.write_ai_findings(
            trial_id="TL-7",
            subject_id="S-1",
            time_point_id="BL",
            items={"lvef_percent": 62.0},
            model_version="lvef@1",
            input_hashes=["sha256:1"],
            idempotency_key="evt-9",
        )
        assert rws.get_record(record_id).values() == {"lvef_percent": 62.0}
        rws.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    stored = EmbeddedEdc(f"sqlite:///{tmp_path / 'edc.db'}").get_record(record_id)
    assert stored.machine_derived and stored.model_version == "lvef@1"
