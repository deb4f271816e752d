"""PACS retrieval throughput and event-to-job latency against a local Orthanc.

Starts Orthanc with its DICOMweb plugin on loopback ports in a temp folder,
stores a synthetic CT study, then retrieves it alternately with bare
dicomweb-client and with TrialLens's ``DicomWebPacs`` (same study, same run)
and prints MB/s, instances/s and their ratio (target >= 0.9). Then it runs
the watcher with Orthanc's /changes source and prints, for studies pushed
with storescu, the time from push to job start and from event record to job
start.

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_pacs.py [--slices 120]
        [--size 512] [--repeats 3] [--latency-studies 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests._orthanc_fixtures import (  # noqa: E402
    orthanc_missing,
    run_orthanc,
    synthetic_ct_study,
    write_datasets,
)
from tools.pacs import DicomWebPacs  # noqa: E402
from tools.pacs.sources.orthanc import OrthancChangesSource  # noqa: E402
from tools.pacs.watch import Watcher  # noqa: E402
from triallens.db import make_engine  # noqa: E402
from triallens.events import EventLog, StudyEvent  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=120)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-studies", type=int, default=5)
    args = parser.parse_args()

    missing = orthanc_missing()
    if missing:
        print(f"cannot run: {missing}")
        return 1
    with (
        tempfile.TemporaryDirectory() as tmp,
        run_orthanc(Path(tmp) / "orthanc") as server,
    ):
        retrieval(server.dicomweb_url, args.slices, args.size, args.repeats)
        latency(server, Path(tmp), args.latency_studies)
    return 0


def retrieval(url: str, slices: int, size: int, repeats: int) -> None:
    from dicomweb_client import DICOMwebClient

    study = synthetic_ct_study(slices=slices, size=size)
    uid = study[0].StudyInstanceUID
    pacs = DicomWebPacs(url, timeout_s=120)
    for start in range(0, len(study), 20):
        report = pacs.store(study[start : start + 20])
        assert report.ok, report.failed
    megabytes = sum(len(ds.PixelData) for ds in study) / 1e6
    print(f"study: {slices} CT images of {size}x{size}, {megabytes:.1f} MB of pixels")

    bare = DICOMwebClient(url=url)
    timings: dict[str, list[float]] = {"dicomweb-client": [], "TrialLens": []}
    contenders = [
        ("dicomweb-client", lambda: bare.retrieve_study(study_instance_uid=uid)),
        ("TrialLens", lambda: pacs.retrieve_study(uid)),
    ]
    pacs.retrieve_study(uid)  # warm Orthanc's caches before timing either
    for repeat in range(repeats):
        # Alternate who goes first so neither gains from the other's warm-up.
        for name, fetch in contenders if repeat % 2 == 0 else contenders[::-1]:
            started = time.perf_counter()
            got = fetch()
            timings[name].append(time.perf_counter() - started)
            assert len(got) == slices
    print(f"{'retrieval':<18}{'MB/s':>10}{'instances/s':>14}{'median s':>10}")
    medians = {name: statistics.median(values) for name, values in timings.items()}
    for name, seconds in medians.items():
        print(
            f"{name:<18}{megabytes / seconds:>10.1f}{slices / seconds:>14.1f}"
            f"{seconds:>10.3f}"
        )
    ratio = medians["dicomweb-client"] / medians["TrialLens"]
    print(f"ratio TrialLens / bare dicomweb-client: {ratio:.2f} (target >= 0.9)")


def latency(server: object, tmp: Path, studies: int) -> None:
    from tests._orthanc_fixtures import OrthancServer

    assert isinstance(server, OrthancServer)
    log = EventLog(make_engine(f"sqlite:///{tmp / 'events.db'}"))
    started_jobs: dict[str, tuple[float, StudyEvent]] = {}
    done = threading.Event()

    def handler(event: StudyEvent) -> None:
        started_jobs[event.study_uid or ""] = (time.time(), event)
        if len(started_jobs.keys() & pushed.keys()) >= studies:
            done.set()

    pushed: dict[str, float] = {}
    source = OrthancChangesSource(server.http_url, log, interval_s=0.2)
    watcher = Watcher([source], log, handler, idle_s=0.05)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    time.sleep(0.5)

    for index in range(studies):
        study = synthetic_ct_study(slices=4, size=64, seed=index)
        files = write_datasets(study, tmp / f"push{index}")
        server.storescu(files)
        pushed[study[0].StudyInstanceUID] = time.time()
    done.wait(timeout=60 + 5 * studies)
    watcher.stop()
    thread.join(timeout=30)

    to_job = []
    event_to_job = []
    for uid, (job_at, event) in started_jobs.items():
        if uid not in pushed:
            continue  # the retrieval study, stable only now
        to_job.append(job_at - pushed[uid])
        received = event.received_at or datetime.now(UTC)
        event_to_job.append(job_at - received.timestamp())
    if not to_job:
        print("latency: no job started (check Orthanc's /changes feed)")
        return
    print(
        f"latency over {len(to_job)} studies (Orthanc StableAge "
        f"{server.stable_age_s} s, poll 0.2 s):"
    )
    print(
        f"  push -> job start:   median {statistics.median(to_job):.2f} s, "
        f"max {max(to_job):.2f} s"
    )
    print(
        f"  event -> job start:  median {statistics.median(event_to_job) * 1000:.0f}"
        f" ms, max {max(event_to_job) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
