"""The triage graph: one LangGraph thread per study version, checkpointed.

::

    fetch_and_deidentify -> check_charter -> measure -> compare_with_priors
        -> prioritise
        -> draft_report -> write_outputs -> await_review (interrupt)

A replayed event finds the finished thread (or the stored result) and writes
nothing new; a crashed run resumes from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from agent.triage import nodes
from agent.triage.context import TriageContext
from agent.triage.locking import thread_lock
from agent.triage.state import TriageState
from triallens.domain import TriageResult
from triallens.events import study_version
from triallens.store import source_key

__all__ = [
    "NODE_ORDER",
    "build_triage_graph",
    "open_checkpointer",
    "resume_review",
    "run_triage",
    "thread_config",
]

logger = logging.getLogger(__name__)

NODE_ORDER: tuple[str, ...] = (
    "fetch_and_deidentify",
    "check_charter",
    "measure",
    "compare_with_priors",
    "prioritise",
    "draft_report",
    "write_outputs",
    "await_review",
)

NodeHook = Callable[[str], None]


def build_triage_graph(
    ctx: TriageContext, checkpointer: Any, on_node: NodeHook | None = None
) -> Any:
    """Compile the triage graph with every node traced as its own span."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(TriageState)
    for name in NODE_ORDER:
        graph.add_node(name, partial(_traced_node, name, ctx, on_node))
    graph.add_edge(START, NODE_ORDER[0])
    for before, after in itertools.pairwise(NODE_ORDER):
        graph.add_edge(before, after)
    graph.add_edge(NODE_ORDER[-1], END)
    return graph.compile(checkpointer=checkpointer)


def _traced_node(
    name: str, ctx: TriageContext, on_node: NodeHook | None, state: TriageState
) -> TriageState:
    from langgraph.errors import GraphInterrupt

    step = getattr(nodes, name)
    opened = ctx.tracer.span(name, inputs=_span_inputs(state))
    span = opened.__enter__()
    try:
        update = step(state, ctx)
    except GraphInterrupt:
        # Waiting for a human is the expected end of a run, not a failure.
        span.set_outputs({"status": "awaiting human review"})
        opened.__exit__(None, None, None)
        if on_node is not None:
            on_node(name)
        raise
    except BaseException as exc:
        opened.__exit__(type(exc), exc, exc.__traceback__)
        raise
    span.set_outputs(_span_outputs(update))
    opened.__exit__(None, None, None)
    _fault_injection(name)
    if on_node is not None:
        on_node(name)
    return update


def _fault_injection(node: str) -> None:
    """Crash tests: die like a killed process once ``node`` has done its work.

    Set ``TRIALLENS_FAULT_KILL_AFTER_NODE`` to a node name; the process gets
    SIGKILL after the node's side effects and before its checkpoint.
    """
    if os.environ.get("TRIALLENS_FAULT_KILL_AFTER_NODE") == node:
        logger.warning("fault injection: killing the process after %s", node)
        os.kill(os.getpid(), signal.SIGKILL)


def _span_inputs(state: TriageState) -> dict[str, Any]:
    study = state.get("study") or {}
    return {
        "study_uid": study.get("study_uid"),
        "subject_id": study.get("subject_id"),
        "time_point_id": study.get("time_point_id"),
        "study_version": state.get("study_version"),
    }


def _span_outputs(update: TriageState) -> dict[str, Any]:
    hidden = {"work_dir", "result", "__interrupt__"}
    return {key: value for key, value in update.items() if key not in hidden}


@contextlib.contextmanager
def open_checkpointer(path: str) -> Iterator[Any]:
    """A SQLite checkpointer (or PostgreSQL for a ``postgresql://`` URL)."""
    if path.startswith("postgresql://"):
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(path) as saver:
            saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(path) as saver:
        yield saver


def thread_config(source_key: str, study_version: str) -> dict[str, Any]:
    """The LangGraph config of a study version's thread (one per version)."""
    return {"configurable": {"thread_id": f"{source_key}:{study_version}"}}


def run_triage(
    study_uid: str, ctx: TriageContext, on_node: NodeHook | None = None
) -> TriageResult:
    """Triage one study from the PACS and return its result.

    Raises
    ------
    StudyNotFoundError
        The PACS has no study with this UID.
    PacsError
        The PACS could not be reached or answered badly.
    """
    ctx.settings.ensure_dirs()
    instances = ctx.pacs.search_instances(study_uid)
    version = study_version(i.sop_instance_uid for i in instances)
    key = source_key(study_uid, ctx.settings.deid_secret.get_secret_value())

    config = thread_config(key, version)
    checkpoint = ctx.settings.resolved_checkpoint_path
    with (
        thread_lock(checkpoint, config["configurable"]["thread_id"]),
        open_checkpointer(checkpoint) as saver,
    ):
        graph = build_triage_graph(ctx, saver, on_node)
        snapshot = graph.get_state(config)
        pending = tuple(snapshot.next)
        resume = bool(pending) and pending != ("await_review",)
        if not resume:
            stored = ctx.store.get_by_source(key, version)
            if stored is not None:
                return stored
        tags = {"triallens.study_version": version}
        with ctx.tracer.trace("triage", {"study_version": version}, tags) as root:
            trace_id = root.trace_id
            if resume:
                logger.info("resuming triage of version %s at %s", version, pending)
                graph.update_state(config, {"trace_id": trace_id})
                final = graph.invoke(None, config)
            else:
                initial: TriageState = {
                    "source_study_uid": study_uid,
                    "source_key": key,
                    "study_version": version,
                    "trace_id": trace_id,
                }
                final = graph.invoke(initial, config)
            result = TriageResult.model_validate(final["result"])
            ctx.tracer.tag(_trace_tags(result))
            root.set_outputs(
                {
                    "outcome": result.outcome.value,
                    "priority": result.priority.value,
                    "edc_record_id": result.edc_record_id,
                    "sum_of_diameters_mm": (
                        result.assessment.sum_of_diameters_mm
                        if result.assessment
                        else None
                    ),
                }
            )
    return result


def resume_review(study_uid: str, decision: dict[str, Any], ctx: TriageContext) -> bool:
    """Resume a study's triage thread waiting at ``await_review``.

    Returns False when no thread of that (de-identified) study is waiting.
    """
    from langgraph.types import Command

    source = ctx.store.source_of(study_uid)
    if source is None:
        return False
    key, version = source
    config = thread_config(key, version)
    checkpoint = ctx.settings.resolved_checkpoint_path
    with (
        thread_lock(checkpoint, config["configurable"]["thread_id"]),
        open_checkpointer(checkpoint) as saver,
    ):
        graph = build_triage_graph(ctx, saver)
        snapshot = graph.get_state(config)
        if "await_review" not in snapshot.next:
            return False
        with ctx.tracer.trace("review", {"study_uid": study_uid}):
            graph.invoke(Command(resume=decision), config)
    return True


def _trace_tags(result: TriageResult) -> dict[str, str]:
    tags = {
        "triallens.study_uid": result.study.study_uid,
        "triallens.subject_id": result.study.subject_id,
        "triallens.time_point_id": result.study.time_point_id,
        "triallens.trial_id": result.study.trial_id,
        "triallens.outcome": result.outcome.value,
        "triallens.priority": result.priority.value,
        "triallens.input_hashes": ",".join(result.input_hashes),
    }
    if result.model_version:
        tags["triallens.model_version"] = result.model_version
    return tags
