"""DicomWebPacs against a scripted HTTP server: faults, auth and paging."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tools.pacs import DicomWebPacs
from tools.pacs.watch import Watcher
from triallens.db import make_engine
from triallens.errors import PacsError, StudyNotFoundError
from triallens.events import EventLog, EventStatus, StudyEvent, study_version

Reply = tuple[int, object]


@dataclass
class StallMidBody:
    """An answer that sends its headers and a few bytes, then goes silent."""

    content_type: str
    first_bytes: bytes
    stall_s: float


class ScriptedServer:
    """A loopback HTTP server whose answer to each GET a test decides."""

    def __init__(self, answer: Callable[[str, dict[str, str]], Reply]) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((self.path, headers))
                status, body = answer(self.path, headers)
                if isinstance(body, StallMidBody):
                    self.send_response(status)
                    self.send_header("Content-Type", body.content_type)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    with contextlib.suppress(OSError):
                        self.wfile.write(body.first_bytes)
                        self.wfile.flush()
                    time.sleep(body.stall_s)
                    return
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/dicom+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/dicom-web"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[
    Callable[[Callable[[str, dict[str, str]], Reply]], ScriptedServer]
]:
    servers: list[ScriptedServer] = []

    def start(answer: Callable[[str, dict[str, str]], Reply]) -> ScriptedServer:
        server = ScriptedServer(answer)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _study(uid: str) -> dict[str, object]:
    return {"0020000D": {"vr": "UI", "Value": [uid]}}


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_retried_then_succeeds(serve, status: int) -> None:  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    def answer(path: str, headers: dict[str, str]) -> Reply:
        calls["n"] += 1
        if calls["n"] <= 2:
            return status, {}
        return 200, [_study("1.2.3")] if "offset" not in path else []

    server = serve(answer)
    pacs = DicomWebPacs(server.url, retries=3, backoff_s=0.01)

    studies = pacs.search_studies()

    assert [s.study_uid for s in studies] == ["1.2.3"]
    assert calls["n"] == 4  # two failures, the first page, the empty page


def test_persistent_503_gives_one_clear_error_after_retries(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda path, headers: (503, {}))
    pacs = DicomWebPacs(server.url, retries=2, backoff_s=0.01)

    with pytest.raises(PacsError) as caught:
        pacs.search_studies()

    message = str(caught.value)
    assert "HTTP 503" in message and "after 3 attempts" in message
    assert "\n" not in message
    assert len(server.requests) == 3


def test_stalled_server_times_out_and_retries(serve) -> None:  # type: ignore[no-untyped-def]
    def answer(path: str, headers: dict[str, str]) -> Reply:
        time.sleep(1.0)
        return 200, []

    server = serve(answer)
    pacs = DicomWebPacs(server.url, timeout_s=0.2, retries=1, backoff_s=0.01)

    started = time.monotonic()
    with pytest.raises(PacsError, match="timed out") as caught:
        pacs.search_studies()

    assert "after 2 attempts" in str(caught.value)
    assert len(server.requests) == 2
    assert time.monotonic() - started < 5


def test_client_errors_are_not_retried(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda path, headers: (401, {}))
    pacs = DicomWebPacs(server.url, retries=3, backoff_s=0.01)

    with pytest.raises(PacsError, match="HTTP 401"):
        pacs.search_studies()

    assert len(server.requests) == 1


def test_404_on_a_study_is_study_not_found(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda path, headers: (404, {}))
    pacs = DicomWebPacs(server.url, retries=3, backoff_s=0.01)

    with pytest.raises(StudyNotFoundError, match=r"1\.2\.999"):
        pacs.study_metadata("1.2.999")


def test_basic_and_bearer_auth_headers(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda path, headers: (200, []))

    DicomWebPacs(server.url, username="reader", password="s3cret").search_studies()
    DicomWebPacs(server.url, token="tok-123").search_studies()

    basic = server.requests[0][1]["authorization"]
    bearer = server.requests[-1][1]["authorization"]
    assert basic == "Basic cmVhZGVyOnMzY3JldA=="  # base64 of reader:s3cret
    assert bearer == "Bearer tok-123"


def test_paging_walks_limit_and_offset_until_an_empty_page(serve) -> None:  # type: ignore[no-untyped-def]
    uids = [f"1.2.{n}" for n in range(7)]

    def answer(path: str, headers: dict[str, str]) -> Reply:
        query = parse_qs(urlparse(path).query)
        limit = int(query["limit"][0])
        offset = int(query.get("offset", ["0"])[0])
        # A server that caps pages at 2 whatever the client asks for.
        return 200, [_study(u) for u in uids[offset : offset + min(limit, 2)]]

    server = serve(answer)
    pacs = DicomWebPacs(server.url, page_size=3)

    studies = pacs.search_studies()

    assert [s.study_uid for s in studies] == uids
    offsets = [
        parse_qs(urlparse(p).query).get("offset", ["0"])[0] for p, _ in server.requests
    ]
    assert offsets == ["0", "2", "4", "6", "7"]


# The event stays in the log through PACS faults --------------------------------


def _watcher_against(
    server_url: str, tmp_path: Path, calls: list[StudyEvent]
) -> Watcher:
    log = EventLog(make_engine(f"sqlite:///{tmp_path / 'events.db'}"), retry_base_s=0.2)
    pacs = DicomWebPacs(server_url, timeout_s=0.3, retries=2, backoff_s=0.01)
    log.record(StudyEvent(source="hl7", idempotency_key="m-1", study_uid="1.2.3"))
    return Watcher([], log, calls.append, pacs=pacs)


def _instances_reply(path: str) -> Reply:
    if "offset" in path:
        return 200, []
    return 200, [
        {
            "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
            "0020000E": {"vr": "UI", "Value": ["1.2.3.1"]},
            "00080018": {"vr": "UI", "Value": [f"1.2.3.1.{n}"]},
            "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
        }
        for n in (1, 2)
    ]


@pytest.mark.parametrize("fault", ["503", "500", "stall"])
def test_pacs_fault_keeps_the_event_and_a_later_retry_succeeds(  # type: ignore[no-untyped-def]
    serve, tmp_path: Path, fault: str
) -> None:
    healthy = {"now": False}

    def answer(path: str, headers: dict[str, str]) -> Reply:
        if healthy["now"]:
            return _instances_reply(path)
        if fault == "stall":
            time.sleep(1.0)
            return 200, []
        return int(fault), {}

    server = serve(answer)
    calls: list[StudyEvent] = []
    watcher = _watcher_against(server.url, tmp_path, calls)

    watcher.process_next()

    (record,) = watcher.event_log.records()
    assert record.status is EventStatus.FAILED
    expected = "timed out" if fault == "stall" else f"HTTP {fault}"
    assert expected in (record.last_error or "")
    assert "after 3 attempts" in (record.last_error or "")
    assert calls == []

    healthy["now"] = True
    time.sleep(0.25)
    watcher.process_next()

    assert [c.study_version for c in calls] == [
        study_version(["1.2.3.1.1", "1.2.3.1.2"])
    ]
    assert watcher.event_log.records()[0].status is EventStatus.DONE


def test_stall_in_the_middle_of_a_retrieval_is_retried_then_reported(  # type: ignore[no-untyped-def]
    serve,
) -> None:
    boundary = "b0undary"
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    first = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    server = serve(lambda path, headers: (200, StallMidBody(content_type, first, 1.0)))
    pacs = DicomWebPacs(server.url, timeout_s=0.3, retries=1, backoff_s=0.01)

    with pytest.raises(PacsError, match="timed out") as caught:
        pacs.retrieve_study("1.2.3")

    assert "retrieve study" in str(caught.value)
    assert "after 2 attempts" in str(caught.value)
    assert len(server.requests) == 2


def test_qido_items_with_gaps_are_read_or_skipped(serve) -> None:  # type: ignore[no-untyped-def]
    items = [
        {  # complete
            "0020000E": {"vr": "UI", "Value": ["1.2.3.1"]},
            "00080018": {"vr": "UI", "Value": ["1.2.3.1.1"]},
            "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.88.22"]},
            "00200013": {"vr": "IS", "Value": [7]},
        },
        {  # no SOP Class, empty instance number, bulk data where a value was
            "0020000E": {"vr": "UI", "Value": ["1.2.3.1"]},
            "00080018": {"vr": "UI", "Value": ["1.2.3.1.2"]},
            "00200013": {"vr": "IS"},
            "00280008": {"vr": "IS", "BulkDataURI": "http://127.0.0.1/bulk/9"},
        },
        {"0020000E": {"vr": "UI", "Value": ["1.2.3.1"]}},  # no SOP Instance UID
    ]
    server = serve(lambda path, headers: (200, [] if "offset" in path else items))
    pacs = DicomWebPacs(server.url)

    found = pacs.search_instances("1.2.3")

    assert [(i.sop_instance_uid, i.instance_number) for i in found] == [
        ("1.2.3.1.1", 7),
        ("1.2.3.1.2", None),
    ]
    assert found[0].study_uid == "1.2.3"  # taken from the request
    assert not found[0].for_inference  # an enhanced SR
    assert found[1].for_inference and found[1].number_of_frames is None


def test_orthanc_feed_fault_keeps_the_sequence(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tools.pacs.sources.orthanc import OrthancChangesSource

    log = EventLog(make_engine(f"sqlite:///{tmp_path / 'events.db'}"))
    log.set_state("feed", "41")
    server = serve(lambda path, headers: (503, {}))
    source = OrthancChangesSource(
        server.url.removesuffix("/dicom-web"), log, state_key="feed"
    )

    with pytest.raises(PacsError, match="HTTP 503"):
        source.poll_once(log.record)

    assert source.sequence == 41
    assert server.requests[0][0] == "/changes?since=41&limit=100"
