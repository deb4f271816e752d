"""Paging against a DICOMweb server that ignores ``offset``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from tools.pacs.dicomweb import DicomWebPacs

STUDY = "1.2.826.0.1.3680043.10.1"
INSTANCE = {
    "0020000D": {"vr": "UI", "Value": [STUDY]},
    "0020000E": {"vr": "UI", "Value": [STUDY + ".1"]},
    "00080018": {"vr": "UI", "Value": [STUDY + ".1.1"]},
    "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
}


class _IgnoresOffset(BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        body = json.dumps([INSTANCE]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _IgnoresOffset.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _IgnoresOffset)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/dicom-web"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.timeout(60)
def test_paging_stops_when_the_server_repeats_its_page(server: str) -> None:
    pacs = DicomWebPacs(server, timeout_s=5, retries=0)
    instances = pacs.search_instances(STUDY)
    assert [i.sop_instance_uid for i in instances] == [STUDY + ".1.1"]
    assert len(_IgnoresOffset.requests) <= 3
