"""An EDC reached through Medidata Rave Web Services (RWS).

Findings and status changes are posted as ODM 1.3.2 clinical data
(``webservice.aspx?PostODMClinicalData``); records, subjects and visits are
read from the clinical-data datasets (``studies/{Study(Env)}/datasets/regular``)
and the subject list. Authentication is HTTP Basic with a web-service user.
HTTP and RWS failures become TrialLens errors that say what to check.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
from lxml import etree

from tools.edc.models import (
    AI_FINDINGS_FORM_OID,
    SITE_IMAGING_FORM_OID,
    EdcQuery,
    EdcRecord,
    QueryStatus,
    RecordStatus,
    SubjectInfo,
    VisitInfo,
)
from tools.edc.odm import (
    ODM_NS,
    form_document,
    parse_odm,
    records_from_odm,
    validate_odm,
)
from tools.edc.odm_queries import queries_from_odm, query_document
from triallens.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    EdcError,
    NotFoundError,
)

if TYPE_CHECKING:
    from triallens.phi import PhiGuard

__all__ = ["RwsEdc"]

logger = logging.getLogger(__name__)

_N = f"{{{ODM_NS}}}"
_IDEMPOTENCY_NAMESPACE = uuid.UUID("5b8f0d52-8d0e-4d8c-9a55-1f1c2b7e9a10")


class RwsEdc:
    """The :class:`~tools.edc.protocol.Edc` interface over Rave Web Services.

    Parameters
    ----------
    base_url
        The RWS root, e.g. ``https://host/RaveWebServices``.
    username, password
        The web-service user's credentials (Basic auth). An API token may be
        given as the password.
    study_oid, environment
        The study; requests name it ``Study(Env)``.
    timeout_s
        Seconds per request.
    schema_path
        When given, every ODM document is validated against this schema
        before it is posted.
    transport
        An httpx transport (tests).
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        study_oid: str,
        *,
        environment: str | None = "Prod",
        timeout_s: float = 30.0,
        schema_path: str | Path | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.study_oid = study_oid
        self.environment = environment
        self.username = username
        self.schema_path = schema_path
        self._client = httpx.Client(
            base_url=self.base_url,
            auth=httpx.BasicAuth(username, password),
            timeout=timeout_s,
            transport=transport,
        )

    @property
    def rave_study(self) -> str:
        if self.environment:
            return f"{self.study_oid}({self.environment})"
        return self.study_oid

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RwsEdc:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Writing -------------------------------------------------------------------

    def write_ai_findings(
        self,
        *,
        subject_id: str,
        time_point_id: str,
        items: Mapping[str, float | int | str | None],
        model_version: str,
        input_hashes: Iterable[str],
        idempotency_key: str,
        study_oid: str | None = None,
        trial_id: str | None = None,
        site_id: str | None = None,
        study_uid: str | None = None,
        trace_id: str | None = None,
        phi_guard: PhiGuard | None = None,
    ) -> str:
        """Post the "AI Imaging Findings" form as a machine-derived draft.

        The form's repeat key is derived from the idempotency key, and the key
        travels with the form, so a replay changes nothing on the EDC. With a
        ``phi_guard`` the ODM document is scanned before it leaves, and not
        sent when it holds an original identifying value.

        Returns
        -------
        str
            The record id (the form's repeat key on the EDC).
        """
        self._check_study(study_oid or trial_id)
        record_id = str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, idempotency_key))
        document = form_document(
            study_oid=self.rave_study,
            subject_id=subject_id,
            time_point_id=time_point_id,
            site_id=site_id,
            form_oid=AI_FINDINGS_FORM_OID,
            record_id=record_id,
            user=self.username,
            transaction="Insert",
            items=dict(items),
            provenance={
                "machine_derived": True,
                "model_version": model_version,
                "trace_id": trace_id,
                "input_hashes": list(input_hashes),
                "study_uid": study_uid,
                "idempotency_key": idempotency_key,
            },
            status=RecordStatus.DRAFT,
            machine_derived=True,
        )
        if phi_guard is not None:
            phi_guard.assert_clean(document, what="the ODM findings document")
        response = self._post_clinical_data(document)
        touched = [r for r in response.get("TouchedRecords", "").split(",") if r]
        return touched[0] if touched else record_id

    def relink_trace(
        self, record_id: str, trace_id: str, *, actor: str, role: str, reason: str
    ) -> EdcRecord:
        """Point a record at the trace that completed it (an ODM Update of the
        form's provenance; the EDC audits the change). Nothing is posted when
        the record already cites ``trace_id``."""
        record = self.get_record(record_id)
        if record.trace_id == trace_id:
            return record
        return self._update_form(
            record,
            user=self.username,
            provenance={"trace_id": trace_id},
            reason=reason,
        )

    def set_status(
        self,
        record_id: str,
        status: RecordStatus | str,
        *,
        actor: str,
        role: str,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> EdcRecord:
        """Change a record's status on the EDC (e.g. lock it)."""
        record = self.get_record(record_id)
        return self._update_form(
            record,
            user=actor,
            provenance={"version": expected_version or record.version},
            status=RecordStatus(status),
            reason=reason or f"status set by {role}",
        )

    def _update_form(
        self,
        record: EdcRecord,
        *,
        user: str,
        provenance: dict[str, object],
        reason: str,
        status: RecordStatus | None = None,
    ) -> EdcRecord:
        """Post an ODM Update of one existing form (no item values)."""
        document = form_document(
            study_oid=self.rave_study,
            subject_id=record.subject_id,
            time_point_id=record.time_point_id,
            site_id=record.site_id,
            form_oid=record.form_oid,
            record_id=record.record_id,
            user=user,
            transaction="Update",
            provenance=provenance,
            status=status,
            reason=reason,
        )
        self._post_clinical_data(document)
        return self.get_record(record.record_id)

    def raise_query(
        self,
        *,
        subject_id: str,
        time_point_id: str,
        item_name: str,
        text: str,
        actor: str,
        role: str,
        study_oid: str | None = None,
        record_id: str | None = None,
        ai_value: float | str | None = None,
        ai_source: str | None = None,
        site_value: float | str | None = None,
        site_source: str | None = None,
        discrepancy_key: str | None = None,
    ) -> EdcQuery:
        """Open a query on one item; a known ``discrepancy_key`` opens none."""
        self._check_study(study_oid)
        payload = {
            "text": text,
            "record_id": record_id,
            "ai_value": ai_value,
            "ai_source": ai_source,
            "site_value": site_value,
            "site_source": site_source,
            "discrepancy_key": discrepancy_key,
            "raised_as": f"{actor} ({role})",
        }
        document = query_document(
            study_oid=self.rave_study,
            subject_id=subject_id,
            time_point_id=time_point_id,
            item_name=item_name,
            user=actor,
            state="open",
            payload=payload,
            form_oid=AI_FINDINGS_FORM_OID if record_id else SITE_IMAGING_FORM_OID,
            record_id=record_id,
        )
        response = self._post_clinical_data(document)
        query_id = response.get("QueryIds", "").split(",")[0]
        return self._query(query_id, subject_id)

    def close_query(
        self, query_id: str, *, actor: str, role: str, reason: str
    ) -> EdcQuery:
        """Close an open query with the answer given as ``reason``."""
        query = self._query(query_id)
        document = query_document(
            study_oid=self.rave_study,
            subject_id=query.subject_id,
            time_point_id=query.time_point_id,
            item_name=query.item_name,
            user=actor,
            state="closed",
            payload={"query_id": query_id, "reason": reason, "closed_as": role},
            form_oid=AI_FINDINGS_FORM_OID if query.record_id else SITE_IMAGING_FORM_OID,
            record_id=query.record_id,
        )
        self._post_clinical_data(document)
        return self._query(query_id, query.subject_id)

    def list_queries(
        self,
        subject_id: str | None = None,
        status: QueryStatus | str | None = None,
    ) -> list[EdcQuery]:
        """Queries from the EDC's query dataset."""
        params = {}
        if subject_id is not None:
            params["subject"] = subject_id
        if status is not None:
            params["status"] = QueryStatus(status).value
        study = quote(self.rave_study, safe="()")
        return queries_from_odm(
            self._get(f"/studies/{study}/datasets/queries", params=params or None)
        )

    def _query(self, query_id: str, subject_id: str | None = None) -> EdcQuery:
        for query in self.list_queries(subject_id):
            if query.query_id == query_id:
                return query
        raise NotFoundError(f"no EDC query {query_id} in study {self.rave_study}")

    # Reading -------------------------------------------------------------------

    def get_record(self, record_id: str) -> EdcRecord:
        for record in self.list_records():
            if record.record_id == record_id:
                return record
        raise NotFoundError(f"no EDC record {record_id} in study {self.rave_study}")

    def get_status(self, record_id: str) -> RecordStatus:
        return self.get_record(record_id).status

    def list_records(
        self,
        subject_id: str | None = None,
        status: RecordStatus | str | None = None,
        *,
        form_oid: str | None = None,
    ) -> list[EdcRecord]:
        """Records from the clinical-data dataset, filtered like the embedded EDC."""
        study = quote(self.rave_study, safe="()")
        if subject_id is not None:
            path = f"/studies/{study}/subjects/{quote(subject_id)}/datasets/regular"
        else:
            path = f"/studies/{study}/datasets/regular"
        params = {"formoid": form_oid} if form_oid else None
        records = records_from_odm(self._get(path, params=params))
        if status is not None:
            records = [r for r in records if r.status == RecordStatus(status)]
        return records

    def list_subjects(self) -> list[SubjectInfo]:
        study = quote(self.rave_study, safe="()")
        root = parse_odm(self._get(f"/studies/{study}/subjects")).getroot()
        subjects = []
        for subject in root.iter(_N + "SubjectData"):
            site = subject.find(_N + "SiteRef")
            subjects.append(
                SubjectInfo(
                    study_oid=self.study_oid,
                    subject_id=subject.get("SubjectKey", ""),
                    site_id=site.get("LocationOID") if site is not None else None,
                )
            )
        return subjects

    def list_visits(self, subject_id: str) -> list[VisitInfo]:
        visits: dict[str, VisitInfo] = {}
        for record in self.list_records(subject_id):
            visit = visits.setdefault(
                record.time_point_id,
                VisitInfo(
                    subject_id=subject_id,
                    time_point_id=record.time_point_id,
                    event_oid=f"SE.{record.time_point_id}",
                ),
            )
            if record.form_oid not in visit.forms:
                visit.forms.append(record.form_oid)
        return list(visits.values())

    def site_reported_values(
        self, subject_id: str, time_point_id: str
    ) -> dict[str, float | int | str | None]:
        values: dict[str, float | int | str | None] = {}
        for record in self.list_records(subject_id, form_oid=SITE_IMAGING_FORM_OID):
            if record.time_point_id == time_point_id:
                values.update(record.values())
        return values

    def version(self) -> str:
        """The RWS server's version string (a cheap connectivity check)."""
        return self._get("/version").decode("utf-8").strip()

    # HTTP ----------------------------------------------------------------------

    def _check_study(self, study: str | None) -> None:
        if study is not None and study not in (self.study_oid, self.rave_study):
            raise EdcError(
                f"this RWS adapter serves study {self.study_oid}, not {study}"
            )

    def _get(self, path: str, params: dict[str, str] | None = None) -> bytes:
        response = self._request("GET", path, params=params)
        return response.content

    def _post_clinical_data(self, document: bytes) -> dict[str, str]:
        if self.schema_path is not None:
            validate_odm(document, self.schema_path)
        response = self._request(
            "POST",
            "/webservice.aspx?PostODMClinicalData",
            content=document,
            headers={"Content-Type": "text/xml; charset=utf-8"},
        )
        attributes = _response_attributes(response.content)
        if attributes.get("IsTransactionSuccessful") != "1":
            raise EdcError(
                "the EDC did not apply the clinical data: "
                + attributes.get("ErrorClientResponseMessage", "no reason given")
            )
        return attributes

    def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.TimeoutException as exc:
            raise EdcError(
                f"the EDC at {self.base_url} did not answer in time; try again "
                "or raise the timeout"
            ) from exc
        except httpx.HTTPError as exc:
            raise EdcError(
                f"cannot reach the EDC at {self.base_url} ({type(exc).__name__}); "
                "check the URL and that the server runs"
            ) from exc
        if response.status_code < 400:
            return response
        message = _response_attributes(response.content).get(
            "ErrorClientResponseMessage", response.reason_phrase
        )
        status = response.status_code
        logger.info("RWS %s %s answered %d", method, path.split("?")[0], status)
        if status == 401:
            raise AuthenticationError(
                f"the EDC refused the credentials of web-service user "
                f"{self.username}: {message}; check the user name and password"
            )
        if status == 403:
            raise AuthorizationError(f"the EDC refused the request: {message}")
        if status == 404:
            raise NotFoundError(
                f"the EDC found nothing at {path.split('?')[0]}: {message}"
            )
        if status == 409:
            raise ConflictError(f"the EDC reports a conflict: {message}")
        if status >= 500:
            raise EdcError(
                f"the EDC failed with HTTP {status}: {message}; try again later"
            )
        raise EdcError(f"the EDC rejected the request (HTTP {status}): {message}")


def _response_attributes(content: bytes) -> dict[str, str]:
    """The attributes of an RWS ``Response`` element (empty if it is not one)."""
    try:
        root = etree.fromstring(
            content, etree.XMLParser(resolve_entities=False, no_network=True)
        )
    except etree.XMLSyntaxError:
        return {}
    if etree.QName(root).localname != "Response":
        return {}
    return {str(key): str(value) for key, value in root.attrib.items()}
