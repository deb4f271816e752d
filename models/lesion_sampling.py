"""Random lesions and lymph nodes placed plausibly in a torso phantom.

Non-nodal lesions sit inside an organ (liver, lungs, spleen, kidneys) with their
whole extent inside it; lymph nodes sit in the soft tissue around the aorta,
outside every organ. The CT lesion model is trained on these placements, so
synthetic trials that place lesions the same way are inside its training
distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from models.phantoms import Ellipsoid, LesionSpec, TorsoAnatomy

__all__ = ["LESION_ORGANS", "inside", "sample_lesion", "sample_node", "sample_specs"]

#: Organs that may hold non-nodal lesions, with their sampling weights.
LESION_ORGANS: dict[str, float] = {
    "liver": 0.35,
    "lung_right": 0.2,
    "lung_left": 0.2,
    "spleen": 0.1,
    "kidney_right": 0.075,
    "kidney_left": 0.075,
}

_SOLID = ("liver", "spleen", "kidney_right", "kidney_left", "lung_right", "lung_left")


def inside(shape: Ellipsoid, point: Sequence[float], margin_mm: float = 0.0) -> bool:
    """Whether ``point`` lies inside ``shape`` shrunk by ``margin_mm``."""
    cx, cy, cz = shape.centre
    a, b, c = (max(s - margin_mm, 1e-3) for s in shape.semi_axes)
    t = math.radians(shape.angle_deg)
    x, y, z = point[0] - cx, point[1] - cy, point[2] - cz
    xr = math.cos(t) * x + math.sin(t) * y
    yr = -math.sin(t) * x + math.cos(t) * y
    return (xr / a) ** 2 + (yr / b) ** 2 + (z / c) ** 2 <= 1.0


def sample_lesion(
    anatomy: TorsoAnatomy,
    organ: str,
    z_range: tuple[float, float],
    diameter_mm: float,
    rng: np.random.Generator,
    lesion_id: str = "L",
    tries: int = 200,
    thickness: tuple[float, float] = (0.5, 1.1),
) -> LesionSpec | None:
    """A lesion of longest diameter ``diameter_mm`` wholly inside ``organ``.

    Its extent across slices is a random fraction (``thickness``) of its
    longest in-plane one. Returns ``None`` when no position fits within
    ``z_range`` (phantom mm).
    """
    host = anatomy.organ(organ)
    a = diameter_mm / 2.0
    b = a * float(rng.uniform(0.6, 1.0))
    c = max(a * float(rng.uniform(*thickness)), 2.0)
    angle = float(rng.uniform(0.0, 180.0))
    for _ in range(tries):
        point = _point_in(host, rng)
        if not z_range[0] + c <= point[2] <= z_range[1] - c:
            continue
        if inside(host, point, margin_mm=a + 2.0):
            return LesionSpec(lesion_id, point, (a, b, c), "lesion", organ, angle)
    return None


def sample_node(
    anatomy: TorsoAnatomy,
    z_range: tuple[float, float],
    short_axis_mm: float,
    rng: np.random.Generator,
    lesion_id: str = "N",
    tries: int = 200,
) -> LesionSpec | None:
    """A lymph node of short axis ``short_axis_mm``.

    Two out of three nodes sit in the mesenteric fat, the others in the soft
    tissue beside the aorta; neither inside a solid organ.
    """
    b = short_axis_mm / 2.0
    a = b * float(rng.uniform(1.0, 1.6))
    c = b * float(rng.uniform(0.6, 1.3))
    mesenteric = rng.random() < 2.0 / 3.0
    ax, ay, _ = anatomy.aorta.centre
    r_aorta = anatomy.aorta.semi_axes[0]
    for _ in range(tries):
        if mesenteric:
            point = _point_in(anatomy.mesenteric_fat, rng)
            if not inside(anatomy.mesenteric_fat, point, margin_mm=0.5 * b):
                continue
            angle = float(rng.uniform(0.0, 180.0))
        else:
            theta = float(rng.uniform(0.0, 2.0 * math.pi))
            distance = r_aorta + a + float(rng.uniform(3.0, 25.0))
            z = float(rng.uniform(z_range[0], z_range[1]))
            point = (
                ax + distance * math.cos(theta),
                ay + distance * math.sin(theta),
                z,
            )
            angle = math.degrees(theta) + 90.0
        if not z_range[0] + c <= point[2] <= z_range[1] - c:
            continue
        if not inside(anatomy.muscle, point, margin_mm=a + 5.0):
            continue
        if any(
            inside(anatomy.organ(name), point, margin_mm=-(a + 4.0))
            for name in (*_SOLID, "vertebra")
        ):
            continue
        return LesionSpec(lesion_id, point, (a, b, c), "node", "lymph node", angle)
    return None


def sample_specs(
    anatomy: TorsoAnatomy,
    z_range: tuple[float, float],
    rng: np.random.Generator,
    n_lesions: int,
    n_nodes: int,
    diameter_range_mm: tuple[float, float] = (4.0, 60.0),
    node_short_axis_range_mm: tuple[float, float] = (6.0, 40.0),
    thickness: tuple[float, float] = (0.3, 1.1),
) -> list[LesionSpec]:
    """Several non-overlapping lesions and nodes for one phantom.

    ``thickness`` is the range of a lesion's extent across slices as a
    fraction of its longest diameter (see :func:`sample_lesion`).
    """
    specs: list[LesionSpec] = []
    organs = list(LESION_ORGANS)
    weights = np.array(list(LESION_ORGANS.values()))
    weights = weights / weights.sum()
    for n in range(n_lesions + n_nodes):
        node = n >= n_lesions
        for _ in range(20):
            if node:
                size = _size(node_short_axis_range_mm, rng)
                spec = sample_node(anatomy, z_range, size, rng, f"N{n:02d}")
            else:
                organ = organs[int(rng.choice(len(organs), p=weights))]
                size = _size(diameter_range_mm, rng)
                spec = sample_lesion(
                    anatomy, organ, z_range, size, rng, f"L{n:02d}", thickness=thickness
                )
            if spec is not None and not any(_overlap(spec, s) for s in specs):
                specs.append(spec)
                break
    return specs


def _size(bounds: tuple[float, float], rng: np.random.Generator) -> float:
    """A size with a third of the draws in the smallest fifth of the range."""
    low, high = bounds
    split = low + 0.2 * (high - low)
    if rng.random() < 1.0 / 3.0:
        return float(rng.uniform(low, split))
    return float(rng.uniform(split, high))


def _point_in(shape: Ellipsoid, rng: np.random.Generator) -> tuple[float, float, float]:
    a, b, c = shape.semi_axes
    c = min(c, 400.0)
    while True:
        u = rng.uniform(-1.0, 1.0, 3)
        if float(u @ u) <= 1.0:
            break
    t = math.radians(shape.angle_deg)
    xr, yr, z = u[0] * a, u[1] * b, u[2] * c
    x = math.cos(t) * xr - math.sin(t) * yr
    y = math.sin(t) * xr + math.cos(t) * yr
    cx, cy, cz = shape.centre
    return (float(cx + x), float(cy + y), float(cz + z))


def _overlap(one: LesionSpec, other: LesionSpec) -> bool:
    gap = math.dist(one.centre_mm, other.centre_mm)
    return gap < max(one.semi_axes_mm) + max(other.semi_axes_mm) + 4.0
