"""LLM access: an OpenAI-compatible client, narrative drafting, grounding.

The LLM is optional. With none configured, :func:`draft_narrative` uses a
deterministic template; with one, it asks for structured output and keeps the
draft only when every number, date and identifier in it is in the findings.
"""

from agent.llm.client import (
    ChatReply,
    LlmClient,
    ToolCall,
    Usage,
    json_schema_format,
    llm_client_from_settings,
    parse_structured,
)
from agent.llm.errors import (
    LlmContextLengthError,
    LlmError,
    LlmOutputError,
    LlmUnavailableError,
)
from agent.llm.grounding import check_grounding, grounding_facts
from agent.llm.narrative import (
    Narrative,
    NarrativeDraft,
    draft_narrative,
    findings_json,
    narrative_facts,
    template_narrative,
)

__all__ = [
    "ChatReply",
    "LlmClient",
    "LlmContextLengthError",
    "LlmError",
    "LlmOutputError",
    "LlmUnavailableError",
    "Narrative",
    "NarrativeDraft",
    "ToolCall",
    "Usage",
    "check_grounding",
    "draft_narrative",
    "findings_json",
    "grounding_facts",
    "json_schema_format",
    "llm_client_from_settings",
    "narrative_facts",
    "parse_structured",
    "template_narrative",
]
