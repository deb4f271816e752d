"""Measurements and response rules: RECIST 1.1, LVEF and haemorrhage volume.

``measure_lesions`` turns a label mask into lesion measurements; the rules live
in the submodules :mod:`models.quantify.recist`, :mod:`models.quantify.lvef` and
:mod:`models.quantify.ich`.
"""

from models.quantify import ich, lvef, recist
from models.quantify.lesions import (
    LABEL_CLASSES,
    KeySliceGeometry,
    measure_lesions,
    measure_lesions_with_geometry,
)

__all__ = [
    "LABEL_CLASSES",
    "KeySliceGeometry",
    "ich",
    "lvef",
    "measure_lesions",
    "measure_lesions_with_geometry",
    "recist",
]
