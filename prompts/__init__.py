"""Versioned prompt templates.

Each prompt is a YAML file in this folder with an ``id``, an integer
``version``, a ``description`` and chat ``messages`` whose contents may hold
``{{ variable }}`` placeholders (the syntax MLflow's prompt registry uses).
Changing a prompt's text means raising its version; the content hash makes
an unannounced change visible in traces.

>>> prompt = load_prompt("triage-narrative")
>>> messages = prompt.render(findings_json="{}")
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Prompt", "PromptError", "list_prompts", "load_prompt", "register_prompt"]

logger = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parent
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class PromptError(ValueError):
    """A prompt file is malformed, or rendering lacks or misnames variables."""


@dataclass(frozen=True)
class Prompt:
    """One version of a chat prompt template."""

    id: str
    version: int
    description: str
    messages: tuple[tuple[str, str], ...]
    content_hash: str

    @property
    def version_label(self) -> str:
        """The version with the first 12 hex digits of the content hash."""
        return f"{self.version}+{self.content_hash[:12]}"

    @property
    def variables(self) -> set[str]:
        """The placeholder names the template uses."""
        return {
            name for _, text in self.messages for name in _PLACEHOLDER.findall(text)
        }

    def render(self, **variables: str) -> list[dict[str, str]]:
        """The chat messages with every placeholder replaced.

        Values are inserted verbatim in one pass, so a value that itself looks
        like a placeholder is never expanded.

        Raises
        ------
        PromptError
            When a placeholder has no value or a value has no placeholder.
        """
        missing = self.variables - variables.keys()
        extra = variables.keys() - self.variables
        if missing or extra:
            raise PromptError(
                f"Prompt {self.id!r} v{self.version}: missing variables "
                f"{sorted(missing)}, unknown variables {sorted(extra)}"
            )

        def substitute(match: re.Match[str]) -> str:
            return str(variables[match.group(1)])

        return [
            {"role": role, "content": _PLACEHOLDER.sub(substitute, text)}
            for role, text in self.messages
        ]

    def trace_attributes(self) -> dict[str, Any]:
        """Span attributes that identify this prompt version."""
        return {
            "triallens.prompt.id": self.id,
            "triallens.prompt.version": self.version,
            "triallens.prompt.content_hash": self.content_hash,
        }


def load_prompt(prompt_id: str) -> Prompt:
    """The prompt with this id from the prompts folder.

    Raises
    ------
    PromptError
        When no file holds that id or the file is malformed.
    """
    prompts = _all_prompts()
    if prompt_id not in prompts:
        raise PromptError(
            f"No prompt {prompt_id!r}; known prompts: {sorted(prompts) or 'none'}"
        )
    return prompts[prompt_id]


def list_prompts() -> list[Prompt]:
    """Every prompt in the folder, by id."""
    return [prompt for _, prompt in sorted(_all_prompts().items())]


def register_prompt(prompt: Prompt) -> int:
    """Register ``prompt`` in MLflow's prompt registry; return the MLflow version.

    Uses the current MLflow tracking URI. A new MLflow version is created only
    when the latest registered one has a different content hash, so calling
    this for every run is cheap and keeps one MLflow version per prompt text.
    """
    import mlflow

    tags = {
        "triallens.prompt_version": str(prompt.version),
        "triallens.content_hash": prompt.content_hash,
    }
    latest = mlflow.genai.load_prompt(
        f"prompts:/{prompt.id}@latest", allow_missing=True
    )
    if latest is not None and latest.tags.get("triallens.content_hash") == (
        prompt.content_hash
    ):
        return int(latest.version)
    template = [{"role": role, "content": text} for role, text in prompt.messages]
    registered = mlflow.genai.register_prompt(
        name=prompt.id,
        template=template,
        commit_message=f"TrialLens {prompt.id} v{prompt.version}",
        tags=tags,
    )
    logger.info(
        "Registered prompt %s v%s as MLflow version %s",
        prompt.id,
        prompt.version,
        registered.version,
    )
    return int(registered.version)


@cache
def _all_prompts() -> dict[str, Prompt]:
    prompts: dict[str, Prompt] = {}
    for path in sorted(PROMPTS_DIR.glob("*.yaml")):
        prompt = _parse(path)
        if prompt.id in prompts:
            raise PromptError(f"Prompt id {prompt.id!r} is defined twice ({path.name})")
        prompts[prompt.id] = prompt
    return prompts


def _parse(path: Path) -> Prompt:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        prompt_id = str(data["id"])
        version = int(data["version"])
        messages = tuple(
            (str(item["role"]), str(item["content"])) for item in data["messages"]
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise PromptError(f"Malformed prompt file {path.name}: {exc}") from exc
    if not _ID.match(prompt_id):
        raise PromptError(f"Prompt id {prompt_id!r} in {path.name} is not a slug")
    if not messages or any(role not in ("system", "user") for role, _ in messages):
        raise PromptError(f"Prompt {prompt_id!r}: messages need system/user roles")
    canonical = json.dumps(
        {"id": prompt_id, "version": version, "messages": messages},
        sort_keys=True,
        ensure_ascii=False,
    )
    return Prompt(
        id=prompt_id,
        version=version,
        description=str(data.get("description", "")),
        messages=messages,
        content_hash=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
    )
