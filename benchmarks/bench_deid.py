"""De-identification throughput: TrialLens next to dicognito, same files, same run.

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_deid.py [DICOM_DIR] [--repeat N]

Without a folder, a synthetic CT series (512 x 512, planted identifiers) is
written to a temporary folder first. Each tool reads every file, de-identifies
it and writes it to memory; the figures include reading and writing, as a
core lab run would.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _synthetic_series(folder: Path, count: int) -> list[Path]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame
        ds.PatientName, ds.PatientID = "BENCH^PATIENT", "MRN0001"
        ds.PatientBirthDate, ds.PatientSex = "19700101", "M"
        ds.InstitutionName, ds.AccessionNumber = "BENCH HOSPITAL", "ACC1"
        ds.ReferringPhysicianName, ds.StudyID = "REF^DOC", "1"
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240101"
        ds.StudyTime = ds.ContentTime = "120000"
        ds.StudyDescription, ds.SeriesDescription = "CT CHEST C+", "AXIAL 1MM"
        ds.Modality, ds.InstanceNumber = "CT", index + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(index)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1.0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = 512
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.add_new(0x00091010, "LO", "BENCH PRIVATE")
        ds.PixelData = rng.integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
        path = folder / f"{index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _readable(paths: list[Path]) -> list[Path]:
    keep = []
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if "SOPInstanceUID" in ds and "PixelData" in pydicom.dcmread(path):
            keep.append(path)
    return keep


def _run(
    paths: list[Path], work: Callable[[pydicom.Dataset], pydicom.Dataset]
) -> float:
    start = time.perf_counter()
    for path in paths:
        ds = pydicom.dcmread(path)
        out = work(ds)
        out.save_as(io.BytesIO(), enforce_file_format=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()

    from dicognito.anonymizer import Anonymizer

    from tools.deid import Deidentifier

    with tempfile.TemporaryDirectory() as tmp:
        if args.folder:
            paths = _readable(sorted(p for p in args.folder.rglob("*") if p.is_file()))
        else:
            paths = _synthetic_series(Path(tmp), args.count)
        size_mb = sum(p.stat().st_size for p in paths) / 1e6

        deidentifier = Deidentifier("benchmark-secret", "BENCH-TRIAL", "BENCH")
        anonymizer = Anonymizer(seed="benchmark-secret")

        def triallens(ds: pydicom.Dataset) -> pydicom.Dataset:
            return deidentifier.deidentify(ds, allow_burned_in=True)

        def dicognito(ds: pydicom.Dataset) -> pydicom.Dataset:
            anonymizer.anonymize(ds)
            return ds

        def read_write_only(ds: pydicom.Dataset) -> pydicom.Dataset:
            return ds

        tools = {
            "read+write only": read_write_only,
            "triallens": triallens,
            "dicognito": dicognito,
        }
        times: dict[str, list[float]] = {name: [] for name in tools}
        for _ in range(args.repeat):
            for name, work in tools.items():  # interleaved: same cache state
                times[name].append(_run(paths, work))

    print(f"{len(paths)} files, {size_mb:.1f} MB, best of {args.repeat} runs")
    print(f"{'tool':<18}{'files/s':>10}{'MB/s':>10}{'s':>9}")
    for name, values in times.items():
        best = min(values)
        print(
            f"{name:<18}{len(paths) / best:>10.1f}{size_mb / best:>10.1f}"
            f"{best:>9.3f}  (median {statistics.median(values):.3f} s)"
        )
    ratio = min(times["dicognito"]) / min(times["triallens"])
    print(f"triallens is {ratio:.2f}x the speed of dicognito on these files")


if __name__ == "__main__":
    main()
