"""A DICOMweb PACS (QIDO-RS, WADO-RS, STOW-RS) through dicomweb-client.

Retries with exponential backoff cover timeouts (including a stall in the
middle of a streamed reply) and 5xx/429 answers; connection refusals, bad
URLs and other HTTP statuses fail at once with one clear line. Searches page
with ``limit``/``offset`` until the server has nothing more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from tools.pacs.local import _ensure_file_meta
from tools.pacs.models import InstanceSummary, SeriesSummary, StoreReport, StudySummary
from triallens.errors import PacsError, StudyNotFoundError

if TYPE_CHECKING:
    import pydicom
    import requests
    from dicomweb_client import DICOMwebClient

__all__ = ["DicomWebPacs"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_RETRIABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class _NoRequestLines(logging.Filter):
    """Drop dicomweb-client's debug lines, which print request headers."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not message.startswith(("GET:", "POST:", "DELETE:", "PUT:"))


logging.getLogger("dicomweb_client.web").addFilter(_NoRequestLines())


class DicomWebPacs:
    """Any DICOMweb server as a :class:`tools.pacs.base.Pacs`.

    Parameters
    ----------
    url
        Base URL of the DICOMweb service (for Orthanc ``.../dicom-web``).
    username, password
        HTTP basic authentication.
    token
        A bearer token (used instead of basic authentication when given).
    timeout_s
        Connect and read timeout of each request, in seconds.
    retries
        Further attempts after a timeout or a 5xx/429 answer.
    backoff_s
        The first wait between attempts; it doubles each time.
    page_size
        Results asked per search request when no ``limit`` is given.

    Raises
    ------
    triallens.errors.PacsError
        The URL is not an http(s) URL with a host.
    """

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 3,
        *,
        backoff_s: float = 0.5,
        page_size: int = 1000,
    ) -> None:
        import requests
        from dicomweb_client import DICOMwebClient

        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PacsError(
                f"bad PACS URL {url!r}: expected http(s)://host[:port]/path"
            )
        self.url = url.rstrip("/")
        self._where = f"{parsed.scheme}://{parsed.hostname}" + (
            f":{parsed.port}" if parsed.port else ""
        )
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.page_size = page_size

        session = requests.Session()
        if token:
            session.headers["Authorization"] = f"Bearer {token}"
        elif username is not None:
            session.auth = (username, password or "")
        self._session = session
        try:
            self._client: DICOMwebClient = DICOMwebClient(
                url=self.url, session=session, timeout=timeout_s
            )
        except ValueError as exc:
            raise PacsError(f"bad PACS URL {url!r}: {exc}") from exc
        self._client.set_http_retry_params(retry=False)

    def __repr__(self) -> str:
        return f"DicomWebPacs({self._where!r})"

    # Searches -----------------------------------------------------------

    def search_studies(
        self, *, limit: int | None = None, offset: int = 0, **filters: Any
    ) -> list[StudySummary]:
        items = self._paged(
            "search studies",
            lambda lim, off: self._client.search_for_studies(
                limit=lim, offset=off, search_filters=filters or None
            ),
            limit,
            offset,
        )
        found = (StudySummary.from_json(i) for i in items)
        return _unique([s for s in found if s is not None], lambda s: s.study_uid)

    def search_series(self, study_uid: str, **filters: Any) -> list[SeriesSummary]:
        items = self._paged(
            "search series",
            lambda lim, off: self._client.search_for_series(
                study_instance_uid=study_uid,
                limit=lim,
                offset=off,
                search_filters=filters or None,
            ),
            None,
            0,
            study_uid,
        )
        found = (SeriesSummary.from_json(i, study_uid) for i in items)
        series = _unique([s for s in found if s is not None], lambda s: s.series_uid)
        if not series:
            self._require_study(study_uid)
        return series

    def search_instances(
        self, study_uid: str, series_uid: str | None = None
    ) -> list[InstanceSummary]:
        items = self._paged(
            "search instances",
            lambda lim, off: self._client.search_for_instances(
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                limit=lim,
                offset=off,
            ),
            None,
            0,
            study_uid,
        )
        found = (InstanceSummary.from_json(i, study_uid, series_uid) for i in items)
        instances = [s for s in found if s is not None]
        if not instances:
            self._require_study(study_uid)
        return _unique(instances, lambda s: s.sop_instance_uid)

    # Metadata and retrieval --------------------------------------------

    def study_metadata(self, study_uid: str) -> list[dict[str, Any]]:
        return self._call(
            "retrieve study metadata",
            lambda: self._client.retrieve_study_metadata(study_instance_uid=study_uid),
            study_uid,
        )

    def series_metadata(self, study_uid: str, series_uid: str) -> list[dict[str, Any]]:
        return self._call(
            "retrieve series metadata",
            lambda: self._client.retrieve_series_metadata(
                study_instance_uid=study_uid, series_instance_uid=series_uid
            ),
            study_uid,
        )

    def instance_metadata(
        self, study_uid: str, series_uid: str, sop_instance_uid: str
    ) -> dict[str, Any]:
        return self._call(
            "retrieve instance metadata",
            lambda: self._client.retrieve_instance_metadata(
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                sop_instance_uid=sop_instance_uid,
            ),
            study_uid,
        )

    def retrieve_study(self, study_uid: str) -> list[pydicom.Dataset]:
        return self._call(
            "retrieve study",
            lambda: self._client.retrieve_study(study_instance_uid=study_uid),
            study_uid,
        )

    def retrieve_series(self, study_uid: str, series_uid: str) -> list[pydicom.Dataset]:
        return self._call(
            "retrieve series",
            lambda: self._client.retrieve_series(
                study_instance_uid=study_uid, series_instance_uid=series_uid
            ),
            study_uid,
        )

    def retrieve_instance(
        self, study_uid: str, series_uid: str, sop_instance_uid: str
    ) -> pydicom.Dataset:
        return self._call(
            "retrieve instance",
            lambda: self._client.retrieve_instance(
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                sop_instance_uid=sop_instance_uid,
            ),
            study_uid,
        )

    def retrieve_frames(
        self,
        study_uid: str,
        series_uid: str,
        sop_instance_uid: str,
        frame_numbers: Sequence[int],
    ) -> list[bytes]:
        return self._call(
            "retrieve frames",
            lambda: self._client.retrieve_instance_frames(
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                sop_instance_uid=sop_instance_uid,
                frame_numbers=list(frame_numbers),
                media_types=("application/octet-stream",),
            ),
            study_uid,
        )

    # Storage -------------------------------------------------------------

    def store(self, datasets: Sequence[pydicom.Dataset]) -> StoreReport:
        report = StoreReport()
        if not datasets:
            return report
        for ds in datasets:
            _ensure_file_meta(ds)
        reply = self._call(
            "store", lambda: self._client.store_instances(datasets=list(datasets))
        )
        for item in getattr(reply, "ReferencedSOPSequence", None) or []:
            report.stored.append(str(item.ReferencedSOPInstanceUID))
        # A successful STOW-RS reply may carry an empty FailedSOPSequence.
        for item in getattr(reply, "FailedSOPSequence", None) or []:
            uid = str(getattr(item, "ReferencedSOPInstanceUID", "unknown"))
            report.failed[uid] = f"reason {getattr(item, 'FailureReason', 'unknown')}"
        return report

    def close(self) -> None:
        self._session.close()

    # Helpers -------------------------------------------------------------

    def _paged(
        self,
        operation: str,
        fetch: Callable[[int, int | None], list[dict[str, Any]]],
        limit: int | None,
        offset: int,
        study_uid: str | None = None,
    ) -> list[dict[str, Any]]:
        if limit is not None:
            return self._call(
                operation, lambda: fetch(limit, offset or None), study_uid
            )
        items: list[dict[str, Any]] = []
        previous: list[dict[str, Any]] | None = None
        while True:
            start = offset + len(items)
            page = self._call(
                operation,
                lambda start=start: fetch(self.page_size, start or None),  # type: ignore[misc]
                study_uid,
            )
            # Servers may cap a page below page_size: stop on an empty page.
            if not page:
                return items
            # A server that ignores ``offset`` sends the same page again.
            if page == previous:
                logger.warning(
                    "%s: the PACS at %s ignores offset; paging stopped",
                    operation,
                    self._where,
                )
                return items
            items.extend(page)
            previous = page

    def _require_study(self, study_uid: str) -> None:
        found = self._call(
            "search studies",
            lambda: self._client.search_for_studies(
                search_filters={"StudyInstanceUID": study_uid}, limit=1
            ),
        )
        if not found:
            raise StudyNotFoundError(
                f"study {study_uid} is not in the PACS at {self._where}"
            )

    def _call(
        self, operation: str, action: Callable[[], _T], study_uid: str | None = None
    ) -> _T:
        import requests

        attempt = 0
        while True:
            try:
                return action()
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                if status == 404 and study_uid is not None:
                    raise StudyNotFoundError(
                        f"study {study_uid} is not in the PACS at {self._where}"
                    ) from exc
                if status not in _RETRIABLE_STATUS or attempt >= self.retries:
                    raise PacsError(
                        self._describe(operation, f"HTTP {status}", attempt)
                    ) from exc
                problem = f"HTTP {status}"
            except requests.RequestException as exc:
                problem = _transient_problem(exc)
                if problem is None:
                    raise PacsError(
                        self._describe(operation, _connection_problem(exc), attempt)
                    ) from exc
                if attempt >= self.retries:
                    raise PacsError(
                        self._describe(operation, problem, attempt)
                    ) from exc
            wait = self.backoff_s * (2**attempt)
            attempt += 1
            logger.warning(
                "PACS %s: %s on %s; retry %d of %d in %.1f s",
                self._where,
                problem,
                operation,
                attempt,
                self.retries,
                wait,
            )
            time.sleep(wait)

    def _describe(self, operation: str, problem: str, attempt: int) -> str:
        tries = f" after {attempt + 1} attempts" if attempt else ""
        return f"PACS at {self._where}: {operation} failed: {problem}{tries}"


def _transient_problem(exc: requests.RequestException) -> str | None:
    """A short name for a timeout-like failure worth retrying, else None."""
    import requests

    if isinstance(exc, requests.Timeout):
        return "timed out (no answer within the timeout)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "reply cut off"
    text = repr(exc)
    if "ReadTimeout" in text or "timed out" in text:
        return "timed out (stalled reply)"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection dropped"
    return None


def _connection_problem(exc: requests.RequestException) -> str:
    text = repr(exc)
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "Name or service not known" in text or "getaddrinfo" in text:
        return "unknown host"
    if "InvalidURL" in type(exc).__name__ or "MissingSchema" in type(exc).__name__:
        return "bad URL"
    return f"cannot connect ({type(exc).__name__})"


def _unique(items: list[_T], key: Callable[[_T], str]) -> list[_T]:
    seen: set[str] = set()
    out: list[_T] = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out
