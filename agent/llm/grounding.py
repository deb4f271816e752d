"""Grounding check: an LLM draft may state only what the findings hold.

Every number, date and identifier (lesion, subject, time point) in a draft
must appear in the structured, machine-derived part of the triage result,
and any priority or response category it names must be the one TrialLens
decided. Text copied from DICOM headers (study and time-point descriptions)
is not a source: a number that only appears there is refused like an
invented one.

Numbers match when the draft's figure is the finding rounded to the number
of decimals the draft shows (23.47 mm may be written 23.5 or 23), signs are
ignored (a change of -32.1 % may be written "32.1 %"), and confidences may be
written as percentages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from triallens.domain import Response, TriageResult

__all__ = ["GroundingFacts", "check_grounding", "grounding_facts"]

_MONTHS = {
    name: index
    for index, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_MONTH_WORD = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE_PATTERNS = [
    re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b"),
    re.compile(r"\b(?P<y>(?:19|20)\d{2})(?P<m>[01]\d)(?P<d>[0-3]\d)\b"),
    re.compile(r"\b(?P<d>\d{1,2})[/.](?P<m>\d{1,2})[/.](?P<y>\d{4})\b"),
    re.compile(
        rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<mon>{_MONTH_WORD})\.?,?\s+"
        rf"(?P<y>\d{{4}})\b",
        re.IGNORECASE,
    ),
    re.compile(
        rf"\b(?P<mon>{_MONTH_WORD})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+"
        rf"(?P<y>\d{{4}})\b",
        re.IGNORECASE,
    ),
]
# Names of standards whose version numbers are not findings.
_STANDARD_NAMES = re.compile(r"\bRECIST\s*1\.1\b|\biRECIST\b|\bRANO\b", re.IGNORECASE)
# Identifiers start with a letter and hold a digit: L1, NT-02, TP3, SUBJ-0007.
_IDENTIFIER = re.compile(r"\b[A-Za-z][A-Za-z_]*(?:[-_]?[A-Za-z]*\d[A-Za-z0-9]*)+\b")
_NUMBER = re.compile(r"(?<![\w.])[-+\u2212]?\d+(?:\.\d+)?(?![\w.]*\d)")
_PRIORITY_WORDS = {"HIGH", "ROUTINE", "EXPEDITED", "LOW", "URGENT", "NORMAL", "MEDIUM"}
_PRIORITY_CAPS = re.compile(r"\b(HIGH|ROUTINE|EXPEDITED|LOW|URGENT|MEDIUM)\b")
_PRIORITY_PHRASE = re.compile(
    r"\b(high|routine|expedited|low|urgent|normal|medium)[- ]priority\b|"
    r"\bpriority\s*(?:is|of|:|=)?\s*(high|routine|expedited|low|urgent|normal|medium)\b",
    re.IGNORECASE,
)
_RESPONSE_PHRASES = {
    "complete response": Response.CR,
    "partial response": Response.PR,
    "stable disease": Response.SD,
    "progressive disease": Response.PD,
    "not evaluable": Response.NE,
}
_RESPONSE_CODES = re.compile(r"(?<![\w/-])(CR|PR|SD|PD|NE)(?![\w/-])")
_NON_CR_NON_PD = re.compile(r"\bnon-?CR\s*/\s*non-?PD\b", re.IGNORECASE)


@dataclass
class GroundingFacts:
    """What a draft may state: the values of the structured findings."""

    numbers: list[float] = field(default_factory=list)
    dates: set[date] = field(default_factory=set)
    identifiers: set[str] = field(default_factory=set)
    priority: str = ""
    responses: set[Response] = field(default_factory=set)

    def allows_number(self, written: str) -> bool:
        value = abs(float(written.replace("\u2212", "-")))
        decimals = len(written.split(".")[1]) if "." in written else 0
        half_step = 0.5 * 10**-decimals + 1e-9
        return any(abs(value - abs(known)) <= half_step for known in self.numbers)


def check_grounding(text: str, result: TriageResult) -> list[str]:
    """The problems that keep ``text`` from being grounded in ``result``.

    Parameters
    ----------
    text:
        A drafted narrative.
    result:
        The triage result the draft describes.

    Returns
    -------
    list[str]
        One plain sentence per value the findings do not hold; empty when the
        draft is grounded.
    """
    facts = grounding_facts(result)
    problems: list[str] = []
    remaining = _STANDARD_NAMES.sub(" ", text)

    # Dates first: their digits must not be read as numbers afterwards.
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(remaining):
            written = match.group(0)
            parsed = _parse_date(match)
            if parsed is None or parsed not in facts.dates:
                problems.append(f"date {written!r} is not in the findings")
        remaining = pattern.sub(" ", remaining)

    for match in _IDENTIFIER.finditer(remaining):
        written = match.group(0)
        if written.upper() not in facts.identifiers:
            problems.append(f"identifier {written!r} is not in the findings")
    remaining = _IDENTIFIER.sub(" ", remaining)

    for match in _NUMBER.finditer(remaining):
        written = match.group(0).lstrip("+")
        if not facts.allows_number(written):
            problems.append(f"number {written!r} is not in the findings")

    problems.extend(_priority_problems(text, facts))
    problems.extend(_response_problems(text, facts))
    return list(dict.fromkeys(problems))


def grounding_facts(result: TriageResult) -> GroundingFacts:
    """Collect every value a draft about ``result`` may state."""
    facts = GroundingFacts(priority=str(result.priority))
    numbers: list[float] = []
    texts: list[str] = []
    study = result.study

    ids = [study.trial_id, study.site_id, study.subject_id, study.time_point_id]
    ids += [flag.code for flag in result.qc_flags]
    if study.study_date:
        parsed = _parse_iso_or_dicom(study.study_date)
        if parsed is not None:
            facts.dates.add(parsed)

    texts += [result.outcome_reason or "", *result.reasons, *result.deviations]
    texts += [flag.reason for flag in result.qc_flags]
    numbers += [len(result.reasons), len(result.deviations), len(result.qc_flags)]

    for finding in result.findings:
        ids.append(finding.name)
        if isinstance(finding.value, int | float) and not isinstance(
            finding.value, bool
        ):
            numbers.append(float(finding.value))
        elif isinstance(finding.value, str):
            texts.append(finding.value)
        if finding.confidence is not None:
            numbers += [finding.confidence, finding.confidence * 100]

    assessment = result.assessment
    if assessment is not None:
        numbers.append(len(assessment.lesions))
        numbers.append(len(assessment.new_lesions))
        ids += assessment.new_lesions
        for lesion in assessment.lesions:
            ids.append(lesion.lesion_id)
            numbers += [lesion.longest_diameter_mm, lesion.short_axis_mm]
            numbers += [lesion.confidence, lesion.confidence * 100]
            if lesion.volume_ml is not None:
                numbers.append(lesion.volume_ml)
        numbers += [
            value
            for value in (
                assessment.sum_of_diameters_mm,
                assessment.baseline_sum_mm,
                assessment.nadir_sum_mm,
                assessment.percent_change_from_baseline,
            )
            if value is not None
        ]
        for response in (assessment.target_response, assessment.overall_response):
            if response is not None:
                facts.responses.add(response)

    # Values written inside TrialLens's own reason texts are findings too.
    for text in texts:
        for pattern in _DATE_PATTERNS:
            for match in pattern.finditer(text):
                parsed = _parse_date(match)
                if parsed is not None:
                    facts.dates.add(parsed)
        ids += _IDENTIFIER.findall(text)
        numbers += [float(n.replace("\u2212", "-")) for n in _NUMBER.findall(text)]
        facts.responses.update(_responses_named(text))

    facts.identifiers = {i.upper() for i in ids if i}
    facts.numbers = [n for n in numbers if math.isfinite(n)]
    return facts


def _priority_problems(text: str, facts: GroundingFacts) -> Iterable[str]:
    named = set(_PRIORITY_CAPS.findall(text))
    for match in _PRIORITY_PHRASE.finditer(text):
        named.add((match.group(1) or match.group(2)).upper())
    for word in sorted(named & _PRIORITY_WORDS):
        if word != facts.priority:
            yield f"priority {word} contradicts the triage priority {facts.priority}"


def _response_problems(text: str, facts: GroundingFacts) -> Iterable[str]:
    for response in sorted(_responses_named(text) - facts.responses):
        yield f"response {response} is not in the assessment"


def _responses_named(text: str) -> set[Response]:
    named: set[Response] = set()
    if _NON_CR_NON_PD.search(text):
        named.add(Response.NON_CR_NON_PD)
        text = _NON_CR_NON_PD.sub(" ", text)
    named.update(Response(code) for code in _RESPONSE_CODES.findall(text))
    lowered = text.lower()
    named.update(
        response for phrase, response in _RESPONSE_PHRASES.items() if phrase in lowered
    )
    return named


def _parse_date(match: re.Match[str]) -> date | None:
    parts = match.groupdict()
    try:
        month = _MONTHS[parts["mon"].lower()] if parts.get("mon") else int(parts["m"])
        return date(int(parts["y"]), month, int(parts["d"]))
    except (KeyError, ValueError):
        return None


def _parse_iso_or_dicom(text: str) -> date | None:
    for pattern in _DATE_PATTERNS[:2]:
        match = pattern.fullmatch(text.strip())
        if match:
            return _parse_date(match)
    return None
