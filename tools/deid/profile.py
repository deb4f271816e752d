"""The PS3.15 Annex E attribute table, loaded from the data file beside it.

``annex_e_table.txt`` holds, for every attribute of Table E.1-1, the Basic
Application Level Confidentiality Profile action and the action under each
option. This module reads it once and answers "what happens to this tag".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["OPTION_COLUMNS", "ProfileEntry", "entry_for", "load_profile"]

OPTION_COLUMNS = (
    "full_dates",
    "modified_dates",
    "clean_descriptors",
    "retain_uids",
    "retain_device_id",
    "retain_patient_chars",
    "retain_institution_id",
    "clean_graphics",
    "clean_structured_content",
    "retain_safe_private",
)


@dataclass(frozen=True)
class ProfileEntry:
    """One row of Table E.1-1.

    ``tag`` is eight hex digits, or a pattern with ``x`` for any digit, or
    ``odd`` for private attributes. ``options`` maps an option column to its
    action where the option changes the Basic Profile action.
    """

    tag: str
    name: str
    in_standard_iod: bool
    basic: str
    options: dict[str, str]

    def action(self, enabled_options: frozenset[str]) -> str:
        """The action with the given options on (an option's action wins)."""
        for option in OPTION_COLUMNS:
            if option in enabled_options and option in self.options:
                return self.options[option]
        return self.basic


@dataclass(frozen=True)
class Profile:
    exact: dict[int, ProfileEntry]
    patterns: tuple[tuple[int, int, ProfileEntry], ...]
    private: ProfileEntry
    entries: tuple[ProfileEntry, ...]


@cache
def load_profile() -> Profile:
    """Parse the Annex E table shipped with this package."""
    text = (
        resources.files(__package__)
        .joinpath("annex_e_table.txt")
        .read_text(encoding="utf-8")
    )
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    header = lines[0].split("\t")
    exact: dict[int, ProfileEntry] = {}
    patterns: list[tuple[int, int, ProfileEntry]] = []
    private: ProfileEntry | None = None
    entries: list[ProfileEntry] = []
    for line in lines[1:]:
        cells = line.split("\t")
        cells += [""] * (len(header) - len(cells))
        row = dict(zip(header, cells, strict=True))
        options = {c: row[c] for c in OPTION_COLUMNS if row.get(c)}
        entry = ProfileEntry(
            tag=row["tag"],
            name=row["name"],
            in_standard_iod=row["std_iod"] == "Y",
            basic=row["basic"],
            options=options,
        )
        entries.append(entry)
        if entry.tag == "odd":
            private = entry
        elif "x" in entry.tag:
            mask = int("".join("0" if c == "x" else "F" for c in entry.tag), 16)
            value = int(entry.tag.replace("x", "0"), 16)
            patterns.append((mask, value, entry))
        else:
            exact[int(entry.tag, 16)] = entry
    if private is None:
        raise RuntimeError("annex_e_table.txt has no row for private attributes")
    return Profile(exact, tuple(patterns), private, tuple(entries))


def entry_for(tag: int) -> ProfileEntry | None:
    """The table row for a tag, or None when the standard does not list it."""
    profile = load_profile()
    if (tag >> 16) % 2 == 1:
        return profile.private
    found = profile.exact.get(tag)
    if found is not None:
        return found
    for mask, value, entry in profile.patterns:
        if tag & mask == value:
            return entry
    return None
