"""Synthetic subjects as SeriesVolumes, and model-grid training samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.bundle import Preprocessing
from models.inference import normalise, to_model_grid
from models.lesion_sampling import sample_specs
from models.phantoms import Phantom, ct_torso_phantom, torso_anatomy
from models.training.loop import Sample
from triallens.geometry.volume import SeriesVolume

__all__ = ["CtSubject", "ct_subject", "phantom_volume", "to_sample"]


@dataclass
class CtSubject:
    """A torso phantom and the volume a pipeline would see."""

    phantom: Phantom
    volume: SeriesVolume


def phantom_volume(
    pixels: np.ndarray,
    spacing_mm: tuple[float, float, float],
    origin_mm: tuple[float, float, float],
    modality: str = "CT",
    series_uid: str = "2.25.1",
) -> SeriesVolume:
    """Wrap a phantom array (axial, LPS-aligned) as a :class:`SeriesVolume`."""
    dz, dy, dx = spacing_mm
    affine = np.diag([dx, dy, dz, 1.0])
    affine[:3, 3] = origin_mm
    return SeriesVolume(
        series_uid=series_uid,
        modality=modality,
        pixels=np.asarray(pixels, dtype=np.float32),
        affine=affine,
        slice_thickness_mm=float(dz),
    )


def ct_subject(rng: np.random.Generator, contrast: bool | None = None) -> CtSubject:
    """A random torso CT: pixels 1.2-1.8 mm, slices 2.5-7.5 mm, 2-5 lesions of
    4-60 mm and 1-3 nodes of 6-40 mm short axis; contrast-enhanced in four of
    five subjects unless ``contrast`` says otherwise."""
    pixel = float(rng.uniform(1.2, 1.8))
    step = float(rng.choice([2.5, 3.0, 4.0, 5.0, 5.0, 7.5]))
    n_xy = round(float(rng.uniform(230.0, 330.0)) / pixel)
    n_z = round(float(rng.uniform(110.0, 180.0)) / step)
    if contrast is None:
        contrast = bool(rng.random() < 0.8)
    shape = (n_z, n_xy, n_xy)
    spacing = (step, pixel, pixel)
    anatomy = torso_anatomy(shape, spacing, rng)
    half_z = (n_z - 1) * step / 2.0
    specs = sample_specs(
        anatomy,
        (-half_z, half_z),
        rng,
        n_lesions=int(rng.integers(2, 6)),
        n_nodes=int(rng.integers(1, 4)),
    )
    phantom = ct_torso_phantom(
        shape, spacing, specs, rng, contrast=contrast, anatomy=anatomy
    )
    return CtSubject(phantom, phantom_volume(phantom.hu, spacing, phantom.origin_mm))


def to_sample(
    pixels: np.ndarray,
    labels: np.ndarray,
    spacing_mm: tuple[float, float, float],
    prep: Preprocessing,
    n_classes: int,
) -> Sample:
    """Image and labels rescaled to the model grid, as the runner would see them."""
    image = normalise(to_model_grid(pixels, spacing_mm, prep.spacing_mm), prep)
    scores = np.stack(
        [
            to_model_grid((labels == c).astype(np.float32), spacing_mm, prep.spacing_mm)
            for c in range(n_classes)
        ]
    )
    return Sample(image=image, labels=np.argmax(scores, axis=0).astype(np.int64))
