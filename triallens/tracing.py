"""MLflow tracing: one trace per agent run, one span per step.

MLflow is imported on first use, so modules that only describe a trace stay
cheap to import. With no tracking URI configured, traces go to a SQLite store
under the data directory.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from triallens.settings import Settings, apply_offline_switches

__all__ = ["Tracer", "get_tracer"]

logger = logging.getLogger(__name__)


class Tracer:
    """Opens MLflow traces and spans for one tracking store."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._ready = False

    def _ensure(self) -> Any:
        import mlflow

        uri = self._settings.resolved_mlflow_uri
        if not self._ready or mlflow.get_tracking_uri() != uri:
            apply_offline_switches()
            self._settings.ensure_dirs()
            mlflow.set_tracking_uri(uri)
            name = self._settings.mlflow_experiment
            experiment = mlflow.get_experiment_by_name(name)
            if experiment is None:
                artifacts = self._settings.mlflow_artifact_root
                artifacts.mkdir(parents=True, exist_ok=True)
                mlflow.create_experiment(name, artifact_location=artifacts.as_uri())
            mlflow.set_experiment(name)
            self._ready = True
        return mlflow

    @contextlib.contextmanager
    def trace(
        self, name: str, inputs: dict[str, Any], tags: dict[str, str] | None = None
    ) -> Iterator[Any]:
        """Open the root span of a new trace; yields the span."""
        mlflow = self._ensure()
        with mlflow.start_span(name=name, span_type="CHAIN") as span:
            span.set_inputs(inputs)
            if tags:
                mlflow.update_current_trace(tags=tags)
            yield span

    @contextlib.contextmanager
    def span(
        self, name: str, inputs: dict[str, Any] | None = None, span_type: str = "TOOL"
    ) -> Iterator[Any]:
        """A child span of the active trace (a no-op outside a trace)."""
        mlflow = self._ensure()
        with mlflow.start_span(name=name, span_type=span_type) as span:
            if inputs:
                span.set_inputs(inputs)
            yield span

    def tag(self, tags: dict[str, str]) -> None:
        """Add tags to the active trace."""
        mlflow = self._ensure()
        with contextlib.suppress(Exception):
            mlflow.update_current_trace(tags=tags)

    def get(self, trace_id: str) -> Any:
        """The stored trace, or None when the store does not know it."""
        mlflow = self._ensure()
        return mlflow.get_trace(trace_id)


_tracers: dict[str, Tracer] = {}


def get_tracer(settings: Settings) -> Tracer:
    """One tracer per tracking store in this process."""
    key = settings.resolved_mlflow_uri
    if key not in _tracers:
        _tracers[key] = Tracer(settings)
    return _tracers[key]
