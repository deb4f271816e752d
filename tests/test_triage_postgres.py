"""The main job with every database on the local PostgreSQL server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from agent.triage import TriageContext, run_triage
from agent.triage.graph import build_triage_graph, open_checkpointer, thread_config
from tests._db_fixtures import fresh_postgres_url
from triallens.domain import TriageOutcome
from triallens.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from fresh_postgres_url()


def test_results_edc_audit_and_checkpoints_on_postgres(
    tmp_path: Path, pg_url: str
) -> None:
    from evals.synth import generate_trial

    trial = tmp_path / "trial"
    generate_trial(
        trial, subjects=1, seed=13, small=True, scenarios=["recist_pd_growth"]
    )
    truth = json.loads((trial / "ground_truth.json").read_text())
    visits = [v for v in truth["subjects"][0]["visits"] if not v["missing"]][:2]
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=pg_url,
        edc_database_url=pg_url,
        checkpoint_url=pg_url,
    )
    ctx = TriageContext(settings=settings)
    for visit in visits:
        files = sorted((trial / visit["path"]).rglob("*.dcm"))
        ctx.pacs.store([pydicom.dcmread(p) for p in files])

    results = [run_triage(v["study_uid"], ctx) for v in visits]
    again = run_triage(visits[1]["study_uid"], ctx)

    assert all(r.outcome is TriageOutcome.MEASURED for r in results)
    assert results[1].assessment.baseline_sum_mm == pytest.approx(
        results[0].assessment.sum_of_diameters_mm
    )
    assert again.edc_record_id == results[1].edc_record_id
    assert len(ctx.edc.list_records()) == 2
    assert ctx.audit.verify().ok
    assert ctx.store.engine.dialect.name == "postgresql"
    key, version = ctx.store.source_of(results[1].study.study_uid)
    with open_checkpointer(pg_url) as saver:
        snapshot = build_triage_graph(ctx, saver).get_state(thread_config(key, version))
    assert snapshot.next == ("await_review",)
