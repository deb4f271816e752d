"""MONAI bundles: loading any bundle directory and writing TrialLens ones.

A bundle follows the MONAI bundle layout::

    configs/metadata.json     version, task, intended use, data, metrics
    configs/inference.json    ``network_def`` (a MONAI config expression)
    models/model.pt           the network's state dict
    docs/README.md            the model card

The network is built from ``network_def`` with :class:`monai.bundle.ConfigParser`,
so a validated bundle from elsewhere can replace a shipped one without code
changes. The pre-processing TrialLens needs (working spacing, intensity window,
sliding-window size, label names) is read from the ``triallens`` section of
``inference.json`` when present, otherwise from defaults and the metadata's
``network_data_format``.

The model version recorded with every output is a SHA-256 over the weights
file, the metadata and the inference config, so any change to any of them
changes the version.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triallens.errors import ModelError

__all__ = ["Bundle", "Preprocessing", "load_bundle", "model_version", "write_bundle"]

logger = logging.getLogger(__name__)

_CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml")
_WEIGHT_NAMES = ("model.pt", "model.pth")


@dataclass(frozen=True)
class Preprocessing:
    """How a volume is prepared for the network and the output read.

    Spatial values are in the volume's index order ``(k, j, i)``: slice, row,
    column.
    """

    spacing_mm: tuple[float, float, float] = (2.5, 1.5, 1.5)
    a_min: float = -200.0
    a_max: float = 300.0
    b_min: float = 0.0
    b_max: float = 1.0
    clip: bool = True
    roi_size: tuple[int, int, int] = (32, 96, 96)
    sw_batch_size: int = 2
    overlap: float = 0.25
    labels: dict[int, str] = field(default_factory=lambda: {0: "background"})

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> Preprocessing:
        """Build from the ``triallens`` section of an inference config."""
        kwargs: dict[str, Any] = {}
        if "spacing_mm" in section:
            kwargs["spacing_mm"] = tuple(float(v) for v in section["spacing_mm"])
        intensity = section.get("intensity", {})
        for key in ("a_min", "a_max", "b_min", "b_max"):
            if key in intensity:
                kwargs[key] = float(intensity[key])
        if "clip" in intensity:
            kwargs["clip"] = bool(intensity["clip"])
        if "roi_size" in section:
            kwargs["roi_size"] = tuple(int(v) for v in section["roi_size"])
        if "sw_batch_size" in section:
            kwargs["sw_batch_size"] = int(section["sw_batch_size"])
        if "overlap" in section:
            kwargs["overlap"] = float(section["overlap"])
        if "labels" in section:
            kwargs["labels"] = {int(k): str(v) for k, v in section["labels"].items()}
        return cls(**kwargs)

    def to_config(self) -> dict[str, Any]:
        """The ``triallens`` section written into ``inference.json``."""
        return {
            "spacing_mm": list(self.spacing_mm),
            "intensity": {
                "a_min": self.a_min,
                "a_max": self.a_max,
                "b_min": self.b_min,
                "b_max": self.b_max,
                "clip": self.clip,
            },
            "roi_size": list(self.roi_size),
            "sw_batch_size": self.sw_batch_size,
            "overlap": self.overlap,
            "labels": {str(k): v for k, v in self.labels.items()},
        }


@dataclass
class Bundle:
    """A loaded bundle: its network (weights loaded), metadata and version."""

    path: Path
    metadata: dict[str, Any]
    inference_config: dict[str, Any]
    preprocessing: Preprocessing
    network: Any
    version: str

    @property
    def task(self) -> str:
        """The task name (``recist_ct``, ...) or the bundle's name."""
        return str(
            self.metadata.get("task") or self.metadata.get("name") or self.path.name
        )

    @property
    def semantic_version(self) -> str:
        return str(self.metadata.get("version", "0.0.0"))


def load_bundle(path: str | Path) -> Bundle:
    """Load a MONAI bundle directory.

    Parameters
    ----------
    path : str or Path
        The bundle root (holding ``configs/`` and ``models/``).

    Returns
    -------
    Bundle
        With the network built on the CPU, weights loaded, in eval mode.

    Raises
    ------
    ModelError
        If a file is missing, the config cannot build a network or the weights
        do not fit it.
    """
    import torch
    from monai.bundle import ConfigParser

    root = Path(path)
    metadata_file = root / "configs" / "metadata.json"
    config_file = _first_existing(root / "configs", _CONFIG_NAMES)
    weights_file = _first_existing(root / "models", _WEIGHT_NAMES)
    if not metadata_file.is_file() or config_file is None or weights_file is None:
        raise ModelError(
            f"{root} is not a complete MONAI bundle: need configs/metadata.json, "
            "configs/inference.json and models/model.pt"
        )
    metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    parser = ConfigParser()
    parser.read_config(str(config_file))
    parser.read_meta(str(metadata_file))
    config = parser.get()
    if "network_def" not in config:
        raise ModelError(f"{config_file.name} of {root.name} has no network_def")
    try:
        network = parser.get_parsed_content("network_def")
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and len(state) <= 3:
            state = state["model"]
        network.load_state_dict(state)
    except Exception as exc:  # any failure here means an unusable bundle
        raise ModelError(
            f"cannot build the network of bundle {root.name}: {exc}"
        ) from exc
    network.eval()

    section = config.get("triallens") or {}
    preprocessing = (
        Preprocessing.from_config(section) if section else _from_metadata(metadata)
    )
    version = model_version(weights_file, metadata_file, config_file)
    logger.info("loaded bundle %s version %s", root.name, version)
    return Bundle(
        path=root,
        metadata=metadata,
        inference_config=config,
        preprocessing=preprocessing,
        network=network,
        version=version,
    )


def model_version(*files: Path) -> str:
    """SHA-256 over the given files (weights, metadata, config), as ``sha256:...``."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return "sha256:" + digest.hexdigest()[:16]


def write_bundle(
    root: Path,
    network_def: dict[str, Any],
    state_dict: dict[str, Any],
    preprocessing: Preprocessing,
    metadata: dict[str, Any],
    model_card: str,
) -> Path:
    """Write a bundle directory in the MONAI layout; return its root."""
    import torch

    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "docs").mkdir(parents=True, exist_ok=True)
    config = {
        "imports": ["$import monai"],
        "network_def": network_def,
        "triallens": preprocessing.to_config(),
    }
    _write_json(root / "configs" / "inference.json", config)
    _write_json(root / "configs" / "metadata.json", metadata)
    torch.save(state_dict, root / "models" / "model.pt")
    (root / "docs" / "README.md").write_text(model_card, encoding="utf-8")
    return root


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(
        json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8"
    )


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _from_metadata(metadata: dict[str, Any]) -> Preprocessing:
    """Defaults for a bundle without a ``triallens`` section."""
    image = metadata.get("network_data_format", {}).get("inputs", {}).get("image", {})
    outputs = metadata.get("network_data_format", {}).get("outputs", {})
    kwargs: dict[str, Any] = {}
    shape = image.get("spatial_shape")
    if (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(v, int) for v in shape)
    ):
        # MONAI bundles give (H, W, D); TrialLens works in (k, j, i).
        kwargs["roi_size"] = (shape[2], shape[1], shape[0])
    value_range = image.get("value_range")
    if isinstance(value_range, list) and len(value_range) == 2:
        kwargs["a_min"], kwargs["a_max"] = (float(v) for v in value_range)
    channels = next(iter(outputs.values()), {}).get("channel_def", {})
    if channels:
        kwargs["labels"] = {int(k): str(v) for k, v in channels.items()}
    return Preprocessing(**kwargs)
