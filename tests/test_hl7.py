"""HL7 v2 over MLLP: real socket, ORU/ORM/OMI, ACK AA and AE."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.pacs.sources.hl7 import END, START, Hl7Source, frame, parse_notice
from triallens.db import make_engine
from triallens.events import EventLog

MSH = "MSH|^~\\&|RIS|SITE01|TRIALLENS|CORELAB|20240105101500||{type}|{control}|P|2.5.1"

ORU = "\r".join(
    [
        MSH.format(type="ORU^R01^ORU_R01", control="MSG-ORU-1"),
        "PID|1||PAT001^^^SITE01||Synthetic^Patient",
        "OBR|1|PLC100|ACC100|CTCAP^CT chest abdomen pelvis",
        "OBX|1|ST|113014^Study Instance UID^DCM||1.2.826.0.1.3680043.8.498.100||||||F",
    ]
)
ORM = "\r".join(
    [
        MSH.format(type="ORM^O01", control="MSG-ORM-1"),
        "PID|1||PAT002^^^SITE01",
        "ORC|NW|PLC200|ACC200",
        "OBR|1|PLC200|ACC200|CTCAP" + "|" * 14 + "ACC200X",
    ]
)
OMI = "\r".join(
    [
        MSH.format(type="OMI^O23^OMI_O23", control="MSG-OMI-1"),
        "PID|1||PAT003",
        "ORC|NW|PLC300",
        "TQ1|1",
        "OBR|1|PLC300||CTCAP",
        "IPC|ACC300|RP300|1.2.826.0.1.3680043.8.498.300|SPS300|CT",
    ]
)


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return EventLog(make_engine(f"sqlite:///{tmp_path / 'events.db'}"))


@pytest.fixture
def listener(log: EventLog) -> Iterator[Hl7Source]:
    source = Hl7Source(port=0)
    source.start(lambda event: log.record(event))
    yield source
    source.stop()


def _exchange(port: int, messages: list[str]) -> list[dict[str, list[str]]]:
    """Send framed messages on one connection; return each ACK's segments."""
    acks = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for message in messages:
            sock.sendall(frame(message))
            data = b""
            while END not in data:
                chunk = sock.recv(65536)
                assert chunk, "listener closed the connection"
                data += chunk
            assert data.startswith(START)
            text = data[1 : data.index(END)].decode()
            acks.append(
                {seg.split("|")[0]: seg.split("|") for seg in text.split("\r") if seg}
            )
    return acks


def test_oru_orm_omi_are_acknowledged_and_recorded(
    listener: Hl7Source, log: EventLog
) -> None:
    acks = _exchange(listener.port, [ORU, ORM, OMI])

    assert [a["MSA"][1:3] for a in acks] == [
        ["AA", "MSG-ORU-1"],
        ["AA", "MSG-ORM-1"],
        ["AA", "MSG-OMI-1"],
    ]
    assert acks[0]["MSH"][8] == "ACK^R01^ACK"
    assert acks[0]["MSH"][2:6] == ["TRIALLENS", "CORELAB", "RIS", "SITE01"]
    events = [r.event for r in log.records()]
    assert [(e.accession_number, e.study_uid) for e in events] == [
        ("ACC100", "1.2.826.0.1.3680043.8.498.100"),
        ("ACC200X", None),
        ("ACC300", "1.2.826.0.1.3680043.8.498.300"),
    ]
    assert events[2].details["message_type"] == "OMI^O23"


def test_resent_message_is_acknowledged_but_recorded_once(
    listener: Hl7Source, log: EventLog
) -> None:
    acks = _exchange(listener.port, [ORU, ORU])

    assert [a["MSA"][1] for a in acks] == ["AA", "AA"]
    assert len(log.records()) == 1


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            MSH.format(type="ADT^A01", control="X1") + "\rPID|1||P",
            "unsupported message type ADT^A01",
        ),
        (
            MSH.format(type="ORU^R01", control="X2") + "\rPID|1||P\rOBR|1",
            "no accession number",
        ),
        (MSH.format(type="ORM^O01", control="") + "\rOBR|1|P|ACC", "MSH-10"),
    ],
)
def test_unusable_messages_get_ae_with_the_reason(
    listener: Hl7Source, log: EventLog, message: str, reason: str
) -> None:
    (ack,) = _exchange(listener.port, [message])

    assert ack["MSA"][1] == "AE"
    assert reason.replace("^", "\\S\\") in ack["MSA"][3]  # HL7-escaped
    assert "ERR" in ack
    assert log.records() == []


def test_recording_failure_answers_ae(log: EventLog) -> None:
    def broken(event: object) -> None:
        raise OSError("disk full")

    source = Hl7Source(port=0)
    source.start(broken)
    try:
        (ack,) = _exchange(source.port, [ORU])
    finally:
        source.stop()

    assert ack["MSA"][1] == "AE"
    assert "resend" in ack["MSA"][3]


def test_two_messages_in_one_packet_are_both_answered(
    listener: Hl7Source, log: EventLog
) -> None:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(ORU) + frame(OMI))
        data = b""
        while data.count(END) < 2:
            data += sock.recv(65536)

    assert data.count(b"MSA|AA|") == 2
    assert len(log.records()) == 2


def test_parse_notice_reads_zds_study_uid() -> None:
    message = "\r".join(
        [
            MSH.format(type="ORM^O01", control="Z1"),
            "ORC|NW|P|F",
            "ZDS|1.2.3.4^100^Application^DICOM",
        ]
    )

    notice = parse_notice(message)

    assert notice.study_uid == "1.2.3.4"
    assert notice.accession_number == "F"


def test_cancelled_order_is_acknowledged_without_an_event(
    listener: Hl7Source, log: EventLog
) -> None:
    message = "\r".join([MSH.format(type="ORM^O01", control="C1"), "ORC|CA|P|ACC9"])

    (ack,) = _exchange(listener.port, [message])

    assert ack["MSA"][1] == "AA"
    assert log.records() == []
