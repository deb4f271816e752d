"""The RWS adapter against the embedded EDC's RWS API, over real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests._shared import shared_standard
from tools.edc import EmbeddedEdc, RecordStatus
from tools.edc.rws import RwsEdc
from tools.edc.server import build_rws_app
from triallens.errors import (
    AuthenticationError,
    AuthorizationError,
    EdcError,
    NotFoundError,
)
from triallens.users import UserStore

pytest_plugins = ["tests._db_fixtures"]

SERVICE_PASSWORD = "service-password-1"
READER_PASSWORD = "reader-password-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    def __init__(self, edc: EmbeddedEdc, users: UserStore, schema: Path | None) -> None:
        self.port = _free_port()
        config = uvicorn.Config(
            build_rws_app(edc, users, schema_path=schema),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/RaveWebServices"

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the RWS test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def schema() -> Path:
    return shared_standard("odm-1.3.2/ODM1-3-2.xsd")


@pytest.fixture
def served(db_url: str, schema: Path) -> Iterator[tuple[EmbeddedEdc, UserStore, str]]:
    edc = EmbeddedEdc(db_url)
    users = UserStore(edc.engine, audit=edc.audit)
    users.add_user(
        "svc", SERVICE_PASSWORD, "data_manager", "TrialLens service",
        actor="root", actor_role="admin",
    )  # fmt: skip
    users.add_user(
        "rita",
        READER_PASSWORD,
        "reader",
        "Rita Reader",
        actor="root",
        actor_role="admin",
    )
    with _Server(edc, users, schema) as server:
        yield edc, users, server.url
    edc.engine.dispose()


def _adapter(url: str, schema: Path, password: str = SERVICE_PASSWORD) -> RwsEdc:
    return RwsEdc(
        url, "svc", password, "TL-001", environment="Prod", schema_path=schema
    )


def _findings(edc: RwsEdc, key: str = "evt-1") -> str:
    return edc.write_ai_findings(
        trial_id="TL-001",
        site_id="SITE-01",
        subject_id="SUBJ-001",
        time_point_id="WEEK8",
        study_uid="2.25.9",
        items={
            "sum_of_diameters_mm": 48.5,
            "overall_response": "PR",
            "lesion_count": 3,
        },
        model_version="recist@1",
        trace_id="tr-9",
        input_hashes=["sha256:a"],
        idempotency_key=key,
    )


@pytest.mark.slow
def test_findings_round_trip_over_http(
    served: tuple[EmbeddedEdc, UserStore, str], schema: Path
) -> None:
    embedded, _, url = served
    with _adapter(url, schema) as rws:
        record_id = _findings(rws)
        again = _findings(rws)
        remote = rws.get_record(record_id)

    assert again == record_id
    local = embedded.get_record(record_id)
    assert len(embedded.list_records()) == 1
    for record in (local, remote):
        assert record.status is RecordStatus.DRAFT
        assert record.machine_derived
        assert record.values() == {
            "sum_of_diameters_mm": 48.5,
            "overall_response": "PR",
            "lesion_count": 3,
        }
        assert record.model_version == "recist@1"
        assert record.trace_id == "tr-9"
        assert record.input_hashes == ["sha256:a"]
        assert (record.subject_id, record.time_point_id) == ("SUBJ-001", "WEEK8")
        assert record.site_id == "SITE-01"
    history = embedded.audit.show(f"edc_record:{record_id}")
    assert [(e.actor, e.action) for e in history] == [("svc", "odm.import.create")]


@pytest.mark.slow
def test_trace_relink_over_http(
    served: tuple[EmbeddedEdc, UserStore, str], schema: Path
) -> None:
    embedded, _, url = served
    with _adapter(url, schema) as rws:
        record_id = _findings(rws)
        remote = rws.relink_trace(
            record_id, "tr-10", actor="svc", role="data_manager", reason="resumed"
        )
    assert remote.trace_id == "tr-10"
    local = embedded.get_record(record_id)
    assert local.trace_id == "tr-10" and local.values()["lesion_count"] == 3
    history = embedded.audit.show(f"edc_record:{record_id}")
    assert [(e.actor, e.action) for e in history] == [
        ("svc", "odm.import.create"),
        ("svc", "edc.relink_trace"),
    ]


@pytest.mark.slow
def test_reads_subjects_visits_and_site_values(
    served: tuple[EmbeddedEdc, UserStore, str], schema: Path
) -> None:
    embedded, _, url = served
    embedded.write_site_values(
        trial_id="TL-001",
        site_id="SITE-01",
        subject_id="SUBJ-001",
        time_point_id="WEEK8",
        items={"sum_of_diameters_mm": 61.0},
    )
    with _adapter(url, schema) as rws:
        _findings(rws)
        assert [s.subject_id for s in rws.list_subjects()] == ["SUBJ-001"]
        visits = rws.list_visits("SUBJ-001")
        assert [(v.time_point_id, sorted(v.forms)) for v in visits] == [
            ("WEEK8", ["AI_IMAGING", "SITE_IMAGING"])
        ]
        assert rws.site_reported_values("SUBJ-001", "WEEK8") == {
            "sum_of_diameters_mm": 61.0
        }
        assert len(rws.list_records(status="draft")) == 2
        assert rws.version().startswith("1.0.0")


@pytest.mark.slow
def test_lock_rules_hold_over_the_wire(
    served: tuple[EmbeddedEdc, UserStore, str], schema: Path
) -> None:
    embedded, _, url = served
    with _adapter(url, schema) as rws:
        record_id = _findings(rws)
        with pytest.raises(EdcError, match="machine-derived draft"):
            rws.set_status(record_id, "locked", actor="svc", role="data_manager")
        with pytest.raises(AuthorizationError, match="e-signature"):
            rws.set_status(record_id, "confirmed", actor="svc", role="data_manager")
        embedded.set_status(record_id, "confirmed", actor="rita", role="reader")
        locked = rws.set_status(
            record_id, "locked", actor="svc", role="data_manager", reason="frozen"
        )
    assert locked.status is RecordStatus.LOCKED
    assert embedded.get_status(record_id) is RecordStatus.LOCKED


@pytest.mark.slow
def test_errors_become_clear_messages(
    served: tuple[EmbeddedEdc, UserStore, str], schema: Path
) -> None:
    _, users, url = served
    with (
        _adapter(url, schema, password="wrong-password") as rws,
        pytest.raises(AuthenticationError, match="web-service user svc"),
    ):
        _findings(rws)
    with (
        RwsEdc(url, "rita", READER_PASSWORD, "TL-001", schema_path=schema) as rws,
        pytest.raises(AuthorizationError, match="may not post"),
    ):
        _findings(rws)
    with _adapter(url, schema) as rws, pytest.raises(NotFoundError):
        rws.get_record("no-such-record")
    with (
        RwsEdc(
            f"http://127.0.0.1:{_free_port()}/RaveWebServices", "svc", "x", "T"
        ) as rws,
        pytest.raises(EdcError, match="cannot reach"),
    ):
        rws.version()

    token = users.create_token("svc", "pipeline", actor="root", actor_role="admin")
    with _adapter(url, schema, password=token) as rws:
        assert _findings(rws)


@pytest.mark.slow
def test_server_rejects_bad_documents(
    served: tuple[EmbeddedEdc, UserStore, str],
) -> None:
    embedded, _, url = served
    auth = ("svc", SERVICE_PASSWORD)
    post = f"{url}/webservice.aspx?PostODMClinicalData"
    invalid = (
        b'<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" FileOID="x">'
        b"<ClinicalData/></ODM>"
    )

    broken = httpx.post(post, content=b"<ODM", auth=auth)
    against_schema = httpx.post(post, content=invalid, auth=auth)
    anonymous = httpx.get(f"{url}/studies")

    assert broken.status_code == 400 and 'IsTransactionSuccessful="0"' in broken.text
    assert "not well-formed" in broken.text
    assert against_schema.status_code == 400 and "schema" in against_schema.text
    assert anonymous.status_code == 401
    assert embedded.list_records() == []


@pytest.mark.slow
def test_discrepancy_queries_over_the_wire(
    served: tuple[EmbeddedEdc, UserStore, str], schema: Path
) -> None:
    from tools.edc.discrepancy import raise_discrepancy_queries
    from tools.edc.protocol import Edc

    embedded, _, url = served
    embedded.write_site_values(
        trial_id="TL-001",
        site_id="SITE-01",
        subject_id="SUBJ-001",
        time_point_id="WEEK8",
        items={"SUMDIAM": 70.0, "overall_response": "SD"},
    )
    with _adapter(url, schema) as rws:
        assert isinstance(rws, Edc)
        record_id = _findings(rws)
        arguments = {
            "study_oid": "TL-001",
            "subject_id": "SUBJ-001",
            "time_point_id": "WEEK8",
            "record_id": record_id,
        }
        first = raise_discrepancy_queries(rws, **arguments)  # type: ignore[arg-type]
        second = raise_discrepancy_queries(rws, **arguments)  # type: ignore[arg-type]

        by_item = {q.item_name: q for q in first}
        assert set(by_item) == {"sum_of_diameters_mm", "overall_response"}
        assert (
            by_item["sum_of_diameters_mm"].ai_value,
            by_item["sum_of_diameters_mm"].site_value,
        ) == (48.5, 70.0)
        assert "recist@1" in (by_item["sum_of_diameters_mm"].ai_source or "")
        assert sorted(q.query_id for q in second) == sorted(q.query_id for q in first)
        assert len(rws.list_queries(status="open")) == 2

        closed = rws.close_query(
            by_item["overall_response"].query_id,
            actor="svc",
            role="data_manager",
            reason="site corrected to PR",
        )
        assert (
            closed.status == "closed" and closed.close_reason == "site corrected to PR"
        )
    assert len(embedded.list_queries(status="open")) == 1
    actions = [e.action for e in embedded.audit.show("edc_query:*")]
    assert (
        actions.count("edc.raise_query") == 2 and actions.count("edc.close_query") == 1
    )


@pytest.mark.slow
def test_every_document_the_server_writes_validates(
    served: tuple[EmbeddedEdc, UserStore, str], schema: Path
) -> None:
    from tools.edc.odm import validate_odm

    embedded, _, url = served
    with _adapter(url, schema) as rws:
        record_id = _findings(rws)
    embedded.raise_query(
        study_oid="TL-001", subject_id="SUBJ-001", time_point_id="WEEK8",
        item_name="lvef_percent", text="missing", actor="dana", role="data_manager",
        record_id=record_id,
    )  # fmt: skip
    auth = ("svc", SERVICE_PASSWORD)
    paths = [
        "/studies",
        "/studies/TL-001(Prod)/subjects",
        "/studies/TL-001(Prod)/datasets/regular",
        "/studies/TL-001(Prod)/subjects/SUBJ-001/datasets/regular",
        "/studies/TL-001(Prod)/datasets/queries",
    ]
    for path in paths:
        response = httpx.get(url + path, auth=auth)
        assert response.status_code == 200, path
        validate_odm(response.content, schema)
    assert b"SUBJ-001" in httpx.get(url + paths[1], auth=auth).content


@pytest.mark.slow
def test_a_phi_guard_keeps_identifying_values_off_the_wire(
    served: tuple[EmbeddedEdc, UserStore, str], schema: Path
) -> None:
    from triallens.phi import PhiGuard, PhiLeakError

    embedded, _, url = served
    guard = PhiGuard.from_mapping({"PatientName": "Doe^Jane"})
    with _adapter(url, schema) as rws, pytest.raises(PhiLeakError):
        rws.write_ai_findings(
            trial_id="TL-001",
            subject_id="SUBJ-001",
            time_point_id="WEEK8",
            items={"new_lesions": "see note for JANE DOE"},
            model_version="m",
            input_hashes=[],
            idempotency_key="phi",
            phi_guard=guard,
        )
    assert embedded.list_records() == []
