"""De-identify a folder of DICOM files, one outcome per file.

Each file is written (de-identified), quarantined (it may carry burned-in
text; the whole series is held back) or rejected (not DICOM, unreadable,
truncated, no SOP Instance UID), always with a reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from tools.deid.deidentifier import BurnedInTextError, Deidentifier
from triallens.errors import DeidentificationError

__all__ = ["FileOutcome", "Outcome", "deidentify_files", "read_dicom"]

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    WRITTEN = "written"
    QUARANTINED = "quarantined"
    REJECTED = "rejected"


@dataclass
class FileOutcome:
    """What happened to one input file (the reason never holds PHI)."""

    source: Path
    outcome: Outcome
    reason: str = ""
    output: Path | None = None
    series_key: str | None = None


def read_dicom(path: Path) -> Any:
    """Read a DICOM file, or raise DeidentificationError saying why not.

    Files without the DICM preamble are accepted only when they parse into a
    dataset with a SOP Class and SOP Instance UID.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        ds = _read_headerless(path)
    except Exception as exc:
        raise DeidentificationError(
            f"unreadable DICOM file ({type(exc).__name__})"
        ) from exc
    _check_pixel_length(ds)
    return ds


def _read_headerless(path: Path) -> Any:
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as exc:
        raise DeidentificationError("not a DICOM file") from exc
    if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
        raise DeidentificationError("not a DICOM file (no DICOM header)")
    return ds


def deidentify_files(
    files: Iterable[Path],
    out_dir: Path,
    deidentifier: Deidentifier,
    *,
    subject_id: str | None = None,
    site_id: str | None = None,
    time_point_id: str | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
) -> list[FileOutcome]:
    """De-identify files into ``out_dir/<subject>/<study>/<series>/<sop>.dcm``.

    A series with any quarantined instance is held back whole: instances
    already written for it are removed and reported as quarantined.
    """
    outcomes: list[FileOutcome] = []
    written: dict[Path, Path] = {}
    for path in files:
        outcome = _one_file(
            path, out_dir, deidentifier, subject_id, site_id, time_point_id, written
        )
        if outcome.output is not None:
            written[outcome.output] = path
        outcomes.append(outcome)
        if on_file is not None:
            on_file(outcome)

    held = {
        o.series_key: o.reason
        for o in outcomes
        if o.outcome is Outcome.QUARANTINED and o.series_key
    }
    for outcome in outcomes:
        if outcome.outcome is Outcome.WRITTEN and outcome.series_key in held:
            if outcome.output is not None:
                outcome.output.unlink(missing_ok=True)
            outcome.outcome = Outcome.QUARANTINED
            outcome.reason = f"series held back: {held[outcome.series_key]}"
            outcome.output = None
    return outcomes


def _one_file(
    path: Path,
    out_dir: Path,
    deidentifier: Deidentifier,
    subject_id: str | None,
    site_id: str | None,
    time_point_id: str | None,
    written: dict[Path, Path],
) -> FileOutcome:
    try:
        ds = read_dicom(path)
    except DeidentificationError as exc:
        return FileOutcome(path, Outcome.REJECTED, str(exc))
    series_key = str(ds.get("SeriesInstanceUID", "") or "") or None
    try:
        out = deidentifier.deidentify(
            ds, subject_id=subject_id, site_id=site_id, time_point_id=time_point_id
        )
    except BurnedInTextError as exc:
        return FileOutcome(path, Outcome.QUARANTINED, exc.reason, None, series_key)
    except DeidentificationError as exc:
        return FileOutcome(path, Outcome.REJECTED, str(exc), None, series_key)

    target = (
        out_dir
        / _safe(out.PatientID)
        / _safe(out.get("StudyInstanceUID", "no-study"))
        / _safe(out.get("SeriesInstanceUID", "no-series"))
        / f"{_safe(out.SOPInstanceUID)}.dcm"
    )
    if target in written:
        return FileOutcome(
            path,
            Outcome.REJECTED,
            f"same SOP Instance UID as {written[target].name}, already written",
            None,
            series_key,
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        out.save_as(target, enforce_file_format=True)
    except Exception as exc:
        target.unlink(missing_ok=True)
        logger.debug("writing failed for %s", path.name, exc_info=True)
        return FileOutcome(
            path,
            Outcome.REJECTED,
            f"de-identified instance could not be written ({type(exc).__name__})",
            None,
            series_key,
        )
    return FileOutcome(path, Outcome.WRITTEN, "", target, series_key)


def _check_pixel_length(ds: Any) -> None:
    """Reject native pixel data shorter than the image header announces."""
    if "PixelData" not in ds or getattr(ds, "file_meta", None) is None:
        return
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or syntax.is_compressed:
        return
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return
    expected = rows * cols * samples * frames * bits // 8
    actual = len(ds.PixelData)
    if actual < expected:
        raise DeidentificationError(
            f"pixel data truncated ({actual} of {expected} bytes)"
        )


def _safe(value: Any) -> str:
    text = str(value).strip() or "unknown"
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in text)
