"""The MCP tools: worklist, triage results, measurements, images, reviews, queries.

Docstrings and argument descriptions are what a reviewer's assistant reads to
choose a tool, so they say what comes back and when to use it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult
from fastmcp.utilities.types import Image
from mcp.types import TextContent
from pydantic import Field, SecretStr

from mcp_server import views
from mcp_server.access import Access, reported
from mcp_server.backend import Backend, Identity
from triallens.errors import TrialLensError
from triallens.users import Permission

__all__ = ["register_tools"]

logger = logging.getLogger(__name__)

StudyUid = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[0-9.]+$",
        description="De-identified Study Instance UID (digits and dots), as "
        "listed by list_worklist.",
    ),
]
SubjectId = Annotated[
    str, Field(min_length=1, max_length=64, description="Clinical Trial Subject ID.")
]
TrialId = Annotated[
    str | None,
    Field(
        max_length=64,
        description="Clinical Trial Protocol ID; the server's trial when omitted.",
    ),
]
ReviewStatus = Literal["pending", "confirmed", "modified", "rejected"]
PriorityName = Literal["HIGH", "EXPEDITED", "ROUTINE"]

_DECISION_STATUS = {"accept": "confirmed", "modify": "modified", "reject": "rejected"}


def register_tools(mcp: FastMCP, backend: Backend, access: Access) -> None:
    """Attach every TrialLens tool to ``mcp``."""
    default_trial = backend.settings.trial_id

    @mcp.tool(annotations={"readOnlyHint": True}, tags={"read"})
    @reported(ToolError)
    def list_worklist(
        trial_id: TrialId = None,
        review_status: Annotated[
            ReviewStatus | None,
            Field(
                description="Only studies whose AI findings are in this review "
                "state; 'pending' means no reviewer has signed yet."
            ),
        ] = None,
        priority: Annotated[
            PriorityName | None,
            Field(description="Only studies triaged at this priority."),
        ] = None,
        limit: Annotated[
            int, Field(ge=1, le=500, description="At most this many studies.")
        ] = 50,
    ) -> list[dict[str, Any]]:
        """List triaged studies, newest first, with priority and the reasons.

        Use this first to find what needs reading: each line names the study
        (study_uid), trial, site, subject, time point, modality, priority
        (HIGH, EXPEDITED, ROUTINE), the reasons for it, the number of charter
        deviations and the overall RECIST response. All identifiers are
        de-identified.
        """
        access.require("list_worklist", Permission.READ)
        results = backend.results.worklist(
            trial_id=trial_id,
            priority=priority,
            review_status=review_status,
            limit=limit,
        )
        return [views.worklist_row(result) for result in results]

    @mcp.tool(annotations={"readOnlyHint": True}, tags={"read"})
    @reported(ToolError)
    def get_study_triage(study_uid: StudyUid) -> dict[str, Any]:
        """Get the full triage result of one study.

        Returns the study's identifiers, priority and reasons, charter
        deviations, quality-control flags, machine-derived findings and RECIST
        assessment (sum of diameters, change from baseline and nadir,
        response), the drafted narrative, the model version and trace id, and
        the EDC findings record with its review status, version and
        signatures. Pass the record's version to review_finding.
        """
        access.require("get_study_triage", Permission.READ)
        result = backend.study(study_uid)
        return views.study_view(result, backend.record(result))

    @mcp.tool(annotations={"readOnlyHint": True}, tags={"read"})
    @reported(ToolError)
    def get_subject_timeline(
        subject_id: SubjectId, trial_id: TrialId = None
    ) -> list[dict[str, Any]]:
        """Get one subject's course across visits, in visit order.

        One line per time point: study date and study_uid, sum of diameters,
        percent change from baseline, overall response, new lesions,
        priority and deviations. Use it to judge a response against baseline
        and nadir (RECIST 1.1).
        """
        access.require("get_subject_timeline", Permission.READ)
        results = backend.timeline(trial_id or default_trial, subject_id)
        return views.timeline_view(results)

    @mcp.tool(annotations={"readOnlyHint": True}, tags={"read"})
    @reported(ToolError)
    def get_measurements(study_uid: StudyUid) -> dict[str, Any]:
        """Get the machine-derived measurements of one study.

        Returns each lesion (id, lesion or node, organ, longest diameter and
        short axis in mm, the diameter RECIST sums, volume, slice, confidence,
        whether a key image exists), the sum of diameters with baseline and
        nadir, the responses, and any other findings (LVEF, haemorrhage
        volume) with units and model version. These values are drafts until a
        reviewer signs them.
        """
        access.require("get_measurements", Permission.READ)
        result = backend.study(study_uid)
        view = views.study_view(result)
        return {
            "study_uid": study_uid,
            "task": result.task,
            "model_version": result.model_version,
            "assessment": view["assessment"],
            "findings": view["findings"],
        }

    @mcp.tool(annotations={"readOnlyHint": True}, tags={"read"})
    @reported(ToolError)
    def get_key_image(
        study_uid: StudyUid,
        lesion_id: Annotated[
            str | None,
            Field(
                max_length=64,
                description="Lesion id from get_measurements; the first lesion "
                "with a key image when omitted.",
            ),
        ] = None,
    ) -> ToolResult:
        """Get the key image of a lesion as a PNG, with a one-line caption.

        The image is the slice on which the lesion was measured, with its
        outline, from the de-identified series.
        """
        access.require("get_key_image", Permission.READ)
        result = backend.study(study_uid)
        lesions = result.assessment.lesions if result.assessment else []
        candidates = [
            lesion
            for lesion in lesions
            if lesion.key_image and (lesion_id is None or lesion.lesion_id == lesion_id)
        ]
        if not candidates:
            known = [les.lesion_id for les in lesions if les.key_image]
            if lesion_id is None or not known:
                target = f" for lesion {lesion_id}" if lesion_id else ""
                raise ToolError(f"study {study_uid} has no key image{target}")
            raise ToolError(
                f"no key image for lesion {lesion_id} in study {study_uid}; "
                f"lesions with key images: {', '.join(known)}"
            )
        lesion = candidates[0]
        path = _key_image_path(backend, str(lesion.key_image))
        caption = (
            f"Study {study_uid}, {result.study.time_point_id}: lesion "
            f"{lesion.lesion_id} ({lesion.kind.value}), slice {lesion.slice_index}, "
            f"longest diameter {lesion.longest_diameter_mm:.1f} mm, short axis "
            f"{lesion.short_axis_mm:.1f} mm."
        )
        image = Image(data=path.read_bytes(), format="png").to_image_content()
        return ToolResult(content=[TextContent(type="text", text=caption), image])

    @mcp.tool(annotations={"readOnlyHint": True}, tags={"read"})
    @reported(ToolError)
    def list_deviations(
        trial_id: TrialId = None,
        subject_id: Annotated[
            str | None,
            Field(max_length=64, description="Only this subject's studies."),
        ] = None,
        study_uid: Annotated[
            str | None,
            Field(max_length=64, description="Only this study."),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 200,
    ) -> list[dict[str, Any]]:
        """List imaging-charter deviations and quality-control flags.

        Each line is one study with at least one deviation (a rule of the
        charter the study or visit breaks, with its reason) or QC flag.
        Narrow by trial, subject or one study.
        """
        access.require("list_deviations", Permission.READ)
        trial = trial_id or default_trial
        if study_uid:
            results = [backend.study(study_uid)]
        elif subject_id:
            results = backend.timeline(trial, subject_id)
        else:
            results = backend.results.worklist(trial_id=trial, limit=limit)
        return [
            {
                "study_uid": r.study.study_uid,
                "subject_id": r.study.subject_id,
                "time_point_id": r.study.time_point_id,
                "study_date": r.study.study_date,
                "deviations": list(r.deviations),
                "qc_flags": [flag.model_dump() for flag in r.qc_flags],
            }
            for r in results
            if r.deviations or r.qc_flags
        ][:limit]

    @mcp.tool(annotations={"destructiveHint": False}, tags={"write"})
    @reported(ToolError)
    def review_finding(
        study_uid: StudyUid,
        decision: Annotated[
            Literal["accept", "modify", "reject"],
            Field(
                description="accept the AI findings as drafted, modify one "
                "item (give item_name, new_value and reason), or reject them "
                "(give reason)."
            ),
        ],
        password: Annotated[
            SecretStr,
            Field(
                description="The reviewer's TrialLens password, re-entered: it "
                "signs the decision (21 CFR 11.200). Never stored or logged."
            ),
        ],
        reason: Annotated[
            str | None,
            Field(
                max_length=2000,
                description="Why: required to modify or reject.",
            ),
        ] = None,
        item_name: Annotated[
            str | None,
            Field(
                max_length=64,
                description="The EDC item to change when modifying, e.g. "
                "sum_of_diameters_mm (see edc_record.items in get_study_triage).",
            ),
        ] = None,
        new_value: Annotated[
            float | str | None,
            Field(description="The corrected value when modifying."),
        ] = None,
        record_version: Annotated[
            int | None,
            Field(
                ge=1,
                description="The EDC record version you reviewed (from "
                "get_study_triage); if someone changed it since, the review is "
                "refused with a conflict instead of overwriting their decision.",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Sign a decision on a study's AI findings: accept, modify or reject.

        The decision is an electronic signature: it needs the reviewer's
        password, is stored with printed name, UTC time and meaning, moves the
        EDC record out of draft and is written to the audit trail. Only
        readers and adjudicators may sign. Returns the updated EDC record.
        """
        identity = access.require("review_finding", Permission.SIGN_FINDINGS)
        if decision in ("modify", "reject") and not (reason and reason.strip()):
            raise ToolError(f"a reason is required to {decision} a finding")
        if decision == "modify" and (item_name is None or new_value is None):
            raise ToolError("to modify, give item_name and new_value")
        if decision != "modify" and (item_name is not None or new_value is not None):
            raise ToolError("item_name and new_value apply only to decision=modify")
        result = backend.study(study_uid)
        if not result.edc_record_id:
            raise ToolError(
                f"study {study_uid} has no EDC findings record to review "
                f"(outcome {result.outcome.value})"
            )
        new_values = {item_name: new_value} if item_name is not None else None
        entity = f"edc_record:{result.edc_record_id}"
        try:
            record = backend.review(
                identity,
                result.edc_record_id,
                decision=decision,
                password=password.get_secret_value(),
                reason=reason,
                new_values=new_values,
                expected_version=record_version,
            )
        except TrialLensError as exc:
            _audit_failure(backend, identity, "mcp.review_finding", entity, exc)
            raise
        status = _DECISION_STATUS[decision]
        backend.results.set_review_status(study_uid, status)
        resumed = backend.resume_triage(
            study_uid,
            {
                "decision": status,
                "reviewer": identity.user_name,
                "role": identity.role,
                "edc_record_id": record.record_id,
                "edc_version": record.version,
                "via": "mcp",
            },
        )
        backend.audit_call(
            identity,
            "mcp.review_finding",
            entity,
            new={
                "study_uid": study_uid,
                "decision": decision,
                "status": status,
                "triage_resumed": resumed,
            },
            reason=reason,
        )
        return views.record_view(record) or {}

    @mcp.tool(annotations={"destructiveHint": False}, tags={"write"})
    @reported(ToolError)
    def raise_query(
        study_uid: StudyUid,
        item_name: Annotated[
            str,
            Field(
                min_length=1,
                max_length=64,
                description="The EDC item the query is about, e.g. "
                "sum_of_diameters_mm.",
            ),
        ],
        text: Annotated[
            str,
            Field(
                min_length=5,
                max_length=2000,
                description="The question for the site, e.g. why the "
                "site-reported value differs from the measured one. No PHI.",
            ),
        ],
        site_value: Annotated[
            float | str | None,
            Field(description="The site-reported value, when there is one."),
        ] = None,
    ) -> dict[str, Any]:
        """Raise an EDC data query on one item of a study's time point.

        The query carries the AI value of the item (from the study's findings
        record) and its source, and the site value when given. Only data
        managers may raise queries; each is audited.
        """
        identity = access.require("raise_query", Permission.MANAGE_QUERIES)
        result = backend.study(study_uid)
        record = backend.record(result)
        ai_value = None
        if record is not None:
            item = record.items.get(item_name.lower())
            if item is None:
                raise ToolError(
                    f"EDC record {record.record_id} has no item {item_name!r}; "
                    f"items: {', '.join(sorted(record.items))}"
                )
            ai_value = item.value
        entity = f"study:{study_uid}"
        try:
            query = backend.raise_query(
                identity,
                study_oid=result.study.trial_id,
                subject_id=result.study.subject_id,
                time_point_id=result.study.time_point_id,
                item_name=item_name.lower(),
                text=text,
                record_id=result.edc_record_id,
                ai_value=ai_value,
                ai_source=f"TrialLens model {result.model_version or 'unknown'}",
                site_value=site_value,
                site_source="site-reported" if site_value is not None else None,
            )
        except TrialLensError as exc:
            _audit_failure(backend, identity, "mcp.raise_query", entity, exc)
            raise
        backend.audit_call(
            identity,
            "mcp.raise_query",
            f"edc_query:{query.query_id}",
            new={"study_uid": study_uid, "item_name": query.item_name},
        )
        return views.query_view(query)

    @mcp.tool(annotations={"readOnlyHint": True}, tags={"read"})
    @reported(ToolError)
    def list_queries(
        trial_id: TrialId = None,
        subject_id: Annotated[
            str | None,
            Field(max_length=64, description="Only this subject's queries."),
        ] = None,
        status: Annotated[
            Literal["open", "closed"] | None,
            Field(description="Only open or only closed queries."),
        ] = None,
    ) -> list[dict[str, Any]]:
        """List EDC data queries, with the AI and site values they compare."""
        access.require("list_queries", Permission.READ)
        trial = trial_id or default_trial
        queries = backend.edc.list_queries(subject_id=subject_id, status=status)
        return [views.query_view(q) for q in queries if q.study_oid == trial]


def _key_image_path(backend: Backend, stored: str) -> Path:
    # Key images live under the data directory; never serve a file elsewhere.
    root = backend.settings.data_dir.resolve()
    path = Path(stored)
    if not path.is_absolute():
        path = backend.settings.key_images_dir / path
    path = path.resolve()
    if not path.is_relative_to(root) or not path.is_file():
        logger.warning("key image missing or outside the data directory")
        raise ToolError("the key image is not available on this server")
    return path


def _audit_failure(
    backend: Backend,
    identity: Identity,
    action: str,
    entity: str,
    exc: TrialLensError,
) -> None:
    backend.audit_call(
        identity,
        f"{action}.failed",
        entity,
        new={"error": type(exc).__name__},
        reason=str(exc)[:500],
    )
