"""A minimal chat agent: an LLM that may call plain Python functions.

Tools are ordinary callables with type hints; their signature becomes the
JSON schema the model sees and the pydantic model that validates the
arguments it sends. The agent knows nothing of the rest of TrialLens: the
caller decides which functions to offer.

One turn: the question goes to the model with the tools (optionally forcing a
named tool); each tool call is validated, run, and its result sent back; the
model then answers in text. Invalid arguments and failing tools are reported
back to the model as the tool's result rather than raised.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from agent.llm.client import ChatReply, LlmClient, ToolCall, Usage
from prompts import load_prompt
from triallens.errors import TrialLensError

__all__ = ["ChatAgent", "ChatAnswer", "ChatTool", "ToolInvocation"]

logger = logging.getLogger(__name__)

CHAT_PROMPT_ID = "chat-assistant"


class ChatTool:
    """A plain callable offered to the model as a function.

    Parameters
    ----------
    func:
        The function; every parameter needs a type hint. Its docstring's
        first paragraph is the description the model reads.
    name:
        The function name the model sees (default: ``func.__name__``).
    """

    def __init__(self, func: Callable[..., Any], name: str | None = None) -> None:
        self.func = func
        self.name = name or func.__name__
        doc = inspect.getdoc(func) or ""
        self.description = doc.split("\n\n")[0].replace("\n", " ").strip()
        self.arguments_model = _arguments_model(func, self.name)

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry for this function."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.arguments_model.model_json_schema(),
                "strict": True,
            },
        }

    def validate(self, arguments: str) -> BaseModel:
        """Parse and validate the model's JSON arguments.

        Raises
        ------
        pydantic.ValidationError
            When the arguments are not JSON or do not fit the signature.
        """
        return self.arguments_model.model_validate_json(arguments or "{}")

    def run(self, arguments: BaseModel) -> Any:
        values = {
            name: getattr(arguments, name) for name in type(arguments).model_fields
        }
        return self.func(**values)


@dataclass(frozen=True)
class ToolInvocation:
    """One tool call of a turn, with what was sent back to the model."""

    name: str
    arguments: dict[str, Any] | None
    result: str
    error: str | None = None


@dataclass
class ChatAnswer:
    """The answer of one turn and how it was reached."""

    text: str
    model: str
    invocations: list[ToolInvocation] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    messages: list[dict[str, Any]] = field(default_factory=list)
    replies: list[ChatReply] = field(default_factory=list)


class ChatAgent:
    """Answers questions with an LLM and the given tools.

    Parameters
    ----------
    client:
        The LLM client.
    tools:
        Callables (or :class:`ChatTool`) the model may call.
    max_tool_rounds:
        Bound on model turns that may call tools before a text answer is
        required.
    max_tokens:
        Bound on each reply.
    """

    def __init__(
        self,
        client: LlmClient,
        tools: Sequence[Callable[..., Any] | ChatTool] = (),
        *,
        max_tool_rounds: int = 3,
        max_tokens: int = 256,
    ) -> None:
        self.client = client
        self.tools = {
            t.name: t
            for t in (x if isinstance(x, ChatTool) else ChatTool(x) for x in tools)
        }
        self.max_tool_rounds = max(1, max_tool_rounds)
        self.max_tokens = max_tokens
        self.prompt = load_prompt(CHAT_PROMPT_ID)

    def ask(self, question: str, *, tool: str | None = None) -> ChatAnswer:
        """Answer ``question``; with ``tool``, the first reply must call it.

        Raises
        ------
        ValueError
            When ``tool`` is not one of the agent's tools.
        LlmError
            When the server fails or refuses a request.
        """
        if tool is not None and tool not in self.tools:
            raise ValueError(f"Unknown tool {tool!r}; tools: {sorted(self.tools)}")
        messages: list[dict[str, Any]] = [
            *self.prompt.render(),
            {"role": "user", "content": question},
        ]
        schemas = [t.schema() for t in self.tools.values()]
        invocations: list[ToolInvocation] = []
        replies: list[ChatReply] = []

        with self._span("chat.ask", {"question": question, "tool": tool}) as span:
            for round_index in range(self.max_tool_rounds + 1):
                choice = self._tool_choice(round_index, tool)
                reply = self.client.chat(
                    messages,
                    tools=schemas or None,
                    tool_choice=choice if schemas else None,
                    max_tokens=self.max_tokens,
                    prompt=self.prompt,
                    span_name="chat.completion",
                )
                replies.append(reply)
                if not reply.tool_calls:
                    break
                messages.append(_assistant_message(reply))
                for call in reply.tool_calls:
                    invocation = self._invoke(call)
                    invocations.append(invocation)
                    messages.append(
                        {
                            "role": "tool",
                            "tool_call_id": call.id,
                            "content": invocation.result,
                        }
                    )
            answer = ChatAnswer(
                text=replies[-1].content or "",
                model=replies[-1].model,
                invocations=invocations,
                usage=_sum_usage(replies),
                messages=messages,
                replies=replies,
            )
            if span is not None:
                span.set_outputs(
                    {"text": answer.text, "tools": [i.name for i in invocations]}
                )
        return answer

    def _tool_choice(self, round_index: int, tool: str | None) -> str | dict[str, Any]:
        if round_index == 0 and tool is not None:
            return {"type": "function", "function": {"name": tool}}
        if round_index >= self.max_tool_rounds or (round_index > 0 and tool):
            return "none"
        return "auto"

    def _invoke(self, call: ToolCall) -> ToolInvocation:
        chat_tool = self.tools.get(call.name)
        if chat_tool is None:
            error = f"unknown function {call.name!r}"
            return ToolInvocation(call.name, None, f"error: {error}", error)
        try:
            arguments = chat_tool.validate(call.arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            error = f"invalid arguments: {problems}"
            return ToolInvocation(call.name, None, f"error: {error}", error)

        values = arguments.model_dump(mode="json")
        with self._span(f"tool.{call.name}", values, span_type="TOOL") as span:
            try:
                result = _as_text(chat_tool.run(arguments))
                error = None
            except TrialLensError as exc:
                error = str(exc)
                result = f"error: {error}"
            if span is not None:
                span.set_outputs({"result": result})
        if error:
            logger.info("Tool %s failed: %s", call.name, error)
        return ToolInvocation(call.name, values, result, error)

    @contextlib.contextmanager
    def _span(
        self, name: str, inputs: dict[str, Any], span_type: str = "AGENT"
    ) -> Iterator[Any]:
        tracer = self.client.tracer
        if tracer is None:
            yield None
            return
        with tracer.span(name, inputs=inputs, span_type=span_type) as span:
            yield span


def _arguments_model(func: Callable[..., Any], name: str) -> type[BaseModel]:
    hints = get_type_hints(func)
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(func).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"Tool {name!r}: *args and **kwargs are not supported")
        if parameter.name not in hints:
            raise TypeError(f"Tool {name!r}: parameter {parameter.name!r} needs a hint")
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (hints[parameter.name], default)
    config = ConfigDict(extra="forbid")
    model_name = "".join(part.title() for part in name.split("_")) + "Arguments"
    return create_model(model_name, __config__=config, **fields)


def _assistant_message(reply: ChatReply) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": reply.content or "",
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.tool_calls
        ],
    }


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, default=str, ensure_ascii=False)


def _sum_usage(replies: Sequence[ChatReply]) -> Usage:
    usages = [r.usage for r in replies if r.usage is not None]
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in usages),
        completion_tokens=sum(u.completion_tokens for u in usages),
        total_tokens=sum(u.total_tokens for u in usages),
    )
