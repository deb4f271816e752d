"""MCP resources (a study's triage report, a subject's timeline) and prompts."""

from __future__ import annotations

from fastmcp import FastMCP
from fastmcp.exceptions import PromptError, ResourceError

from mcp_server import views
from mcp_server.access import Access, reported
from mcp_server.backend import Backend
from triallens.users import Permission

__all__ = ["register_content"]


def register_content(mcp: FastMCP, backend: Backend, access: Access) -> None:
    """Attach the resources and prompts to ``mcp``."""
    default_trial = backend.settings.trial_id

    @mcp.resource(
        "triallens://studies/{study_uid}/report",
        name="study_triage_report",
        title="Study triage report",
        mime_type="text/markdown",
    )
    @reported(ResourceError)
    def study_report(study_uid: str) -> str:
        """A study's triage report: priority and reasons, deviations, QC,
        measurements, response, narrative and the EDC record's signatures."""
        access.require("study_triage_report", Permission.READ)
        result = backend.study(study_uid)
        return views.report_markdown(result, backend.record(result))

    @mcp.resource(
        "triallens://trials/{trial_id}/subjects/{subject_id}/timeline",
        name="subject_timeline",
        title="Subject timeline",
        mime_type="text/markdown",
    )
    @reported(ResourceError)
    def subject_timeline(trial_id: str, subject_id: str) -> str:
        """A subject's course across visits: sum of diameters, change from
        baseline and response at every time point."""
        access.require("subject_timeline", Permission.READ)
        results = backend.timeline(trial_id, subject_id)
        return views.timeline_markdown(trial_id, subject_id, results)

    @mcp.prompt(name="review_study", title="Review this study")
    @reported(PromptError)
    def review_study(study_uid: str) -> str:
        """Guide a reviewer through one study's AI findings to a signed
        decision."""
        access.require("review_study", Permission.READ)
        result = backend.study(study_uid)
        report = views.report_markdown(result, backend.record(result))
        return (
            "You are assisting a central reader of a clinical trial's imaging. "
            f"Review study {study_uid} with them, using only the data below and "
            "the TrialLens tools.\n\n"
            "1. Summarise the priority, its reasons and any charter deviations.\n"
            "2. Check each measured lesion (get_measurements) and show its key "
            "image (get_key_image); point out low confidence or QC flags.\n"
            "3. Compare with the subject's earlier time points "
            "(get_subject_timeline) against baseline and nadir (RECIST 1.1).\n"
            "4. Ask the reader for their decision: accept, modify (which item, "
            "new value, reason) or reject (reason). Only the reader signs, with "
            "their password, through review_finding; never decide for them.\n"
            "5. If a site-reported value disagrees, offer raise_query.\n\n"
            f"{report}"
        )

    @mcp.prompt(
        name="summarise_subject_course", title="Summarise this subject's course"
    )
    def summarise_subject_course(subject_id: str, trial_id: str | None = None) -> str:
        """Draft a summary of one subject's imaging course across visits."""
        access.require("summarise_subject_course", Permission.READ)
        trial = trial_id or default_trial
        results = backend.timeline(trial, subject_id)
        table = views.timeline_markdown(trial, subject_id, results)
        return (
            f"Summarise the imaging course of subject {subject_id} in trial "
            f"{trial} for a medical monitor, in at most 150 words. Use only the "
            "table below: state the baseline sum of diameters, the nadir, the "
            "latest change from baseline, each time point's response, any new "
            "lesions and deviations. Cite time points by their IDs. Say that the "
            "values are machine-derived drafts unless the record is signed.\n\n"
            f"{table}"
        )
