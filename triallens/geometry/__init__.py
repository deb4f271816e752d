"""Image geometry: volumes from DICOM series, slice order and QC flags."""

from triallens.geometry.build import GeometryTolerances, QcCode, build_volumes
from triallens.geometry.volume import SeriesVolume

__all__ = ["GeometryTolerances", "QcCode", "SeriesVolume", "build_volumes"]
