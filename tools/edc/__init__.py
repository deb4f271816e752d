"""EDC interface, the embedded EDC, the Rave Web Services adapter and ODM.

``open_edc(settings)`` gives the embedded EDC (SQLite under the data directory,
or ``TRIALLENS_EDC_DATABASE_URL``), or the RWS adapter when
``TRIALLENS_EDC_RWS_URL`` is set. ODM export/import lives in
:mod:`tools.edc.odm`, the RWS HTTP server in :mod:`tools.edc.server`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.edc.embedded import EmbeddedEdc
from tools.edc.models import (
    AI_FINDINGS_FORM_OID,
    SITE_IMAGING_FORM_OID,
    EdcQuery,
    EdcRecord,
    ItemValue,
    QueryStatus,
    RecordStatus,
    Signature,
    SubjectInfo,
    VisitInfo,
)
from tools.edc.protocol import Edc

if TYPE_CHECKING:
    from tools.edc.rws import RwsEdc
    from triallens.settings import Settings

__all__ = [
    "AI_FINDINGS_FORM_OID",
    "SITE_IMAGING_FORM_OID",
    "Edc",
    "EdcQuery",
    "EdcRecord",
    "EmbeddedEdc",
    "ItemValue",
    "QueryStatus",
    "RecordStatus",
    "RwsEdc",
    "Signature",
    "SubjectInfo",
    "VisitInfo",
    "open_edc",
]


def open_edc(settings: Settings) -> Edc:
    """The EDC the settings name: Rave Web Services, or the embedded one.

    Raises
    ------
    ConfigurationError
        When an RWS URL is set without a user name and password.
    """
    if not settings.edc_rws_url:
        return EmbeddedEdc(settings.resolved_edc_url)
    from tools.edc.rws import RwsEdc
    from triallens.errors import ConfigurationError

    if not settings.edc_rws_username or settings.edc_rws_password is None:
        raise ConfigurationError(
            "TRIALLENS_EDC_RWS_URL is set; also set TRIALLENS_EDC_RWS_USERNAME "
            "and TRIALLENS_EDC_RWS_PASSWORD (the web-service user)"
        )
    return RwsEdc(
        settings.edc_rws_url,
        settings.edc_rws_username,
        settings.edc_rws_password.get_secret_value(),
        settings.trial_id,
        environment=settings.edc_rws_environment,
        timeout_s=30.0,
    )


def __getattr__(name: str) -> object:
    if name == "RwsEdc":
        from tools.edc.rws import RwsEdc

        return RwsEdc
    raise AttributeError(name)
