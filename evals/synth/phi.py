"""Planted identifying information: realistic, fictitious, deterministic.

Every value here is invented; none belongs to a real person or hospital. The
generator records each planted value in ``ground_truth.json`` so that the
de-identification can be checked for every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

__all__ = ["SITES", "Site", "subject_phi", "visit_phi"]


@dataclass(frozen=True)
class Site:
    site_id: str
    site_name: str
    institution: str
    address: str
    department: str
    station: str
    mrn_prefix: str


SITES: tuple[Site, ...] = (
    Site(
        "101",
        "Northbridge Oncology Centre",
        "Northbridge University Hospital",
        "14 Harrowgate Road, Northbridge NB4 7QT, United Kingdom",
        "Radiology",
        "NBH-CT2",
        "NB",
    ),
    Site(
        "102",
        "Klinikum Weißenfeld",
        "Städtisches Klinikum Weißenfeld",
        "Lindenallee 31, 06667 Weißenfeld, Deutschland",
        "Institut für Radiologie",
        "KWF-MR1",
        "KW",
    ),
    Site(
        "103",
        "Hôpital Sainte-Aurélie",
        "Centre Hospitalier Sainte-Aurélie",
        "8 rue des Tanneurs, 69007 Lyon, France",
        "Service d'imagerie médicale",
        "CHSA-SCAN3",
        "SA",
    ),
)

# (family, given, sex). Mostly non-ASCII, as names at European sites are.
_NAMES: tuple[tuple[str, str, str], ...] = (
    ("Müller", "Jürgen", "M"),
    ("Østergaard", "Søren", "M"),
    ("Nguyễn", "Thị Hoa", "F"),
    ("Ibáñez", "José María", "M"),
    ("Dvořák", "Zdeňka", "F"),
    ("Łukasiewicz", "Małgorzata", "F"),
    ("O'Connor", "Siobhán", "F"),
    ("Papadopoulou", "Eléni", "F"),
    ("Yılmaz", "Ayşe", "F"),
    ("Schäfer", "Björn", "M"),
    ("García Núñez", "Lucía", "F"),
    ("Novák", "Tomáš", "M"),
    ("Whitfield", "Margaret", "F"),
    ("Okonkwo", "Chidi", "M"),
    ("Lindqvist", "Åsa", "F"),
    ("Brennan", "Patrick", "M"),
)

_PHYSICIANS: tuple[str, ...] = (
    "Hargreaves^Eleanor^^Dr.",
    "Köhler^Matthias^^Dr.",
    "Lefèvre^Amélie^^Dr.",
    "Rasmussen^Jens^^Dr.",
    "Ferreira^Inês^^Dr.",
)

_OPERATORS: tuple[str, ...] = ("Patel^Anjali", "Brückner^Heike", "Moreau^Théo")

_STREETS: tuple[str, ...] = (
    "Rosenstraße 12",
    "22 Willow Crescent",
    "Ulica Słoneczna 5",
    "Calle de la Peña 18",
    "Kirkegårdsvej 3",
)


def subject_phi(index: int, site: Site, rng: np.random.Generator) -> dict[str, str]:
    """Patient-level identifying values of one subject."""
    family, given, sex = _NAMES[index % len(_NAMES)]
    if index >= len(_NAMES):
        family = f"{family}-{_NAMES[(index * 7) % len(_NAMES)][0]}"
    birth = date(1948, 1, 1) + timedelta(days=int(rng.integers(0, 365 * 30)))
    mrn = f"{site.mrn_prefix}{int(rng.integers(10_000_000, 99_999_999))}"
    street = _STREETS[int(rng.integers(0, len(_STREETS)))]
    phone = f"+44 20 7946 {int(rng.integers(0, 10_000)):04d}"
    return {
        "PatientName": f"{family}^{given}",
        "PatientID": mrn,
        "IssuerOfPatientID": site.institution,
        "PatientBirthDate": birth.strftime("%Y%m%d"),
        "PatientSex": sex,
        "PatientAddress": f"{street}, {site.address.split(', ', 1)[1]}",
        "PatientTelephoneNumbers": phone,
        "PatientSize": f"{1.55 + 0.3 * float(rng.random()):.2f}",
        "PatientWeight": f"{55 + int(rng.integers(0, 45))}",
        "InstitutionName": site.institution,
        "InstitutionAddress": site.address,
        "InstitutionalDepartmentName": site.department,
        "StationName": site.station,
        "ReferringPhysicianName": _PHYSICIANS[index % len(_PHYSICIANS)],
        "PerformingPhysicianName": _PHYSICIANS[(index + 2) % len(_PHYSICIANS)],
        "OperatorsName": _OPERATORS[index % len(_OPERATORS)],
    }


def visit_phi(
    patient: dict[str, str], study_date: date, rng: np.random.Generator
) -> dict[str, str]:
    """Study-level identifying values (accession, study ID, age at the visit)."""
    birth = date(
        int(patient["PatientBirthDate"][:4]),
        int(patient["PatientBirthDate"][4:6]),
        int(patient["PatientBirthDate"][6:]),
    )
    age = (study_date - birth).days // 365
    values = dict(patient)
    values.update(
        {
            "AccessionNumber": f"A{study_date:%y%m%d}{int(rng.integers(1000, 9999))}",
            "StudyID": f"{int(rng.integers(10_000, 99_999))}",
            "PatientAge": f"{age:03d}Y",
        }
    )
    return values
