"""Run event sources and feed each recorded study event to a handler.

Sources only record events in the :class:`triallens.events.EventLog`; the
watcher's loop claims them one at a time, works out the study version from the
PACS when the source did not know it, skips versions already processed, and
calls the handler. A stop request (Ctrl-C, SIGTERM, :meth:`Watcher.stop`) lets
the event in hand finish before the loop ends, so no event is left
half-processed; an event interrupted by a crash is delivered again.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from triallens.errors import PacsError, StudyNotFoundError
from triallens.events import EventLog, StudyEvent, study_version

if TYPE_CHECKING:
    from tools.pacs.base import Pacs

__all__ = ["EventSource", "Watcher"]

logger = logging.getLogger(__name__)

Emit = Callable[[StudyEvent], None]


class EventSource(Protocol):
    """Something that notices new studies and emits events for them."""

    name: str

    def start(self, emit: Emit) -> None:
        """Begin listening or polling in the background; ``emit`` records."""
        ...

    def stop(self) -> None:
        """Stop and wait for the background work to end."""
        ...


class Watcher:
    """Runs sources and processes their events exactly once per study version.

    Parameters
    ----------
    sources
        Event sources to start.
    event_log
        Where events are recorded before anything acts on them.
    handler
        Called with each event whose study version is new. It should be
        idempotent for a version (an event whose handler was cut short by a
        crash is delivered again).
    pacs
        Resolves accession numbers to studies and computes study versions for
        events that arrive without one.
    idle_s
        Sleep between checks of the log when nothing is due.
    lease_s
        How long a claimed event stays with this watcher without a heartbeat.
    """

    def __init__(
        self,
        sources: Sequence[EventSource],
        event_log: EventLog,
        handler: Callable[[StudyEvent], None],
        *,
        pacs: Pacs | None = None,
        idle_s: float = 0.2,
        lease_s: float = 300.0,
    ) -> None:
        self.sources = list(sources)
        self.event_log = event_log
        self.handler = handler
        self.pacs = pacs
        self.idle_s = idle_s
        self.lease_s = lease_s
        self._stop = threading.Event()
        self.processed = 0

    # Running -----------------------------------------------------------------

    def run(self, *, until: Callable[[], bool] | None = None) -> None:
        """Start the sources and process events until stopped.

        Parameters
        ----------
        until
            Checked after each step; the loop ends when it returns True.
        """
        restore = self._install_signal_handlers()
        self.event_log.recover_abandoned()
        started: list[EventSource] = []
        try:
            for source in self.sources:
                source.start(self.emit)
                started.append(source)
                logger.info("event source %s started", source.name)
            while not self._stop.is_set():
                worked = self.process_next()
                if until is not None and until():
                    break
                if not worked:
                    self._stop.wait(self.idle_s)
        finally:
            for source in reversed(started):
                try:
                    source.stop()
                except Exception:
                    logger.exception(
                        "event source %s did not stop cleanly", source.name
                    )
            restore()
            logger.info("watcher stopped after %d events", self.processed)

    def stop(self) -> None:
        """Ask the loop to end after the event in hand."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def emit(self, event: StudyEvent) -> None:
        """Record an event durably (sources call this before acknowledging)."""
        self.event_log.record(event)

    # One event ---------------------------------------------------------------

    def process_next(self) -> bool:
        """Claim and process one due event.

        Returns
        -------
        bool
            Whether an event was claimed.
        """
        event = self.event_log.claim(lease_s=self.lease_s)
        if event is None:
            return False
        try:
            resolved = self._resolve(event)
        except (PacsError, StudyNotFoundError) as exc:
            self.event_log.fail(event, str(exc))
            return True
        if resolved is None:
            return True
        if (
            resolved.study_uid
            and resolved.study_version
            and self.event_log.version_done(resolved.study_uid, resolved.study_version)
        ):
            self.event_log.complete(
                resolved, note="this study version was already processed"
            )
            return True
        heartbeat = _Heartbeat(self.event_log, resolved, self.lease_s)
        heartbeat.start()
        try:
            self.handler(resolved)
        except Exception as exc:
            logger.debug("handler failed", exc_info=True)
            self.event_log.fail(resolved, f"{type(exc).__name__}: {exc}")
            return True
        finally:
            heartbeat.stop()
        self.event_log.complete(resolved)
        self.processed += 1
        return True

    def _resolve(self, event: StudyEvent) -> StudyEvent | None:
        """Fill in the study UID and version from the PACS when missing."""
        if event.study_uid and event.study_version:
            return event
        if self.pacs is None:
            if event.study_uid is None:
                self.event_log.fail(event, "no study UID and no PACS to look it up")
                return None
            return event
        study_uid = event.study_uid
        if study_uid is None:
            found = self.pacs.search_studies(AccessionNumber=event.accession_number)
            if not found:
                raise StudyNotFoundError(
                    f"no study with accession {event.accession_number} in the PACS yet"
                )
            study_uid = found[0].study_uid
        instances = self.pacs.search_instances(study_uid)
        if not instances:
            raise StudyNotFoundError(
                f"study {study_uid} has no instances in the PACS yet"
            )
        version = study_version(i.sop_instance_uid for i in instances)
        non_image = sum(1 for i in instances if not i.for_inference)
        return event.with_study(
            study_uid,
            version,
            instances=len(instances),
            non_image_instances=non_image,
        )

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def request_stop(signum: int, frame: FrameType | None) -> None:
            if self._stop.is_set():
                raise KeyboardInterrupt
            logger.warning("stopping after the event in hand (again to force)")
            self._stop.set()

        previous = {
            sig: signal.signal(sig, request_stop)
            for sig in (signal.SIGINT, signal.SIGTERM)
        }

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore


class _Heartbeat:
    """Extends an event's lease while its handler runs."""

    def __init__(self, event_log: EventLog, event: StudyEvent, lease_s: float) -> None:
        self._log = event_log
        self._event = event
        self._lease_s = lease_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        interval = max(self._lease_s / 3, 0.05)
        while not self._done.wait(interval):
            if self._event.event_id is not None:
                self._log.extend_lease(self._event.event_id, self._lease_s)
