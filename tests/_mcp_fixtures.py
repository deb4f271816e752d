"""A small triaged trial behind the MCP server: users, results, EDC records.

Everything goes through the real stores (ResultStore, EmbeddedEdc, UserStore);
the expected values in :class:`McpWorld` are worked out from the lesions
written here, so tests compare what the server says with what was stored.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from triallens.domain import (
    Assessment,
    LesionKind,
    LesionMeasurement,
    Priority,
    QcFlag,
    Response,
    StudyRef,
    TriageOutcome,
    TriageResult,
)

TRIAL = "TL-MCP-001"
PASSWORDS = {
    "rita": "rita-password-1",
    "adam": "adam-password-2",
    "mona": "mona-password-3",
    "dana": "dana-password-4",
}
ROLES = {
    "rita": ("reader", "Rita Reader"),
    "adam": ("adjudicator", "Adam Adjudicator"),
    "mona": ("medical_monitor", "Mona Monitor"),
    "dana": ("data_manager", "Dana Manager"),
}
KEY_IMAGE_SIZE = (96, 64)


@dataclass
class McpWorld:
    """What was stored, and the tokens of each user."""

    data_dir: Path
    tokens: dict[str, str]
    baseline_uid: str
    followup_uid: str
    other_uid: str
    subject_id: str
    record_ids: dict[str, str]
    lesions: dict[str, list[LesionMeasurement]] = field(default_factory=dict)
    trial: str = TRIAL
    passwords: dict[str, str] = field(default_factory=lambda: dict(PASSWORDS))
    key_image_size: tuple[int, int] = KEY_IMAGE_SIZE

    def sod(self, study_uid: str) -> float:
        """Sum of diameters (RECIST 1.1): node short axis, lesion longest."""
        return round(sum(les.recist_diameter_mm for les in self.lesions[study_uid]), 1)


def _lesions(scale: float, key_image: Path | None) -> list[LesionMeasurement]:
    return [
        LesionMeasurement(
            lesion_id="T01",
            kind=LesionKind.LESION,
            organ="liver",
            longest_diameter_mm=round(31.6 * scale, 1),
            short_axis_mm=round(20.2 * scale, 1),
            centroid_mm=(10.0, -22.5, 40.0),
            slice_index=31,
            volume_ml=round(9.8 * scale**3, 2),
            voxel_count=4100,
            confidence=0.93,
            key_image=str(key_image) if key_image else None,
        ),
        LesionMeasurement(
            lesion_id="N01",
            kind=LesionKind.NODE,
            organ="lymph node",
            longest_diameter_mm=round(24.0 * scale, 1),
            short_axis_mm=round(17.0 * scale, 1),
            centroid_mm=(-30.0, 5.0, 12.0),
            slice_index=18,
            confidence=0.88,
        ),
    ]


def _write_key_image(path: Path) -> None:
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("L", KEY_IMAGE_SIZE, color=20)
    ImageDraw.Draw(image).ellipse((30, 20, 60, 42), outline=255)
    image.save(path, format="PNG")


def build_world(data_dir: Path) -> McpWorld:
    """Populate the stores under ``data_dir`` (settings must point there)."""
    from tools.edc import EmbeddedEdc
    from triallens.settings import get_settings
    from triallens.store import ResultStore
    from triallens.users import UserStore

    settings = get_settings()
    assert settings.data_dir == data_dir
    settings.ensure_dirs()
    edc = EmbeddedEdc(settings.resolved_edc_url)
    users = UserStore(edc.engine, audit=edc.audit)
    tokens = {}
    for name, (role, printed) in ROLES.items():
        users.add_user(
            name, PASSWORDS[name], role, printed, actor="root", actor_role="admin"
        )
        tokens[name] = users.create_token(
            name, "mcp-test", actor="root", actor_role="admin"
        )

    key_image = settings.key_images_dir / "2.25.1002" / "T01.png"
    _write_key_image(key_image)
    subject = "SUBJ-007"
    studies = [
        ("2.25.1001", "BASELINE", "20260105", 1.0, None, Priority.ROUTINE),
        ("2.25.1002", "WEEK08", "20260302", 0.6, key_image, Priority.EXPEDITED),
    ]
    world = McpWorld(
        data_dir=data_dir,
        tokens=tokens,
        baseline_uid="2.25.1001",
        followup_uid="2.25.1002",
        other_uid="2.25.2001",
        subject_id=subject,
        record_ids={},
    )
    store = ResultStore(settings.resolved_database_url)
    baseline_sum: float | None = None
    for uid, time_point, date, scale, image, priority in studies:
        lesions = _lesions(scale, image)
        world.lesions[uid] = lesions
        total = world.sod(uid)
        baseline_sum = baseline_sum if baseline_sum is not None else total
        change = round(100.0 * (total - baseline_sum) / baseline_sum, 1)
        response = Response.BASELINE if uid == world.baseline_uid else Response.PR
        record_id = edc.write_ai_findings(
            trial_id=TRIAL,
            site_id="S01",
            subject_id=subject,
            time_point_id=time_point,
            study_uid=uid,
            items={"sum_of_diameters_mm": total, "overall_response": response.value},
            model_version="recist_ct@abc123",
            trace_id=f"trace-{uid}",
            input_hashes=["sha256:feed"],
            idempotency_key=f"mcp-test-{uid}",
        )
        world.record_ids[uid] = record_id
        deviations = (
            ["visit window: WEEK08 imaged 2 days after the window closed"]
            if uid == world.followup_uid
            else []
        )
        result = TriageResult(
            study=StudyRef(
                trial_id=TRIAL,
                site_id="S01",
                subject_id=subject,
                time_point_id=time_point,
                study_uid=uid,
                study_date=date,
                modality="CT",
                study_description="CT CHEST ABDOMEN",
            ),
            study_version=f"v-{uid}",
            outcome=TriageOutcome.MEASURED,
            task="recist_ct",
            series_uid=f"{uid}.1",
            priority=priority,
            reasons=[f"sum of diameters {total:.1f} mm ({change:+.1f}% vs baseline)"],
            deviations=deviations,
            qc_flags=(
                [QcFlag(code="SLICE_GAP", reason="one missing slice", series_uid=None)]
                if deviations
                else []
            ),
            assessment=Assessment(
                subject_id=subject,
                time_point_id=time_point,
                lesions=lesions,
                sum_of_diameters_mm=total,
                baseline_sum_mm=baseline_sum,
                nadir_sum_mm=min(baseline_sum, total),
                percent_change_from_baseline=change,
                target_response=response,
                overall_response=response,
            ),
            model_version="recist_ct@abc123",
            narrative=f"Target lesions measured at {time_point}.",
            narrative_source="template",
            edc_record_id=record_id,
            trace_id=f"trace-{uid}",
        )
        store.save(f"key-{uid}", result)

    other = TriageResult(
        study=StudyRef(
            trial_id=TRIAL,
            subject_id="SUBJ-010",
            time_point_id="BASELINE",
            study_uid=world.other_uid,
            study_date="20260110",
            modality="MR",
        ),
        study_version="v-other",
        outcome=TriageOutcome.NOT_APPLICABLE,
        outcome_reason="no task for MR of this trial",
        priority=Priority.HIGH,
        reasons=["required series missing"],
        deviations=["required series missing: post-contrast T1"],
    )
    store.save("key-other", other)
    return world


@pytest.fixture
def mcp_world(data_dir: Path) -> McpWorld:
    """A populated data directory (see :func:`build_world`)."""
    return build_world(data_dir)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_http_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """``triallens mcp --transport http`` on 127.0.0.1:port, ready to serve."""
    env = dict(os.environ, TRIALLENS_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    env.pop("TRIALLENS_MCP_USER", None)
    log = open(data_dir / "mcp-http.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from triallens.cli import main; main()",
            "mcp",
            "--transport",
            "http",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    url = f"http://127.0.0.1:{port}/mcp"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                "MCP HTTP server exited: "
                + (data_dir / "mcp-http.log").read_text(errors="replace")[-2000:]
            )
        try:
            httpx.get(url, timeout=1.0)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("MCP HTTP server did not start within 60 s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture
def http_server(mcp_world: McpWorld) -> Iterator[str]:
    """The MCP server over streamable HTTP; yields its URL."""
    port = free_port()
    process = start_http_server(mcp_world.data_dir, port)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_process(process)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
