"""Boundary refinement of model findings on the image's own grid.

A segmentation network works on a resampled grid and its probabilities are
interpolated back, so the edge of a predicted finding can sit a voxel or more
away from the edge in the image. For a lesion that differs in attenuation from
its surroundings the edge is well defined by the image itself: with partial
volume a voxel whose footprint is at least half inside the lesion has an
intensity at least half-way from the surroundings to the lesion (the
half-maximum criterion). This module redraws each finding with that criterion.

For every finding (a connected foreground object of the label mask):

1. the lesion level is the median intensity of the finding's core (the mask
   eroded by one pixel in plane, or the whole finding when that is empty) on
   its widest slice, where partial volume across slices matters least;
2. the surrounding level is the median intensity of a ring two to
   ``ring_px`` pixels outside the finding on that slice, excluding other
   findings;
3. when the two differ by less than ``min_contrast`` the finding is left as
   the network drew it (there is no edge to refine against) and flagged;
4. otherwise a voxel belongs to the finding when its intensity lies closer to
   the lesion level than half the contrast (which also excludes brighter or
   darker neighbours such as vessels or air) and it is connected in plane to
   the network's finding on the same slice within ``grow_px`` pixels of it,
   never touching another finding (so that findings stay apart); holes are
   filled. The slices a finding spans stay those the network drew.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

__all__ = ["RefinedFinding", "refine_labels", "split_touching"]

logger = logging.getLogger(__name__)


@dataclass
class RefinedFinding:
    """What refinement found for one finding (for logging and filtering)."""

    label: int
    lesion_level: float
    surround_level: float
    refined: bool

    @property
    def contrast(self) -> float:
        """Absolute difference between lesion and surrounding levels."""
        return abs(self.lesion_level - self.surround_level)


def refine_labels(
    labels: np.ndarray,
    image: np.ndarray,
    classes: tuple[int, ...] = (1, 2),
    *,
    ring_px: int = 4,
    grow_px: int = 3,
    min_contrast: float = 20.0,
    drop_low_contrast: bool = False,
) -> tuple[np.ndarray, list[RefinedFinding]]:
    """Redraw every finding of ``labels`` at its half-contrast edge in ``image``.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer mask ``[k, j, i]``; each connected object of the ``classes``
        values must carry a single class (see the measurement's class merging).
    image : numpy.ndarray
        Intensities (HU for CT) on the same grid.
    classes : tuple of int
        Label values that are findings.
    ring_px : int
        Outer radius, in pixels, of the in-plane ring that gives the
        surrounding level.
    grow_px : int
        How far, in pixels (and one slice), a finding may grow beyond the
        network's outline.
    min_contrast : float
        Findings whose lesion and surrounding levels differ by less are kept
        unchanged and reported with ``refined=False``.
    drop_low_contrast : bool
        Remove those findings from the mask instead: a finding that does not
        stand out from its surroundings by ``min_contrast`` has no visible
        edge to measure.

    Returns
    -------
    tuple of (numpy.ndarray, list of RefinedFinding)
        The refined mask and one record per finding, in object order.
    """
    from scipy import ndimage

    labels = np.asarray(labels)
    image = np.asarray(image, dtype=np.float32)
    if labels.shape != image.shape:
        raise ValueError(f"labels {labels.shape} and image {image.shape} differ")
    structure = np.ones((3, 3, 3), dtype=bool)
    foreground = np.isin(labels, classes)
    objects, count = ndimage.label(foreground, structure)
    out = labels.copy()
    records: list[RefinedFinding] = []
    if count == 0:
        return out, records
    plane = np.zeros((3, 3, 3), dtype=bool)
    plane[1] = True
    pad = np.array([1, ring_px + 1, ring_px + 1])
    shape = np.array(labels.shape)
    for index, box in enumerate(ndimage.find_objects(objects), start=1):
        if box is None:
            continue
        lo = np.maximum([s.start for s in box] - pad, 0)
        hi = np.minimum([s.stop for s in box] + pad, shape)
        region = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        inside = objects[region] == index
        label = int(labels[region][inside][0])
        hu = image[region]
        others = foreground[region] & ~inside
        keep_off = ndimage.binary_dilation(others, structure)
        core = ndimage.binary_erosion(inside, plane)
        if core.sum() < 3:
            core = inside
        near = ndimage.binary_dilation(inside, plane, iterations=1)
        far = ndimage.binary_dilation(inside, plane, iterations=ring_px)
        ring = far & ~near & ~others
        widest = int(np.argmax(inside.reshape(inside.shape[0], -1).sum(axis=1)))
        if not ring[widest].any() or not core[widest].any():
            records.append(RefinedFinding(label, float("nan"), float("nan"), False))
            continue
        level_in = float(np.median(hu[widest][core[widest]]))
        level_out = float(np.median(hu[widest][ring[widest]]))
        record = RefinedFinding(label, level_in, level_out, False)
        records.append(record)
        contrast = abs(level_in - level_out)
        if contrast < min_contrast:
            if drop_low_contrast:
                out[region][inside] = 0
            continue
        candidate = np.abs(hu - level_in) < 0.5 * contrast
        allowed = ndimage.binary_dilation(inside, plane, iterations=grow_px)
        allowed &= candidate & ~keep_off
        grown = np.zeros_like(inside)
        for k in range(inside.shape[0]):
            seeds = inside[k] & allowed[k]
            if not seeds.any():
                continue
            layer = ndimage.binary_propagation(seeds, mask=allowed[k])
            grown[k] = ndimage.binary_fill_holes(layer)
        if not grown.any():
            continue
        view = out[region]
        view[inside & ~grown] = 0
        view[grown] = label
        taken = foreground[region]
        taken[inside & ~grown] = False
        taken[grown] = True
        record.refined = True
    return out, records


def _z_only() -> np.ndarray:
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[:, 1, 1] = True
    return structure


def split_touching(
    labels: np.ndarray,
    spacing_mm: tuple[float, float, float],
    classes: tuple[int, ...] = (1, 2),
    core_fraction: float = 0.6,
) -> np.ndarray:
    """Separate findings that touch, by a watershed on the distance to the edge.

    A finding's core is where its distance to the edge (in mm, through the
    voxel spacing) exceeds ``core_fraction`` of its largest value. A single
    ellipsoid has one core; two touching lesions joined by a neck narrower than
    that have two. Each core then claims the voxels nearest to it along the
    distance map, and a one-voxel background seam is cut between the parts so
    that they measure as separate findings.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer mask ``[k, j, i]``.
    spacing_mm : tuple of float
        Voxel size (slice, row, column) in mm.
    classes : tuple of int
        Label values that are findings.
    core_fraction : float
        Relative depth that defines a core.

    Returns
    -------
    numpy.ndarray
        The mask with touching findings cut apart (unchanged when none).
    """
    from scipy import ndimage

    out = np.asarray(labels).copy()
    structure = np.ones((3, 3, 3), dtype=bool)
    objects, _ = ndimage.label(np.isin(out, classes), structure)
    for index, box in enumerate(ndimage.find_objects(objects), start=1):
        if box is None:
            continue
        region = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        inside = objects[region] == index
        depth = ndimage.distance_transform_edt(inside, sampling=spacing_mm)
        cores, n_cores = ndimage.label(
            depth > core_fraction * float(depth.max()), structure
        )
        if n_cores < 2:
            continue
        scale = 65000.0 / max(float(depth.max()), 1e-6)
        cost = (65000.0 - depth * scale).astype(np.uint16)
        markers = cores.astype(np.int32)
        markers[~inside] = -1
        parts = ndimage.watershed_ift(cost, markers)
        parts[~inside] = 0
        seam = np.zeros_like(inside)
        for part in range(1, n_cores + 1):
            grown = ndimage.binary_dilation(parts == part, structure)
            seam |= grown & (parts > part)
        view = out[region]
        view[seam & inside] = 0
        logger.debug("split a finding into %d parts", n_cores)
    return out
