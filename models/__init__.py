"""TrialLens models: phantoms, measurements, MONAI bundles and inference.

Heavy libraries (torch, MONAI) are imported only by the modules that need
them; importing this package is cheap.
"""

from __future__ import annotations

from pathlib import Path

from triallens.errors import ModelError

__all__ = ["BUNDLES_DIR", "SHIPPED_TASKS", "default_bundle_path"]

#: Where the shipped bundles live.
BUNDLES_DIR = Path(__file__).resolve().parent / "bundles"

#: Tasks with a bundle shipped in :data:`BUNDLES_DIR`.
SHIPPED_TASKS = ("recist_ct", "lvef_cmr", "ich_ct")


def default_bundle_path(task: str) -> Path:
    """The shipped bundle directory of ``task`` (``recist_ct``, ...).

    Raises
    ------
    ModelError
        If the task is unknown or its bundle has not been trained yet.
    """
    if task not in SHIPPED_TASKS:
        raise ModelError(
            f"unknown model task {task!r}; known: {', '.join(SHIPPED_TASKS)}"
        )
    path = BUNDLES_DIR / task
    if not (path / "configs" / "metadata.json").is_file():
        raise ModelError(
            f"no bundle for {task} in {BUNDLES_DIR}; train it with "
            f"`python -m models.train {task} --seed 0`"
        )
    return path
