"""The narrative of a triage report: drafted by the LLM when one is
configured and the draft is grounded, by a deterministic template otherwise.

Only de-identified fields of the triage result reach the prompt, chosen by an
explicit list (:func:`narrative_facts`). Free text that comes from image
headers (study and time-point descriptions) travels under ``quoted_`` keys
inside a JSON document, so the model sees it as data; the system prompt says
so, and the grounding check refuses any value that only that text holds.
Nothing the model writes changes the priority, reasons or findings: the
result is never modified here.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.llm.client import LlmClient
from agent.llm.errors import LlmError, LlmOutputError
from agent.llm.grounding import check_grounding
from prompts import load_prompt
from triallens.domain import LesionKind, TriageOutcome, TriageResult

__all__ = [
    "NARRATIVE_PROMPT_ID",
    "TEMPLATE_ID",
    "TEMPLATE_VERSION",
    "Narrative",
    "NarrativeDraft",
    "draft_narrative",
    "narrative_facts",
    "template_narrative",
]

logger = logging.getLogger(__name__)

NARRATIVE_PROMPT_ID = "triage-narrative"
TEMPLATE_ID = "triage-narrative-template"
TEMPLATE_VERSION = "1"
TEMPLATE_NOTE = (
    "Drafted by the deterministic template from the structured findings; "
    "no language model was used."
)


class NarrativeDraft(BaseModel):
    """The structured output the LLM must return."""

    model_config = ConfigDict(extra="forbid")

    narrative: str = Field(min_length=1, max_length=1200)


class Narrative(BaseModel):
    """A drafted narrative with where it came from.

    ``source`` is ``"llm"`` only for a grounded LLM draft. When an LLM draft
    was refused, ``source`` is ``"template"``, ``refused_reason`` says why,
    and ``prompt_id``/``prompt_version``/``model``/``usage`` describe the
    refused attempt. With no LLM at all they name the template.
    """

    text: str
    source: Literal["llm", "template"]
    prompt_id: str
    prompt_version: str
    prompt_hash: str | None = None
    refused_reason: str | None = None
    problems: list[str] = Field(default_factory=list)
    model: str | None = None
    usage: dict[str, int] | None = None


def draft_narrative(
    result: TriageResult,
    client: LlmClient | None = None,
    *,
    fallback_on_error: bool = False,
    max_tokens: int = 400,
    phi_guard: Any | None = None,
) -> Narrative:
    """Draft the narrative of ``result``.

    Parameters
    ----------
    result:
        The triage result; it is read, never changed.
    client:
        The LLM client, or ``None`` for the deterministic template.
    fallback_on_error:
        When the server cannot be reached (after the client's retries), use
        the template and record the reason instead of raising.
    max_tokens:
        Bound on the LLM reply.
    phi_guard:
        A :class:`triallens.phi.PhiGuard` of the original study; when it
        finds an identifying value in the prompt, nothing is sent and the
        template is used.

    Returns
    -------
    Narrative
        The LLM draft when it is valid and grounded, else the template text
        with ``refused_reason`` set.

    Raises
    ------
    LlmError
        The server failed or refused the request (unless
        ``fallback_on_error``), including a prompt over the context length.
    """
    template_text = template_narrative(result)
    if client is None:
        return Narrative(
            text=template_text,
            source="template",
            prompt_id=TEMPLATE_ID,
            prompt_version=TEMPLATE_VERSION,
        )

    prompt = load_prompt(NARRATIVE_PROMPT_ID)
    messages = prompt.render(findings_json=findings_json(result))
    attempt = {
        "prompt_id": prompt.id,
        "prompt_version": str(prompt.version),
        "prompt_hash": prompt.content_hash,
    }

    if phi_guard is not None:
        hits = phi_guard.scan(messages)
        if hits:
            kinds = sorted({hit.kind for hit in hits})
            return Narrative(
                text=template_text,
                source="template",
                refused_reason="the prompt would contain identifying values "
                f"({', '.join(kinds)}); nothing was sent to the LLM",
                **attempt,
            )

    with _narrative_span(client, result) as span:
        try:
            draft, reply = client.structured(
                messages, NarrativeDraft, prompt=prompt, max_tokens=max_tokens
            )
        except LlmOutputError as exc:
            narrative = Narrative(
                text=template_text,
                source="template",
                refused_reason=f"invalid structured output: {exc}",
                **attempt,
            )
        except LlmError as exc:
            if not fallback_on_error:
                raise
            narrative = Narrative(
                text=template_text,
                source="template",
                refused_reason=f"LLM request failed: {exc}",
                **attempt,
            )
        else:
            usage = reply.usage.as_dict() if reply.usage else None
            problems = check_grounding(draft.narrative, result)
            if problems:
                narrative = Narrative(
                    text=template_text,
                    source="template",
                    refused_reason="grounding check refused the LLM draft: "
                    + "; ".join(problems),
                    problems=problems,
                    model=reply.model,
                    usage=usage,
                    **attempt,
                )
            else:
                narrative = Narrative(
                    text=draft.narrative.strip(),
                    source="llm",
                    model=reply.model,
                    usage=usage,
                    **attempt,
                )
        if narrative.refused_reason:
            logger.info(
                "Narrative for study version %s falls back to the template: %s",
                result.study_version,
                narrative.refused_reason,
            )
        if span is not None:
            span.set_outputs(narrative.model_dump(exclude={"text"}))
    return narrative


def narrative_facts(result: TriageResult) -> dict[str, Any]:
    """The de-identified facts of ``result`` that a prompt may contain.

    An explicit list: identifiers after de-identification, the decision and
    its reasons, deviations, QC flags and measurements. No UIDs, hashes,
    file paths or EDC references. Header text is under ``quoted_`` keys.
    """
    study = result.study
    facts: dict[str, Any] = {
        "trial": study.trial_id,
        "site": study.site_id,
        "subject": study.subject_id,
        "time_point": study.time_point_id,
        "quoted_time_point_description": study.time_point_description,
        "study_date": study.study_date,
        "modality": study.modality,
        "quoted_study_description": study.study_description,
        "task": result.task,
        "outcome": str(result.outcome),
        "outcome_reason": result.outcome_reason,
        "priority": str(result.priority),
        "priority_reasons": list(result.reasons),
        "deviations": list(result.deviations),
        "qc_flags": [{"code": f.code, "reason": f.reason} for f in result.qc_flags],
        "findings": [
            {
                "name": f.name,
                "value": f.value,
                "unit": f.unit,
                "confidence": f.confidence,
            }
            for f in result.findings
        ],
    }
    assessment = result.assessment
    if assessment is not None:
        facts["assessment"] = {
            "lesions": [
                _drop_empty(
                    {
                        "lesion_id": lesion.lesion_id,
                        "kind": str(lesion.kind),
                        "organ": lesion.organ,
                        "longest_diameter_mm": round(lesion.longest_diameter_mm, 1),
                        "short_axis_mm": round(lesion.short_axis_mm, 1),
                        "volume_ml": _round(lesion.volume_ml),
                    }
                )
                for lesion in assessment.lesions
            ],
            "sum_of_diameters_mm": _round(assessment.sum_of_diameters_mm),
            "baseline_sum_mm": _round(assessment.baseline_sum_mm),
            "nadir_sum_mm": _round(assessment.nadir_sum_mm),
            "percent_change_from_baseline": _round(
                assessment.percent_change_from_baseline
            ),
            "target_response": _str(assessment.target_response),
            "overall_response": _str(assessment.overall_response),
            "new_lesions": list(assessment.new_lesions),
        }
    return _drop_empty(facts)


def findings_json(result: TriageResult) -> str:
    """:func:`narrative_facts` as JSON that cannot close the ``<findings>`` tag."""
    text = json.dumps(
        narrative_facts(result), ensure_ascii=False, separators=(",", ":")
    )
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def template_narrative(result: TriageResult) -> str:
    """The deterministic narrative: the same facts, in fixed sentences.

    Header text (descriptions) is not used, so nothing in a DICOM header can
    change what this template writes.
    """
    study = result.study
    sentences = [
        f"{study.modality} study of subject {study.subject_id} at time point "
        f"{study.time_point_id}"
        + (f", acquired {study.study_date}" if study.study_date else "")
        + f": triage priority {result.priority}."
    ]
    if result.reasons:
        sentences.append("Reasons: " + "; ".join(result.reasons) + ".")
    if result.outcome is not TriageOutcome.MEASURED:
        sentences.append(
            f"No measurement was made ({result.outcome_reason or result.outcome})."
        )

    assessment = result.assessment
    if assessment is not None:
        if assessment.lesions:
            sentences.append(
                "Measured: "
                + "; ".join(_lesion_text(x) for x in assessment.lesions)
                + "."
            )
        if assessment.sum_of_diameters_mm is not None:
            sentences.append(_sum_text(assessment))
        responses = []
        if assessment.target_response is not None:
            responses.append(f"target response {assessment.target_response}")
        if assessment.overall_response is not None:
            responses.append(f"overall response {assessment.overall_response}")
        if responses:
            sentences.append(_capitalise("; ".join(responses)) + ".")
        if assessment.new_lesions:
            sentences.append("New lesions: " + ", ".join(assessment.new_lesions) + ".")

    for finding in result.findings:
        sentences.append(_finding_text(finding.name, finding.value, finding.unit))
    if result.deviations:
        sentences.append("Charter deviations: " + "; ".join(result.deviations) + ".")
    if result.qc_flags:
        flags = "; ".join(f"{f.code} ({f.reason})" for f in result.qc_flags)
        sentences.append(f"Quality flags: {flags}.")
    sentences.append(TEMPLATE_NOTE)
    return " ".join(sentences)


# Helpers ---------------------------------------------------------------


@contextlib.contextmanager
def _narrative_span(client: LlmClient, result: TriageResult) -> Iterator[Any]:
    if client.tracer is None:
        yield None
        return
    inputs = {
        "study_version": result.study_version,
        "subject": result.study.subject_id,
        "time_point": result.study.time_point_id,
    }
    with client.tracer.span(
        "draft_narrative", inputs=inputs, span_type="CHAIN"
    ) as span:
        yield span


def _lesion_text(lesion: Any) -> str:
    where = f"{lesion.organ}, " if lesion.organ else ""
    if lesion.kind is LesionKind.NODE:
        size = f"short axis {_num(lesion.short_axis_mm)} mm"
    else:
        size = f"{_num(lesion.longest_diameter_mm)} mm"
    return f"{lesion.lesion_id} ({where}{lesion.kind}) {size}"


def _sum_text(assessment: Any) -> str:
    text = f"Sum of diameters {_num(assessment.sum_of_diameters_mm)} mm"
    extra = []
    if assessment.baseline_sum_mm is not None:
        extra.append(f"baseline {_num(assessment.baseline_sum_mm)} mm")
    if assessment.nadir_sum_mm is not None:
        extra.append(f"nadir {_num(assessment.nadir_sum_mm)} mm")
    if assessment.percent_change_from_baseline is not None:
        extra.append(f"{assessment.percent_change_from_baseline:+.1f} % from baseline")
    return text + (f" ({', '.join(extra)})" if extra else "") + "."


def _finding_text(name: str, value: Any, unit: str | None) -> str:
    if value is None:
        return f"{name}: not available."
    shown = _num(value) if isinstance(value, int | float) else str(value)
    suffix = f" {unit}" if unit else ""
    return f"{name}: {shown}{suffix}."


def _num(value: float) -> str:
    return f"{value:.1f}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _drop_empty(facts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if v not in (None, [], {}, "")}
