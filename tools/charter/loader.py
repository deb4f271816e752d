"""Reading and writing charter YAML files."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from pydantic import ValidationError

from tools.charter.model import Charter
from triallens.errors import ConfigurationError

__all__ = ["charter_to_yaml", "dump_charter", "load_charter"]

logger = logging.getLogger(__name__)


def load_charter(path: str | Path) -> Charter:
    """Load and validate an imaging charter from a YAML file.

    Parameters
    ----------
    path
        The charter file.

    Returns
    -------
    Charter

    Raises
    ------
    ConfigurationError
        The file is missing or unreadable, is not YAML, is not a mapping, or
        breaks the charter schema; the message lists every problem with its
        location in the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"charter file not found: {path}; pass the trial's charter.yaml"
        ) from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot read charter file {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        raise ConfigurationError(
            f"charter file {path} is not valid YAML{where}"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"charter file {path} must hold a mapping at the top level, "
            f"not {type(data).__name__}"
        )
    try:
        charter = Charter.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigurationError(
            f"charter file {path} is invalid ({exc.error_count()} problem(s)): "
            f"{problems}"
        ) from exc
    logger.debug("loaded charter %s version %s", charter.trial_id, charter.version)
    return charter


def charter_to_yaml(charter: Charter) -> str:
    """The charter as YAML text that :func:`load_charter` reads back."""
    data = charter.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=88)


def dump_charter(charter: Charter, path: str | Path) -> Path:
    """Write ``charter`` to ``path`` as YAML and return the path."""
    path = Path(path)
    header = (
        f"# Imaging charter of trial {charter.trial_id}, version {charter.version}.\n"
        "# Visit days count from day zero; windows are inclusive [earliest, latest].\n"
    )
    path.write_text(header + charter_to_yaml(charter), encoding="utf-8")
    return path
