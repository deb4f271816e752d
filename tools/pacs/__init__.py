"""PACS connectivity: one interface, a local store and a DICOMweb backend.

``LocalPacs`` and ``DicomWebPacs`` load dicomweb-client on first use, so
importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tools.pacs.base import Pacs, open_pacs
from tools.pacs.models import (
    InstanceSummary,
    SeriesSummary,
    StoreReport,
    StudySummary,
    is_inference_candidate,
)

if TYPE_CHECKING:
    from tools.pacs.dicomweb import DicomWebPacs
    from tools.pacs.local import LocalPacs

__all__ = [
    "DicomWebPacs",
    "InstanceSummary",
    "LocalPacs",
    "Pacs",
    "SeriesSummary",
    "StoreReport",
    "StudySummary",
    "is_inference_candidate",
    "open_pacs",
]


def __getattr__(name: str) -> Any:
    if name == "LocalPacs":
        from tools.pacs.local import LocalPacs

        return LocalPacs
    if name == "DicomWebPacs":
        from tools.pacs.dicomweb import DicomWebPacs

        return DicomWebPacs
    raise AttributeError(f"module 'tools.pacs' has no attribute {name!r}")
