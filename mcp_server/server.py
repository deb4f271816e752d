"""Building the TrialLens MCP server."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastmcp import FastMCP

from mcp_server.access import Access, ErrorTranslation, UserTokenVerifier
from mcp_server.backend import Backend
from mcp_server.content import register_content
from mcp_server.tools import register_tools
from triallens import __version__
from triallens.errors import ConfigurationError

if TYPE_CHECKING:
    from triallens.settings import Settings

__all__ = ["INSTRUCTIONS", "build_server"]

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
TrialLens triages clinical-trial imaging: it measures lesions (RECIST 1.1),
checks each study against the imaging charter and writes machine-derived
drafts into the EDC. Start with list_worklist; read a study with
get_study_triage, get_measurements and get_key_image; compare visits with
get_subject_timeline. Findings stay drafts until a reader or adjudicator signs
a decision with review_finding (their password is the signature). All
identifiers are de-identified; never ask for or repeat patient names."""


def build_server(
    settings: Settings | None = None,
    *,
    user: str | None = None,
    require_token: bool = False,
    backend: Backend | None = None,
) -> FastMCP:
    """The TrialLens MCP server.

    Parameters
    ----------
    settings
        Where the stores are; ``get_settings()`` when omitted.
    user
        The TrialLens user a stdio (or in-memory) server acts as; defaults to
        ``settings.mcp_user`` (``TRIALLENS_MCP_USER``).
    require_token
        Accept only requests with a bearer token of an active user (the HTTP
        transport); no configured user is used then.
    backend
        The stores to use; built from ``settings`` when omitted.

    Returns
    -------
    FastMCP
        Ready for ``run(transport=...)``, ``http_app()`` or an in-memory
        ``fastmcp.Client``.

    Raises
    ------
    ConfigurationError
        When neither a token requirement nor a user is configured.
    """
    if settings is None:
        from triallens.settings import get_settings

        settings = get_settings()
    backend = backend or Backend(settings)
    default_user = None
    if not require_token:
        default_user = user or getattr(settings, "mcp_user", None)
        if not default_user:
            raise ConfigurationError(
                "the stdio MCP server acts as one TrialLens user: set "
                "TRIALLENS_MCP_USER (or pass --user)"
            )
    mcp = FastMCP(
        "TrialLens",
        version=__version__,
        instructions=INSTRUCTIONS,
        auth=UserTokenVerifier(backend) if require_token else None,
        middleware=[ErrorTranslation()],
        mask_error_details=True,
        on_duplicate="error",
    )
    access = Access(backend, default_user)
    register_tools(mcp, backend, access)
    register_content(mcp, backend, access)
    return mcp
