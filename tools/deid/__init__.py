"""PS3.15 de-identification: the Basic Profile as data, UID remapping, quarantine.

Entry point: ``Deidentifier(secret, trial_id, sponsor=None, ...)`` with
``deidentify(ds, subject_id=None, site_id=None)`` and ``remap_uid(uid)``.
"""

from tools.deid.burned_in import burned_in_reason
from tools.deid.deidentifier import BurnedInTextError, Deidentifier, SafePrivateTag
from tools.deid.pixels import PixelCleaningRule, load_rules

__all__ = [
    "BurnedInTextError",
    "Deidentifier",
    "PixelCleaningRule",
    "SafePrivateTag",
    "burned_in_reason",
    "load_rules",
]
