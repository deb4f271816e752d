"""A real Orthanc with its DICOMweb plugin, and small synthetic DICOM studies.

``orthanc`` is session-scoped: one server on free loopback ports in a temp
folder for the whole run. Without Orthanc installed the tests that use it skip
(or fail when ``CI=true``, where the server must be present).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

__all__ = [
    "OrthancServer",
    "free_port",
    "non_image_instance",
    "orthanc",
    "orthanc_missing",
    "run_orthanc",
    "synthetic_ct_study",
    "write_datasets",
]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
NON_IMAGE_SOP_CLASSES = {
    "SR": "1.2.840.10008.5.1.4.1.1.88.11",
    "KO": "1.2.840.10008.5.1.4.1.1.88.59",
    "PR": "1.2.840.10008.5.1.4.1.1.11.1",
    "SEG": "1.2.840.10008.5.1.4.1.1.66.4",
}
_PLUGIN_CANDIDATES = (
    Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"),
    Path("/usr/lib/orthanc/libOrthancDicomWeb.so"),
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OrthancServer:
    """A running Orthanc: its URLs, DICOM port and AE title, and helpers."""

    http_url: str
    dicomweb_url: str
    dicom_port: int
    aet: str
    workdir: Path
    stable_age_s: int

    def storescu(self, paths: Sequence[Path], calling_aet: str = "TLTEST") -> None:
        """Push files to Orthanc over C-STORE with dcmtk's ``storescu``."""
        push_with_storescu(paths, self.dicom_port, self.aet, calling_aet)

    def rest(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call Orthanc's REST API and return the decoded JSON reply."""
        reply = requests.request(method, f"{self.http_url}{path}", timeout=30, **kwargs)
        reply.raise_for_status()
        return reply.json() if reply.content else None

    def delete_all(self) -> None:
        """Remove every study, so that a test starts from an empty server."""
        for orthanc_id in self.rest("GET", "/studies"):
            self.rest("DELETE", f"/studies/{orthanc_id}")

    def last_change(self) -> int:
        """The sequence number of the latest entry in the /changes feed."""
        return int(self.rest("GET", "/changes?last")["Last"])


def push_with_storescu(
    paths: Sequence[Path], port: int, called_aet: str, calling_aet: str = "TLTEST"
) -> None:
    """Send files over C-STORE to 127.0.0.1:port with dcmtk's ``storescu``."""
    binary = shutil.which("storescu")
    if binary is None:
        _unavailable("dcmtk storescu is not installed (scripts/system-deps.sh)")
    command = [binary, "-aet", calling_aet, "-aec", called_aet, "127.0.0.1", str(port)]
    result = subprocess.run(
        [*command, *map(str, paths)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise AssertionError(f"storescu failed: {result.stderr.strip()[-500:]}")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """A real Orthanc with DICOMweb on free loopback ports, for the session."""
    if orthanc_missing() is not None:
        _unavailable(str(orthanc_missing()))
    with run_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


def orthanc_missing() -> str | None:
    """Why Orthanc cannot be started here, or None when it can."""
    if shutil.which("Orthanc") is None:
        return "Orthanc is not installed (scripts/system-deps.sh)"
    if not any(p.exists() for p in _PLUGIN_CANDIDATES):
        return "the orthanc-dicomweb plugin is not installed"
    return None


@contextmanager
def run_orthanc(
    workdir: Path, stable_age_s: int = 1, extra_config: dict[str, Any] | None = None
) -> Iterator[OrthancServer]:
    """Start Orthanc with DICOMweb in ``workdir``; stop it and wait on exit."""
    binary = shutil.which("Orthanc")
    plugin = next((p for p in _PLUGIN_CANDIDATES if p.exists()), None)
    if binary is None or plugin is None:
        raise RuntimeError(orthanc_missing())
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    while dicom_port == http_port:
        dicom_port = free_port()
    config = {
        "Name": "TrialLensTest",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "StableAge": stable_age_s,
        "Plugins": [str(plugin)],
        "DicomWeb": {
            "Enable": True,
            "Root": "/dicom-web/",
            "EnableWado": True,
            "StudiesMetadata": "Full",
            "SeriesMetadata": "Full",
        },
    }
    config.update(extra_config or {})
    config_path = workdir / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    log = (workdir / "orthanc.log").open("wb")
    process = subprocess.Popen(
        [binary, str(config_path)], cwd=workdir, stdout=log, stderr=subprocess.STDOUT
    )
    server = OrthancServer(
        http_url=f"http://127.0.0.1:{http_port}",
        dicomweb_url=f"http://127.0.0.1:{http_port}/dicom-web",
        dicom_port=dicom_port,
        aet="ORTHANC",
        workdir=workdir,
        stable_age_s=stable_age_s,
    )
    try:
        users = dict(config.get("RegisteredUsers") or {})
        _wait_ready(server, process, next(iter(users.items()), None))
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _wait_ready(
    server: OrthancServer,
    process: subprocess.Popen[bytes],
    auth: tuple[str, str] | None = None,
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (server.workdir / "orthanc.log").read_text(errors="replace")
            raise AssertionError(f"Orthanc exited at start-up:\n{log[-2000:]}")
        try:
            url = f"{server.http_url}/plugins"
            plugins = requests.get(url, timeout=1, auth=auth).json()
            if "dicom-web" in plugins:
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError("Orthanc did not answer within 30 s")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must provide it")
    pytest.skip(reason)


# Synthetic data -------------------------------------------------------------


def synthetic_ct_study(
    slices: int = 4,
    size: int = 16,
    *,
    patient_id: str = "SYN-0001",
    subject_id: str = "SUBJ-001",
    protocol_id: str = "TL-DEMO-001",
    time_point_id: str = "BASELINE",
    accession: str = "ACC0001",
    study_date: str = "20240105",
    study_uid: str | None = None,
    series_uid: str | None = None,
    seed: int = 0,
) -> list[Dataset]:
    """A small axial CT series: ``slices`` images of ``size`` x ``size`` pixels.

    Pixel values are ``seed * 1000 + slice * 10 + column`` so that a retrieved
    image can be checked value for value. Slices are 2.5 mm apart, 0.8 mm
    pixels.
    """
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_of_reference = generate_uid()
    out: list[Dataset] = []
    for index in range(slices):
        ds = _base_dataset(CT_IMAGE_STORAGE, "CT", study_uid, series_uid)
        ds.PatientID = patient_id
        ds.PatientName = "Synthetic^Patient"
        ds.AccessionNumber = accession
        ds.StudyDate = study_date
        ds.StudyTime = "101500"
        ds.StudyDescription = "CT CHEST ABDOMEN PELVIS"
        ds.SeriesDescription = "AXIAL 2.5MM"
        ds.SeriesNumber = 2
        ds.InstanceNumber = index + 1
        ds.ClinicalTrialSponsorName = "TrialLens Test Sponsor"
        ds.ClinicalTrialProtocolID = protocol_id
        ds.ClinicalTrialSubjectID = subject_id
        ds.ClinicalTrialTimePointID = time_point_id
        ds.FrameOfReferenceUID = frame_of_reference
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-6.4, -6.4, -2.5 * index]
        ds.SliceThickness = 2.5
        ds.PixelSpacing = [0.8, 0.8]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        pixels = np.tile(np.arange(size, dtype=np.int16), (size, 1))
        pixels = pixels + np.int16(seed * 1000 + index * 10)
        ds.PixelData = pixels.tobytes()
        out.append(ds)
    return out


def non_image_instance(
    kind: str, study_uid: str, patient_id: str = "SYN-0001"
) -> Dataset:
    """A minimal SR, KO, PR or SEG instance in its own series of a study."""
    ds = _base_dataset(NON_IMAGE_SOP_CLASSES[kind], kind, study_uid, generate_uid())
    ds.PatientID = patient_id
    ds.PatientName = "Synthetic^Patient"
    ds.StudyDate = "20240105"
    ds.SeriesNumber = 90 + list(NON_IMAGE_SOP_CLASSES).index(kind)
    ds.InstanceNumber = 1
    return ds


def write_datasets(datasets: Sequence[Dataset], folder: Path) -> list[Path]:
    """Write datasets as Part 10 files named by SOP Instance UID."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _base_dataset(
    sop_class: str, modality: str, study_uid: str, series_uid: str
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    sop_uid = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.SpecificCharacterSet = "ISO_IR 100"
    return ds


def read_pixels(ds: pydicom.Dataset) -> np.ndarray:
    """The stored pixel values of a retrieved image."""
    return np.asarray(ds.pixel_array)
