"""Detect images that may carry identifying text burned into the pixels."""

from __future__ import annotations

from typing import Any

__all__ = ["BURNED_IN_MODALITIES", "SECONDARY_CAPTURE_CLASSES", "burned_in_reason"]

# Modalities whose images routinely carry burned-in patient text.
BURNED_IN_MODALITIES = frozenset({"US", "SC", "XC", "ES", "OT", "DOC"})

SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",
        "1.2.840.10008.5.1.4.1.1.7.1",
        "1.2.840.10008.5.1.4.1.1.7.2",
        "1.2.840.10008.5.1.4.1.1.7.3",
        "1.2.840.10008.5.1.4.1.1.7.4",
        "1.2.840.10008.5.1.4.1.1.104.1",
    }
)


def burned_in_reason(ds: Any) -> str | None:
    """Why an instance may hold burned-in text, or None when nothing suggests it.

    Reasons, in order: Burned In Annotation (0028,0301) is YES; the SOP class
    is a secondary capture or encapsulated document; the modality is one
    known for burned-in text (ultrasound, secondary capture, photographs).
    """
    burned = _text(ds, 0x00280301).upper()
    if burned == "YES":
        return "BurnedInAnnotation is YES"
    sop_class = _text(ds, 0x00080016)
    if sop_class in SECONDARY_CAPTURE_CLASSES:
        return "secondary capture or encapsulated document SOP class"
    modality = _text(ds, 0x00080060).upper()
    if modality in BURNED_IN_MODALITIES:
        return f"modality {modality} is known for burned-in text"
    return None


def _text(ds: Any, tag: int) -> str:
    """An element's value as ASCII text without decoding by character set."""
    if tag not in ds:
        return ""
    raw = ds.get_item(tag)
    value = raw.value
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip(" \x00")
    return str(value or "").strip()
