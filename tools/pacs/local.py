"""The embedded PACS: DICOM files in a folder with an SQLite index.

The store is dicomweb-client's ``DICOMfileClient`` over a ``file://`` URL, so
it answers the same searches and retrievals as a DICOMweb server. The index is
one SQLite connection per thread (sqlite3 connections stay in their thread).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tools.pacs.models import InstanceSummary, SeriesSummary, StoreReport, StudySummary
from triallens.errors import DicomInputError, PacsError, StudyNotFoundError

if TYPE_CHECKING:
    import pydicom
    from dicomweb_client import DICOMfileClient

__all__ = ["LocalPacs"]

logger = logging.getLogger(__name__)

_INDEX_FILE = ".dicom-file-client.db"


class _QuietWriteDeprecation(logging.Filter):
    """Drop pydicom's deprecation line that DICOMfileClient triggers per write."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "'write_like_original' is deprecated" not in str(record.msg)


logging.getLogger("pydicom").addFilter(_QuietWriteDeprecation())
_T = TypeVar("_T")


class LocalPacs:
    """A DICOMweb-shaped PACS on the local disk.

    Parameters
    ----------
    directory
        The folder of the store; created when missing. Files placed in it by
        hand are indexed when the store opens.

    Raises
    ------
    triallens.errors.DicomInputError
        A file in the folder is not DICOM (the message names the file).
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._client()
        self._check_unindexed_files()

    def __repr__(self) -> str:
        return f"LocalPacs({str(self.directory)!r})"

    # Searches -----------------------------------------------------------

    def search_studies(
        self, *, limit: int | None = None, offset: int = 0, **filters: Any
    ) -> list[StudySummary]:
        items = self._call(
            "search studies",
            lambda c: c.search_for_studies(
                limit=limit, offset=offset or None, search_filters=filters or None
            ),
        )
        return [s for s in map(StudySummary.from_json, items) if s is not None]

    def search_series(self, study_uid: str, **filters: Any) -> list[SeriesSummary]:
        self._require_study(study_uid)
        items = self._call(
            "search series",
            lambda c: c.search_for_series(
                study_instance_uid=study_uid, search_filters=filters or None
            ),
        )
        found = (SeriesSummary.from_json(i, study_uid) for i in items)
        return [s for s in found if s is not None]

    def search_instances(
        self, study_uid: str, series_uid: str | None = None
    ) -> list[InstanceSummary]:
        self._require_study(study_uid)
        items = self._call(
            "search instances",
            lambda c: c.search_for_instances(
                study_instance_uid=study_uid, series_instance_uid=series_uid
            ),
        )
        found = (InstanceSummary.from_json(i, study_uid, series_uid) for i in items)
        return [s for s in found if s is not None]

    # Metadata and retrieval --------------------------------------------

    def study_metadata(self, study_uid: str) -> list[dict[str, Any]]:
        self._require_study(study_uid)
        return self._call(
            "retrieve study metadata",
            lambda c: c.retrieve_study_metadata(study_instance_uid=study_uid),
        )

    def series_metadata(self, study_uid: str, series_uid: str) -> list[dict[str, Any]]:
        self._require_study(study_uid)
        return self._call(
            "retrieve series metadata",
            lambda c: c.retrieve_series_metadata(
                study_instance_uid=study_uid, series_instance_uid=series_uid
            ),
        )

    def instance_metadata(
        self, study_uid: str, series_uid: str, sop_instance_uid: str
    ) -> dict[str, Any]:
        self._require_study(study_uid)
        return self._call(
            "retrieve instance metadata",
            lambda c: c.retrieve_instance_metadata(
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                sop_instance_uid=sop_instance_uid,
            ),
        )

    def retrieve_study(self, study_uid: str) -> list[pydicom.Dataset]:
        self._require_study(study_uid)
        return self._call(
            "retrieve study",
            lambda c: c.retrieve_study(study_instance_uid=study_uid),
        )

    def retrieve_series(self, study_uid: str, series_uid: str) -> list[pydicom.Dataset]:
        self._require_study(study_uid)
        return self._call(
            "retrieve series",
            lambda c: c.retrieve_series(
                study_instance_uid=study_uid, series_instance_uid=series_uid
            ),
        )

    def retrieve_instance(
        self, study_uid: str, series_uid: str, sop_instance_uid: str
    ) -> pydicom.Dataset:
        self._require_study(study_uid)
        return self._call(
            "retrieve instance",
            lambda c: c.retrieve_instance(
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                sop_instance_uid=sop_instance_uid,
            ),
        )

    def retrieve_frames(
        self,
        study_uid: str,
        series_uid: str,
        sop_instance_uid: str,
        frame_numbers: Sequence[int],
    ) -> list[bytes]:
        self._require_study(study_uid)
        return self._call(
            "retrieve frames",
            lambda c: c.retrieve_instance_frames(
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                sop_instance_uid=sop_instance_uid,
                frame_numbers=list(frame_numbers),
                media_types=(("application/octet-stream", "*"),),
            ),
        )

    # Storage -------------------------------------------------------------

    def store(self, datasets: Sequence[pydicom.Dataset]) -> StoreReport:
        report = StoreReport()
        if not datasets:
            return report
        for ds in datasets:
            _ensure_file_meta(ds)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*write_like_original.*")
            reply = self._call("store", lambda c: c.store_instances(datasets=datasets))
        for item in getattr(reply, "ReferencedSOPSequence", None) or []:
            report.stored.append(str(item.ReferencedSOPInstanceUID))
        for item in getattr(reply, "FailedSOPSequence", None) or []:
            reason = getattr(item, "FailureReason", "unknown")
            report.failed[str(item.ReferencedSOPInstanceUID)] = f"reason {reason}"
        return report

    def close(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            manager = getattr(client, "_db_manager", None)
            connection = getattr(manager, "_db_connection_handle", None)
            if connection is not None:
                connection.close()
            self._local.client = None

    # Helpers -------------------------------------------------------------

    def _client(self) -> DICOMfileClient:
        client = getattr(self._local, "client", None)
        if client is None:
            from dicomweb_client import DICOMfileClient

            client = DICOMfileClient(url=self.directory.as_uri(), update_db=True)
            self._local.client = client
        return client

    def _call(self, operation: str, action: Callable[[DICOMfileClient], _T]) -> _T:
        import requests

        try:
            return action(self._client())
        except requests.HTTPError as exc:
            raise PacsError(
                f"local PACS store at {self.directory}: {operation} failed "
                f"({_reason(exc)})"
            ) from exc

    def _require_study(self, study_uid: str) -> None:
        found = self._call(
            "search studies",
            lambda c: c.search_for_studies(
                search_filters={"StudyInstanceUID": study_uid}
            ),
        )
        if not found:
            raise StudyNotFoundError(
                f"study {study_uid} is not in the local PACS store at {self.directory}"
            )

    def _check_unindexed_files(self) -> None:
        index = self.directory / _INDEX_FILE
        with sqlite3.connect(f"{index.as_uri()}?mode=ro", uri=True) as connection:
            rows = connection.execute("SELECT _file_path FROM instances").fetchall()
        indexed = {self.directory / row[0] for row in rows}
        for path in sorted(self.directory.rglob("*")):
            if not path.is_file() or path.name.startswith(_INDEX_FILE):
                continue
            if path.name == "DICOMDIR" or path in indexed:
                continue
            name = path.relative_to(self.directory)
            raise DicomInputError(
                f"{name} in the local PACS store {self.directory} is not a "
                f"readable DICOM instance ({_why_not_dicom(path)}); remove it "
                "or move it out of the store"
            )


def _ensure_file_meta(ds: pydicom.Dataset) -> None:
    """Give a dataset the File Meta Information a Part 10 file needs."""
    from pydicom.dataset import FileMetaDataset, validate_file_meta
    from pydicom.uid import ExplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if "MediaStorageSOPClassUID" not in meta and "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in meta and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    validate_file_meta(meta, enforce_standard=True)
    # Without a preamble the encoded instance lacks the "DICM" prefix, and
    # readers of the stored file (WADO-RS clients included) reject it.
    if not getattr(ds, "preamble", None):
        ds.preamble = b"\x00" * 128


def _why_not_dicom(path: Path) -> str:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        return "no DICOM preamble or header"
    except Exception as exc:
        return f"cannot be decoded: {type(exc).__name__}"
    missing = [
        k for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID") if k not in ds
    ]
    if missing:
        return "missing " + ", ".join(missing)
    return "not indexed"


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    reason = getattr(response, "reason", None) or str(exc)
    return str(reason).splitlines()[0][:200]
