"""The cardiac MR task: left-ventricular cavity on short-axis cine stacks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from models.bundle import Preprocessing
from models.phantoms import CmrPhantom, cmr_short_axis_phantom
from models.training.data import phantom_volume, to_sample
from models.training.loop import Sample, TrainingTask, register
from triallens.geometry.volume import SeriesVolume

__all__ = ["cmr_subject", "evaluate_lvef_cmr", "lvef_cmr_task", "phase_volume"]

PREPROCESSING = Preprocessing(
    spacing_mm=(0.0, 1.5, 1.5),  # slices kept as acquired
    a_min=0.0,
    a_max=700.0,
    roi_size=(16, 96, 96),
    sw_batch_size=2,
    overlap=0.25,
    labels={0: "background", 1: "left ventricular cavity"},
)

NETWORK = {
    "_target_": "monai.networks.nets.UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [16, 32, 64, 128],
    "strides": [[1, 2, 2], [1, 2, 2], [2, 2, 2]],
    "num_res_units": 1,
}

TRAINING_DATA = (
    "Synthetic short-axis cine phantoms (models.phantoms.cmr_short_axis_phantom):"
    " 9-13 slices of 7-10 mm, pixels 1.3-1.9 mm, EDV 90-230 mL, EF 25-70 %,"
    " end-diastolic and end-systolic phases, Rician noise."
)


def cmr_subject(rng: np.random.Generator) -> CmrPhantom:
    """A random short-axis stack with ED (phase 0) and ES (phase 1)."""
    step = float(rng.uniform(7.0, 10.0))
    pixel = float(rng.uniform(1.3, 1.9))
    n_xy = round(float(rng.uniform(190.0, 300.0)) / pixel)
    n_z = int(rng.integers(9, 14))
    edv = float(rng.uniform(90.0, 230.0))
    esv = edv * (1.0 - float(rng.uniform(0.25, 0.70)))
    return cmr_short_axis_phantom(
        (n_z, n_xy, n_xy), (step, pixel, pixel), edv, esv, rng, n_phases=2
    )


def phase_volume(phantom: CmrPhantom, phase: int) -> SeriesVolume:
    """One phase of a CMR phantom as a SeriesVolume."""
    volume = phantom_volume(
        phantom.images[phase], phantom.spacing_mm, phantom.origin_mm, modality="MR"
    )
    return volume


def _make_samples(rng: np.random.Generator, count: int) -> list[Sample]:
    samples = []
    for _ in range(count):
        phantom = cmr_subject(rng)
        for phase in range(phantom.images.shape[0]):
            labels = (phantom.labels[phase] == 1).astype(np.uint8)
            samples.append(
                to_sample(
                    phantom.images[phase],
                    labels,
                    phantom.spacing_mm,
                    PREPROCESSING,
                    n_classes=2,
                )
            )
    return samples


def evaluate_lvef_cmr(bundle_path: Path, seed: int, count: int) -> dict[str, float]:
    """EDV, ESV and LVEF errors of a bundle on held-out phantoms, measured as
    the pipeline measures (:func:`models.measure.measure_lvef`); the Dice
    score is the network's own mask against the truth."""
    from models.bundle import load_bundle
    from models.inference import Segmenter
    from models.measure import measure_lvef

    segmenter = Segmenter(load_bundle(bundle_path), device="cpu")
    rng = np.random.default_rng(seed)
    ef_errors, edv_errors, esv_errors, dice = [], [], [], []
    for _ in range(count):
        phantom = cmr_subject(rng)
        volumes = [phase_volume(phantom, p) for p in range(phantom.images.shape[0])]
        for phase, volume in enumerate(volumes):
            predicted = segmenter.segment(volume) == 1
            truth = phantom.labels[phase] == 1
            dice.append(2 * (truth & predicted).sum() / (truth.sum() + predicted.sum()))
        result = measure_lvef(volumes, segmenter).result
        ef_errors.append(result.ef_percent - phantom.lvef_percent)
        edv_errors.append(result.edv_ml - phantom.edv_ml)
        esv_errors.append(result.esv_ml - phantom.esv_ml)
    return {
        "lvef_mae_points": float(np.mean(np.abs(ef_errors))),
        "lvef_max_abs_error_points": float(np.max(np.abs(ef_errors))),
        "edv_mae_ml": float(np.mean(np.abs(edv_errors))),
        "esv_mae_ml": float(np.mean(np.abs(esv_errors))),
        "dice_lv_cavity_network": float(np.mean(dice)) if dice else math.nan,
    }


def _model_card(metadata: dict[str, Any]) -> str:
    metrics = metadata.get("metrics", {})
    rows = "\n".join(f"| {k} | {v} |" for k, v in metrics.items()) or "| (none) | |"
    training = metadata.get("training", {})
    return f"""# lvef_cmr: left-ventricular cavity on short-axis cine MR

**For pipeline validation on synthetic data only. Not for clinical use.** This
model has never seen a patient image; it lets the TrialLens LVEF pipeline be
tested end to end on synthetic phantoms. Its outputs on real MR are
meaningless.

## Model
- MONAI 3D UNet, channels {NETWORK["channels"]}, in-plane downsampling first;
  input one channel (signal 0..700 scaled to 0..1); output background and LV
  cavity (papillary muscles are not modelled).

## Measurement
`models.measure.measure_lvef` keeps the largest connected cavity component,
redraws it at the half-contrast edge between blood pool and myocardium on
each slice (`models.quantify.refine`), and sums slice areas times the slice
spacing from the positions. ED and ES are the phases with the largest and
smallest volume.
- Working grid: pixels 1.5 x 1.5 mm, slices as acquired.

## Training data
{metadata.get("data_source", "")}

Seed {training.get("seed")}, {training.get("subjects")} subjects (two phases
each), {training.get("steps")} steps. Reproduce with
`python -m models.train lvef_cmr --seed {training.get("seed")}`.

## Evaluation
{metadata.get("metrics_data", "")}

| metric | value |
|---|---|
{rows}

## Limitations
- Fixed intensity window tuned to the phantom's signal scale.
- Idealised half-ellipsoid ventricles; no trabeculation or papillary muscles.
"""


@register("lvef_cmr")
def lvef_cmr_task() -> TrainingTask:
    """The LV cavity segmentation task."""
    return TrainingTask(
        name="lvef_cmr",
        description="Segmentation of the left-ventricular cavity on short-axis cine MR",
        network_def=NETWORK,
        preprocessing=PREPROCESSING,
        make_samples=_make_samples,
        evaluate=evaluate_lvef_cmr,
        model_card=_model_card,
        training_data=TRAINING_DATA,
        subjects=12,
        steps=400,
        foreground_fraction=0.8,
    )
