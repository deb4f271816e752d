"""Inference plus quantification time and peak memory for a 512 x 512 CT.

Builds a 120-slice 512 x 512 torso phantom (0.7 mm pixels, 2.5 mm slices) with
five lesions and two nodes, then, in a fresh process limited to two threads,
loads the shipped ``recist_ct`` bundle, segments the volume and measures every
finding. Prints wall time per step and the peak resident memory of that
process. Targets: <= 20 s and <= 3 GB on 2 cores.

``--slice-mm 3`` builds 3 mm slices instead, which fall between the model's
2.5 mm working slices, so the network runs twice (see ``models.inference``).

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_inference.py [--slice-mm 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = (120, 512, 512)
PIXEL_MM = 0.7


def build_volume(path: Path, seed: int, spacing: tuple[float, float, float]) -> None:
    """Write the phantom's HU array and origin to ``path`` (.npz)."""
    from models.lesion_sampling import sample_specs
    from models.phantoms import ct_torso_phantom, torso_anatomy

    rng = np.random.default_rng(seed)
    anatomy = torso_anatomy(SHAPE, spacing, rng)
    half = (SHAPE[0] - 1) * spacing[0] / 2.0
    specs = sample_specs(anatomy, (-half, half), rng, n_lesions=5, n_nodes=2)
    phantom = ct_torso_phantom(SHAPE, spacing, specs, rng, anatomy=anatomy)
    np.savez(
        path,
        hu=phantom.hu,
        origin=np.array(phantom.origin_mm),
        spacing=np.array(spacing),
    )


def measure(path: Path) -> dict[str, float]:
    """Load, segment and measure; return timings (s) and peak RSS (MiB)."""
    import torch

    torch.set_num_threads(2)
    from models import default_bundle_path
    from models.bundle import load_bundle
    from models.inference import Segmenter, slices_between_working_slices
    from models.quantify import measure_lesions
    from models.training.data import phantom_volume

    data = np.load(path)
    spacing = tuple(float(v) for v in data["spacing"])
    volume = phantom_volume(data["hu"], spacing, tuple(data["origin"]))
    start = time.perf_counter()
    segmenter = Segmenter(load_bundle(default_bundle_path("recist_ct")), device="cpu")
    loaded = time.perf_counter()
    passes = 1 + slices_between_working_slices(
        volume.shape, volume.spacing, segmenter.bundle.preprocessing.spacing_mm
    )
    result = segmenter.segment_with_probabilities(volume)
    segmented = time.perf_counter()
    found = measure_lesions(result.labels, volume, probabilities=result.probabilities)
    measured = time.perf_counter()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "load_s": loaded - start,
        "inference_s": segmented - loaded,
        "quantification_s": measured - segmented,
        "total_s": measured - loaded,
        "peak_rss_mib": peak_kib / 1024.0,
        "input_mib": volume.pixels.nbytes / 2**20,
        "findings": float(len(found)),
        "passes": float(passes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--slice-mm", type=float, default=2.5)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "volume.npz"
        t0 = time.perf_counter()
        spacing = (args.slice_mm, PIXEL_MM, PIXEL_MM)
        build_volume(path, args.seed, spacing)
        print(
            f"phantom {SHAPE} at {spacing} mm built in {time.perf_counter() - t0:.1f} s"
        )
        env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"bundle load          {figures['load_s']:6.2f} s")
    print(
        f"inference            {figures['inference_s']:6.2f} s   "
        f"({int(figures['passes'])} pass(es) of the network)"
    )
    print(f"quantification       {figures['quantification_s']:6.2f} s")
    print(f"inference + quant.   {figures['total_s']:6.2f} s   (target <= 20 s)")
    print(
        f"peak memory          {figures['peak_rss_mib'] / 1024:6.2f} GiB "
        f"(target <= 3 GB; input volume {figures['input_mib']:.0f} MiB)"
    )
    print(f"findings             {int(figures['findings'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
