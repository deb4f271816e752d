"""A background thread that calls ``poll`` every interval until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from triallens.errors import TrialLensError

__all__ = ["PollingThread"]

logger = logging.getLogger(__name__)


class PollingThread:
    """Runs ``poll()`` now and then every ``interval_s`` in a daemon thread.

    A poll that raises a TrialLens error is logged and tried again at the next
    interval; the source's persisted position is unchanged, so nothing is lost.
    """

    def __init__(
        self, name: str, poll: Callable[[], object], interval_s: float
    ) -> None:
        self.name = name
        self._poll = poll
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
                self.last_error = None
            except TrialLensError as exc:
                self.last_error = str(exc)
                logger.warning(
                    "%s: poll failed, retrying next interval: %s", self.name, exc
                )
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("%s: unexpected poll failure", self.name)
            self._stop.wait(self.interval_s)
