"""Pixel cleaning: blank configured regions where burned-in text is known to be.

A rule names the images it applies to (modality, manufacturer, model, matrix
size) and the rectangles to blank. Images that may carry burned-in text and
match no rule are quarantined instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from triallens.errors import ConfigurationError, DeidentificationError

__all__ = ["PixelCleaningRule", "clean_pixels", "load_rules"]


@dataclass(frozen=True)
class PixelCleaningRule:
    """Rectangles ``(row_start, column_start, row_stop, column_stop)`` to blank.

    Stops are exclusive. Every given selector must match: ``modality`` and
    ``rows``/``columns`` exactly, ``manufacturer`` and ``model`` as
    case-insensitive substrings of Manufacturer and Manufacturer's Model Name.
    """

    regions: tuple[tuple[int, int, int, int], ...]
    modality: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    rows: int | None = None
    columns: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PixelCleaningRule:
        try:
            regions = tuple(
                (int(a), int(b), int(c), int(d)) for a, b, c, d in data["regions"]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(
                "a pixel cleaning rule needs 'regions': [[row0, col0, row1, col1], ...]"
            ) from exc
        return cls(
            regions=regions,
            modality=data.get("modality"),
            manufacturer=data.get("manufacturer"),
            model=data.get("model"),
            rows=data.get("rows"),
            columns=data.get("columns"),
        )

    def matches(self, ds: Dataset) -> bool:
        def contains(keyword: str, wanted: str | None) -> bool:
            return wanted is None or wanted.upper() in str(ds.get(keyword, "")).upper()

        return (
            (self.modality is None or ds.get("Modality") == self.modality)
            and contains("Manufacturer", self.manufacturer)
            and contains("ManufacturerModelName", self.model)
            and (self.rows is None or int(ds.get("Rows", 0)) == self.rows)
            and (self.columns is None or int(ds.get("Columns", 0)) == self.columns)
        )


def load_rules(path: Path) -> list[PixelCleaningRule]:
    """Rules from a JSON file holding a list of rule objects."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read pixel cleaning rules {path}") from exc
    if not isinstance(data, list):
        raise ConfigurationError(f"{path} must hold a list of rules")
    return [PixelCleaningRule.from_mapping(item) for item in data]


def find_rule(
    rules: Sequence[PixelCleaningRule], ds: Dataset
) -> PixelCleaningRule | None:
    return next((rule for rule in rules if rule.matches(ds)), None)


def clean_pixels(src: Dataset, out: Dataset, rule: PixelCleaningRule) -> None:
    """Write ``src``'s pixels, with the rule's regions blanked, into ``out``.

    The cleaned pixels are stored uncompressed (Explicit VR Little Endian);
    colour images decoded from YCbCr are stored as RGB.
    """
    try:
        pixels = np.array(src.pixel_array, copy=True)
    except Exception as exc:
        raise DeidentificationError(
            f"pixel data cannot be decoded for cleaning ({type(exc).__name__})"
        ) from exc
    frames = int(src.get("NumberOfFrames", 1) or 1)
    samples = int(src.get("SamplesPerPixel", 1) or 1)
    for row0, col0, row1, col1 in rule.regions:
        if frames > 1:
            pixels[:, row0:row1, col0:col1, ...] = 0
        else:
            pixels[row0:row1, col0:col1, ...] = 0
    out.PixelData = pixels.tobytes()
    out["PixelData"].VR = "OW" if int(src.BitsAllocated) > 8 else "OB"
    if samples > 1:
        if str(src.get("PhotometricInterpretation", "")).startswith("YBR"):
            out.PhotometricInterpretation = "RGB"
        out.PlanarConfiguration = 0
    out.BurnedInAnnotation = "NO"
    out.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
