"""New studies pushed over DICOM C-STORE to a pynetdicom storage SCP.

Each received instance is written to a spool folder before the SCP answers
success, so nothing acknowledged is lost in a crash. A study is complete once
no instance of it has arrived for ``quiet_s`` seconds; its spooled instances
are then stored in the PACS, the event is recorded, and only then is the spool
cleared. At start-up, anything left in the spool is treated as just arrived.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from triallens.errors import PacsError
from triallens.events import StudyEvent, study_version

if TYPE_CHECKING:
    from pynetdicom.events import Event

    from tools.pacs.base import Pacs
    from tools.pacs.watch import Emit

__all__ = ["DimseSource"]

logger = logging.getLogger(__name__)

_SUCCESS = 0x0000
_OUT_OF_RESOURCES = 0xA700
_CANNOT_UNDERSTAND = 0xC000


class DimseSource:
    """A storage SCP that turns received studies into events.

    Parameters
    ----------
    pacs
        Where completed studies are stored (the embedded store by default in
        the CLI); the study version is computed from it, so a study that gains
        instances in a later push gets a new version.
    spool_dir
        Folder for instances received but not yet stored in the PACS.
    ae_title
        The SCP's AE title; associations calling another title are rejected.
    port, host
        Where to listen (loopback by default).
    quiet_s
        Seconds without a new instance after which a study is complete.
    """

    name = "dimse"

    def __init__(
        self,
        pacs: Pacs,
        spool_dir: Path,
        *,
        ae_title: str = "TRIALLENS",
        port: int = 11112,
        host: str = "127.0.0.1",
        quiet_s: float = 10.0,
    ) -> None:
        self.pacs = pacs
        self.spool_dir = Path(spool_dir)
        self.ae_title = ae_title
        self.port = port
        self.host = host
        self.quiet_s = quiet_s
        self._last_arrival: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: Any = None
        self._checker: threading.Thread | None = None
        self._emit: Emit | None = None
        self.received = 0

    # Lifecycle ---------------------------------------------------------------

    def start(self, emit: Emit) -> None:
        from pynetdicom import (
            AE,
            ALL_TRANSFER_SYNTAXES,
            AllStoragePresentationContexts,
            evt,
        )
        from pynetdicom.sop_class import Verification

        self._emit = emit
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        now = time.monotonic()
        for folder in self.spool_dir.iterdir():
            if folder.is_dir() and any(folder.glob("*.dcm")):
                self._last_arrival[folder.name] = now

        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = True
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        try:
            self._server = ae.start_server(
                (self.host, self.port),
                block=False,
                evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
            )
        except OSError as exc:
            raise PacsError(
                f"cannot listen for DICOM on {self.host}:{self.port} ({exc.strerror})"
            ) from exc
        self._stop.clear()
        self._checker = threading.Thread(
            target=self._check_loop, name="dimse-quiet", daemon=True
        )
        self._checker.start()
        logger.info(
            "C-STORE SCP %s listening on %s:%d", self.ae_title, self.host, self.port
        )

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._checker is not None:
            self._checker.join(timeout=60)

    # Receiving ---------------------------------------------------------------

    def _on_store(self, event: Event) -> int:
        try:
            ds = event.dataset
            study_uid = str(ds.StudyInstanceUID)
            sop_uid = str(ds.SOPInstanceUID)
        except Exception:
            logger.warning("C-STORE with an undecodable dataset refused")
            return _CANNOT_UNDERSTAND
        if not _safe_uid(study_uid) or not _safe_uid(sop_uid):
            return _CANNOT_UNDERSTAND
        folder = self.spool_dir / study_uid
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / f"{sop_uid}.part"
            partial.write_bytes(event.encoded_dataset(include_meta=True))
            partial.replace(folder / f"{sop_uid}.dcm")
        except OSError:
            logger.exception("cannot spool a received instance")
            return _OUT_OF_RESOURCES
        with self._lock:
            self._last_arrival[study_uid] = time.monotonic()
            self.received += 1
        return _SUCCESS

    # Completing studies ----------------------------------------------------

    def _check_loop(self) -> None:
        step = min(max(self.quiet_s / 4, 0.05), 1.0)
        while not self._stop.wait(step):
            self.flush_quiet_studies()

    def flush_quiet_studies(self, force: bool = False) -> list[StudyEvent]:
        """Store and report every study quiet for ``quiet_s`` (all if forced)."""
        now = time.monotonic()
        with self._lock:
            ready = [
                uid
                for uid, at in self._last_arrival.items()
                if force or now - at >= self.quiet_s
            ]
        emitted = []
        for study_uid in ready:
            try:
                event = self._complete(study_uid)
            except Exception as exc:
                logger.warning("study not completed yet, will retry: %s", exc)
                with self._lock:
                    self._last_arrival[study_uid] = time.monotonic()
                continue
            if event is not None:
                emitted.append(event)
        return emitted

    def _complete(self, study_uid: str) -> StudyEvent | None:
        import pydicom

        folder = self.spool_dir / study_uid
        files = sorted(folder.glob("*.dcm"))
        with self._lock:
            arrival = self._last_arrival.get(study_uid)
        if files:
            datasets = [pydicom.dcmread(f) for f in files]
            report = self.pacs.store(datasets)
            if not report.ok:
                raise PacsError(
                    f"the PACS refused {len(report.failed)} instances of a pushed study"
                )
        instances = self.pacs.search_instances(study_uid)
        version = study_version(i.sop_instance_uid for i in instances)
        event = StudyEvent(
            source=self.name,
            idempotency_key=f"dimse:{study_uid}:{version}",
            study_uid=study_uid,
            study_version=version,
            details={
                "instances": len(instances),
                "received": len(files),
                "non_image_instances": sum(1 for i in instances if not i.for_inference),
            },
        )
        assert self._emit is not None
        self._emit(event)
        with self._lock:
            # An instance that arrived while storing keeps the study open.
            if self._last_arrival.get(study_uid) == arrival:
                self._last_arrival.pop(study_uid, None)
        for path in files:
            path.unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)
        return event


def _safe_uid(uid: str) -> bool:
    """A UID that is safe as a folder or file name (digits and dots)."""
    return 0 < len(uid) <= 64 and all(c.isdigit() or c == "." for c in uid)
