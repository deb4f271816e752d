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
   its reference slice: of its wider slices, the one whose core stands out
   most from the surroundings, where partial volume across slices matters
   least (a thick end slice holding a sliver of the lesion does not);
2. the surrounding level is the median intensity of a ring two to
   ``ring_px`` pixels outside the finding on that slice, excluding other
   findings and what the finding's outline encloses (the inside of a ring
   the network drew);
3. when the two differ by less than ``min_contrast`` the finding is left as
   the network drew it (there is no edge to refine against) and flagged;
4. otherwise a voxel belongs to the finding when its intensity lies closer to
   the lesion level than half way to the surroundings next to it: the mean of
   the ring's outer pixels (three or more out) around the outer pixel nearest
   to the voxel, so that a node half in fat and half against muscle gets its
   edge against each, unless the surrounding level of step 2 lies nearer to
   the lesion's (a vessel behind the liver, or fat behind the soft tissue next
   to a node, does not move the edge); the level of step 2 on slices without
   a ring, and for voxels that the finding's outline encloses without
   covering them (the inside of a ring the network drew). On the far
   side of the lesion level a voxel may lie no further from it than the
   surroundings do, which keeps out brighter or darker neighbours such as
   vessels or air. The voxel must also be connected in plane to the network's
   finding on the same slice, within ``grow_px`` pixels of it or inside the
   convex hull of its outline on that slice (a large lesion that the network
   drew as a ring or a crescent is filled), never touching another finding (so
   that findings stay apart);
5. what grows beyond the network's outline must be at least three pixels
   across (an opening with a 3 x 3 cross; ``solid_growth``): a spur one or two
   pixels wide is noise at a low-contrast edge, or a mixture of two other
   tissues that matches the lesion's level (lung and spleen at the dome next
   to a lung lesion), and would lengthen the diameter it touches. Holes are
   filled. The slices a finding spans stay those the network drew.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

__all__ = ["RefinedFinding", "finding_instances", "refine_labels"]

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
    local_px: int = 1,
    solid_growth: bool = True,
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
    local_px : int
        Half-width, in pixels, of the in-plane window over which the ring's
        outer pixels are averaged; each voxel takes the average at the outer
        pixel nearest to it as its surrounding level. 0 uses the single median
        level of the reference slice for every voxel.
    solid_growth : bool
        Keep only growth beyond the network's outline that is at least three
        pixels across (step 5). Off for a single smooth structure with little
        noise and no third tissue at its edge (a haematoma, a ventricular
        cavity), where it would only shave the corners of small end slices.

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
    # Pixels without a value (NaN, inf) never set a level and never join.
    finite = np.isfinite(image)
    structure = np.ones((3, 3, 3), dtype=bool)
    foreground = np.isin(labels, classes)
    objects, count = ndimage.label(foreground, structure)
    out = labels.copy()
    records: list[RefinedFinding] = []
    if count == 0:
        return out, records
    plane = np.zeros((3, 3, 3), dtype=bool)
    plane[1] = True
    cross = ndimage.generate_binary_structure(2, 1)
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
        seen = finite[region]
        others = foreground[region] & ~inside
        keep_off = ndimage.binary_dilation(others, structure)
        core = ndimage.binary_erosion(inside, plane)
        if core.sum() < 3:
            core = inside
        core = core & seen
        near = ndimage.binary_dilation(inside, plane, iterations=1)
        far = ndimage.binary_dilation(inside, plane, iterations=ring_px)
        hulls = _convex_hulls(inside)
        # What the outline encloses (the inside of a ring the network drew)
        # is not the finding's surroundings.
        ring = far & ~near & ~hulls & ~others & seen
        reference = _reference_slice(hu, core, ring, min_contrast)
        if not ring[reference].any() or not core[reference].any():
            records.append(RefinedFinding(label, float("nan"), float("nan"), False))
            if drop_low_contrast and not core[reference].any():
                out[region][inside] = 0  # no pixel of it has a value
            continue
        level_in = float(np.median(hu[reference][core[reference]]))
        level_out = float(np.median(hu[reference][ring[reference]]))
        record = RefinedFinding(label, level_in, level_out, False)
        records.append(record)
        contrast = abs(level_in - level_out)
        if not contrast >= min_contrast:  # also when a level is NaN
            if drop_low_contrast:
                out[region][inside] = 0
            continue
        # The outer part of the ring only: the pixels next to a network
        # outline drawn too small still carry some of the lesion's signal.
        outer = ring & ~ndimage.binary_dilation(inside, plane, iterations=2)
        surround: np.ndarray | float = level_out
        if local_px:
            local = _local_level(hu, outer, level_out, local_px)
            # Tissue beyond the one next to the edge (a vessel behind the
            # liver, fat behind a muscle) must not pull the level away from
            # the lesion: of the local and the slice level, the one nearer to
            # the lesion's level counts. What the outline encloses without
            # covering it (the inside of a ring) takes the slice level: the
            # ring pixels nearest to it may lie on lesion the network left out.
            nearer = np.abs(local - level_in) < abs(level_out - level_in)
            surround = np.where(nearer & ~(hulls & ~inside), local, level_out)
        # Closer to the lesion's level than half way to the surroundings; on
        # the far side, no further from it than the surroundings are (a
        # vessel next to a node, air next to a lung lesion stay out).
        offset = (hu - level_in) * np.sign(level_in - surround)
        reach = np.abs(level_in - surround)
        candidate = (offset > -0.5 * reach) & (offset < reach)
        allowed = ndimage.binary_dilation(inside, plane, iterations=grow_px)
        allowed |= hulls
        allowed &= candidate & ~keep_off
        grown = np.zeros_like(inside)
        seeded = []
        for k in range(inside.shape[0]):
            seeds = inside[k] & allowed[k]
            if not seeds.any():
                continue
            seeded.append(k)
            layer = ndimage.binary_propagation(seeds, mask=allowed[k])
            if solid_growth:
                layer = ndimage.binary_fill_holes(layer)
                solid = ndimage.binary_opening(layer, cross) | (layer & inside[k])
                layer = ndimage.binary_propagation(seeds, mask=solid)
            grown[k] = ndimage.binary_fill_holes(layer)
        if not seeded:
            continue
        # A slice inside the finding where no voxel passes (a noisy or
        # artefact slice) keeps the network's outline: dropping it would cut
        # one lesion into two. Only end slices can be trimmed away.
        for k in range(seeded[0], seeded[-1] + 1):
            if k not in seeded:
                grown[k] = inside[k]
        view = out[region]
        view[inside & ~grown] = 0
        view[grown] = label
        taken = foreground[region]
        taken[inside & ~grown] = False
        taken[grown] = True
        record.refined = True
    return out, records


def _reference_slice(
    image: np.ndarray, core: np.ndarray, ring: np.ndarray, min_contrast: float
) -> int:
    """The slice whose levels describe the finding best.

    Of the slices where the finding's core has at least half of its largest
    area and that stand out from their own ring by ``min_contrast``, the one
    whose core lies farthest from the finding's surroundings (the median of
    its whole ring), on the lesion's side of them; the widest slice when no
    slice qualifies. Partial volume across a thick slice pulls an end slice
    towards the surroundings: a network may draw it as wide as the middle,
    but it holds only a sliver of the lesion, and its level would put the
    edge in the wrong place.
    """
    areas = core.reshape(core.shape[0], -1).sum(axis=1)
    widest = int(np.argmax(areas))
    if not ring.any() or not core[widest].any():
        return widest
    outside = float(np.median(image[ring]))
    sign = 1.0 if float(np.median(image[widest][core[widest]])) >= outside else -1.0
    best, best_contrast = widest, -np.inf
    for k in np.flatnonzero(areas >= 0.5 * areas.max()):
        if not ring[k].any():
            continue
        level = float(np.median(image[k][core[k]]))
        if not abs(level - float(np.median(image[k][ring[k]]))) >= min_contrast:
            continue  # no edge on this slice (e.g. the network took in an organ)
        contrast = sign * (level - outside)
        if contrast > best_contrast:
            best, best_contrast = int(k), contrast
    return best


def _convex_hulls(mask: np.ndarray) -> np.ndarray:
    """Per slice, the pixels whose centres lie in the convex hull of ``mask``.

    A slice whose pixels are too few or all in a line keeps its own pixels.
    """
    from scipy.spatial import ConvexHull, QhullError

    out = mask.copy()
    rows, cols = np.indices(mask.shape[1:])
    centres = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float64)
    for k in range(mask.shape[0]):
        points = np.argwhere(mask[k]).astype(np.float64)
        if len(points) < 3:
            continue
        try:
            hull = ConvexHull(points)
        except QhullError:
            continue  # collinear: the pixels are their own hull
        distance = centres @ hull.equations[:, :2].T + hull.equations[:, 2]
        out[k] |= (distance <= 1e-9).all(axis=1).reshape(mask.shape[1:])
    return out


def _local_level(
    image: np.ndarray, ring: np.ndarray, fallback: float, half_width: int
) -> np.ndarray:
    """The surrounding level next to each voxel, slice by slice.

    Ring intensities are averaged over the ring pixels within ``half_width``
    pixels (a square window), and each voxel takes the average at the ring
    pixel nearest to it on its slice; ``fallback`` on slices without a ring.
    """
    from scipy import ndimage

    size = (1, 2 * half_width + 1, 2 * half_width + 1)
    weight = ring.astype(np.float32)
    values = np.where(ring, image, 0.0).astype(np.float32)
    total = ndimage.uniform_filter(values, size=size, mode="constant")
    count = ndimage.uniform_filter(weight, size=size, mode="constant")
    smoothed = np.where(ring, total / np.maximum(count, 1e-6), 0.0)
    level = np.full(image.shape, fallback, dtype=np.float32)
    for k in range(ring.shape[0]):
        if not ring[k].any():
            continue
        nearest = ndimage.distance_transform_edt(
            ~ring[k], return_distances=False, return_indices=True
        )
        level[k] = smoothed[k][tuple(nearest)]
    return level


def finding_instances(
    labels: np.ndarray,
    spacing_mm: tuple[float, float, float],
    classes: tuple[int, ...] = (1, 2),
    *,
    split: bool = True,
    core_fraction: float = 0.6,
    neck_fraction: float = 0.8,
) -> np.ndarray:
    """Number the findings of a mask, giving touching findings a number each.

    Every connected foreground object (26-connectivity) is a finding. With
    ``split``, an object whose distance-to-edge map (in mm, through the voxel
    spacing) has more than one core is divided among its cores: a core is a
    26-connected region where the depth exceeds ``core_fraction`` of the
    object's largest depth, so every core sits the same depth inside its own
    lesion and the line half way between two cores is where their lesions
    meet. Each voxel goes to the core nearest to it in millimetres, and parts
    that meet through a wide neck are joined again (see ``neck_fraction``).
    No voxel is removed: two nodes that touch only across neighbouring 5 mm
    slices keep every slice they have (cutting a seam between them would take
    a whole slice from one of them).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer mask ``[k, j, i]``.
    spacing_mm : tuple of float
        Voxel size (slice, row, column) in mm.
    classes : tuple of int
        Label values that are findings.
    split : bool
        Divide objects with several cores; without it, one number per object.
    core_fraction : float
        Relative depth that defines a core.
    neck_fraction : float
        Cores whose parts meet through a neck at least this fraction of the
        shallower part's peak depth stay one finding (a bulge, not a second
        lesion).

    Returns
    -------
    numpy.ndarray
        ``int32`` array of the mask's shape: 0 for background, ``1..n`` for
        the findings.
    """
    from scipy import ndimage

    structure = np.ones((3, 3, 3), dtype=bool)
    objects, count = ndimage.label(np.isin(np.asarray(labels), classes), structure)
    out = objects.astype(np.int32)
    if not split:
        return out
    next_id = count + 1
    for index, box in enumerate(ndimage.find_objects(objects), start=1):
        if box is None:
            continue
        region = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        inside = objects[region] == index
        # Padded so that the edge of the field of view counts as outside.
        depth = ndimage.distance_transform_edt(np.pad(inside, 1), sampling=spacing_mm)[
            1:-1, 1:-1, 1:-1
        ]
        cores, n_cores = ndimage.label(
            depth > core_fraction * float(depth.max()), structure
        )
        if n_cores < 2:
            continue
        nearest = ndimage.distance_transform_edt(
            cores == 0, sampling=spacing_mm, return_distances=False, return_indices=True
        )
        owner = np.where(inside, cores[tuple(nearest)], 0)
        parts = _merge_wide_necks(owner, depth, n_cores, neck_fraction)
        if len(parts) < 2:
            continue
        view = out[region]
        for part in parts[1:]:
            view[np.isin(owner, part)] = next_id
            next_id += 1
        logger.debug("divided a finding among %d cores", len(parts))
    return out


def _merge_wide_necks(
    owner: np.ndarray, depth: np.ndarray, n_cores: int, neck_fraction: float
) -> list[list[int]]:
    """Group cores whose parts meet through a neck that is not narrow.

    The neck between two touching parts is the largest depth on their shared
    boundary. Two lesions that touch meet through a neck well below the depth
    of either; a bulge of one lesion meets the rest of it through a neck as
    deep as the bulge itself. Parts whose neck reaches ``neck_fraction`` of
    the shallower part's peak depth are one finding.
    """
    from scipy import ndimage

    structure = np.ones((3, 3, 3), dtype=bool)
    peaks = [float(depth[owner == p].max()) for p in range(1, n_cores + 1)]
    group = list(range(n_cores + 1))

    def root(p: int) -> int:
        while group[p] != p:
            p = group[p]
        return p

    for p in range(1, n_cores + 1):
        grown = ndimage.binary_dilation(owner == p, structure)
        for q in range(p + 1, n_cores + 1):
            shared = grown & (owner == q)
            if not shared.any():
                continue
            neck = float(depth[shared].max())
            if neck >= neck_fraction * min(peaks[p - 1], peaks[q - 1]):
                group[root(q)] = root(p)
    merged: dict[int, list[int]] = {}
    for p in range(1, n_cores + 1):
        merged.setdefault(root(p), []).append(p)
    return list(merged.values())
