"""The signed HTTP webhook over a real loopback socket."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tools.pacs.sources.webhook import SIGNATURE_HEADER, WebhookSource, sign_payload
from triallens.db import make_engine
from triallens.events import EventLog, study_version

SECRET = "shared-test-secret"


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return EventLog(make_engine(f"sqlite:///{tmp_path / 'events.db'}"))


@pytest.fixture
def hook(log: EventLog) -> Iterator[WebhookSource]:
    source = WebhookSource(SECRET, log, port=0, tolerance_s=60)
    source.start(log.record)
    yield source
    source.stop()


def _post(
    hook: WebhookSource, payload: dict[str, object], **sign: object
) -> requests.Response:
    body = json.dumps(payload).encode()
    headers = sign_payload(str(sign.get("secret", SECRET)), body, sign.get("timestamp"))  # type: ignore[arg-type]
    headers["Content-Type"] = "application/json"
    return requests.post(hook.url, data=body, headers=headers, timeout=10)


def test_signed_notice_is_recorded(hook: WebhookSource, log: EventLog) -> None:
    sops = ["1.2.3.1", "1.2.3.2"]
    reply = _post(
        hook, {"event_id": "e-1", "study_uid": "1.2.3", "sop_instance_uids": sops}
    )

    assert reply.status_code == 202
    (record,) = log.records()
    assert record.event.study_uid == "1.2.3"
    assert record.event.study_version == study_version(sops)
    assert reply.json()["event"] == record.event.event_id


def test_replayed_notice_is_rejected(hook: WebhookSource, log: EventLog) -> None:
    payload = {"event_id": "e-2", "accession_number": "ACC2"}
    first = _post(hook, payload)
    body = json.dumps(payload).encode()
    replay = requests.post(
        hook.url, data=body, headers=sign_payload(SECRET, body), timeout=10
    )

    assert first.status_code == 202
    assert replay.status_code == 409
    assert len(log.records()) == 1


def test_old_signed_notice_is_rejected_as_replay(
    hook: WebhookSource, log: EventLog
) -> None:
    reply = _post(
        hook, {"event_id": "e-3", "study_uid": "1.2"}, timestamp=int(time.time()) - 3600
    )

    assert reply.status_code == 401
    assert "replay" in reply.json()["error"]
    assert log.records() == []


def test_unsigned_and_badly_signed_notices_are_rejected(
    hook: WebhookSource, log: EventLog
) -> None:
    body = json.dumps({"event_id": "e-4", "study_uid": "1.2"}).encode()
    unsigned = requests.post(hook.url, data=body, timeout=10)
    wrong_key = _post(hook, {"event_id": "e-4", "study_uid": "1.2"}, secret="other")
    headers = sign_payload(SECRET, body)
    tampered = requests.post(
        hook.url, data=body.replace(b"1.2", b"1.3"), headers=headers, timeout=10
    )
    headers[SIGNATURE_HEADER] = "sha256=" + "0" * 64
    zeros = requests.post(hook.url, data=body, headers=headers, timeout=10)

    assert [r.status_code for r in (unsigned, wrong_key, tampered, zeros)] == [401] * 4
    assert unsigned.json()["error"] == "unsigned request"
    assert log.records() == []


def test_payload_without_study_is_a_bad_request(
    hook: WebhookSource, log: EventLog
) -> None:
    assert _post(hook, {"event_id": "e-5"}).status_code == 400
    assert _post(hook, {"study_uid": "1.2"}).status_code == 400
    assert log.records() == []


def test_empty_secret_is_refused(log: EventLog) -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookSource("", log)


def test_negative_content_length_is_a_bad_request(
    hook: WebhookSource, log: EventLog
) -> None:
    import socket
    from urllib.parse import urlparse

    url = urlparse(hook.url)
    request = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.hostname}\r\n"
        "Content-Length: -5\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(request)
        reply = conn.recv(4096).decode()

    assert reply.startswith("HTTP/1.0 400") or reply.startswith("HTTP/1.1 400")
    assert log.records() == []
