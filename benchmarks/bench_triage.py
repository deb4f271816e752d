"""Event-to-EDC-draft latency of the triage graph on the embedded defaults.

Generates a synthetic oncology trial (full-size CT unless --small), stores it
in a fresh embedded PACS, and triages each study as a new-study event would,
timing every node. Prints p50 / p95 of the whole run and the median per node.

    .venv/bin/python benchmarks/bench_triage.py [--subjects 2] [--small]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args()

    import pydicom

    from agent.triage import TriageContext
    from agent.triage.graph import run_triage
    from evals.synth import DEMO_SCENARIOS, generate_trial
    from triallens.settings import Settings, apply_offline_switches

    apply_offline_switches()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trial = root / "trial"
        generate_trial(
            trial,
            subjects=args.subjects,
            seed=args.seed,
            small=args.small,
            scenarios=list(DEMO_SCENARIOS),
        )
        ctx = TriageContext(
            settings=Settings(
                data_dir=root / "data", charter_path=trial / "charter.yaml"
            )
        )
        files = sorted((trial / "dicom").rglob("*.dcm"))
        ctx.pacs.store([pydicom.dcmread(p) for p in files])
        studies = sorted(
            {
                (str(ds.StudyDate), str(ds.StudyInstanceUID))
                for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in files)
            }
        )

        totals: list[float] = []
        per_node: dict[str, list[float]] = {}
        for _, uid in studies:
            marks: list[tuple[str, float]] = []
            start = time.perf_counter()
            run_triage(uid, ctx, on_node=_stamp_into(marks))
            totals.append(time.perf_counter() - start)
            previous = start
            for name, stamp in marks:
                per_node.setdefault(name, []).append(stamp - previous)
                previous = stamp

    size = "small" if args.small else "full-size"
    print(f"triage of {len(totals)} {size} synthetic CT studies (embedded defaults)")
    p50, p95 = _pct(totals, 50), _pct(totals, 95)
    print(f"event -> EDC draft: p50 {p50:.2f} s, p95 {p95:.2f} s")
    print("first study (cold start: imports, model load):", f"{totals[0]:.2f} s")
    print("median time per node:")
    for name, values in per_node.items():
        print(f"  {name:22s} {statistics.median(values) * 1000:8.0f} ms")


def _stamp_into(marks: list[tuple[str, float]]) -> Callable[[str], None]:
    def stamp(node: str) -> None:
        marks.append((node, time.perf_counter()))

    return stamp


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return ordered[index]


if __name__ == "__main__":
    main()
