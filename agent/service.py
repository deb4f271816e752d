"""The autonomous service: new-study events in, triage runs out."""

from __future__ import annotations

import logging
from typing import Any

from agent.triage.context import TriageContext
from agent.triage.graph import run_triage
from triallens.domain import TriageResult
from triallens.errors import PacsError
from triallens.settings import Settings

__all__ = ["handle_study_event", "make_handler"]

logger = logging.getLogger(__name__)

_contexts: dict[tuple[str, str | None], TriageContext] = {}


def handle_study_event(
    event: Any, settings: Settings, pacs_url: str | None = None
) -> TriageResult:
    """Triage the study an event names (one call per delivered event).

    The event must carry a Study Instance UID; events that name only an
    accession number are resolved by the event source before they reach here.

    Raises
    ------
    PacsError
        The event names no study, or the PACS failed; the event log keeps the
        event and retries it.
    """
    study_uid = getattr(event, "study_uid", None)
    if not study_uid:
        raise PacsError("the event names no Study Instance UID")
    key = (str(settings.data_dir), pacs_url or settings.pacs_url)
    ctx = _contexts.get(key)
    if ctx is None:
        ctx = TriageContext(settings=settings, pacs_url=pacs_url)
        _contexts[key] = ctx
    result = run_triage(study_uid, ctx)
    logger.info(
        "triaged study %s (%s): %s, priority %s",
        result.study.study_uid,
        result.study.time_point_id,
        result.outcome.value,
        result.priority.value,
    )
    return result


def make_handler(settings: Settings, pacs_url: str | None = None) -> Any:
    """A one-argument handler for the watcher."""

    def handler(event: Any) -> None:
        handle_study_event(event, settings, pacs_url)

    return handler
