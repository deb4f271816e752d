"""The TrialLens exception tree.

::

    TrialLensError                 anything TrialLens reports to a person
    ├── ConfigurationError         a setting is missing or contradictory
    ├── PacsError                  the PACS could not be reached or answered badly
    │   └── StudyNotFoundError     no such study in the PACS
    ├── DicomInputError            a file is not DICOM or cannot be decoded
    ├── GeometryError              no millimetre measurement is possible
    ├── DeidentificationError      a file cannot be de-identified safely
    ├── ModelError                 a model bundle is missing or unusable
    ├── EdcError                   the EDC refused or failed a request
    │   └── ConflictError          someone else changed the record first
    ├── AuthorizationError         the user's role does not allow the action
    ├── AuthenticationError        the credentials or signature are wrong
    ├── NotFoundError              an unknown subject, study, finding, case
    └── LlmError                   the LLM server failed or refused

Messages carry context (study, subject, visit by their de-identified IDs) and
never PHI. Every error says what the user can do next where that is known.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "ConfigurationError",
    "ConflictError",
    "DeidentificationError",
    "DicomInputError",
    "EdcError",
    "GeometryError",
    "LlmError",
    "ModelError",
    "NotFoundError",
    "PacsError",
    "StudyNotFoundError",
    "TrialLensError",
]


class TrialLensError(Exception):
    """Base of every error TrialLens reports to a person."""


class ConfigurationError(TrialLensError):
    pass


class PacsError(TrialLensError):
    pass


class StudyNotFoundError(PacsError):
    pass


class DicomInputError(TrialLensError):
    pass


class GeometryError(TrialLensError):
    pass


class DeidentificationError(TrialLensError):
    pass


class ModelError(TrialLensError):
    pass


class EdcError(TrialLensError):
    pass


class ConflictError(EdcError):
    pass


class AuthorizationError(TrialLensError):
    pass


class AuthenticationError(TrialLensError):
    pass


class NotFoundError(TrialLensError):
    pass


class LlmError(TrialLensError):
    pass
