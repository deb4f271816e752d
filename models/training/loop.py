"""A small, deterministic training loop shared by every task."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.bundle import Preprocessing, write_bundle

__all__ = ["TASKS", "Sample", "TrainingTask", "evaluate_bundle", "train_task"]

logger = logging.getLogger(__name__)


@dataclass
class Sample:
    """One training volume on the model grid: normalised image and labels.

    ``findings`` holds the voxel indices of each connected labelled object, so
    that patches can be centred on a finding chosen at random, each as likely
    as the next whatever its size.
    """

    image: np.ndarray
    labels: np.ndarray
    findings: list[np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from scipy import ndimage

        objects, _ = ndimage.label(self.labels > 0, np.ones((3, 3, 3), dtype=bool))
        self.findings = [
            np.argwhere(objects[box] == index) + [s.start for s in box]
            for index, box in enumerate(ndimage.find_objects(objects), start=1)
            if box is not None
        ]


@dataclass
class TrainingTask:
    """Everything that differs between tasks.

    ``make_samples(rng, count)`` returns training volumes on the model grid;
    ``evaluate(bundle_path, seed, count)`` returns the metrics stored in the
    metadata; ``model_card(metadata)`` writes the README.
    """

    name: str
    description: str
    network_def: dict[str, Any]
    preprocessing: Preprocessing
    make_samples: Callable[[np.random.Generator, int], list[Sample]]
    evaluate: Callable[[Path, int, int], dict[str, float]]
    model_card: Callable[[dict[str, Any]], str]
    training_data: str
    subjects: int = 24
    steps: int = 1200
    batch_size: int = 2
    learning_rate: float = 3e-3
    foreground_fraction: float = 0.7
    class_weights: list[float] | None = None
    extra_metadata: dict[str, Any] = field(default_factory=dict)


TASKS: dict[str, Callable[[], TrainingTask]] = {}


def register(
    name: str,
) -> Callable[[Callable[[], TrainingTask]], Callable[[], TrainingTask]]:
    """Register a task factory under ``name``."""

    def wrap(factory: Callable[[], TrainingTask]) -> Callable[[], TrainingTask]:
        TASKS[name] = factory
        return factory

    return wrap


def train_task(
    task: TrainingTask,
    seed: int,
    out_dir: Path,
    *,
    steps: int | None = None,
    subjects: int | None = None,
    evaluate_subjects: int = 6,
    progress: Callable[[str], None] | None = None,
    init_from: Path | None = None,
    learning_rate: float | None = None,
) -> Path:
    """Train ``task`` deterministically and write its bundle to ``out_dir``.

    Parameters
    ----------
    task : TrainingTask
    seed : int
        Seeds data generation, initialisation and patch sampling.
    out_dir : Path
        The bundle root to write.
    steps, subjects : int, optional
        Override the task's number of optimiser steps and training volumes
        (small values make a smoke test).
    evaluate_subjects : int
        Held-out phantoms (seeded from ``seed + 1000``) for the metrics; 0 skips
        the evaluation.
    init_from : Path, optional
        A bundle of the same network whose weights start the training (a warm
        start); recorded in the metadata with that bundle's version.
    learning_rate : float, optional
        Override the task's peak learning rate (lower values suit warm starts).
    """
    import torch

    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(min(threads, 2))
    try:
        return _train(
            task,
            seed,
            out_dir,
            steps,
            subjects,
            evaluate_subjects,
            progress,
            init_from,
            learning_rate,
        )
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)


def _train(
    task: TrainingTask,
    seed: int,
    out_dir: Path,
    steps: int | None,
    subjects: int | None,
    evaluate_subjects: int,
    progress: Callable[[str], None] | None,
    init_from: Path | None = None,
    learning_rate: float | None = None,
) -> Path:
    import monai
    import torch
    from monai.bundle import ConfigParser
    from monai.losses import DiceCELoss

    say = progress or (lambda message: logger.info("%s", message))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.monotonic()

    count = subjects or task.subjects
    samples = task.make_samples(rng, count)
    elapsed = time.monotonic() - started
    say(f"{task.name}: {len(samples)} training volumes in {elapsed:.0f} s")

    parser = ConfigParser({"network_def": task.network_def})
    network = parser.get_parsed_content("network_def")
    initial: dict[str, Any] = {}
    if init_from is not None:
        from models.bundle import load_bundle

        start = load_bundle(init_from)
        network.load_state_dict(start.network.state_dict())
        initial = {"initialised_from": f"{start.task} {start.version}"}
        say(f"{task.name}: warm start from {start.task} {start.version}")
    n_steps = steps or task.steps
    peak = learning_rate or task.learning_rate
    optimiser = torch.optim.AdamW(network.parameters(), lr=peak, weight_decay=1e-5)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=peak, total_steps=n_steps, pct_start=0.1
    )
    weight = torch.tensor(task.class_weights) if task.class_weights else None
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, weight=weight)
    roi = task.preprocessing.roi_size

    network.train()
    running = 0.0
    for step in range(1, n_steps + 1):
        images, labels = _batch(
            samples, roi, task.batch_size, task.foreground_fraction, rng
        )
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn(network(torch.from_numpy(images)), torch.from_numpy(labels))
        loss.backward()
        optimiser.step()
        schedule.step()
        running = 0.95 * running + 0.05 * loss.item() if step > 1 else loss.item()
        if step % 100 == 0 or step == n_steps:
            say(f"{task.name}: step {step}/{n_steps} loss {running:.4f}")
    network.eval()
    say(f"{task.name}: trained in {time.monotonic() - started:.0f} s")

    metadata: dict[str, Any] = {
        "name": task.name,
        "task": task.name,
        "version": "0.1.0",
        "changelog": {"0.1.0": "first version, trained on synthetic phantoms"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "description": task.description,
        "intended_use": (
            "Pipeline validation on synthetic phantom data only. Not for clinical "
            "use, not for diagnosis, not validated on patient images."
        ),
        "authors": "TrialLens",
        "copyright": "TrialLens",
        "data_source": task.training_data,
        "training": {
            "seed": seed,
            "subjects": count,
            "steps": n_steps,
            "batch_size": task.batch_size,
            "learning_rate": peak,
            **initial,
        },
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "hounsfield" if "ct" in task.name else "magnitude",
                    "num_channels": 1,
                    "spatial_shape": [roi[2], roi[1], roi[0]],
                    "dtype": "float32",
                    "value_range": [task.preprocessing.a_min, task.preprocessing.a_max],
                    "is_patch_data": True,
                    "channel_def": {"0": "image"},
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "segmentation",
                    "num_channels": len(task.preprocessing.labels),
                    "spatial_shape": [roi[2], roi[1], roi[0]],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": True,
                    "channel_def": {
                        str(k): v for k, v in task.preprocessing.labels.items()
                    },
                }
            },
        },
        "metrics": {},
        **task.extra_metadata,
    }
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    write_bundle(out_dir, task.network_def, state, task.preprocessing, metadata, "")
    if evaluate_subjects > 0:
        _record_metrics(task, out_dir, metadata, seed + 1000, evaluate_subjects)
    write_bundle(
        out_dir,
        task.network_def,
        state,
        task.preprocessing,
        metadata,
        task.model_card(metadata),
    )
    elapsed = time.monotonic() - started
    say(f"{task.name}: bundle written to {out_dir} after {elapsed:.0f} s")
    return out_dir


def evaluate_bundle(
    task: TrainingTask,
    bundle_dir: Path,
    evaluate_subjects: int = 6,
    *,
    seed: int | None = None,
    change: str | None = None,
) -> dict[str, float]:
    """Measure a trained bundle again and rewrite its metrics and model card.

    The weights stay as they are; the metrics come from the task's evaluation,
    which measures as the pipeline measures, so a change to the measurement
    code is reflected in the card without retraining.

    Parameters
    ----------
    task : TrainingTask
    bundle_dir : Path
        A bundle of this task.
    evaluate_subjects : int
        Held-out phantoms to measure.
    seed : int, optional
        Seed of the held-out phantoms; by default the training seed + 1000.
    change : str, optional
        A changelog line; with it the bundle's patch version goes up by one.
    """
    import json

    metadata_path = bundle_dir / "configs" / "metadata.json"
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    if metadata.get("task") != task.name:
        raise ValueError(
            f"{bundle_dir} holds a {metadata.get('task')!r} bundle, not {task.name!r}"
        )
    if seed is None:
        seed = int(metadata.get("training", {}).get("seed", 0)) + 1000
    metrics = _record_metrics(task, bundle_dir, metadata, seed, evaluate_subjects)
    if change:
        major, minor, patch = (int(p) for p in metadata["version"].split("."))
        metadata["version"] = f"{major}.{minor}.{patch + 1}"
        metadata["changelog"] = {metadata["version"]: change, **metadata["changelog"]}
    metadata_path.write_text(
        json.dumps(metadata, indent=2, sort_keys=False) + "\n", encoding="utf-8"
    )
    (bundle_dir / "docs" / "README.md").write_text(
        task.model_card(metadata), encoding="utf-8"
    )
    return metrics


def _record_metrics(
    task: TrainingTask,
    bundle_dir: Path,
    metadata: dict[str, Any],
    seed: int,
    count: int,
) -> dict[str, float]:
    metrics = task.evaluate(bundle_dir, seed, count)
    metadata["metrics"] = {k: round(float(v), 4) for k, v in metrics.items()}
    metadata["metrics_data"] = (
        f"{count} held-out phantoms generated from seed {seed}, measured as the "
        "pipeline measures"
    )
    return metrics


def _batch(
    samples: list[Sample],
    roi: tuple[int, int, int],
    size: int,
    foreground_fraction: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    images = np.zeros((size, 1, *roi), dtype=np.float32)
    labels = np.zeros((size, 1, *roi), dtype=np.int64)
    for n in range(size):
        sample = samples[int(rng.integers(len(samples)))]
        shape = sample.image.shape
        if rng.random() < foreground_fraction and sample.findings:
            # A finding first, then a voxel of it: a 5 mm lesion is the
            # centre of as many patches as a 50 mm one.
            points = sample.findings[int(rng.integers(len(sample.findings)))]
            centre = points[int(rng.integers(len(points)))]
            centre = centre + rng.integers(-np.array(roi) // 4, np.array(roi) // 4 + 1)
        else:
            centre = np.array([int(rng.integers(s)) for s in shape])
        start = [
            int(np.clip(c - r // 2, 0, max(s - r, 0)))
            for c, r, s in zip(centre, roi, shape, strict=True)
        ]
        region = tuple(slice(s, s + r) for s, r in zip(start, roi, strict=True))
        image = sample.image[region]
        label = sample.labels[region]
        target = tuple(slice(0, d) for d in image.shape)
        images[n, 0][target] = image
        labels[n, 0][target] = label
    return images, labels
