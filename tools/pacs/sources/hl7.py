"""Study notices from a RIS as HL7 v2 messages over MLLP.

Accepted messages: ORU^R01 (results), ORM^O01 (orders) and OMI^O23 (imaging
orders). The accession number comes from IPC-1, OBR-18, OBR-3 or ORC-3 and the
Study Instance UID from IPC-3, ZDS-1 or an OBX whose identifier is DICOM code
113014 ("Study Instance UID"). The source records the event first and then
answers ACK with AA; it answers AE with the reason when the message is not
usable, so the sender can fix and resend it.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from triallens.errors import TrialLensError
from triallens.events import StudyEvent

if TYPE_CHECKING:
    from tools.pacs.watch import Emit

__all__ = ["Hl7Notice", "Hl7Source", "frame", "parse_notice"]

logger = logging.getLogger(__name__)

START, END = b"\x0b", b"\x1c\x0d"
SUPPORTED = {("ORU", "R01"), ("ORM", "O01"), ("OMI", "O23")}
_CANCEL_CONTROLS = {"CA", "DC", "OC", "CR"}
_MAX_MESSAGE = 1_000_000


class Hl7RejectedError(TrialLensError):
    """A message that cannot be used; the text goes back in the AE ACK."""


@dataclass(frozen=True)
class Hl7Notice:
    """What one message says about a study."""

    message_type: str
    trigger: str
    control_id: str
    sender: str
    accession_number: str | None
    study_uid: str | None
    cancelled: bool = False


def frame(message: str) -> bytes:
    """An HL7 message in MLLP framing (segments separated by carriage return)."""
    text = message.replace("\r\n", "\r").replace("\n", "\r")
    return START + text.encode("utf-8") + END


def parse_notice(text: str) -> Hl7Notice:
    """Read the study identifiers of one HL7 v2 message.

    Raises
    ------
    Hl7RejectedError
        Not HL7, an unsupported message type, or neither an accession number
        nor a Study Instance UID.
    """
    import hl7

    try:
        message = hl7.parse(text.replace("\n", "\r"))
        kind = _field(message, "MSH.F9.R1.C1").upper()
        trigger = _field(message, "MSH.F9.R1.C2").upper()
        control_id = _field(message, "MSH.F10")
        sender = f"{_field(message, 'MSH.F3')}^{_field(message, 'MSH.F4')}"
    except Exception as exc:
        raise Hl7RejectedError("not a readable HL7 v2 message") from exc
    if (kind, trigger) not in SUPPORTED:
        raise Hl7RejectedError(
            f"unsupported message type {kind}^{trigger}; "
            "send ORU^R01, ORM^O01 or OMI^O23"
        )
    if not control_id:
        raise Hl7RejectedError("MSH-10 (message control ID) is empty")
    accession = (
        _field(message, "IPC.F1.R1.C1")
        or _field(message, "OBR.F18.R1.C1")
        or _field(message, "OBR.F3.R1.C1")
        or _field(message, "ORC.F3.R1.C1")
    )
    study_uid = (
        _field(message, "IPC.F3.R1.C1")
        or _field(message, "ZDS.F1.R1.C1")
        or _obx_study_uid(message)
    )
    if not accession and not study_uid:
        raise Hl7RejectedError(
            "no accession number (IPC-1, OBR-18, OBR-3, ORC-3) and no Study "
            "Instance UID (IPC-3, ZDS-1, OBX 113014)"
        )
    control = _field(message, "ORC.F1").upper()
    return Hl7Notice(
        message_type=kind,
        trigger=trigger,
        control_id=control_id,
        sender=sender,
        accession_number=accession or None,
        study_uid=study_uid or None,
        cancelled=control in _CANCEL_CONTROLS,
    )


def build_ack(text: str, code: str, reason: str | None = None) -> str:
    """An ACK for a message: AA, or AE/AR with the reason in MSA-3 and ERR."""
    fields = _msh_fields(text)
    sep = "|"
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    trigger = fields.get(9, "").split("^")[1:2]
    msh = sep.join(
        [
            "MSH",
            "^~\\&",
            fields.get(5, "TRIALLENS"),
            fields.get(6, ""),
            fields.get(3, ""),
            fields.get(4, ""),
            now,
            "",
            "ACK^" + (trigger[0] if trigger else "") + "^ACK",
            f"ACK{uuid.uuid4().hex[:16]}",
            fields.get(11, "P") or "P",
            fields.get(12, "2.5.1") or "2.5.1",
        ]
    )
    msa = sep.join(["MSA", code, fields.get(10, "")])
    segments = [msh]
    if reason:
        escaped = _escape(reason)
        segments.append(f"{msa}|{escaped}")
        segments.append(f"ERR||||E||||{escaped}")
    else:
        segments.append(msa)
    return "\r".join(segments) + "\r"


class Hl7Source:
    """An MLLP listener that records study notices and acknowledges them.

    Parameters
    ----------
    port, host
        Where to listen (loopback by default; port 0 picks a free one).
    """

    name = "hl7"

    def __init__(self, port: int = 2575, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None
        self._emit: Emit | None = None

    def start(self, emit: Emit) -> None:
        self._emit = emit
        source = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                source._serve_connection(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="hl7-mllp", daemon=True
        )
        self._thread.start()
        logger.info("HL7 MLLP listener on %s:%d", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle_message(self, text: str) -> str:
        """Record the notice in one message and return the ACK to send."""
        try:
            notice = parse_notice(text)
        except Hl7RejectedError as exc:
            logger.info("HL7 message rejected: %s", exc)
            return build_ack(text, "AE", str(exc))
        if notice.cancelled:
            return build_ack(text, "AA")
        event = StudyEvent(
            source=self.name,
            idempotency_key=f"hl7:{notice.sender}:{notice.control_id}",
            study_uid=notice.study_uid,
            accession_number=notice.accession_number,
            details={
                "message_type": f"{notice.message_type}^{notice.trigger}",
                "control_id": notice.control_id,
            },
        )
        try:
            assert self._emit is not None
            self._emit(event)
        except Exception as exc:
            logger.exception("HL7 notice could not be recorded")
            return build_ack(
                text,
                "AE",
                f"could not record the notice ({type(exc).__name__}); resend",
            )
        return build_ack(text, "AA")

    def _serve_connection(self, sock: socket.socket) -> None:
        buffer = b""
        sock.settimeout(300)
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, OSError):
                return
            if not chunk:
                return
            buffer += chunk
            if len(buffer) > _MAX_MESSAGE:
                return
            while True:
                start = buffer.find(START)
                end = buffer.find(END, start + 1)
                if start < 0 or end < 0:
                    break
                raw = buffer[start + 1 : end]
                buffer = buffer[end + len(END) :]
                text = _decode(raw)
                sock.sendall(frame(self.handle_message(text)))


def _field(message: object, path: str) -> str:
    try:
        value = message[path]  # type: ignore[index]
    except (KeyError, IndexError):
        return ""
    return str(value).strip()


def _obx_study_uid(message: object) -> str:
    try:
        segments = message.segments("OBX")  # type: ignore[attr-defined]
    except KeyError:
        return ""
    for segment in segments:
        identifier = str(segment[3]) if len(segment) > 3 else ""
        if "113014" in identifier or "study instance uid" in identifier.lower():
            return str(segment[5]).strip() if len(segment) > 5 else ""
    return ""


def _msh_fields(text: str) -> dict[int, str]:
    first = text.replace("\n", "\r").split("\r", 1)[0]
    if not first.startswith("MSH") or len(first) < 4:
        return {}
    parts = first.split(first[3])
    # parts[1] holds the encoding characters (MSH-2); MSH-1 is the separator.
    return {index + 1: value for index, value in enumerate(parts) if index >= 1}


def _escape(text: str) -> str:
    out = text.replace("\\", "\\E\\")
    for char, code in (("|", "\\F\\"), ("^", "\\S\\"), ("~", "\\R\\"), ("&", "\\T\\")):
        out = out.replace(char, code)
    return out.replace("\r", " ").replace("\n", " ")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
