"""Numerical phantoms with exact labels, for training and for trial synthesis.

Every phantom is a plain NumPy volume indexed ``[k, j, i]`` (slice, row,
column) with ``spacing_mm`` given in the same order: (slice step, row spacing,
column spacing). Phantom coordinates are millimetres on patient axes (LPS: +x
towards the patient's left, +y posterior, +z superior) with the origin at the
centre of the volume, so voxel ``[k, j, i]`` has its centre at
``origin_mm + (i * dx, j * dy, k * dz)``.

Shapes are ellipsoids (optionally rotated in the axial plane). A voxel carries a
label when its centre lies inside the shape. Intensities carry partial volume:
each voxel receives the fraction of its footprint that the shape covers,
computed from the signed distance of the voxel centre to the surface and the
voxel's extent along the surface normal (a box filter; this equals
supersampling in the limit of many samples for locally flat surfaces, at a
fraction of the cost). Noise is added last.

Because labels are defined analytically, every size is known exactly:

* the longest axial diameter of a lesion on the slice that cuts it widest is
  ``2 * max(a, b) * s`` and its perpendicular short axis ``2 * min(a, b) * s``,
  where ``s = sqrt(1 - (dz / c) ** 2)`` and ``dz`` is the distance from the
  lesion centre to that slice centre (``s = 1`` when the centre lies on a
  slice centre);
* volumes are given as the sum of the analytic cross-section area at each
  slice centre times the slice step (the disc summation that slice-based
  volumetry measures), alongside the continuous ellipsoid volume.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "CmrPhantom",
    "Ellipsoid",
    "HaematomaSpec",
    "HeadCtPhantom",
    "LesionSpec",
    "LesionTruth",
    "Phantom",
    "TorsoAnatomy",
    "cmr_short_axis_phantom",
    "ct_torso_phantom",
    "head_ct_phantom",
    "lesion_hu",
    "torso_anatomy",
]

logger = logging.getLogger(__name__)

Vec3 = tuple[float, float, float]

# Attenuation in HU. Contrast values are portal-venous phase.
HU_AIR = -1000.0
HU_LUNG = -850.0
HU_FAT = -100.0
HU_MUSCLE = 45.0
HU_BONE = 700.0
HU_MARROW = 250.0
HU_LIVER = 60.0
HU_LIVER_CONTRAST = 105.0
HU_SPLEEN = 45.0
HU_SPLEEN_CONTRAST = 120.0
HU_KIDNEY = 35.0
HU_KIDNEY_CONTRAST = 170.0
HU_BLOOD = 40.0
HU_BLOOD_CONTRAST = 180.0

LABEL_LESION = 1
LABEL_NODE = 2


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid in phantom millimetres.

    ``semi_axes`` are (a, b, c): a along the rotated x axis, b along the
    rotated y axis, c cranio-caudal. ``angle_deg`` rotates the axial ellipse
    counter-clockwise from +x towards +y. A very large ``c`` makes a cylinder.
    """

    centre: Vec3
    semi_axes: Vec3
    angle_deg: float = 0.0


@dataclass(frozen=True)
class LesionSpec:
    """A lesion or lymph node to plant in a torso phantom.

    Parameters
    ----------
    lesion_id
        Stable identifier (e.g. ``"T01"``), kept across visits.
    centre_mm
        Centre (x, y, z) in phantom millimetres (volume centre is the origin).
    semi_axes_mm
        Axial semi-axes ``a``, ``b`` and cranio-caudal ``c`` in mm.
    kind
        ``"lesion"`` (label 1) or ``"node"`` (label 2).
    organ
        Organ name; selects the lesion attenuation (see :func:`lesion_hu`).
    angle_deg
        In-plane rotation of the axial ellipse.
    hu
        Attenuation override; ``None`` uses :func:`lesion_hu`.
    """

    lesion_id: str
    centre_mm: Vec3
    semi_axes_mm: Vec3
    kind: Literal["lesion", "node"] = "lesion"
    organ: str = "liver"
    angle_deg: float = 0.0
    hu: float | None = None


@dataclass(frozen=True)
class LesionTruth:
    """Exact sizes of one planted lesion on the phantom's grid."""

    lesion_id: str
    kind: str
    organ: str
    longest_diameter_mm: float
    short_axis_mm: float
    centre_mm: Vec3
    slice_index: int
    volume_ml: float
    volume_ml_continuous: float
    voxel_count: int
    hu: float


@dataclass(frozen=True)
class TorsoAnatomy:
    """Organ shapes of one torso phantom (phantom millimetres)."""

    body: Ellipsoid
    muscle: Ellipsoid
    lungs: tuple[Ellipsoid, Ellipsoid]
    liver: Ellipsoid
    spleen: Ellipsoid
    kidneys: tuple[Ellipsoid, Ellipsoid]
    vertebra: Ellipsoid
    aorta: Ellipsoid
    mesenteric_fat: Ellipsoid

    def organ(self, name: str) -> Ellipsoid:
        """The shape of an organ by name ("lung_right", "kidney_left", ...)."""
        table = {
            "body": self.body,
            "muscle": self.muscle,
            "lung_right": self.lungs[0],
            "lung_left": self.lungs[1],
            "liver": self.liver,
            "spleen": self.spleen,
            "kidney_right": self.kidneys[0],
            "kidney_left": self.kidneys[1],
            "vertebra": self.vertebra,
            "aorta": self.aorta,
            "mesenteric_fat": self.mesenteric_fat,
        }
        if name not in table:
            raise KeyError(f"unknown organ {name!r}; known: {sorted(table)}")
        return table[name]


@dataclass
class Phantom:
    """A CT torso phantom: HU, labels and the exact truth of every lesion."""

    hu: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    spacing_mm: Vec3
    origin_mm: Vec3
    lesions: list[LesionTruth]
    anatomy: TorsoAnatomy
    contrast: bool

    def slice_z_mm(self, k: int) -> float:
        """Phantom z (mm) of slice ``k``'s centre."""
        return self.origin_mm[2] + k * self.spacing_mm[0]


@dataclass
class CmrPhantom:
    """A short-axis cine stack: images and labels per phase.

    ``images`` and ``labels`` are indexed ``[phase, k, j, i]``. Labels: 1 left
    ventricular cavity, 2 left ventricular myocardium, 3 right ventricular
    cavity. ``volumes_ml`` holds the LV cavity volume of each phase (disc
    summation over slices); ``lv_centre_mm`` the in-plane (x, y) position of
    the long axis.
    """

    images: np.ndarray
    labels: np.ndarray
    spacing_mm: Vec3
    origin_mm: Vec3
    volumes_ml: list[float]
    ed_phase: int
    es_phase: int
    lv_centre_mm: tuple[float, float] = (0.0, 0.0)

    @property
    def edv_ml(self) -> float:
        return self.volumes_ml[self.ed_phase]

    @property
    def esv_ml(self) -> float:
        return self.volumes_ml[self.es_phase]

    @property
    def lvef_percent(self) -> float:
        return (self.edv_ml - self.esv_ml) / self.edv_ml * 100.0


@dataclass(frozen=True)
class HaematomaSpec:
    """An intracerebral haematoma (phantom millimetres)."""

    centre_mm: Vec3
    semi_axes_mm: Vec3
    angle_deg: float = 0.0
    hu: float = 60.0


@dataclass
class HeadCtPhantom:
    """A non-contrast head CT phantom. Label 1 is the haematoma."""

    hu: np.ndarray
    labels: np.ndarray
    spacing_mm: Vec3
    origin_mm: Vec3
    haematoma_volume_ml: float
    haematoma_volume_ml_continuous: float
    brain: Ellipsoid = field(repr=False)


# --------------------------------------------------------------------------
# Public builders
# --------------------------------------------------------------------------


def lesion_hu(organ: str, kind: str, contrast: bool) -> float:
    """Attenuation of a planted lesion, chosen to stand out from its host.

    Liver and spleen metastases are hypo-attenuating (at least 40 HU below
    liver, with or without contrast); nodes and soft-tissue lesions enhance
    with contrast; lung lesions are soft tissue against aerated lung.
    """
    if kind == "node":
        return 75.0 if contrast else 40.0
    if organ in ("liver", "spleen"):
        return 45.0 if contrast else 18.0
    if organ.startswith("lung"):
        return 35.0
    return 140.0 if contrast else 40.0


def torso_anatomy(
    shape: tuple[int, int, int],
    spacing_mm: Vec3,
    rng: np.random.Generator | None = None,
) -> TorsoAnatomy:
    """Organ shapes scaled to the field of view, lower chest to mid abdomen.

    With ``rng`` the organ sizes vary by a few per cent (subject variation);
    without it the anatomy is fixed by ``shape`` and ``spacing_mm``.
    """
    nz, ny, nx = shape
    dz, dy, dx = spacing_mm
    hx, hy, hz = nx * dx / 2.0, ny * dy / 2.0, nz * dz / 2.0

    def jitter() -> float:
        return 1.0 + (float(rng.uniform(-0.05, 0.05)) if rng is not None else 0.0)

    big = 1.0e6
    bx, by = 0.88 * hx * jitter(), 0.66 * hy * jitter()
    body = Ellipsoid((0.0, 0.0, 0.0), (bx, by, big))
    muscle = Ellipsoid((0.0, 0.0, 0.0), (bx - 12.0, by - 10.0, big))
    lung_z = 0.55 * hz
    lung_c = 0.75 * hz
    lungs = (
        Ellipsoid((-0.45 * bx, -0.05 * by, lung_z), (0.36 * bx, 0.62 * by, lung_c)),
        Ellipsoid((0.45 * bx, -0.05 * by, lung_z), (0.34 * bx, 0.60 * by, lung_c)),
    )
    liver = Ellipsoid(
        (-0.33 * bx, -0.08 * by, -0.15 * hz),
        (0.48 * bx * jitter(), 0.62 * by * jitter(), 0.55 * hz),
        angle_deg=-10.0,
    )
    spleen = Ellipsoid(
        (0.55 * bx, 0.25 * by, -0.10 * hz), (0.20 * bx, 0.30 * by, 0.35 * hz), 30.0
    )
    kidneys = (
        Ellipsoid(
            (-0.42 * bx, 0.45 * by, -0.55 * hz), (0.13 * bx, 0.22 * by, 0.4 * hz)
        ),
        Ellipsoid((0.42 * bx, 0.45 * by, -0.50 * hz), (0.13 * bx, 0.22 * by, 0.4 * hz)),
    )
    vertebra = Ellipsoid((0.0, 0.58 * by, 0.0), (0.14 * bx, 0.17 * by, big))
    aorta = Ellipsoid((0.10 * bx, 0.30 * by, 0.0), (12.0, 12.0, big))
    mesenteric_fat = Ellipsoid(
        (0.28 * bx, -0.36 * by, -0.3 * hz), (0.28 * bx, 0.3 * by, 0.45 * hz)
    )
    return TorsoAnatomy(
        body, muscle, lungs, liver, spleen, kidneys, vertebra, aorta, mesenteric_fat
    )


def ct_torso_phantom(
    shape: tuple[int, int, int],
    spacing_mm: Vec3,
    lesions: Sequence[LesionSpec],
    rng: np.random.Generator,
    contrast: bool = True,
    anatomy: TorsoAnatomy | None = None,
    noise_sigma_hu: float = 12.0,
) -> Phantom:
    """A contrast (or plain) CT of the lower chest and upper abdomen.

    Parameters
    ----------
    shape
        Volume shape ``(slices, rows, columns)``.
    spacing_mm
        ``(slice step, row spacing, column spacing)`` in mm.
    lesions
        Lesions and nodes to plant; painted in order, after the organs.
    rng
        Source of noise (and of anatomy variation when ``anatomy`` is None).
    contrast
        Portal-venous contrast enhancement of liver, spleen, kidneys, aorta and
        lesions.
    anatomy
        Organ shapes; reuse one across a subject's visits.
    noise_sigma_hu
        Standard deviation of the additive Gaussian noise.

    Returns
    -------
    Phantom
        ``hu`` (float32), ``labels`` (uint8: 0 background, 1 non-nodal lesion,
        2 lymph node), ``instances`` (uint8: 1 + index into ``lesions``) and
        the exact truth of each lesion.
    """
    grid = _Grid(shape, spacing_mm)
    if anatomy is None:
        anatomy = torso_anatomy(shape, spacing_mm, rng)
    hu = np.full(shape, HU_AIR, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    instances = np.zeros(shape, dtype=np.uint8)

    def c(plain: float, enhanced: float) -> float:
        return enhanced if contrast else plain

    grid.paint(hu, anatomy.body, HU_FAT)
    grid.paint(hu, anatomy.muscle, HU_MUSCLE)
    grid.paint(hu, anatomy.mesenteric_fat, HU_FAT)
    for lung in anatomy.lungs:
        grid.paint(hu, lung, HU_LUNG)
    grid.paint(hu, anatomy.liver, c(HU_LIVER, HU_LIVER_CONTRAST))
    grid.paint(hu, anatomy.spleen, c(HU_SPLEEN, HU_SPLEEN_CONTRAST))
    for kidney in anatomy.kidneys:
        grid.paint(hu, kidney, c(HU_KIDNEY, HU_KIDNEY_CONTRAST))
    grid.paint(hu, anatomy.vertebra, HU_BONE)
    inner = anatomy.vertebra.semi_axes
    marrow = Ellipsoid(
        anatomy.vertebra.centre, (inner[0] - 4.0, inner[1] - 4.0, inner[2])
    )
    grid.paint(hu, marrow, HU_MARROW)
    grid.paint(hu, anatomy.aorta, c(HU_BLOOD, HU_BLOOD_CONTRAST))

    truths: list[LesionTruth] = []
    if len(lesions) > 254:
        raise ValueError("at most 254 lesions per phantom")
    for index, spec in enumerate(lesions):
        value = (
            spec.hu
            if spec.hu is not None
            else lesion_hu(spec.organ, spec.kind, contrast)
        )
        shape_ = Ellipsoid(spec.centre_mm, spec.semi_axes_mm, spec.angle_deg)
        inside = grid.paint(hu, shape_, value)
        label = LABEL_NODE if spec.kind == "node" else LABEL_LESION
        count = 0
        if inside is not None:
            region, mask = inside
            labels[region][mask] = label
            instances[region][mask] = index + 1
            count = int(mask.sum())
        truths.append(_lesion_truth(spec, grid, value, count))

    if noise_sigma_hu > 0:
        hu += noise_sigma_hu * rng.standard_normal(shape, dtype=np.float32)
    return Phantom(
        hu=hu,
        labels=labels,
        instances=instances,
        spacing_mm=tuple(float(s) for s in spacing_mm),  # type: ignore[arg-type]
        origin_mm=grid.origin,
        lesions=truths,
        anatomy=anatomy,
        contrast=contrast,
    )


def cmr_short_axis_phantom(
    shape: tuple[int, int, int],
    spacing_mm: Vec3,
    edv_ml: float,
    esv_ml: float,
    rng: np.random.Generator,
    n_phases: int = 2,
    noise_sigma: float = 12.0,
) -> CmrPhantom:
    """A short-axis bSSFP-like cine stack with exact LV cavity volumes.

    The LV cavity is a half ellipsoid (truncated at the mitral base, apex
    towards low ``k``) whose radius is solved so that its disc-summed volume
    equals ``edv_ml`` at end-diastole (phase 0) and ``esv_ml`` at end-systole
    (phase ``n_phases // 2``); phases in between follow a cosine. The base
    descends by 12 % of the long axis in systole and the wall thickens.
    The top slice lies above the base and holds no LV cavity.

    Returns
    -------
    CmrPhantom
        Signal in arbitrary units (blood ~ 550, myocardium ~ 110).
    """
    if n_phases < 2:
        raise ValueError("n_phases must be at least 2 (ED and ES)")
    if not 0 < esv_ml < edv_ml:
        raise ValueError("volumes must satisfy 0 < ESV < EDV")
    grid = _Grid(shape, spacing_mm)
    _, ny, nx = shape
    dz = spacing_mm[0]
    z = grid.z
    z_base_ed = z[-1] - 0.5 * dz
    z_apex = z[0] - 0.25 * dz
    long_ed = z_base_ed - z_apex
    es_phase = n_phases // 2
    hx, hy = nx * spacing_mm[2] / 2, ny * spacing_mm[1] / 2
    centre = (0.08 * hx, -0.05 * hy)

    images = np.empty((n_phases, *shape), dtype=np.float32)
    labels = np.zeros((n_phases, *shape), dtype=np.uint8)
    volumes: list[float] = []
    for phase in range(n_phases):
        w = 0.5 * (1.0 + math.cos(2.0 * math.pi * phase / n_phases))
        target = esv_ml + (edv_ml - esv_ml) * w
        systole = 1.0 - w
        length = long_ed * (1.0 - 0.12 * systole)
        z_base = z_apex + length
        profile = np.clip(1.0 - ((z_base - z) / length) ** 2, 0.0, None)
        profile[z > z_base] = 0.0
        radius = math.sqrt(target * 1000.0 / (math.pi * dz * float(profile.sum())))
        wall = 8.0 + 4.0 * systole

        img = np.full(shape, 20.0, dtype=np.float32)
        lab = labels[phase]
        body = Ellipsoid((0.0, 0.0, 0.0), (0.9 * hx, 0.7 * hy, 1e6))
        grid.paint(img, body, 140.0)
        for side in (-1.0, 1.0):
            lung = Ellipsoid(
                (side * 0.24 * hx, 0.05 * hy, 0.0), (0.18 * hx, 0.26 * hy, 1e6)
            )
            grid.paint(img, lung, 25.0)
        rv_centre = (centre[0] - radius - wall - 10.0, centre[1] - 6.0, z_base - 10.0)
        rv = Ellipsoid(rv_centre, (radius * 0.9, radius * 1.3, length * 0.95), 20.0)
        rv_in = grid.paint(img, rv, 520.0)
        if rv_in is not None:
            region, mask = rv_in
            lab[region][mask] = 3
        base_cut = z <= z_base
        myo = Ellipsoid(
            (centre[0], centre[1], z_base),
            (radius + wall, radius + wall, length + wall),
        )
        myo_in = grid.paint(img, myo, 110.0, z_mask=base_cut)
        if myo_in is not None:
            region, mask = myo_in
            lab[region][mask] = 2
        cavity = Ellipsoid((centre[0], centre[1], z_base), (radius, radius, length))
        cav_in = grid.paint(img, cavity, 550.0, z_mask=base_cut)
        if cav_in is not None:
            region, mask = cav_in
            lab[region][mask] = 1

        noise = noise_sigma * rng.standard_normal((2, *shape), dtype=np.float32)
        images[phase] = np.sqrt((img + noise[0]) ** 2 + noise[1] ** 2)
        volumes.append(math.pi * radius**2 * dz * float(profile.sum()) / 1000.0)
    return CmrPhantom(
        images=images,
        labels=labels,
        spacing_mm=tuple(float(s) for s in spacing_mm),  # type: ignore[arg-type]
        origin_mm=grid.origin,
        volumes_ml=volumes,
        ed_phase=0,
        es_phase=es_phase,
        lv_centre_mm=(float(centre[0]), float(centre[1])),
    )


def head_ct_phantom(
    shape: tuple[int, int, int],
    spacing_mm: Vec3,
    haematoma: HaematomaSpec | None,
    rng: np.random.Generator,
    noise_sigma_hu: float = 4.0,
) -> HeadCtPhantom:
    """A non-contrast head CT with an optional intracerebral haematoma.

    Scalp 40 HU, skull 1000 HU (diploe 400), grey matter 40 HU, white matter
    28 HU, ventricles 5 HU, haematoma ``haematoma.hu`` (default 60 HU).
    Label 1 marks haematoma voxels; ``haematoma_volume_ml`` is disc-summed.
    """
    grid = _Grid(shape, spacing_mm)
    nz, ny, nx = shape
    hx, hy, hz = nx * spacing_mm[2] / 2, ny * spacing_mm[1] / 2, nz * spacing_mm[0] / 2
    a, b, c = 0.78 * hx, 0.86 * hy, max(1.1 * hz, 60.0)
    zc = -0.25 * hz
    hu = np.full(shape, HU_AIR, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    grid.paint(hu, Ellipsoid((0.0, 0.0, zc), (a, b, c)), 40.0)
    grid.paint(hu, Ellipsoid((0.0, 0.0, zc), (a - 4, b - 4, c - 4)), 1000.0)
    grid.paint(hu, Ellipsoid((0.0, 0.0, zc), (a - 6.5, b - 6.5, c - 6.5)), 400.0)
    grid.paint(hu, Ellipsoid((0.0, 0.0, zc), (a - 9, b - 9, c - 9)), 1000.0)
    brain = Ellipsoid((0.0, 0.0, zc), (a - 11, b - 11, c - 11))
    grid.paint(hu, brain, 40.0)
    grid.paint(hu, Ellipsoid((0.0, 0.0, zc), (a - 16, b - 16, c - 16)), 28.0)
    for side in (-1.0, 1.0):
        ventricle = Ellipsoid(
            (side * 0.10 * a, -0.05 * b, zc + 0.35 * c),
            (0.06 * a, 0.33 * b, 0.18 * c),
            side * 8.0,
        )
        grid.paint(hu, ventricle, 5.0)

    volume = 0.0
    continuous = 0.0
    if haematoma is not None:
        shape_ = Ellipsoid(
            haematoma.centre_mm, haematoma.semi_axes_mm, haematoma.angle_deg
        )
        inside = grid.paint(hu, shape_, haematoma.hu)
        if inside is not None:
            region, mask = inside
            labels[region][mask] = 1
        ha, hb, hc = haematoma.semi_axes_mm
        volume = _disc_volume_ml(ha, hb, hc, haematoma.centre_mm[2], grid.z)
        continuous = 4.0 / 3.0 * math.pi * ha * hb * hc / 1000.0
    if noise_sigma_hu > 0:
        hu += noise_sigma_hu * rng.standard_normal(shape, dtype=np.float32)
    return HeadCtPhantom(
        hu=hu,
        labels=labels,
        spacing_mm=tuple(float(s) for s in spacing_mm),  # type: ignore[arg-type]
        origin_mm=grid.origin,
        haematoma_volume_ml=volume,
        haematoma_volume_ml_continuous=continuous,
        brain=brain,
    )


# --------------------------------------------------------------------------
# Rasterisation
# --------------------------------------------------------------------------


class _Grid:
    """Voxel centres of a volume and painting of anti-aliased ellipsoids."""

    def __init__(self, shape: tuple[int, int, int], spacing_mm: Vec3) -> None:
        nz, ny, nx = shape
        self.shape = shape
        self.dz, self.dy, self.dx = (float(s) for s in spacing_mm)
        self.x = (np.arange(nx) - (nx - 1) / 2.0) * self.dx
        self.y = (np.arange(ny) - (ny - 1) / 2.0) * self.dy
        self.z = (np.arange(nz) - (nz - 1) / 2.0) * self.dz
        self.origin: Vec3 = (float(self.x[0]), float(self.y[0]), float(self.z[0]))

    def _range(self, axis: np.ndarray, lo: float, hi: float, step: float) -> slice:
        start = int(np.searchsorted(axis, lo - 2 * step, side="left"))
        stop = int(np.searchsorted(axis, hi + 2 * step, side="right"))
        return slice(max(start, 0), min(stop, axis.size))

    def paint(
        self,
        volume: np.ndarray,
        shape: Ellipsoid,
        value: float,
        z_mask: np.ndarray | None = None,
    ) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
        """Blend ``value`` into ``volume`` by coverage; return the inside mask.

        Returns the bounding region and the boolean mask (voxel centres inside)
        within it, or ``None`` when the shape misses the volume.
        """
        cx, cy, cz = shape.centre
        a, b, c = shape.semi_axes
        theta = math.radians(shape.angle_deg)
        cos_t, sin_t = math.cos(theta), math.sin(theta)
        ext_x = math.hypot(a * cos_t, b * sin_t)
        ext_y = math.hypot(a * sin_t, b * cos_t)
        sx = self._range(self.x, cx - ext_x, cx + ext_x, self.dx)
        sy = self._range(self.y, cy - ext_y, cy + ext_y, self.dy)
        sz = self._range(self.z, cz - c, cz + c, self.dz)
        if sx.start >= sx.stop or sy.start >= sy.stop or sz.start >= sz.stop:
            return None
        x = self.x[sx][None, None, :] - cx
        y = self.y[sy][None, :, None] - cy
        cylinder = c >= 1.0e5
        z = np.zeros((1, 1, 1)) if cylinder else self.z[sz][:, None, None] - cz
        xr = cos_t * x + sin_t * y
        yr = -sin_t * x + cos_t * y
        f = (xr / a) ** 2 + (yr / b) ** 2 + (z / c) ** 2 - 1.0
        gxr, gyr = 2.0 * xr / a**2, 2.0 * yr / b**2
        gx = cos_t * gxr - sin_t * gyr
        gy = sin_t * gxr + cos_t * gyr
        gz = 2.0 * z / c**2
        norm = np.sqrt(gx**2 + gy**2 + gz**2) + 1e-12
        distance = f / norm
        width = np.abs(gx) * self.dx + np.abs(gy) * self.dy + np.abs(gz) * self.dz
        width = width / norm + 1e-9
        cover = np.clip(0.5 - distance / width, 0.0, 1.0)
        inside = f <= 0.0
        region = (sz, sy, sx)
        nz = sz.stop - sz.start
        if cylinder:
            cover = np.broadcast_to(cover, (nz, *cover.shape[1:]))
            inside = np.broadcast_to(inside, (nz, *inside.shape[1:]))
        if z_mask is not None:
            keep = z_mask[sz][:, None, None]
            cover = cover * keep
            inside = inside & keep
        view = volume[region]
        view += (value - view) * cover.astype(np.float32)
        return region, inside


def _disc_volume_ml(a: float, b: float, c: float, cz: float, z: np.ndarray) -> float:
    profile = np.clip(1.0 - ((z - cz) / c) ** 2, 0.0, None)
    step = float(z[1] - z[0]) if z.size > 1 else 1.0
    return float(math.pi * a * b * profile.sum() * step / 1000.0)


def _lesion_truth(
    spec: LesionSpec, grid: _Grid, value: float, voxel_count: int
) -> LesionTruth:
    a, b, c = spec.semi_axes_mm
    k = int(np.argmin(np.abs(grid.z - spec.centre_mm[2])))
    dz = float(grid.z[k] - spec.centre_mm[2])
    scale = math.sqrt(max(0.0, 1.0 - (dz / c) ** 2))
    return LesionTruth(
        lesion_id=spec.lesion_id,
        kind=spec.kind,
        organ=spec.organ,
        longest_diameter_mm=2.0 * max(a, b) * scale,
        short_axis_mm=2.0 * min(a, b) * scale,
        centre_mm=tuple(float(v) for v in spec.centre_mm),  # type: ignore[arg-type]
        slice_index=k,
        volume_ml=_disc_volume_ml(a, b, c, spec.centre_mm[2], grid.z),
        volume_ml_continuous=4.0 / 3.0 * math.pi * a * b * c / 1000.0,
        voxel_count=voxel_count,
        hu=value,
    )
