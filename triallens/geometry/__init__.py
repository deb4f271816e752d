"""Image geometry: volumes from DICOM series, slice order and QC flags."""

from triallens.geometry.volume import SeriesVolume

__all__ = ["SeriesVolume"]
