"""Time ``generate_trial``: 10 subjects x 4 visits at full size (target < 60 s).

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_synth.py [--subjects N] [--small]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args()

    from evals.synth import generate_trial

    out = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        started = time.perf_counter()
        manifest = generate_trial(
            out, subjects=args.subjects, seed=args.seed, small=args.small
        )
        seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    visits = sum(not v.missing for subject in manifest.subjects for v in subject.visits)
    print(f"subjects:        {args.subjects} ({'small' if args.small else 'full'})")
    print(f"studies written: {visits}")
    print(f"DICOM files:     {manifest.files}")
    print(f"bytes written:   {size / 1e6:.1f} MB")
    print(f"wall time:       {seconds:.1f} s (target < 60 s for 10 subjects)")
    print(f"per study:       {seconds / max(visits, 1):.2f} s")


if __name__ == "__main__":
    main()
