"""The triage graph: from a new study in the PACS to an EDC draft."""

from agent.triage.context import TriageContext
from agent.triage.graph import build_triage_graph, run_triage

__all__ = ["TriageContext", "build_triage_graph", "run_triage"]
