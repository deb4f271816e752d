"""Sources of new-study events: QIDO-RS polling, Orthanc /changes, a C-STORE
SCP, HL7 v2 over MLLP and a signed HTTP webhook.

Each source records its events through the ``emit`` callable it is started
with, and acknowledges the sender only after that call returns.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DimseSource",
    "Hl7Source",
    "OrthancChangesSource",
    "QidoPollingSource",
    "WebhookSource",
]

_MODULES = {
    "DimseSource": "tools.pacs.sources.dimse",
    "Hl7Source": "tools.pacs.sources.hl7",
    "OrthancChangesSource": "tools.pacs.sources.orthanc",
    "QidoPollingSource": "tools.pacs.sources.qido",
    "WebhookSource": "tools.pacs.sources.webhook",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'tools.pacs.sources' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
