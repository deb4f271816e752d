"""A triaged study waits for a human; a signed review over MCP resumes it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pydicom
import pytest
from fastmcp import Client

from agent.triage import TriageContext, run_triage
from agent.triage.graph import build_triage_graph, open_checkpointer, thread_config
from mcp_server import build_server
from triallens.settings import get_settings

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


async def test_signed_review_over_mcp_resumes_the_waiting_thread(
    data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from evals.synth import generate_trial
    from tools.edc import EmbeddedEdc
    from triallens.users import UserStore

    trial = tmp_path / "trial"
    generate_trial(trial, subjects=1, seed=9, small=True, scenarios=["recist_sd"])
    visit = json.loads((trial / "ground_truth.json").read_text())["subjects"][0][
        "visits"
    ][0]
    settings = get_settings()
    ctx = TriageContext(settings=settings)
    originals = [
        pydicom.dcmread(p) for p in sorted((trial / visit["path"]).rglob("*.dcm"))
    ]
    ctx.pacs.store(originals)
    caplog.set_level(logging.DEBUG)
    result = run_triage(visit["study_uid"], ctx)
    study_uid = result.study.study_uid
    key, version = ctx.store.source_of(study_uid)
    config = thread_config(key, version)
    with open_checkpointer(settings.resolved_checkpoint_path) as saver:
        assert build_triage_graph(ctx, saver).get_state(config).next == (
            "await_review",
        )

    edc = EmbeddedEdc(settings.resolved_edc_url)
    UserStore(edc.engine, audit=edc.audit).add_user(
        "rita",
        "rita-password-1",
        "reader",
        "Rita Reader",
        actor="root",
        actor_role="admin",
    )
    async with Client(build_server(settings, user="rita")) as client:
        await client.call_tool(
            "review_finding",
            {
                "study_uid": study_uid,
                "decision": "accept",
                "password": "rita-password-1",
            },
        )

    record = edc.get_record(result.edc_record_id)
    assert record.status == "confirmed"
    assert record.signatures[-1].printed_name == "Rita Reader"
    with open_checkpointer(settings.resolved_checkpoint_path) as saver:
        state = build_triage_graph(ctx, saver).get_state(config)
    assert state.next == ()
    assert state.values["review"]["decision"] == "confirmed"
    assert ctx.store.worklist(review_status="pending") == []
