"""An OpenAI-compatible chat client with retries, clear errors and tracing.

vLLM serves the OpenAI wire protocol in production; any compatible endpoint
works. The client adds what the product needs on top of the ``openai``
package: a retry policy for transient failures (connection refused or
dropped, timeouts, HTTP 429 and 5xx), errors that say what happened and what
to do (:mod:`agent.llm.errors`), structured output validated against a
pydantic model, streaming that hands a reply on only once it is complete, and
an MLflow span per call carrying the prompt version, the model name the server
reports and the token counts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from agent.llm.errors import (
    LlmContextLengthError,
    LlmError,
    LlmOutputError,
    LlmUnavailableError,
)
from triallens.errors import ConfigurationError
from triallens.settings import Settings, get_settings

if TYPE_CHECKING:
    from prompts import Prompt
    from triallens.tracing import Tracer

__all__ = ["ChatReply", "LlmClient", "ToolCall", "Usage", "llm_client_from_settings"]

logger = logging.getLogger(__name__)

Message = dict[str, Any]
ModelT = TypeVar("ModelT", bound=BaseModel)

_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
_TIMEOUT_NAMES = {"TimeoutException", "TimeoutError", "ReadTimeout", "ConnectTimeout"}
_TRANSPORT_NAMES = {"TransportError", "NetworkError", "ConnectionError"}
_REFUSED_NAMES = {"ConnectionRefusedError", "ConnectError"}
_DROPPED_NAMES = {
    "RemoteProtocolError",
    "ReadError",
    "ConnectionResetError",
    "BrokenPipeError",
    "IncompleteRead",
}
_CONTEXT_PATTERN = re.compile(
    r"context length|maximum model length|max_model_len|too many tokens|"
    r"prompt is too long|input tokens",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Usage:
    """Token counts of one call, as the server reports them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for; ``arguments`` is raw JSON."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatReply:
    """A complete reply: text or tool calls, the served model, token counts."""

    content: str | None
    model: str
    usage: Usage | None = None
    finish_reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    attempts: int = 1


class LlmClient:
    """Chat completions against one OpenAI-compatible server and model.

    Parameters
    ----------
    base_url:
        The server's API root, e.g. ``http://vllm.internal:8000/v1``.
    model:
        The served model name; ``None`` asks the server and takes the first.
    api_key:
        Bearer key (vLLM's ``--api-key``); ``None`` sends a placeholder.
    timeout_s:
        Bound on each attempt (connect, read and write).
    retries:
        Further attempts after a transient failure (refused or dropped
        connection, timeout, HTTP 408/429/5xx). Other errors are not retried.
    backoff_s:
        Pause before the first retry; doubled for each further one.
    tracer:
        When given, every call becomes an MLflow span of the active trace.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        tracer: Tracer | None = None,
    ) -> None:
        import openai

        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.tracer = tracer
        self._model = model
        self._registered: set[str] = set()
        self._openai = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or "triallens-no-key",
            timeout=openai.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            max_retries=0,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, tracing: bool = False
    ) -> LlmClient:
        """The client the settings describe (``llm_base_url`` and friends).

        Raises
        ------
        ConfigurationError
            When ``llm_base_url`` is not set.
        """
        settings = settings or get_settings()
        if not settings.llm_base_url:
            raise ConfigurationError(
                "No LLM is configured: set TRIALLENS_LLM_BASE_URL (and "
                "TRIALLENS_LLM_MODEL) to an OpenAI-compatible server such as vLLM."
            )
        tracer = None
        if tracing:
            from triallens.tracing import get_tracer

            tracer = get_tracer(settings)
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return cls(
            settings.llm_base_url,
            settings.llm_model,
            api_key=key,
            timeout_s=settings.llm_timeout_s,
            retries=settings.llm_retries,
            tracer=tracer,
        )

    # Model -------------------------------------------------------------

    @property
    def model(self) -> str:
        """The model name requests use (asked of the server when not set)."""
        if self._model is None:
            served = self.list_models()
            if not served:
                raise LlmError(f"The LLM server at {self.base_url} serves no model.")
            self._model = served[0]
        return self._model

    def list_models(self) -> list[str]:
        """The model names the server serves."""
        page, _ = self._with_retries("list models", self._openai.models.list)
        return [entry.id for entry in page.data]

    # Calls -------------------------------------------------------------

    def chat(
        self,
        messages: Sequence[Message],
        *,
        response_format: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        extra_body: dict[str, Any] | None = None,
        prompt: Prompt | None = None,
        span_name: str = "llm.chat",
    ) -> ChatReply:
        """One chat completion, retried on transient failures.

        Raises
        ------
        LlmUnavailableError
            The server refused or dropped the connection or timed out on
            every attempt.
        LlmContextLengthError
            The messages do not fit into the model's context.
        LlmError
            Any other refusal by the server (bad key, unknown model, ...).
        """
        request: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if response_format is not None:
            request["response_format"] = response_format
        if tools:
            request["tools"] = tools
            request["parallel_tool_calls"] = False
        if tool_choice is not None:
            request["tool_choice"] = tool_choice
        if extra_body:
            request["extra_body"] = extra_body

        with self._span(span_name, request, prompt) as span:
            completion, attempts = self._with_retries(
                "chat completion",
                lambda: self._openai.chat.completions.create(**request),
            )
            reply = _reply_from_completion(completion, attempts)
            self._record(span, reply, prompt)
        return reply

    def structured(
        self,
        messages: Sequence[Message],
        schema: type[ModelT],
        *,
        max_tokens: int = 256,
        prompt: Prompt | None = None,
        span_name: str = "llm.structured",
    ) -> tuple[ModelT, ChatReply]:
        """A reply constrained to ``schema`` (JSON schema structured output).

        Returns the validated object and the raw reply.

        Raises
        ------
        LlmOutputError
            The reply is empty, not JSON, or does not validate.
        """
        reply = self.chat(
            messages,
            response_format=json_schema_format(schema),
            max_tokens=max_tokens,
            prompt=prompt,
            span_name=span_name,
        )
        return parse_structured(reply, schema), reply

    def stream(
        self,
        messages: Sequence[Message],
        *,
        response_format: dict[str, Any] | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        extra_body: dict[str, Any] | None = None,
        prompt: Prompt | None = None,
        on_complete: Callable[[ChatReply], None] | None = None,
        span_name: str = "llm.stream",
    ) -> Iterator[str]:
        """Yield the reply's text as it arrives.

        ``on_complete`` runs once with the whole reply, and only when the
        server finished it; a stream cut short raises
        :class:`LlmUnavailableError` and never reaches ``on_complete``. A
        failure before the first piece of text is retried; once text has been
        handed on, the call cannot be repeated transparently and fails.
        """
        request: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if response_format is not None:
            request["response_format"] = response_format
        if extra_body:
            request["extra_body"] = extra_body

        with self._span(span_name, request, prompt) as span:
            stream, attempts = self._with_retries(
                "streaming chat completion",
                lambda: self._openai.chat.completions.create(**request),
            )
            pieces: list[str] = []
            model = self.model
            usage: Usage | None = None
            finish_reason: str | None = None
            try:
                for chunk in stream:
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = _usage(chunk.usage)
                    for choice in chunk.choices:
                        finish_reason = choice.finish_reason or finish_reason
                        text = choice.delta.content if choice.delta else None
                        if text:
                            pieces.append(text)
                            yield text
            except Exception as exc:
                error = self._classify(exc, "streaming chat completion")[1]
                raise LlmUnavailableError(
                    f"The reply stream from {self.base_url} broke off after "
                    f"{len(pieces)} pieces ({error}); the partial reply was "
                    "discarded.",
                    attempts=attempts,
                ) from exc
            finally:
                with contextlib.suppress(Exception):
                    stream.close()
            if finish_reason is None:
                raise LlmUnavailableError(
                    f"The reply stream from {self.base_url} ended without a "
                    "finish reason; the partial reply was discarded.",
                    attempts=attempts,
                )
            reply = ChatReply(
                content="".join(pieces),
                model=model,
                usage=usage,
                finish_reason=finish_reason,
                attempts=attempts,
            )
            self._record(span, reply, prompt)
        if on_complete is not None:
            on_complete(reply)

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._openai.close()

    # Retries and errors ----------------------------------------------------

    def _with_retries(self, what: str, call: Callable[[], Any]) -> tuple[Any, int]:
        first_problem: str | None = None
        started = time.monotonic()
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return call(), attempt
            except Exception as exc:
                retryable, error = self._classify(exc, what)
                if not retryable:
                    raise error from exc
                first_problem = first_problem or str(error)
                if attempt == attempts:
                    elapsed = time.monotonic() - started
                    message = (
                        f"{what.capitalize()} failed after {attempts} attempt(s) "
                        f"in {elapsed:.1f} s: {error}"
                    )
                    if first_problem != str(error):
                        message += f" (first attempt: {first_problem})"
                    raise LlmUnavailableError(message, attempts=attempts) from exc
                pause = self.backoff_s * 2 ** (attempt - 1)
                logger.warning(
                    "LLM %s attempt %d/%d failed (%s); retrying in %.1f s",
                    what,
                    attempt,
                    attempts,
                    error,
                    pause,
                )
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _classify(self, exc: BaseException, what: str) -> tuple[bool, LlmError]:
        """Whether ``exc`` is worth a retry, and the error to report."""
        import openai

        where = f"the LLM server at {self.base_url}"
        names = _cause_names(exc)
        if isinstance(exc, openai.APITimeoutError) or names & _TIMEOUT_NAMES:
            return True, LlmUnavailableError(
                f"{where} did not answer within {self.timeout_s:g} s"
            )
        if isinstance(exc, openai.APIConnectionError) or names & _TRANSPORT_NAMES:
            if names & _REFUSED_NAMES:
                text = f"{where} refused the connection (is it running?)"
            elif names & _DROPPED_NAMES:
                text = f"{where} closed the connection mid-request (stopped?)"
            else:
                text = f"{where} could not be reached ({type(exc).__name__})"
            return True, LlmUnavailableError(text)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = _server_message(exc)
            if status == 400 and _CONTEXT_PATTERN.search(detail):
                return False, LlmContextLengthError(
                    f"The request is longer than the context of model "
                    f"{self._model!r} at {self.base_url}: {detail} Shorten the "
                    "input (fewer findings or documents) or serve the model "
                    "with a larger --max-model-len."
                )
            if status in (401, 403):
                return False, LlmError(
                    f"{where} rejected the API key (HTTP {status}); check "
                    "TRIALLENS_LLM_API_KEY."
                )
            if status == 404:
                return False, LlmError(
                    f"{where} does not serve model {self._model!r} (HTTP 404); "
                    "check TRIALLENS_LLM_MODEL."
                )
            return status in _RETRYABLE_STATUS, LlmError(
                f"{where} refused the {what} (HTTP {status}): {detail}"
            )
        if isinstance(exc, LlmError):
            return False, exc
        return False, LlmError(f"The {what} failed: {type(exc).__name__}: {exc}")

    # Tracing -------------------------------------------------------------

    @contextlib.contextmanager
    def _span(
        self, name: str, request: dict[str, Any], prompt: Prompt | None
    ) -> Iterator[Any]:
        if self.tracer is None:
            yield None
            return
        inputs = {
            "messages": request["messages"],
            "model": request["model"],
            "max_tokens": request["max_tokens"],
        }
        if "response_format" in request:
            inputs["response_format"] = request["response_format"]
        if "tools" in request:
            inputs["tools"] = [t["function"]["name"] for t in request["tools"]]
        with self.tracer.span(name, inputs=inputs, span_type="CHAT_MODEL") as span:
            attributes: dict[str, Any] = {
                "llm.base_url": self.base_url,
                "llm.model_requested": request["model"],
            }
            if prompt is not None:
                attributes.update(prompt.trace_attributes())
                self.tracer.tag({f"triallens.prompt.{prompt.id}": prompt.version_label})
                self._register(prompt)
            span.set_attributes(attributes)
            yield span

    def _register(self, prompt: Prompt) -> None:
        """Register the prompt in MLflow's prompt registry once per process."""
        if prompt.content_hash in self._registered:
            return
        from prompts import register_prompt

        try:
            version = register_prompt(prompt)
        except Exception as exc:  # the registry must never stop a draft
            logger.warning("Could not register prompt %s: %s", prompt.id, exc)
            return
        self._registered.add(prompt.content_hash)
        if self.tracer is not None:
            self.tracer.tag({f"triallens.prompt.{prompt.id}.mlflow": str(version)})

    def _record(self, span: Any, reply: ChatReply, prompt: Prompt | None) -> None:
        if span is None:
            return
        attributes: dict[str, Any] = {
            "mlflow.llm.model": reply.model,
            "llm.model": reply.model,
            "llm.finish_reason": reply.finish_reason or "",
            "llm.attempts": reply.attempts,
        }
        if reply.usage is not None:
            attributes["mlflow.chat.tokenUsage"] = {
                "input_tokens": reply.usage.prompt_tokens,
                "output_tokens": reply.usage.completion_tokens,
                "total_tokens": reply.usage.total_tokens,
            }
            attributes["llm.usage"] = reply.usage.as_dict()
        span.set_attributes(attributes)
        span.set_outputs(
            {
                "content": reply.content,
                "tool_calls": [
                    {"name": c.name, "arguments": c.arguments} for c in reply.tool_calls
                ],
            }
        )


def llm_client_from_settings(
    settings: Settings | None = None, *, tracing: bool = False
) -> LlmClient | None:
    """The configured client, or ``None`` when no LLM is configured."""
    settings = settings or get_settings()
    if not settings.llm_base_url:
        return None
    return LlmClient.from_settings(settings, tracing=tracing)


def json_schema_format(schema: type[BaseModel]) -> dict[str, Any]:
    """The ``response_format`` asking for JSON that validates against ``schema``."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": schema.__name__,
            "schema": schema.model_json_schema(),
            "strict": True,
        },
    }


def parse_structured(reply: ChatReply, schema: type[ModelT]) -> ModelT:
    """Validate a structured reply; raise :class:`LlmOutputError` if it fails."""
    if reply.finish_reason == "length":
        raise LlmOutputError(
            f"The structured reply from model {reply.model!r} was cut off at the "
            "token limit before the JSON was complete."
        )
    if not reply.content:
        raise LlmOutputError(f"Model {reply.model!r} sent an empty structured reply.")
    try:
        return schema.model_validate_json(reply.content)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise LlmOutputError(
            f"The structured reply from model {reply.model!r} does not match "
            f"{schema.__name__}: {problems}"
        ) from exc


def _reply_from_completion(completion: Any, attempts: int) -> ChatReply:
    if not completion.choices:
        raise LlmOutputError(f"Model {completion.model!r} sent a reply with no choice.")
    choice = completion.choices[0]
    message = choice.message
    calls = [
        ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "")
        for c in (message.tool_calls or [])
        if getattr(c, "function", None) is not None
    ]
    return ChatReply(
        content=message.content,
        model=completion.model,
        usage=_usage(completion.usage) if completion.usage else None,
        finish_reason=choice.finish_reason,
        tool_calls=calls,
        attempts=attempts,
    )


def _usage(usage: Any) -> Usage:
    return Usage(
        prompt_tokens=int(usage.prompt_tokens or 0),
        completion_tokens=int(usage.completion_tokens or 0),
        total_tokens=int(usage.total_tokens or 0),
    )


def _cause_names(exc: BaseException) -> set[str]:
    """Class names along the cause chain (the HTTP library is openai's own)."""
    names: set[str] = set()
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        names.update(cls.__name__ for cls in type(current).__mro__)
        current = current.__cause__ or current.__context__
    return names


def _server_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    message = None
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else None
        message = message or body.get("message")
    if not message:
        message = getattr(exc, "message", None) or str(exc)
    if not isinstance(message, str):
        message = json.dumps(message)
    return message.strip()[:300]
