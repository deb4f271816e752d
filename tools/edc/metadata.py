"""Study metadata of the embedded EDC: forms, item groups and items with OIDs.

Two forms carry imaging values: ``AI_IMAGING`` ("AI Imaging Findings", written
by TrialLens, machine-derived) and ``SITE_IMAGING`` ("Site Imaging Assessment",
the values the site reported). Both use the same item names, so an AI value and
its site-reported counterpart share a name and differ only in their form.
Items outside the known list (e.g. ``L1_diameter_mm`` per lesion) are
accepted when their name is a plain identifier; their definitions are added on
first use. Item names are kept in lower case; the ItemOID is
``<FormOID>.<NAME IN UPPER CASE>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tools.edc.models import AI_FINDINGS_FORM_OID, SITE_IMAGING_FORM_OID

__all__ = [
    "FORM_NAMES",
    "KNOWN_ITEMS",
    "METADATA_VERSION_OID",
    "ItemDef",
    "event_oid",
    "item_def",
    "item_group_oid",
]

METADATA_VERSION_OID = "MDV.TRIALLENS.1"

FORM_NAMES: dict[str, str] = {
    AI_FINDINGS_FORM_OID: "AI Imaging Findings",
    SITE_IMAGING_FORM_OID: "Site Imaging Assessment",
}

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class ItemDef:
    """One ODM ItemDef of an imaging form."""

    form_oid: str
    name: str
    data_type: str
    unit: str | None = None

    @property
    def item_oid(self) -> str:
        return f"{self.form_oid}.{self.name.upper()}"

    @property
    def item_group_oid(self) -> str:
        return item_group_oid(self.form_oid)


# name -> (ODM DataType, unit)
KNOWN_ITEMS: dict[str, tuple[str, str | None]] = {
    "sum_of_diameters_mm": ("float", "mm"),
    "baseline_sum_mm": ("float", "mm"),
    "nadir_sum_mm": ("float", "mm"),
    "percent_change_from_baseline": ("float", "%"),
    "target_response": ("text", None),
    "overall_response": ("text", None),
    "new_lesions": ("text", None),
    "lvef_percent": ("float", "%"),
    "edv_ml": ("float", "mL"),
    "esv_ml": ("float", "mL"),
    "haemorrhage_volume_ml": ("float", "mL"),
    "priority": ("text", None),
    "lesion_count": ("integer", None),
}


def item_group_oid(form_oid: str) -> str:
    return f"{form_oid}.IG"


def event_oid(time_point_id: str) -> str:
    """The StudyEventOID of a time point (one study event per time point)."""
    return f"SE.{time_point_id}"


def item_def(form_oid: str, name: str, value: float | str | None = None) -> ItemDef:
    """The item definition for ``name`` on ``form_oid``.

    Raises
    ------
    ValueError
        When ``name`` is not a plain identifier (letters, digits, underscore).
    """
    if not _NAME.match(name):
        raise ValueError(f"item name {name!r} is not a plain identifier")
    known = KNOWN_ITEMS.get(name.lower())
    if known is not None:
        return ItemDef(form_oid, name.lower(), known[0], known[1])
    data_type = "float" if isinstance(value, int | float) else "text"
    return ItemDef(form_oid, name.lower(), data_type)
