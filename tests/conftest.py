"""Test-wide isolation: private HOME, data dir and offline switches."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    home = tmp_path_factory.mktemp("home")
    saved = dict(os.environ)
    os.environ.update(
        {
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "MPLCONFIGDIR": str(home / ".mpl"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_MODEL_CATALOG_URI": "",
            "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
            "TRIALLENS_DATA_DIR": str(home / "triallens-data"),
        }
    )
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TRIALLENS_DATA_DIR for one test, with settings rebuilt."""
    from triallens.settings import reset_settings

    path = tmp_path / "data"
    monkeypatch.setenv("TRIALLENS_DATA_DIR", str(path))
    reset_settings()
    yield path
    reset_settings()
