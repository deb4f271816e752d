"""The CT lesion task: background, non-nodal lesion, lymph node."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from models.bundle import Preprocessing
from models.training.data import ct_subject, to_sample
from models.training.loop import Sample, TrainingTask, register

__all__ = ["evaluate_recist_ct", "recist_ct_task"]

PREPROCESSING = Preprocessing(
    spacing_mm=(2.5, 1.5, 1.5),
    a_min=-200.0,
    a_max=300.0,
    roi_size=(32, 96, 96),
    sw_batch_size=2,
    overlap=0.25,
    labels={0: "background", 1: "lesion", 2: "lymph node"},
)

NETWORK = {
    "_target_": "monai.networks.nets.UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 3,
    "channels": [16, 32, 64, 128],
    "strides": [2, 2, 2],
    "num_res_units": 1,
}

TRAINING_DATA = (
    "Synthetic torso CT phantoms (models.phantoms.ct_torso_phantom), 80 %"
    " contrast-enhanced: pixels 1.2-1.8 mm, slices 2.5-7.5 mm, 2-5 ellipsoidal"
    " lesions of 4-60 mm in liver, lungs, spleen and kidneys and 1-3 mesenteric or"
    " para-aortic lymph nodes of 6-40 mm short axis per subject"
    " (models.lesion_sampling), Gaussian noise 12 HU."
)


def _make_samples(rng: np.random.Generator, count: int) -> list[Sample]:
    samples = []
    for _ in range(count):
        subject = ct_subject(rng)
        samples.append(
            to_sample(
                subject.phantom.hu,
                subject.phantom.labels,
                subject.phantom.spacing_mm,
                PREPROCESSING,
                n_classes=3,
            )
        )
    return samples


def evaluate_recist_ct(bundle_path: Path, seed: int, count: int) -> dict[str, float]:
    """Detection and diameter errors of a bundle on held-out phantoms.

    A truth lesion counts as found when a predicted finding of the same kind
    has its centroid within max(10 mm, half the truth's longest diameter).
    Diameter errors are over found lesions measurable by RECIST (LD >= 10 mm,
    nodes SA >= 10 mm), comparing the RECIST diameter (SA for nodes).
    Findings are measured as the pipeline measures them (boundary refinement
    and the 0.6 confidence floor of :func:`models.measure.measure_ct_lesions`).
    """
    from models.bundle import load_bundle
    from models.inference import Segmenter
    from models.quantify import measure_lesions

    segmenter = Segmenter(load_bundle(bundle_path), device="cpu")
    rng = np.random.default_rng(seed)
    errors: list[float] = []
    found = total = false_positives = 0
    dice: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(count):
        subject = ct_subject(rng)
        result = segmenter.segment_with_probabilities(subject.volume)
        for c in dice:
            truth_mask = subject.phantom.labels == c
            pred_mask = result.labels == c
            denom = truth_mask.sum() + pred_mask.sum()
            if denom:
                dice[c].append(
                    2.0 * float((truth_mask & pred_mask).sum()) / float(denom)
                )
        predicted = measure_lesions(
            result.labels,
            subject.volume,
            probabilities=result.probabilities,
            min_confidence=0.6,
        )
        used: set[str] = set()
        for truth in subject.phantom.lesions:
            node = truth.kind == "node"
            size = truth.short_axis_mm if node else truth.longest_diameter_mm
            if size < 10.0:
                continue
            total += 1
            limit = max(10.0, 0.5 * truth.longest_diameter_mm)
            best = None
            for m in predicted:
                if m.lesion_id in used or (m.kind.value == "node") != node:
                    continue
                gap = math.dist(m.centroid_mm, truth.centre_mm)
                if gap <= limit and (best is None or gap < best[0]):
                    best = (gap, m)
            if best is None:
                continue
            found += 1
            used.add(best[1].lesion_id)
            errors.append(best[1].recist_diameter_mm - size)
        false_positives += sum(
            1
            for m in predicted
            if m.lesion_id not in used and m.recist_diameter_mm >= 10.0
        )
    abs_errors = np.abs(errors) if errors else np.array([math.nan])
    return {
        "diameter_mae_mm": float(np.mean(abs_errors)),
        "diameter_max_abs_error_mm": float(np.max(abs_errors)),
        "diameter_bias_mm": float(np.mean(errors)) if errors else math.nan,
        "sensitivity_measurable": found / total if total else math.nan,
        "false_positives_per_subject": false_positives / count,
        "dice_lesion": float(np.mean(dice[1])) if dice[1] else math.nan,
        "dice_node": float(np.mean(dice[2])) if dice[2] else math.nan,
    }


def _model_card(metadata: dict[str, Any]) -> str:
    metrics = metadata.get("metrics", {})
    rows = "\n".join(f"| {k} | {v} |" for k, v in metrics.items()) or "| (none) | |"
    training = metadata.get("training", {})
    warm = (
        f" Warm-started from the weights of {training['initialised_from']}."
        if training.get("initialised_from")
        else ""
    )
    command = f"python -m models.train recist_ct --seed {training.get('seed')}"
    if training.get("initialised_from"):
        command += (
            f" --steps {training.get('steps')} --subjects {training.get('subjects')}"
            f" --lr {training.get('learning_rate')} --init <that bundle>"
        )
    warm += f" Reproduce with `{command}`."
    shortfall = metadata.get("known_shortfall")
    shortfall_text = (
        f"\n## Known shortfall of this version\n{shortfall}\n" if shortfall else ""
    )
    return f"""# recist_ct: CT lesion and lymph node segmentation

**For pipeline validation on synthetic data only. Not for clinical use.** This
model has never seen a patient image. It exists so that the TrialLens pipeline
(segmentation, RECIST 1.1 measurement, reporting) can be tested end to end on
synthetic phantoms. Its outputs on real CT are meaningless.

## Model
- MONAI 3D UNet, channels {NETWORK["channels"]}, strides {NETWORK["strides"]},
  one residual unit per level; input one channel (HU windowed -200..300 to 0..1);
  output three classes: background, non-nodal lesion, lymph node.
- Working grid: slices 2.5 mm, pixels 1.5 x 1.5 mm; the TrialLens runner
  rescales each series to this grid and the probabilities back. Where the
  series' slices fall between working slices (3 mm slices, say), it runs the
  network twice, on grids half a working slice apart, and interleaves the two.
- Sliding window {list(PREPROCESSING.roi_size)} (slices, rows, columns),
  Gaussian blending, overlap {PREPROCESSING.overlap}.

## Training data
{metadata.get("data_source", "")}

Seed {training.get("seed")}, {training.get("subjects")} volumes,
{training.get("steps")} steps of batch {training.get("batch_size")}, AdamW with a
one-cycle schedule (peak learning rate {training.get("learning_rate")}), Dice +
cross-entropy loss.{warm}

## Measurement
The pipeline measures findings with `models.quantify.measure_lesions` on the
series' own grid: touching lesion and node voxels form one finding (the class
with the larger summed probability), each finding is redrawn at its
half-contrast edge in the image (`models.quantify.refine`: the level half-way
between the finding's core and the tissue next to each edge voxel, which is
where a voxel is half covered by the lesion, so a node between fat and muscle
gets its edge against each; what the network's outline encloses is filled, and
nothing narrower than three pixels grows beyond it), findings that differ from
their surroundings by less than 20 HU are dropped as having no visible edge,
findings that touch are divided among the cores of their distance-to-edge map,
each voxel going to the nearest core and parts that meet through a wide neck
staying one finding (`models.quantify.refine.finding_instances`), each part
takes the class with the larger summed probability over its own voxels, and
findings with a mean class probability below 0.6 (over the voxels the network
labelled) are dropped.

## Evaluation
{metadata.get("metrics_data", "")}

| metric | value |
|---|---|
{rows}

## Limitations
- Phantoms only; lesions are homogeneous ellipsoids.
- Lymph nodes are recognised by position (mesenteric fat, beside the aorta).
- Lesions smaller than about 8 mm are not reliably found.
{shortfall_text}"""


@register("recist_ct")
def recist_ct_task() -> TrainingTask:
    """The CT lesion segmentation task."""
    return TrainingTask(
        name="recist_ct",
        description="Segmentation of non-nodal lesions and lymph nodes on CT",
        network_def=NETWORK,
        preprocessing=PREPROCESSING,
        make_samples=_make_samples,
        evaluate=evaluate_recist_ct,
        model_card=_model_card,
        training_data=TRAINING_DATA,
        subjects=24,
        steps=1200,
        class_weights=None,
    )
