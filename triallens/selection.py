"""Choose the series a task measures, by rules a trial's charter can override.

Tasks and their default rules:

- ``recist_ct``: contrast-enhanced axial CT, thin slices preferred.
- ``lvef_cmr``: short-axis cine MR (several cardiac phases).
- ``ich_ct``: non-contrast head CT.

Every candidate that fails a rule is listed with the rule it failed, so a
study without a suitable series says why.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from triallens.errors import ConfigurationError
from triallens.geometry.volume import SeriesVolume

__all__ = [
    "DEFAULT_RULES",
    "SelectionResult",
    "SelectionRules",
    "classify_orientation",
    "contrast_status",
    "select_series",
]

logger = logging.getLogger(__name__)

_CONTRAST_WORDS = re.compile(
    r"(?<![A-Z])(C\+|W\+|CONTRAST|ENHANCED|POST|ARTERIAL|PORTAL|VENOUS|PV|CE|"
    r"WITH CON)(?![A-Z])"
)
_NON_CONTRAST_WORDS = re.compile(
    r"(?<![A-Z])(NON[- ]?CONTRAST|NON[- ]?CON|NONCON|WITHOUT|W/O|NC|PLAIN|C-|"
    r"UNENHANCED|NATIVE?|PRE)(?![A-Z])"
)
_HEAD_WORDS = re.compile(r"(?<![A-Z])(HEAD|BRAIN|CRANI\w*|SKULL|CEREBR\w*)(?![A-Z])")
_CINE_WORDS = re.compile(r"(?<![A-Z])(CINE|SSFP|TRUFI\w*|FIESTA|BTFE|BFFE)(?![A-Z])")
_DEFAULT_EXCLUDE = ("LOCALIZER", "SCOUT", "TOPOGRAM", "SURVEY", "MIP", "DOSE", "MPR")


@dataclass(frozen=True)
class SelectionRules:
    """What a series must be for a task.

    ``contrast``: True requires contrast, False forbids it, None accepts any.
    ``orientation``: "axial", "sagittal", "coronal", "oblique" or None.
    ``description_pattern``: a regular expression the series description (or
    protocol name) must match, case-insensitive. ``require_head``: the body
    part or description names the head. ``require_cine``: several phases.
    """

    modalities: tuple[str, ...]
    orientation: str | None = None
    contrast: bool | None = None
    require_head: bool = False
    require_cine: bool = False
    description_pattern: str | None = None
    exclude_words: tuple[str, ...] = _DEFAULT_EXCLUDE
    max_slice_thickness_mm: float | None = None
    min_slices: int = 3
    allow_unknown_contrast: bool = False
    series_uid: str | None = None
    require_measurable: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


DEFAULT_RULES: dict[str, SelectionRules] = {
    "recist_ct": SelectionRules(
        modalities=("CT",),
        orientation="axial",
        contrast=True,
        max_slice_thickness_mm=5.0,
    ),
    "lvef_cmr": SelectionRules(
        modalities=("MR",),
        require_cine=True,
        description_pattern=r"(?<![a-z])(sa|sax|short[ _-]?axis)(?![a-z])",
        min_slices=4,
    ),
    "ich_ct": SelectionRules(
        modalities=("CT",),
        orientation="axial",
        contrast=False,
        require_head=True,
        allow_unknown_contrast=True,
    ),
}


@dataclass
class SelectionResult:
    """The chosen volume (all its phases for cine) or why there is none."""

    volume: SeriesVolume | None
    reason: str
    volumes: list[SeriesVolume] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


def select_series(
    volumes: Sequence[SeriesVolume],
    task: str,
    overrides: Mapping[str, Any] | SelectionRules | None = None,
) -> SelectionResult:
    """The series to measure for ``task``, chosen by the task's rules.

    Parameters
    ----------
    volumes
        Volumes of one study, from :func:`triallens.geometry.build_volumes`.
    task
        ``recist_ct``, ``lvef_cmr`` or ``ich_ct``.
    overrides
        The charter's rules: a full :class:`SelectionRules`, or a mapping of
        rule fields to replace in the defaults (``{"contrast": None}``,
        ``{"series_uid": "..."}`` to name the series outright).

    Returns
    -------
    SelectionResult
        ``volume`` is None when no series fits; ``reason`` then lists each
        series and the rule it failed.

    Raises
    ------
    ConfigurationError
        The task is unknown or an override names no rule field.
    """
    rules = _rules_for(task, overrides)
    groups = _group_phases(volumes)
    candidates: list[tuple[float, list[SeriesVolume]]] = []
    rejected: list[tuple[str, str]] = []
    for phases in groups:
        volume = phases[0]
        failure = _check(volume, phases, rules)
        label = _label(volume)
        if failure:
            rejected.append((volume.series_uid, f"{label}: {failure}"))
            continue
        candidates.append((_score(volume, rules), phases))

    if not candidates:
        if not volumes:
            reason = "the study has no image series"
        else:
            reason = f"no series fits task {task}: " + "; ".join(r for _, r in rejected)
        return SelectionResult(None, reason, [], rejected)

    candidates.sort(key=lambda item: item[0], reverse=True)
    phases = candidates[0][1]
    chosen = phases[0]
    reason = f"{_label(chosen)} chosen for {task}"
    if len(candidates) > 1:
        reason += f" (best of {len(candidates)} suitable series)"
    logger.debug("task %s: %s", task, reason)
    return SelectionResult(chosen, reason, phases, rejected)


# Rules ----------------------------------------------------------------------


def _rules_for(
    task: str, overrides: Mapping[str, Any] | SelectionRules | None
) -> SelectionRules:
    if isinstance(overrides, SelectionRules):
        return overrides
    base = DEFAULT_RULES.get(task)
    if base is None:
        raise ConfigurationError(
            f"unknown task {task!r}; known tasks: {', '.join(sorted(DEFAULT_RULES))}"
        )
    if not overrides:
        return base
    names = {f.name for f in fields(SelectionRules)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigurationError(
            f"series selection override(s) {', '.join(unknown)} are not rules; "
            f"use one of {', '.join(sorted(names))}"
        )
    values = dict(overrides)
    for key in ("modalities", "exclude_words"):
        if key in values and isinstance(values[key], list):
            values[key] = tuple(values[key])
    return replace(base, **values)


def _check(
    volume: SeriesVolume, phases: list[SeriesVolume], rules: SelectionRules
) -> str | None:
    if rules.series_uid is not None:
        return None if volume.series_uid == rules.series_uid else "not the named series"
    if volume.modality.upper() not in rules.modalities:
        needed = "/".join(rules.modalities)
        return f"modality {volume.modality or 'unknown'} (needs {needed})"
    words = _words(volume)
    for word in rules.exclude_words:
        if re.search(rf"(?<![A-Z]){re.escape(word.upper())}(?![A-Z])", words):
            return f"excluded as {word.lower()}"
    if rules.require_measurable and not volume.measurable:
        return f"not measurable ({volume.not_measurable_reason})"
    if volume.shape[0] < rules.min_slices:
        return f"{volume.shape[0]} slices (needs {rules.min_slices})"
    if rules.orientation:
        found = classify_orientation(volume)
        if found != rules.orientation:
            return f"{found} slices (needs {rules.orientation})"
    thickness = volume.slice_thickness_mm
    limit = rules.max_slice_thickness_mm
    if limit and thickness and thickness > limit + 1e-6:
        return f"slice thickness {thickness:g} mm (at most {limit:g} mm)"
    if rules.contrast is not None:
        status = contrast_status(volume)
        if status is None and not rules.allow_unknown_contrast:
            wanted = "contrast" if rules.contrast else "no contrast"
            return f"contrast not recorded (needs {wanted})"
        if status is not None and status != rules.contrast:
            return "contrast-enhanced" if status else "without contrast"
    if rules.require_head and not _HEAD_WORDS.search(words):
        return "not a head examination"
    if rules.require_cine and len(phases) < 2:
        if _CINE_WORDS.search(words):
            return "cine series with a single phase"
        return "not cine (a single phase)"
    if rules.description_pattern:
        text = " ".join(
            v for v in (volume.series_description, volume.protocol_name) if v
        )
        matches = re.search(rules.description_pattern, text, re.IGNORECASE)
        oblique_cine = rules.require_cine and classify_orientation(volume) == "oblique"
        if not matches and not oblique_cine:
            return "description does not match the required series"
    return None


def _score(volume: SeriesVolume, rules: SelectionRules) -> float:
    score = 0.0
    if volume.measurable:
        score += 100.0
    score -= 10.0 * len(volume.qc_flags)
    if volume.slice_thickness_mm:
        score -= volume.slice_thickness_mm
    score += min(volume.shape[0], 400) / 100.0
    if rules.contrast is not None and contrast_status(volume) == rules.contrast:
        score += 5.0
    return score


# Classification ---------------------------------------------------------------


def classify_orientation(volume: SeriesVolume, tolerance: float = 0.85) -> str:
    """ "axial", "sagittal", "coronal" or "oblique" from the slice normal (LPS)."""
    normal = np.abs(volume.slice_normal)
    axis = int(np.argmax(normal))
    if normal[axis] < tolerance:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def contrast_status(volume: SeriesVolume) -> bool | None:
    """True with contrast, False without, None when nothing says."""
    agent = (volume.contrast_agent or "").strip().upper()
    if agent and agent not in {"NONE", "NO", "N/A", "-"}:
        return True
    text = _words(volume)
    if _NON_CONTRAST_WORDS.search(text):
        return False
    if _CONTRAST_WORDS.search(text):
        return True
    if agent:
        return False
    return None


def _words(volume: SeriesVolume) -> str:
    parts = [
        volume.series_description or "",
        volume.protocol_name or "",
        volume.body_part or "",
        " ".join(volume.image_type),
    ]
    return " ".join(parts).upper().replace("_", " ")


def _label(volume: SeriesVolume) -> str:
    description = volume.series_description or "series"
    uid_tail = volume.series_uid[-8:] if volume.series_uid else "?"
    return f"'{description}' (...{uid_tail})"


def _group_phases(volumes: Sequence[SeriesVolume]) -> list[list[SeriesVolume]]:
    """Volumes of one series and one stack, all phases together, in order."""
    groups: dict[
        tuple[str, tuple[float, ...], tuple[int, ...]], list[SeriesVolume]
    ] = {}
    for volume in volumes:
        key = (
            volume.series_uid,
            tuple(np.round(volume.slice_normal, 3)),
            volume.shape,
        )
        groups.setdefault(key, []).append(volume)
    out = []
    for phases in groups.values():
        phases.sort(key=lambda v: -1 if v.temporal_index is None else v.temporal_index)
        out.append(phases)
    return out
