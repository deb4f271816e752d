"""One call per task: segment a series, measure it, draw the key images.

These are what the triage pipeline calls. Each result carries the model
version, a confidence (mean class probability over the finding's voxels) and
PNG key images, so every finding can be traced and checked by a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.inference import Segmentation, Segmenter
from models.quantify.ich import Abc2Result, abc2, haemorrhage_volume_ml
from models.quantify.lesions import KeySliceGeometry, measure_lesions_with_geometry
from models.quantify.lvef import LvefResult, largest_component, lvef_from_phases
from models.quantify.refine import refine_labels
from triallens.domain import LesionMeasurement
from triallens.geometry.volume import SeriesVolume

__all__ = [
    "HaemorrhageFinding",
    "LesionFindings",
    "LvefFinding",
    "default_segmenter",
    "measure_ct_lesions",
    "measure_haemorrhage",
    "measure_lvef",
    "refined_mask",
]

CT_WINDOW = (40.0, 400.0)
BRAIN_WINDOW = (40.0, 80.0)

#: Least difference between a finding and its surroundings for its edge to be
#: redrawn from the image: signal units for the cine blood pool against
#: myocardium, HU for a haematoma against brain.
LV_MIN_CONTRAST = 50.0
ICH_MIN_CONTRAST = 10.0


@dataclass
class LesionFindings:
    """Lesions and nodes of one CT series."""

    lesions: list[LesionMeasurement]
    geometries: list[KeySliceGeometry]
    key_images: dict[str, bytes]
    labels: np.ndarray
    model_version: str


@dataclass
class LvefFinding:
    """Volumes and EF from a short-axis cine, one volume per phase."""

    result: LvefResult
    confidence: float
    key_image: bytes
    model_version: str
    masks: list[np.ndarray] = field(repr=False, default_factory=list)


@dataclass
class HaemorrhageFinding:
    """Haemorrhage volume (segmentation) with ABC/2 beside it."""

    volume_ml: float
    abc2: Abc2Result
    confidence: float
    key_image: bytes | None
    model_version: str
    mask: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))


def default_segmenter(task: str, device: str = "auto") -> Segmenter:
    """A segmenter for a shipped bundle (``recist_ct``, ``lvef_cmr``, ``ich_ct``)."""
    from models import default_bundle_path
    from models.bundle import load_bundle

    return Segmenter(load_bundle(default_bundle_path(task)), device=device)


def measure_ct_lesions(
    volume: SeriesVolume,
    segmenter: Segmenter | None = None,
    min_voxels: int = 8,
    min_confidence: float = 0.6,
) -> LesionFindings:
    """Segment and measure every lesion and node of a CT series."""
    from models.key_images import render_lesion_key_image

    segmenter = segmenter or default_segmenter("recist_ct")
    seg = segmenter.segment_with_probabilities(volume)
    found = measure_lesions_with_geometry(
        seg.labels,
        volume,
        min_voxels,
        probabilities=seg.probabilities,
        min_confidence=min_confidence,
    )
    images = {}
    for lesion, geometry in found:
        png = render_lesion_key_image(volume, lesion, geometry, window=CT_WINDOW)
        images[lesion.lesion_id] = png
    return LesionFindings(
        lesions=[m for m, _ in found],
        geometries=[g for _, g in found],
        key_images=images,
        labels=seg.labels,
        model_version=seg.model_version,
    )


def measure_lvef(
    phases: Sequence[SeriesVolume], segmenter: Segmenter | None = None
) -> LvefFinding:
    """EDV, ESV and EF from the phases of a short-axis cine stack."""
    from models.key_images import render_mask_key_image

    segmenter = segmenter or default_segmenter("lvef_cmr")
    segmentations = [segmenter.segment_with_probabilities(v) for v in phases]
    masks = [
        largest_component(
            refined_mask(largest_component(s.labels == 1), v, LV_MIN_CONTRAST)
        )
        for s, v in zip(segmentations, phases, strict=True)
    ]
    result = lvef_from_phases(masks, list(phases))
    ed = result.ed_phase
    areas = masks[ed].reshape(masks[ed].shape[0], -1).sum(axis=1)
    key_slice = int(np.argmax(areas))
    caption = (
        f"LV cavity ED {result.edv_ml:.0f} mL, ES {result.esv_ml:.0f} mL, "
        f"EF {result.ef_percent:.1f} %"
    )
    pixels = phases[ed].pixels
    window = (float(np.percentile(pixels, 50)), float(np.percentile(pixels, 99.5)))
    image = render_mask_key_image(
        phases[ed], masks[ed], key_slice, caption, window=window
    )
    confidence = float(
        np.mean(
            [_confidence(s, m, 1) for s, m in zip(segmentations, masks, strict=True)]
        )
    )
    return LvefFinding(
        result=result,
        confidence=confidence,
        key_image=image,
        model_version=segmentations[0].model_version,
        masks=masks,
    )


def measure_haemorrhage(
    volume: SeriesVolume, segmenter: Segmenter | None = None
) -> HaemorrhageFinding:
    """Haemorrhage volume and ABC/2 of a head CT series."""
    from models.key_images import render_mask_key_image

    segmenter = segmenter or default_segmenter("ich_ct")
    seg = segmenter.segment_with_probabilities(volume)
    mask = refined_mask(seg.labels == 1, volume, ICH_MIN_CONTRAST)
    volume_ml = haemorrhage_volume_ml(mask, volume)
    estimate = abc2(mask, volume)
    image = None
    if mask.any():
        caption = (
            f"haemorrhage {volume_ml:.1f} mL (ABC/2 {estimate.volume_ml:.1f} mL): "
            f"A {estimate.a_mm:.0f} mm, B {estimate.b_mm:.0f} mm"
        )
        image = render_mask_key_image(
            volume,
            mask,
            estimate.slice_index,
            caption,
            estimate.diameters,
            window=BRAIN_WINDOW,
        )
    return HaemorrhageFinding(
        volume_ml=volume_ml,
        abc2=estimate,
        confidence=_confidence(seg, mask, 1)
        if mask.any()
        else 1.0 - float(seg.probabilities[1].max()),
        key_image=image,
        model_version=seg.model_version,
        mask=mask,
    )


def refined_mask(
    mask: np.ndarray, volume: SeriesVolume, min_contrast: float
) -> np.ndarray:
    """A network's mask redrawn at the half-contrast edge in the image.

    The network's outline, interpolated back from its own grid, sits about a
    voxel outside or inside the edge; on a 10 mL bleed or an end-systolic
    cavity one voxel all round is 10-20 % of the volume. Each connected part
    is redrawn where the intensity is half-way between the part and its
    surroundings (:func:`models.quantify.refine.refine_labels`), which is where
    a voxel is half covered. Parts with less contrast than ``min_contrast``
    keep the network's outline. Growth beyond the outline need not be solid:
    a bleed or a cavity has one smooth edge against one tissue, with no spurs
    of a third to keep out.
    """
    if not mask.any():
        return mask
    labels, _ = refine_labels(
        mask.astype(np.uint8),
        volume.pixels,
        (1,),
        min_contrast=min_contrast,
        solid_growth=False,
    )
    return labels == 1


def _confidence(seg: Segmentation, mask: np.ndarray, label: int) -> float:
    if not mask.any():
        return 0.0
    return float(np.clip(seg.probabilities[label][mask].mean(), 0.0, 1.0))
