"""Discrepancy queries between AI and site-reported values."""

from __future__ import annotations

import pytest

from tools.edc import EmbeddedEdc
from tools.edc.discrepancy import find_discrepancies, raise_discrepancy_queries
from tools.edc.protocol import Edc

pytest_plugins = ["tests._db_fixtures"]


class _CharterTolerance:
    """Shaped like the charter's DiscrepancyTolerance (per cent per item code)."""

    def for_item(self, item: str) -> float:
        return {"LVEF": 10.0, "SUMDIAM": 20.0}.get(item, 20.0)


def test_numbers_beyond_the_tolerance_are_discrepant() -> None:
    found = find_discrepancies(
        {"sum_of_diameters_mm": 48.0, "lvef_percent": 50.0, "overall_response": "PR"},
        {"SUMDIAM": 61.0, "LVEF": 54.0, "overall_response": "pr "},
        _CharterTolerance(),
    )

    # SOD: |48 - 61| / 61 = 21.3 % > 20 %; LVEF: 4 / 54 = 7.4 % <= 10 %.
    assert [d.item_name for d in found] == ["sum_of_diameters_mm"]
    assert found[0].difference_percent == pytest.approx(13 / 61 * 100)
    assert found[0].tolerance_percent == 20.0


def test_edges_text_zero_and_missing() -> None:
    found = find_discrepancies(
        {"a": 10.0, "b": 0.0, "c": "SD", "d": None, "e": 1.0},
        {"a": 12.5, "b": 0.0, "c": "PD", "d": 3.0},
    )
    # a: 2.5 / 12.5 = 20 % is within 20 %; b equal; c text differs; d, e missing.
    assert [d.item_name for d in found] == ["c"]
    assert "'SD'" in found[0].describe()


def test_queries_carry_both_values_and_sources_without_duplicates(db_url: str) -> None:
    edc = EmbeddedEdc(db_url)
    assert isinstance(edc, Edc)
    record_id = edc.write_ai_findings(
        trial_id="TL-001",
        subject_id="SUBJ-003",
        time_point_id="WEEK16",
        items={"sum_of_diameters_mm": 40.0, "lvef_percent": 58.0},
        model_version="recist@2",
        input_hashes=["h"],
        idempotency_key="k",
    )
    edc.write_site_values(
        trial_id="TL-001",
        subject_id="SUBJ-003",
        time_point_id="WEEK16",
        items={"SUMDIAM": 54.0, "LVEF": 59.0},
    )
    arguments = {
        "study_oid": "TL-001",
        "subject_id": "SUBJ-003",
        "time_point_id": "WEEK16",
        "record_id": record_id,
        "tolerance": _CharterTolerance(),
    }

    first = raise_discrepancy_queries(edc, **arguments)  # type: ignore[arg-type]
    second = raise_discrepancy_queries(edc, **arguments)  # type: ignore[arg-type]

    assert len(first) == 1
    query = first[0]
    assert query.item_name == "sum_of_diameters_mm"
    assert (query.ai_value, query.site_value) == (40.0, 54.0)
    assert "recist@2" in (query.ai_source or "") and record_id in (
        query.ai_source or ""
    )
    assert "SITE_IMAGING" in (query.site_source or "")
    assert "25.9 %" in query.text
    assert [q.query_id for q in second] == [query.query_id]
    assert len(edc.list_queries()) == 1
    raised = [e for e in edc.audit.show("edc_query:*") if e.action == "edc.raise_query"]
    assert len(raised) == 1
