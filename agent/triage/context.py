"""The services one triage run needs, created on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from triallens.settings import Settings
from triallens.store import ResultStore
from triallens.tracing import Tracer, get_tracer

__all__ = ["TriageContext"]


@dataclass
class TriageContext:
    """Settings plus lazily built PACS, de-identifier, models, EDC and stores."""

    settings: Settings
    pacs_url: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def pacs(self) -> Any:
        if "pacs" in self.overrides:
            return self.overrides["pacs"]
        from tools.pacs import open_pacs

        return open_pacs(self.pacs_url or self.settings.pacs_url, self.settings)

    @cached_property
    def results_pacs(self) -> Any:
        """Where de-identified results (SEG, SR) go: a DICOMweb archive or
        the embedded one under the data directory."""
        from tools.pacs import open_pacs

        url = self.settings.results_pacs_url
        return open_pacs(url or str(self.settings.data_dir / "results"), self.settings)

    @cached_property
    def deidentifier(self) -> Any:
        from tools.deid import Deidentifier

        return Deidentifier(
            secret=self.settings.deid_secret.get_secret_value(),
            trial_id=self.settings.trial_id,
            sponsor=self.settings.sponsor,
        )

    @cached_property
    def charter(self) -> Any:
        """The trial's imaging charter, or None when none is configured."""
        if "charter" in self.overrides:
            return self.overrides["charter"]
        if self.settings.charter_path is None:
            return None
        from tools.charter import load_charter

        return load_charter(self.settings.charter_path)

    @cached_property
    def store(self) -> ResultStore:
        return ResultStore(self.settings.resolved_database_url)

    @cached_property
    def edc(self) -> Any:
        """The embedded EDC, or Rave Web Services when configured."""
        from tools.edc import open_edc

        return open_edc(self.settings)

    @cached_property
    def audit(self) -> Any:
        from triallens.audit import AuditTrail

        return AuditTrail(self.settings.resolved_database_url)

    @cached_property
    def tracer(self) -> Tracer:
        return get_tracer(self.settings)

    def segmenter(self, task: str) -> Any:
        """The segmenter for a task's bundle (models dir setting, else shipped)."""
        cache = self.__dict__.setdefault("_segmenters", {})
        if task not in cache:
            from models import default_bundle_path
            from models.bundle import load_bundle
            from models.inference import Segmenter

            path = default_bundle_path(task)
            if self.settings.models_dir is not None:
                candidate = self.settings.models_dir / task
                if candidate.is_dir():
                    path = candidate
            cache[task] = Segmenter(load_bundle(path), device=self.settings.device)
        return cache[task]
