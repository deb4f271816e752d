"""New studies from Orthanc's ``/changes`` feed (``StableStudy`` entries).

Orthanc writes ``StableStudy`` once no instance has arrived for its
``StableAge`` seconds. The source pages through the feed from a sequence
number persisted in the event log, records an event per stable study version,
and only then moves the sequence number on, so a crash repeats a page (the
events deduplicate) but never skips one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from tools.pacs.sources.polling import PollingThread
from triallens.errors import PacsError
from triallens.events import EventLog, StudyEvent, study_version

if TYPE_CHECKING:
    from tools.pacs.watch import Emit

__all__ = ["OrthancChangesSource"]

logger = logging.getLogger(__name__)


class OrthancChangesSource:
    """Follows Orthanc's REST change feed.

    Parameters
    ----------
    url
        Orthanc's REST root (``http://host:8042``), not the DICOMweb root.
    event_log
        Holds the last sequence number under ``state_key``.
    username, password
        HTTP basic authentication, when Orthanc requires it.
    interval_s
        Seconds between polls.
    from_start
        With no persisted position, read the whole feed (True) or only
        changes after the current end (False).
    """

    name = "orthanc"

    def __init__(
        self,
        url: str,
        event_log: EventLog,
        *,
        username: str | None = None,
        password: str | None = None,
        interval_s: float = 2.0,
        from_start: bool = False,
        timeout_s: float = 30.0,
        page: int = 100,
        state_key: str | None = None,
    ) -> None:
        import requests

        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PacsError(f"bad Orthanc URL {url!r}: expected http(s)://host:port")
        self.url = url.rstrip("/")
        self._where = f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 80}"
        self.event_log = event_log
        self.from_start = from_start
        self.timeout_s = timeout_s
        self.page = page
        self.state_key = state_key or f"orthanc-changes:{self._where}"
        self._session = requests.Session()
        if username is not None:
            self._session.auth = (username, password or "")
        self._interval_s = interval_s
        self._thread: PollingThread | None = None

    def start(self, emit: Emit) -> None:
        self._thread = PollingThread(
            "orthanc-changes", lambda: self.poll_once(emit), self._interval_s
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
        self._session.close()

    @property
    def sequence(self) -> int | None:
        """The persisted position in the feed (None before the first poll)."""
        raw = self.event_log.get_state(self.state_key)
        return None if raw is None else int(raw)

    def poll_once(self, emit: Emit) -> list[StudyEvent]:
        """Read the feed to its end, emitting one event per stable study."""
        since = self.sequence
        if since is None:
            since = 0 if self.from_start else int(self._get("/changes?last")["Last"])
            self.event_log.set_state(self.state_key, str(since))
        emitted: list[StudyEvent] = []
        while True:
            reply = self._get(f"/changes?since={since}&limit={self.page}")
            for change in reply.get("Changes", []):
                if change.get("ChangeType") == "StableStudy":
                    event = self._event_for(change["ID"], int(change["Seq"]))
                    if event is not None:
                        emit(event)
                        emitted.append(event)
            last = int(reply.get("Last", since))
            if last > since:
                since = last
                self.event_log.set_state(self.state_key, str(since))
            if reply.get("Done", True) or not reply.get("Changes"):
                return emitted

    def _event_for(self, orthanc_id: str, seq: int) -> StudyEvent | None:
        study = self._get(f"/studies/{orthanc_id}", missing_ok=True)
        if study is None:
            logger.info("change %d names a study that was deleted since", seq)
            return None
        tags = study.get("MainDicomTags", {})
        uid = tags.get("StudyInstanceUID")
        instances = self._get(f"/studies/{orthanc_id}/instances", missing_ok=True) or []
        sops = [
            i["MainDicomTags"]["SOPInstanceUID"]
            for i in instances
            if i.get("MainDicomTags", {}).get("SOPInstanceUID")
        ]
        if not uid or not sops:
            return None
        version = study_version(sops)
        return StudyEvent(
            source=self.name,
            idempotency_key=f"orthanc:{uid}:{version}",
            study_uid=uid,
            accession_number=tags.get("AccessionNumber") or None,
            study_version=version,
            details={"change_seq": seq, "instances": len(sops)},
        )

    def _get(self, path: str, missing_ok: bool = False) -> Any:
        import requests

        try:
            reply = self._session.get(f"{self.url}{path}", timeout=self.timeout_s)
        except requests.Timeout as exc:
            raise PacsError(
                f"Orthanc at {self._where}: {path.split('?')[0]} timed out"
            ) from exc
        except requests.RequestException as exc:
            raise PacsError(
                f"Orthanc at {self._where}: cannot connect ({type(exc).__name__})"
            ) from exc
        if reply.status_code == 404 and missing_ok:
            return None
        if reply.status_code >= 400:
            raise PacsError(
                f"Orthanc at {self._where}: {path.split('?')[0]} answered "
                f"HTTP {reply.status_code}"
            )
        return reply.json()
