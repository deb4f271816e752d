"""New studies found by polling a PACS with QIDO-RS study searches.

QIDO-RS cannot ask "what arrived since", so the source keeps a persisted
watermark in the event log: the instance count it last reported for each
study and the count it saw at the previous poll. A study is reported when its
count is the same at two polls at least ``stable_s`` apart, so a study stored
while a poll runs is reported once, complete, and a study that later gains
instances is reported again as a new version. With ``lookback_days`` the
search is limited to studies dated within that many days of the last poll.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tools.pacs.sources.polling import PollingThread
from triallens.events import EventLog, StudyEvent, study_version

if TYPE_CHECKING:
    from tools.pacs.base import Pacs
    from tools.pacs.watch import Emit

__all__ = ["QidoPollingSource"]

logger = logging.getLogger(__name__)


class QidoPollingSource:
    """Polls ``pacs.search_studies`` and emits one event per stable version.

    Parameters
    ----------
    pacs
        The PACS to poll (any backend).
    event_log
        Holds the persisted watermark under ``state_key``.
    interval_s
        Seconds between polls.
    stable_s
        How long an instance count must stay unchanged before the study is
        reported.
    lookback_days
        Limit searches to StudyDate on or after (last poll - lookback); None
        searches every study.
    """

    name = "qido"

    def __init__(
        self,
        pacs: Pacs,
        event_log: EventLog,
        *,
        interval_s: float = 30.0,
        stable_s: float = 0.0,
        lookback_days: int | None = None,
        state_key: str = "qido",
    ) -> None:
        self.pacs = pacs
        self.event_log = event_log
        self.stable_s = stable_s
        self.lookback_days = lookback_days
        self.state_key = state_key
        self._thread: PollingThread | None = None
        self._interval_s = interval_s

    def start(self, emit: Emit) -> None:
        self._thread = PollingThread(
            "qido-poll", lambda: self.poll_once(emit), self._interval_s
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()

    def poll_once(self, emit: Emit) -> list[StudyEvent]:
        """Search once, emit events for studies that became stable.

        Returns
        -------
        list[StudyEvent]
            The events emitted by this poll.
        """
        state = self._load()
        started = datetime.now(UTC)
        filters: dict[str, Any] = {}
        if self.lookback_days is not None and state.get("watermark"):
            since = datetime.fromisoformat(state["watermark"]) - timedelta(
                days=self.lookback_days
            )
            filters["StudyDate"] = since.strftime("%Y%m%d") + "-"
        studies = self.pacs.search_studies(**filters)

        seen: dict[str, int] = state["seen"]
        pending: dict[str, list[Any]] = state["pending"]
        now = time.time()
        emitted: list[StudyEvent] = []
        for study in studies:
            count = study.number_of_instances
            if count is None:
                count = len(self.pacs.search_instances(study.study_uid))
            uid = study.study_uid
            if seen.get(uid) == count:
                pending.pop(uid, None)
                continue
            previous = pending.get(uid)
            if previous is None or previous[0] != count:
                pending[uid] = [count, now]
                continue
            if now - float(previous[1]) < self.stable_s:
                continue
            event = self._event_for(uid, study.accession_number)
            if event is None or event.details["instances"] != count:
                pending[uid] = [event.details["instances"] if event else 0, now]
                continue
            emit(event)
            emitted.append(event)
            seen[uid] = count
            pending.pop(uid, None)

        state["watermark"] = started.isoformat()
        self._save(state)
        return emitted

    def _event_for(self, study_uid: str, accession: str | None) -> StudyEvent | None:
        instances = self.pacs.search_instances(study_uid)
        if not instances:
            return None
        version = study_version(i.sop_instance_uid for i in instances)
        return StudyEvent(
            source=self.name,
            idempotency_key=f"qido:{study_uid}:{version}",
            study_uid=study_uid,
            accession_number=accession,
            study_version=version,
            details={
                "instances": len(instances),
                "non_image_instances": sum(1 for i in instances if not i.for_inference),
            },
        )

    def _load(self) -> dict[str, Any]:
        raw = self.event_log.get_state(self.state_key)
        state: dict[str, Any] = json.loads(raw) if raw else {}
        state.setdefault("seen", {})
        state.setdefault("pending", {})
        state.setdefault("watermark", None)
        return state

    def _save(self, state: dict[str, Any]) -> None:
        self.event_log.set_state(self.state_key, json.dumps(state, sort_keys=True))
