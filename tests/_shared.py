"""Access to ../shared (real public DICOM files and standards) for tests."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"
SHARED_STANDARDS = SHARED / "standards"


def shared_data(folder: str) -> Path:
    """A folder of ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / folder
    if not path.is_dir():
        pytest.skip(f"../shared/data/{folder} is not available on this machine")
    return path


def shared_standard(name: str) -> Path:
    """A file or folder of ../shared/standards, or skip when it is absent."""
    path = SHARED_STANDARDS / name
    if not path.exists():
        pytest.skip(f"../shared/standards/{name} is not available on this machine")
    return path
