"""The embedded EDC served over a Rave-Web-Services-shaped HTTP API.

Routes, under ``/RaveWebServices``:

=======  ===============================================  =========================
GET      ``/version``                                     server version (text)
GET      ``/studies``                                     studies (ODM)
GET      ``/studies/{Study(Env)}/subjects``               subjects (ODM)
GET      ``/studies/{Study(Env)}/datasets/regular``       clinical data (ODM);
                                                          ``?formoid=`` filters
GET      ``/studies/{Study(Env)}/subjects/{key}/datasets/regular``  one subject
GET      ``/studies/{Study(Env)}/datasets/queries``       queries (ODM);
                                                          ``?subject=&status=``
POST     ``/webservice.aspx?PostODMClinicalData``         import ODM (text/xml)
=======  ===============================================  =========================

Every route needs HTTP Basic auth: a user of the :class:`~triallens.users.UserStore`
with their password or one of their API tokens. A post answers with a
``Response`` element whose ``IsTransactionSuccessful`` is ``1`` or ``0``; a
failure also carries ``ReasonCode`` and ``ErrorClientResponseMessage``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tools.edc import metadata as md
from tools.edc.odm import (
    ODM_NS,
    export_clinical_data,
    import_clinical_data,
    parse_odm,
)
from tools.edc.odm_common import odm_root
from tools.edc.odm_queries import has_query_flags, queries_document
from triallens.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    EdcError,
    NotFoundError,
    TrialLensError,
)
from triallens.users import Permission, User, UserStore

if TYPE_CHECKING:
    from tools.edc.embedded import EmbeddedEdc

__all__ = ["RWS_VERSION", "build_rws_app", "split_study_oid"]

logger = logging.getLogger(__name__)

RWS_VERSION = "1.0.0 TrialLens embedded EDC"
_STUDY_ENV = re.compile(r"^(?P<study>.+)\((?P<env>[^()]+)\)$")
_N = f"{{{ODM_NS}}}"
_XML = "text/xml; charset=utf-8"


def split_study_oid(study_oid: str) -> tuple[str, str | None]:
    """``"Study(Env)"`` -> ``("Study", "Env")``; a plain OID has no environment."""
    match = _STUDY_ENV.match(study_oid)
    if match is None:
        return study_oid, None
    return match["study"], match["env"]


def build_rws_app(
    edc: EmbeddedEdc,
    users: UserStore,
    *,
    schema_path: str | Path | None = None,
) -> Starlette:
    """A Starlette application serving ``edc`` as Rave Web Services.

    Parameters
    ----------
    edc
        The embedded EDC to serve.
    users
        Who may call it (Basic auth: password or API token).
    schema_path
        When given, every posted ODM document is validated against this
        ODM 1.3.2 schema before it is applied.
    """

    def authenticate(request: Request) -> User:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise AuthenticationError("HTTP Basic authentication is required")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise AuthenticationError("malformed Basic credentials") from exc
        username, _, secret = decoded.partition(":")
        try:
            return users.check_password(username, secret)
        except AuthenticationError:
            user = users.authenticate_token(secret)
            if user.username != username:
                raise AuthenticationError(
                    "the API token belongs to another user"
                ) from None
            return user

    async def version(request: Request) -> Response:
        authenticate(request)
        return PlainTextResponse(RWS_VERSION)

    async def studies(request: Request) -> Response:
        authenticate(request)
        root = _odm_root()
        studies_seen = sorted({s.study_oid for s in edc.list_subjects()})
        for study in studies_seen:
            study_el = etree.SubElement(root, _N + "Study", OID=study)
            variables = etree.SubElement(study_el, _N + "GlobalVariables")
            etree.SubElement(variables, _N + "StudyName").text = study
            etree.SubElement(variables, _N + "StudyDescription").text = study
            etree.SubElement(variables, _N + "ProtocolName").text = study
        return _xml(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))

    async def subjects(request: Request) -> Response:
        authenticate(request)
        study, _ = split_study_oid(request.path_params["study"])
        root = _odm_root()
        clinical = etree.SubElement(
            root,
            _N + "ClinicalData",
            StudyOID=request.path_params["study"],
            MetaDataVersionOID=md.METADATA_VERSION_OID,
        )
        for subject in edc.list_subjects(study):
            subject_el = etree.SubElement(
                clinical, _N + "SubjectData", SubjectKey=subject.subject_id
            )
            if subject.site_id:
                etree.SubElement(
                    subject_el, _N + "SiteRef", LocationOID=subject.site_id
                )
        return _xml(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))

    async def dataset(request: Request) -> Response:
        authenticate(request)
        study, _ = split_study_oid(request.path_params["study"])
        subject = request.path_params.get("subject")
        records = edc.list_records(
            subject,
            study_oid=study,
            form_oid=request.query_params.get("formoid") or None,
        )
        return _xml(export_clinical_data(edc, records=records, file_type="Snapshot"))

    async def query_dataset(request: Request) -> Response:
        authenticate(request)
        study, _ = split_study_oid(request.path_params["study"])
        queries = [
            q
            for q in edc.list_queries(
                request.query_params.get("subject") or None,
                request.query_params.get("status") or None,
            )
            if q.study_oid == study
        ]
        return _xml(queries_document(request.path_params["study"], queries))

    async def post_clinical_data(request: Request) -> Response:
        if "PostODMClinicalData" not in request.url.query:
            raise NotFoundError("unknown web service; use ?PostODMClinicalData")
        user = authenticate(request)
        body = await request.body()
        _check_post_permissions(user, body)
        result = import_clinical_data(
            edc,
            _strip_environment(body),
            actor=user.username,
            role=user.role.value,
            schema_path=schema_path,
        )
        touched = result.created + result.updated + result.unchanged
        text = (
            f"<Response ReferenceNumber={quoteattr(str(uuid.uuid4()))} "
            f"InboundODMFileOID={quoteattr(result.file_oid)} "
            'IsTransactionSuccessful="1" '
            f"SuccessStatistics={quoteattr(_statistics(result))} "
            f"NewRecords={quoteattr(','.join(result.created))} "
            f"TouchedRecords={quoteattr(','.join(touched))} "
            f"QueryIds={quoteattr(','.join(result.queries))}/>"
        )
        return _xml(text.encode("utf-8"))

    app = Starlette(
        routes=[
            Route("/RaveWebServices/version", version),
            Route("/RaveWebServices/studies", studies),
            Route("/RaveWebServices/studies/{study}/subjects", subjects),
            Route("/RaveWebServices/studies/{study}/datasets/regular", dataset),
            Route("/RaveWebServices/studies/{study}/datasets/queries", query_dataset),
            Route(
                "/RaveWebServices/studies/{study}/subjects/{subject}/datasets/regular",
                dataset,
            ),
            Route(
                "/RaveWebServices/webservice.aspx",
                post_clinical_data,
                methods=["POST"],
            ),
        ],
        exception_handlers={TrialLensError: _error_response},
    )
    return app


def _check_post_permissions(user: User, body: bytes) -> None:
    """Refuse posts the user's role does not allow.

    A review decision (confirmed, modified, rejected) needs an e-signature and
    is never taken over the wire; locking needs the lock permission; other
    writes need the EDC data permission of a data manager.
    """
    if not user.can(Permission.WRITE_CLINICAL_DATA):
        raise AuthorizationError(
            f"user {user.username} ({user.role}) may not post clinical data"
        )
    root = parse_odm(body).getroot()
    if has_query_flags(root) and not user.can(Permission.MANAGE_QUERIES):
        raise AuthorizationError(
            f"user {user.username} ({user.role}) may not raise or close queries"
        )
    for flag in root.iter(_N + "Flag"):
        if flag.findtext(_N + "FlagType") != "RECORD_STATUS":
            continue
        status = (flag.findtext(_N + "FlagValue") or "").strip()
        if status in ("confirmed", "modified", "rejected"):
            raise AuthorizationError(
                "review decisions need an e-signature and cannot be posted; "
                "use TrialLens review"
            )
        if status == "locked" and not user.can(Permission.LOCK_RECORDS):
            raise AuthorizationError(f"user {user.username} may not lock records")


def _strip_environment(body: bytes) -> bytes:
    """Map ``StudyOID="Study(Env)"`` to the embedded study ``Study``."""
    root = parse_odm(body).getroot()
    for clinical in root.iter(_N + "ClinicalData"):
        study, _ = split_study_oid(clinical.get("StudyOID", ""))
        clinical.set("StudyOID", study)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _statistics(result: object) -> str:
    created = len(result.created)  # type: ignore[attr-defined]
    updated = len(result.updated)  # type: ignore[attr-defined]
    return f"Rave objects touched: Forms={created + updated}; NewForms={created}"


def _odm_root() -> etree._Element:
    return odm_root("Snapshot")


def _xml(body: bytes) -> Response:
    return Response(body, media_type=_XML)


_STATUS_CODES: list[tuple[type[TrialLensError], int, str]] = [
    (AuthenticationError, 401, "RWS00008"),
    (AuthorizationError, 403, "RWS00009"),
    (NotFoundError, 404, "RWS00010"),
    (ConflictError, 409, "RWS00011"),
    (EdcError, 400, "RWS00024"),
]


async def _error_response(request: Request, exc: Exception) -> Response:
    status, code = 400, "RWS00024"
    for kind, http_status, reason_code in _STATUS_CODES:
        if isinstance(exc, kind):
            status, code = http_status, reason_code
            break
    logger.info("RWS %s %s refused: %s", request.method, request.url.path, code)
    body = (
        f"<Response ReferenceNumber={quoteattr(str(uuid.uuid4()))} "
        f'IsTransactionSuccessful="0" ReasonCode="{code}" '
        f"ErrorClientResponseMessage={quoteattr(str(exc))}/>"
    )
    headers = (
        {"WWW-Authenticate": 'Basic realm="RaveWebServices"'} if status == 401 else {}
    )
    return Response(
        body.encode("utf-8"), status_code=status, media_type=_XML, headers=headers
    )
