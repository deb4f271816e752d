"""One settings object for every part of TrialLens.

Values come, in order of precedence, from keyword arguments, ``TRIALLENS_*``
environment variables, a TOML file (``TRIALLENS_CONFIG`` or
``<data_dir>/triallens.toml``) and the defaults below.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "apply_offline_switches", "get_settings", "reset_settings"]


def _default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "triallens"


def _config_file() -> Path | None:
    explicit = os.environ.get("TRIALLENS_CONFIG")
    if explicit:
        return Path(explicit)
    data_dir = os.environ.get("TRIALLENS_DATA_DIR")
    candidate = Path(data_dir) if data_dir else _default_data_dir()
    toml = candidate / "triallens.toml"
    return toml if toml.is_file() else None


class Settings(BaseSettings):
    """Every TrialLens setting, with the embedded defaults."""

    model_config = SettingsConfigDict(
        env_prefix="TRIALLENS_", extra="ignore", validate_default=True
    )

    data_dir: Path = Field(default_factory=_default_data_dir)

    # Databases: SQLite files under data_dir unless a URL is given.
    database_url: str | None = None
    edc_database_url: str | None = None
    # EDC over Rave Web Services instead of the embedded EDC, when a URL is given.
    edc_rws_url: str | None = None
    edc_rws_username: str | None = None
    edc_rws_password: SecretStr | None = None
    edc_rws_environment: str | None = "Prod"
    checkpoint_url: str | None = None

    # PACS: the embedded local store unless a DICOMweb URL is given.
    pacs_url: str | None = None
    pacs_username: str | None = None
    pacs_password: SecretStr | None = None
    pacs_token: SecretStr | None = None
    pacs_timeout_s: float = 30.0
    # De-identified results (DICOM SEG and SR): a DICOMweb archive, or the
    # embedded store under data_dir/results.
    results_pacs_url: str | None = None
    pacs_retries: int = 3

    # De-identification: the secret keys the UID remapping and date shifts.
    deid_secret: SecretStr = SecretStr("triallens-local-development-secret")
    trial_id: str = "TL-DEMO-001"
    sponsor: str = "TrialLens Demo Sponsor"
    safe_private_tags: list[str] = Field(default_factory=list)

    # The trial's imaging charter (YAML); without one no charter checks run.
    charter_path: Path | None = None

    # Models: a folder of MONAI bundles; each task names its bundle.
    models_dir: Path | None = None
    device: str = "auto"

    # LLM: none by default (deterministic template drafting).
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = 60.0
    llm_retries: int = 2

    # Tracing: MLflow with a local SQLite store unless a URI is given.
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "triallens-triage"

    # MCP server: the TrialLens user a stdio server acts as (HTTP uses tokens).
    mcp_user: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = _config_file()
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    # Derived locations -------------------------------------------------

    @property
    def pacs_dir(self) -> Path:
        return self.data_dir / "pacs"

    @property
    def key_images_dir(self) -> Path:
        return self.data_dir / "key-images"

    def sqlite_url(self, name: str) -> str:
        return f"sqlite:///{self.data_dir / name}"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or self.sqlite_url("triallens.db")

    @property
    def resolved_edc_url(self) -> str:
        return self.edc_database_url or self.sqlite_url("edc.db")

    @property
    def resolved_checkpoint_path(self) -> str:
        return self.checkpoint_url or str(self.data_dir / "checkpoints.db")

    @property
    def resolved_mlflow_uri(self) -> str:
        return self.mlflow_tracking_uri or self.sqlite_url("mlflow.db")

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.data_dir / "mlartifacts"

    def ensure_dirs(self) -> None:
        for path in (self.data_dir, self.pacs_dir, self.key_images_dir):
            path.mkdir(parents=True, exist_ok=True)


_OFFLINE_SWITCHES: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_MODEL_CATALOG_URI": "",
    "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
    "DO_NOT_TRACK": "1",
    "ANONYMIZED_TELEMETRY": "False",
}


def apply_offline_switches() -> None:
    """Stop libraries from reaching the internet (model hubs, telemetry)."""
    for key, value in _OFFLINE_SWITCHES.items():
        os.environ.setdefault(key, value)
    os.environ["MLFLOW_MODEL_CATALOG_URI"] = ""


@lru_cache(maxsize=1)
def get_settings(**overrides: Any) -> Settings:
    """The process-wide settings (built once; ``reset_settings`` rebuilds)."""
    return Settings(**overrides)


def reset_settings() -> None:
    get_settings.cache_clear()
