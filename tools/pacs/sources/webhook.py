"""Study-arrived notices pushed over HTTP, signed with a shared secret.

A sender POSTs JSON ``{"event_id": ..., "study_uid": ..., "accession_number":
..., "sop_instance_uids": [...]}`` (one of study UID or accession is needed)
with two headers::

    X-TrialLens-Timestamp: <unix seconds>
    X-TrialLens-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>

Unsigned or wrongly signed requests get 401, a timestamp outside the
tolerance gets 401 (a replay of an old capture), and an ``event_id`` already
recorded gets 409 (a replay within the tolerance). Accepted notices are
recorded before the 202 answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from triallens.events import EventLog, StudyEvent, study_version

if TYPE_CHECKING:
    from tools.pacs.watch import Emit

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookSource", "sign_payload"]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-TrialLens-Signature"
TIMESTAMP_HEADER = "X-TrialLens-Timestamp"
_MAX_BODY = 1_000_000


def sign_payload(
    secret: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The headers that sign ``body`` for :class:`WebhookSource`."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"sha256={digest.hexdigest()}"}


class WebhookSource:
    """An HTTP endpoint that records signed study-arrived notices.

    Parameters
    ----------
    secret
        The shared HMAC secret.
    event_log
        Used to tell a replayed ``event_id`` from a new one.
    port, host, path
        Where to listen (loopback by default; port 0 picks a free one).
    tolerance_s
        Largest accepted difference between the signed timestamp and now.
    """

    name = "webhook"

    def __init__(
        self,
        secret: str,
        event_log: EventLog,
        *,
        port: int = 8765,
        host: str = "127.0.0.1",
        path: str = "/events",
        tolerance_s: float = 300.0,
    ) -> None:
        if not secret:
            raise ValueError("the webhook needs a non-empty shared secret")
        self._secret = secret.encode()
        self.event_log = event_log
        self.host = host
        self.port = port
        self.path = path
        self.tolerance_s = tolerance_s
        self._server: ThreadingHTTPServer | None = None
        self._emit: Emit | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def start(self, emit: Emit) -> None:
        self._emit = emit
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if self.path != source.path:
                    return self._answer(404, {"error": "unknown path"})
                if length < 0:
                    return self._answer(400, {"error": "bad Content-Length"})
                if length > _MAX_BODY:
                    return self._answer(413, {"error": "payload too large"})
                body = self.rfile.read(length)
                status, reply = source.handle(dict(self.headers.items()), body)
                self._answer(status, reply)

            def do_GET(self) -> None:
                self._answer(405, {"error": "POST a signed notice"})

            def _answer(self, status: int, reply: dict[str, Any]) -> None:
                payload = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("webhook: " + format, *args)

        server = ThreadingHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        threading.Thread(
            target=server.serve_forever, name="webhook", daemon=True
        ).start()
        logger.info("webhook listening on %s", self.url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Check, record and answer one request (status and JSON reply)."""
        lower = {k.lower(): v for k, v in headers.items()}
        signature = lower.get(SIGNATURE_HEADER.lower(), "")
        stamp = lower.get(TIMESTAMP_HEADER.lower(), "")
        if not signature or not stamp:
            return 401, {"error": "unsigned request"}
        if not stamp.isdigit():
            return 401, {"error": "bad timestamp"}
        expected = hmac.new(self._secret, stamp.encode() + b"." + body, hashlib.sha256)
        if not hmac.compare_digest(signature, f"sha256={expected.hexdigest()}"):
            return 401, {"error": "bad signature"}
        if abs(time.time() - int(stamp)) > self.tolerance_s:
            return 401, {"error": "timestamp outside the accepted window (replay?)"}
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, {"error": "body is not JSON"}
        if not isinstance(payload, dict):
            return 400, {"error": "body must be a JSON object"}
        event_id = str(payload.get("event_id") or "").strip()
        study_uid = payload.get("study_uid") or None
        accession = payload.get("accession_number") or None
        if not event_id:
            return 400, {"error": "event_id is required"}
        if not study_uid and not accession:
            return 400, {"error": "study_uid or accession_number is required"}
        sops = payload.get("sop_instance_uids") or []
        event = StudyEvent(
            source=self.name,
            idempotency_key=f"webhook:{event_id}",
            study_uid=str(study_uid) if study_uid else None,
            accession_number=str(accession) if accession else None,
            study_version=study_version(map(str, sops)) if sops and study_uid else None,
            details={"event_id": event_id, "instances": len(sops) or None},
        )
        stored, created = self.event_log.record(event)
        if not created:
            return 409, {"error": "event_id already received (replay)"}
        assert self._emit is not None
        # The watcher's emit records too; the key makes the second a no-op.
        self._emit(stored)
        return 202, {"recorded": True, "event": stored.event_id}
