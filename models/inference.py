"""Running a segmentation bundle on a :class:`~triallens.geometry.SeriesVolume`.

The volume is scaled (in index space, keeping its orientation) to the model's
working spacing, normalised with the bundle's intensity window, segmented by
sliding-window inference, and the class probabilities are scaled back to the
native grid before the arg-max, so the labels line up voxel for voxel with the
input. Inference is deterministic: no dropout, no test-time randomness, fixed
thread count, deterministic algorithms.

When the native slices fall between the model's working slices (3 mm slices
for a model working at 2.5 mm), a lesion a slice or two thick is blurred into
its neighbours by the resampling and can be missed depending on where it falls.
The network then runs twice, on working grids offset by half a working slice,
and the two outputs are interleaved into one grid at half the working slice
spacing before they are scaled back; each native slice is then at most a
quarter of a working slice from a slice the network saw. Where every native
slice lies on a working slice (2.5 or 5 mm for a 2.5 mm model) one pass is
exact and only one runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.bundle import Bundle, Preprocessing
from triallens.errors import ModelError
from triallens.geometry.volume import SeriesVolume

__all__ = [
    "Segmentation",
    "Segmenter",
    "from_model_grid",
    "model_grid_shape",
    "normalise",
    "slices_between_working_slices",
    "to_model_grid",
]

logger = logging.getLogger(__name__)

MAX_THREADS = 2


@dataclass
class Segmentation:
    """Labels and class probabilities on the native grid of a volume."""

    labels: np.ndarray
    probabilities: np.ndarray
    model_version: str


def model_grid_shape(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    target: tuple[float, float, float],
) -> tuple[int, int, int]:
    """Shape of a grid covering the same extent at the ``target`` spacing.

    A target spacing of 0 (or less) keeps the native sampling of that axis, for
    models that work slice by slice at whatever slice spacing a series has.
    """
    out = [
        n if t <= 0 else max(1, round((n - 1) * s / t) + 1)
        for n, s, t in zip(shape, spacing, target, strict=True)
    ]
    return (out[0], out[1], out[2])


def to_model_grid(
    array: np.ndarray,
    spacing: tuple[float, float, float],
    target: tuple[float, float, float],
) -> np.ndarray:
    """Trilinear rescale of a ``[k, j, i]`` array to the ``target`` spacing.

    First and last voxel centres are kept in place (the extent is preserved), so
    :func:`from_model_grid` maps back exactly onto the native grid.
    """
    import torch

    shape = model_grid_shape(array.shape, spacing, target)
    if shape == tuple(array.shape):
        return np.asarray(array, dtype=np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    out = torch.nn.functional.interpolate(
        tensor[None, None], size=shape, mode="trilinear", align_corners=True
    )
    return out[0, 0].numpy()


def from_model_grid(channels: Any, shape: tuple[int, int, int]) -> Any:
    """Trilinear rescale of a ``[c, k, j, i]`` tensor to the native ``shape``."""
    import torch

    if tuple(channels.shape[1:]) == tuple(shape):
        return channels
    return torch.nn.functional.interpolate(
        channels[None], size=shape, mode="trilinear", align_corners=True
    )[0]


def slices_between_working_slices(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    target: tuple[float, float, float],
) -> bool:
    """Whether some native slices fall between the model's working slices.

    True when the grid at half the working slice spacing
    (:func:`model_grid_shape`) does not put every native slice on one of its
    even slices, which are the working slices; a single slice, a model that
    keeps the native slice spacing, or a grid too short to split is never
    run twice.
    """
    n = shape[0]
    if n < 2 or target[0] <= 0:
        return False
    steps = model_grid_shape(shape, spacing, (target[0] / 2.0, 0.0, 0.0))[0] - 1
    if steps < 2:
        return False
    return steps % (n - 1) != 0 or (steps // (n - 1)) % 2 != 0


def normalise(array: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Scale intensities from [a_min, a_max] to [b_min, b_max] (clipped)."""
    scaled = (array - prep.a_min) / (prep.a_max - prep.a_min)
    scaled = scaled * (prep.b_max - prep.b_min) + prep.b_min
    if prep.clip:
        scaled = np.clip(scaled, prep.b_min, prep.b_max)
    return scaled.astype(np.float32)


class Segmenter:
    """Segment volumes with a loaded bundle.

    Parameters
    ----------
    bundle : Bundle
        From :func:`models.bundle.load_bundle`.
    device : str
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"`` or ``"cuda"``.
    """

    def __init__(self, bundle: Bundle, device: str = "auto") -> None:
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise ModelError("CUDA was requested but no GPU is available")
        self.bundle = bundle
        self.device = torch.device(device)
        self.network = bundle.network.to(self.device).eval()

    @property
    def model_version(self) -> str:
        return self.bundle.version

    def segment(self, volume: SeriesVolume) -> np.ndarray:
        """Labels ``[k, j, i]`` (uint8) on the native grid of ``volume``."""
        return self.segment_with_probabilities(volume).labels

    def segment_with_probabilities(self, volume: SeriesVolume) -> Segmentation:
        """Labels and per-class probabilities on the native grid of ``volume``."""
        import torch

        prep = self.bundle.preprocessing
        if torch.get_num_threads() > MAX_THREADS:
            torch.set_num_threads(MAX_THREADS)
        native_shape = volume.shape
        target = prep.spacing_mm
        half = (target[0] / 2.0, target[1], target[2])
        two_pass = slices_between_working_slices(native_shape, volume.spacing, target)
        image = to_model_grid(
            volume.pixels, volume.spacing, half if two_pass else target
        )
        image = normalise(image, prep)
        with torch.inference_mode():
            if two_pass:
                even = self._probabilities(image[0::2])
                odd = self._probabilities(image[1::2])
                probabilities = torch.empty(
                    (even.shape[0], image.shape[0], *even.shape[2:]),
                    dtype=even.dtype,
                    device=even.device,
                )
                probabilities[:, 0::2] = even
                probabilities[:, 1::2] = odd
                del even, odd
            else:
                probabilities = self._probabilities(image)
            probabilities = from_model_grid(probabilities, native_shape)
            labels = torch.argmax(probabilities, dim=0).to(torch.uint8)
        logger.debug(
            "segmented a volume of shape %s in %d pass(es)",
            native_shape,
            2 if two_pass else 1,
        )
        return Segmentation(
            labels=labels.cpu().numpy(),
            probabilities=probabilities.cpu().numpy(),
            model_version=self.bundle.version,
        )

    def _probabilities(self, image: np.ndarray) -> Any:
        """Class probabilities ``[c, k, j, i]`` of a normalised model-grid image."""
        import torch
        from monai.inferers import sliding_window_inference

        prep = self.bundle.preprocessing
        tensor = torch.from_numpy(np.ascontiguousarray(image))[None, None]
        logits = sliding_window_inference(
            tensor.to(self.device),
            roi_size=prep.roi_size,
            sw_batch_size=prep.sw_batch_size,
            predictor=self.network,
            overlap=prep.overlap,
            mode="gaussian",
            padding_mode="constant",
            cval=float(prep.b_min),
        )
        return torch.softmax(logits[0].float(), dim=0)
