"""The head CT task: intracerebral haemorrhage."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from models.bundle import Preprocessing
from models.phantoms import HaematomaSpec, HeadCtPhantom, head_ct_phantom
from models.training.data import phantom_volume, to_sample
from models.training.loop import Sample, TrainingTask, register
from triallens.geometry.volume import SeriesVolume

__all__ = ["evaluate_ich_ct", "head_subject", "head_volume", "ich_ct_task"]

PREPROCESSING = Preprocessing(
    spacing_mm=(0.0, 1.2, 1.2),  # slices kept as acquired
    a_min=-20.0,
    a_max=120.0,
    roi_size=(16, 96, 96),
    sw_batch_size=2,
    overlap=0.25,
    labels={0: "background", 1: "haemorrhage"},
)

NETWORK = {
    "_target_": "monai.networks.nets.UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [16, 32, 64, 128],
    "strides": [[1, 2, 2], [2, 2, 2], [2, 2, 2]],
    "num_res_units": 1,
}

TRAINING_DATA = (
    "Synthetic non-contrast head CT phantoms (models.phantoms.head_ct_phantom):"
    " slices 4-5 mm, pixels 0.9-1.9 mm, one ellipsoidal haematoma of 45-85 HU"
    " and 8-32 mm semi-axes inside the brain (none in one subject in eight),"
    " Gaussian noise 4 HU."
)


def head_subject(
    rng: np.random.Generator, haematoma: bool | None = None
) -> HeadCtPhantom:
    """A random head CT, with a haematoma unless ``haematoma`` is False."""
    step = float(rng.uniform(4.0, 5.0))
    pixel = float(rng.uniform(0.9, 1.9))
    n_xy = round(float(rng.uniform(200.0, 240.0)) / pixel)
    n_z = round(float(rng.uniform(120.0, 150.0)) / step)
    shape = (n_z, n_xy, n_xy)
    spacing = (step, pixel, pixel)
    with_bleed = haematoma if haematoma is not None else bool(rng.random() > 0.125)
    spec = _haematoma(shape, spacing, rng) if with_bleed else None
    return head_ct_phantom(shape, spacing, spec, rng)


def head_volume(phantom: HeadCtPhantom) -> SeriesVolume:
    """A head phantom as a SeriesVolume."""
    return phantom_volume(phantom.hu, phantom.spacing_mm, phantom.origin_mm)


def _haematoma(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], rng
) -> HaematomaSpec:
    # The brain ellipsoid of head_ct_phantom, derived from the field of view.
    nz, ny, nx = shape
    hx, hy, hz = nx * spacing[2] / 2, ny * spacing[1] / 2, nz * spacing[0] / 2
    a, b, c = 0.78 * hx - 11, 0.86 * hy - 11, max(1.1 * hz, 60.0) - 11
    zc = -0.25 * hz
    semi = tuple(float(v) for v in rng.uniform(8.0, 32.0, 3))
    semi = (semi[0], semi[1], min(semi[2], 25.0))
    reach = max(semi) + 6.0
    for _ in range(500):
        u = rng.uniform(-1.0, 1.0, 3)
        centre = (u[0] * (a - reach), u[1] * (b - reach), zc + u[2] * (c - reach))
        if abs(centre[2]) + semi[2] > hz - spacing[0]:
            continue
        if (
            (u[0]) ** 2 + (u[1]) ** 2 + (u[2]) ** 2 <= 1.0
            and abs(centre[0]) > 0.15 * a  # away from the ventricles
        ):
            return HaematomaSpec(
                centre, semi, float(rng.uniform(0, 180)), float(rng.uniform(45, 85))
            )
    return HaematomaSpec((0.4 * a, 0.0, zc), (10.0, 8.0, 8.0), 0.0, 65.0)


def _make_samples(rng: np.random.Generator, count: int) -> list[Sample]:
    samples = []
    for _ in range(count):
        phantom = head_subject(rng)
        samples.append(
            to_sample(phantom.hu, phantom.labels, phantom.spacing_mm, PREPROCESSING, 2)
        )
    return samples


def evaluate_ich_ct(bundle_path: Path, seed: int, count: int) -> dict[str, float]:
    """Haemorrhage volume errors of a bundle on held-out phantoms with a bleed,
    measured as the pipeline measures (:func:`models.measure.measure_haemorrhage`);
    the Dice score is the network's own mask against the truth."""
    from models.bundle import load_bundle
    from models.inference import Segmenter
    from models.measure import measure_haemorrhage
    from models.quantify.ich import haemorrhage_volume_ml

    segmenter = Segmenter(load_bundle(bundle_path), device="cpu")
    rng = np.random.default_rng(seed)
    relative, absolute, dice = [], [], []
    for _ in range(count):
        phantom = head_subject(rng, haematoma=True)
        volume = head_volume(phantom)
        predicted = segmenter.segment(volume) == 1
        truth = phantom.labels == 1
        measured = measure_haemorrhage(volume, segmenter).volume_ml
        reference = haemorrhage_volume_ml(truth, volume)
        absolute.append(measured - reference)
        relative.append((measured - reference) / reference if reference else math.nan)
        dice.append(2 * (truth & predicted).sum() / (truth.sum() + predicted.sum()))
    return {
        "volume_mean_abs_relative_error": float(np.nanmean(np.abs(relative))),
        "volume_max_abs_relative_error": float(np.nanmax(np.abs(relative))),
        "volume_mae_ml": float(np.mean(np.abs(absolute))),
        "dice_haemorrhage_network": float(np.mean(dice)),
    }


def _model_card(metadata: dict[str, Any]) -> str:
    metrics = metadata.get("metrics", {})
    rows = "\n".join(f"| {k} | {v} |" for k, v in metrics.items()) or "| (none) | |"
    training = metadata.get("training", {})
    return f"""# ich_ct: intracerebral haemorrhage on non-contrast head CT

**For pipeline validation on synthetic data only. Not for clinical use.** This
model has never seen a patient image; it lets the TrialLens haemorrhage
volumetry pipeline be tested end to end on synthetic phantoms. Its outputs on
real CT are meaningless.

## Model
- MONAI 3D UNet, channels {NETWORK["channels"]}; input one channel (HU -20..120
  scaled to 0..1); output background and haemorrhage.
- Working grid: pixels 1.2 x 1.2 mm, slices as acquired.

## Measurement
`models.measure.measure_haemorrhage` redraws the network's mask at the
half-contrast edge between clot and brain on each slice
(`models.quantify.refine`; bleeds within 10 HU of their surroundings keep the
network's outline), counts voxels times the voxel volume, and reports ABC/2
(Kothari 1996) beside it.

## Training data
{metadata.get("data_source", "")}

Seed {training.get("seed")}, {training.get("subjects")} subjects,
{training.get("steps")} steps. Reproduce with
`python -m models.train ich_ct --seed {training.get("seed")}`.

## Evaluation
{metadata.get("metrics_data", "")}

| metric | value |
|---|---|
{rows}

## Limitations
- Ellipsoidal, homogeneous haematomas; no oedema, no intraventricular or
  subarachnoid extension, no beam-hardening artefacts.
"""


@register("ich_ct")
def ich_ct_task() -> TrainingTask:
    """The haemorrhage segmentation task."""
    return TrainingTask(
        name="ich_ct",
        description="Segmentation of intracerebral haemorrhage on non-contrast CT",
        network_def=NETWORK,
        preprocessing=PREPROCESSING,
        make_samples=_make_samples,
        evaluate=evaluate_ich_ct,
        model_card=_model_card,
        training_data=TRAINING_DATA,
        subjects=12,
        steps=400,
        foreground_fraction=0.7,
    )
