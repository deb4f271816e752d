"""Discrepancy queries: an AI value and the site's value differ too much.

The charter sets the tolerance, in per cent of the site-reported value, per
item (``DiscrepancyTolerance.for_item``). Items are matched by name, or by the
short test codes a charter and site forms use (``SUMDIAM``, ``LVEF``,
``ICHVOL``). Each discrepancy gets a key made of where it is and both values,
so raising queries again for the same values opens no duplicate.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from tools.edc.models import AI_FINDINGS_FORM_OID, SITE_IMAGING_FORM_OID, EdcQuery

__all__ = [
    "ITEM_CODES",
    "Discrepancy",
    "ToleranceSource",
    "find_discrepancies",
    "raise_discrepancy_queries",
]

logger = logging.getLogger(__name__)

# Item name -> the test code charters and site forms use for it.
ITEM_CODES: dict[str, str] = {
    "sum_of_diameters_mm": "SUMDIAM",
    "lvef_percent": "LVEF",
    "haemorrhage_volume_ml": "ICHVOL",
    "overall_response": "OVRLRESP",
    "target_response": "TRGRESP",
}

Value = float | int | str | None


class ToleranceSource(Protocol):
    """Anything that gives a relative tolerance (per cent) for an item code."""

    def for_item(self, item: str) -> float: ...


@dataclass(frozen=True)
class FixedTolerance:
    """One relative tolerance for every item (when no charter is at hand)."""

    relative_percent: float = 20.0

    def for_item(self, item: str) -> float:
        return self.relative_percent


@dataclass(frozen=True)
class Discrepancy:
    """An item whose AI and site values differ beyond the tolerance."""

    item_name: str
    ai_value: Value
    site_value: Value
    tolerance_percent: float | None
    difference_percent: float | None

    def describe(self) -> str:
        if self.difference_percent is None:
            return (
                f"{self.item_name}: AI value {self.ai_value!r} differs from the "
                f"site-reported value {self.site_value!r}"
            )
        return (
            f"{self.item_name}: AI value {self.ai_value} and site-reported value "
            f"{self.site_value} differ by {self.difference_percent:.1f} % "
            f"(charter tolerance {self.tolerance_percent:g} %)"
        )


def find_discrepancies(
    ai_values: Mapping[str, Value],
    site_values: Mapping[str, Value],
    tolerance: ToleranceSource | None = None,
) -> list[Discrepancy]:
    """Items present in both whose values differ beyond the tolerance.

    Numbers differ when ``|ai - site| / |site| * 100`` exceeds the item's
    tolerance (any difference when the site value is 0); text differs when it
    is not the same ignoring case and surrounding spaces. Missing values on
    either side are not discrepancies (a missing value is a different query).
    """
    tolerance = tolerance or FixedTolerance()
    site_by_key = {key.lower(): value for key, value in site_values.items()}
    found: list[Discrepancy] = []
    for name, ai_value in ai_values.items():
        code = ITEM_CODES.get(name.lower(), name)
        site_value = site_by_key.get(name.lower(), site_by_key.get(code.lower()))
        if ai_value is None or site_value is None:
            continue
        if _is_number(ai_value) and _is_number(site_value):
            limit = tolerance.for_item(code)
            ai_number, site_number = float(ai_value), float(site_value)
            if site_number == 0:
                difference = 0.0 if ai_number == 0 else float("inf")
            else:
                difference = abs(ai_number - site_number) / abs(site_number) * 100
            if difference > limit:
                found.append(Discrepancy(name, ai_value, site_value, limit, difference))
        elif str(ai_value).strip().lower() != str(site_value).strip().lower():
            found.append(Discrepancy(name, ai_value, site_value, None, None))
    return found


def raise_discrepancy_queries(
    edc: object,
    *,
    study_oid: str,
    subject_id: str,
    time_point_id: str,
    ai_values: Mapping[str, Value] | None = None,
    record_id: str | None = None,
    tolerance: ToleranceSource | None = None,
    ai_source: str | None = None,
    actor: str = "triallens",
    role: str = "system",
) -> list[EdcQuery]:
    """Raise one EDC query per discrepancy between AI and site values.

    Parameters
    ----------
    edc
        An EDC with ``site_reported_values``, ``get_record`` and ``raise_query``.
    study_oid, subject_id, time_point_id
        The visit.
    ai_values, record_id
        The AI values, or the "AI Imaging Findings" record to read them from.
    tolerance
        The charter's ``DiscrepancyTolerance`` (20 % for every item if absent).
    ai_source
        How the AI value came about (shown in the query); by default the
        record and model version.

    Returns
    -------
    list[EdcQuery]
        The queries for the discrepancies found (an existing query is returned
        for a discrepancy already queried; none is duplicated).
    """
    if ai_values is None:
        if record_id is None:
            raise ValueError("give ai_values or record_id")
        record = edc.get_record(record_id)  # type: ignore[attr-defined]
        ai_values = record.values()
        ai_source = ai_source or (
            f"{AI_FINDINGS_FORM_OID} record {record_id}, model {record.model_version}"
        )
    site_values = edc.site_reported_values(  # type: ignore[attr-defined]
        subject_id, time_point_id
    )
    site_source = f"{SITE_IMAGING_FORM_OID} form, visit {time_point_id}"
    queries: list[EdcQuery] = []
    for discrepancy in find_discrepancies(ai_values, site_values, tolerance):
        key = _discrepancy_key(study_oid, subject_id, time_point_id, discrepancy)
        query = edc.raise_query(  # type: ignore[attr-defined]
            study_oid=study_oid,
            subject_id=subject_id,
            time_point_id=time_point_id,
            item_name=discrepancy.item_name,
            text=f"Please verify {discrepancy.describe()}.",
            actor=actor,
            role=role,
            record_id=record_id,
            ai_value=discrepancy.ai_value,
            ai_source=ai_source or "AI Imaging Findings",
            site_value=discrepancy.site_value,
            site_source=site_source,
            discrepancy_key=key,
        )
        queries.append(query)
    logger.info("%d discrepancy queries for one visit", len(queries))
    return queries


def _discrepancy_key(
    study_oid: str, subject_id: str, time_point_id: str, discrepancy: Discrepancy
) -> str:
    parts = [
        study_oid,
        subject_id,
        time_point_id,
        discrepancy.item_name,
        repr(_normal(discrepancy.ai_value)),
        repr(_normal(discrepancy.site_value)),
    ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _normal(value: Value) -> Value:
    if _is_number(value):
        return float(value)  # type: ignore[arg-type]
    return value


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False
