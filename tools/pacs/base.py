"""The one PACS interface every TrialLens component talks to.

Two backends implement it: :class:`tools.pacs.local.LocalPacs`, an embedded
DICOMweb-shaped store on disk, and :class:`tools.pacs.dicomweb.DicomWebPacs`,
any DICOMweb server (Orthanc, dcm4chee, cloud DICOM stores).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tools.pacs.models import InstanceSummary, SeriesSummary, StoreReport, StudySummary

if TYPE_CHECKING:
    import pydicom

    from triallens.settings import Settings

__all__ = ["Pacs", "open_pacs"]


@runtime_checkable
class Pacs(Protocol):
    """Search, read and write one PACS.

    Every method raises :class:`triallens.errors.PacsError` when the PACS cannot
    be reached or answers badly, and :class:`triallens.errors.StudyNotFoundError`
    when a named study does not exist.
    """

    def search_studies(
        self, *, limit: int | None = None, offset: int = 0, **filters: Any
    ) -> list[StudySummary]:
        """Studies matching DICOM-keyword filters (``PatientID="..."``)."""
        ...

    def search_series(self, study_uid: str, **filters: Any) -> list[SeriesSummary]:
        """The series of one study."""
        ...

    def search_instances(
        self, study_uid: str, series_uid: str | None = None
    ) -> list[InstanceSummary]:
        """The instances of one study, or of one of its series."""
        ...

    def study_metadata(self, study_uid: str) -> list[dict[str, Any]]:
        """DICOM JSON metadata of every instance of a study (no pixel data)."""
        ...

    def series_metadata(self, study_uid: str, series_uid: str) -> list[dict[str, Any]]:
        """DICOM JSON metadata of every instance of a series."""
        ...

    def instance_metadata(
        self, study_uid: str, series_uid: str, sop_instance_uid: str
    ) -> dict[str, Any]:
        """DICOM JSON metadata of one instance."""
        ...

    def retrieve_study(self, study_uid: str) -> list[pydicom.Dataset]:
        """Every instance of a study, with pixel data."""
        ...

    def retrieve_series(self, study_uid: str, series_uid: str) -> list[pydicom.Dataset]:
        """Every instance of a series, with pixel data."""
        ...

    def retrieve_instance(
        self, study_uid: str, series_uid: str, sop_instance_uid: str
    ) -> pydicom.Dataset:
        """One instance, with pixel data."""
        ...

    def retrieve_frames(
        self,
        study_uid: str,
        series_uid: str,
        sop_instance_uid: str,
        frame_numbers: Sequence[int],
    ) -> list[bytes]:
        """Raw frames (1-based numbers) of one instance, uncompressed."""
        ...

    def store(self, datasets: Sequence[pydicom.Dataset]) -> StoreReport:
        """Store instances; the report names each stored and failed one."""
        ...

    def close(self) -> None:
        """Release connections and file handles."""
        ...


def open_pacs(url: str | None, settings: Settings) -> Pacs:
    """The PACS at ``url``, or the embedded local store when ``url`` is None.

    Parameters
    ----------
    url
        ``http(s)://...`` for a DICOMweb server, ``file:///dir`` or a plain
        path for a local store, None for ``settings.pacs_dir``.
    settings
        Credentials, timeout and retries for DICOMweb.

    Raises
    ------
    triallens.errors.PacsError
        The URL has an unsupported scheme.
    """
    from pathlib import Path
    from urllib.parse import urlparse

    from triallens.errors import PacsError

    if url is None:
        from tools.pacs.local import LocalPacs

        return LocalPacs(settings.pacs_dir)
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        try:
            parsed.port  # noqa: B018 - raises on a port out of range
        except ValueError as exc:
            raise PacsError(f"the PACS URL {url!r} is not valid: {exc}") from exc
        from tools.pacs.dicomweb import DicomWebPacs

        password = settings.pacs_password
        token = settings.pacs_token
        return DicomWebPacs(
            url,
            username=settings.pacs_username,
            password=password.get_secret_value() if password else None,
            token=token.get_secret_value() if token else None,
            timeout_s=settings.pacs_timeout_s,
            retries=settings.pacs_retries,
        )
    if scheme == "file" or scheme == "":
        from tools.pacs.local import LocalPacs

        path = urlparse(url).path if scheme == "file" else url
        return LocalPacs(Path(path))
    raise PacsError(
        f"unsupported PACS URL scheme {scheme!r}: use http(s):// for DICOMweb "
        "or file:// for a local store"
    )
