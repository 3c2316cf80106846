"""Fake but realistic identities of synthetic sites and patients, unique per site and seed.

The generated headers carry what a real PACS export does (patient name, ID, birth date,
accession number, institution, physicians, station, dates), so tests can prove that
none of it ever leaves a site. Identities come from their own random stream: the
pixel and label streams, hence what the models learn, are the same as without them.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.dicom.writer import PatientInfo, SeriesInfo, StudyInfo, make_uid
from simulations.synth.sites import MAX_SITES

__all__ = [
    "PatientIdentity",
    "SiteIdentity",
    "identifying_values",
    "patient_identity",
    "patient_record",
    "site_identity",
    "skip_legacy_visit_draws",
    "study_context",
    "study_record",
]

_FAMILY = (
    "ABERNATHY", "BALDWIN", "CASTELLANOS", "DRUMMOND", "EKWUEME", "FAIRWEATHER",
    "GALLAGHER", "HOLLOWAY", "IVANOVA", "JANSSENS", "KOWALCZYK", "LINDQVIST",
    "MACALLISTER", "NAKAMURA", "OYELARAN", "PETRAKIS", "QUINTERO", "RASMUSSEN",
    "SCHWEITZER", "TANAKA", "UNDERHILL", "VASQUEZ", "WHITLOCK", "XENAKIS",
    "YAMAMOTO", "ZIELINSKI", "ACHTERBERG", "BRANNIGAN", "CHAUDHRY", "DEVEREUX",
    "ESPINOZA", "FITZGERALD", "GRUENWALD", "HARGREAVES", "IGWEBUIKE", "JOHANSSON",
    "KARAGIANNIS", "LEFEBVRE", "MONTGOMERY", "NOVAKOVIC", "OSTROWSKI", "PEMBERTON",
    "QUARTERMAINE", "ROSENTHAL", "SZYMANSKI", "THORVALDSEN", "UCHIDA", "VANDERMEER",
    "WOJCIECHOWSKI", "YILDIRIM", "ZAMBRANO", "ARCHAMBAULT", "BJORNSTAD", "CORCORAN",
    "DOMINGUEZ", "ELLSWORTH", "FERREIRA", "GOLDBERG", "HUTCHINSON", "INGRAM",
)  # fmt: skip
_GIVEN = (
    "ADELAIDE", "BARNABY", "CORNELIA", "DESMOND", "EVANGELINE", "FLORIAN", "GWENDOLYN",
    "HORATIO", "ISOLDE", "JEREMIAH", "KATARINA", "LEOPOLD", "MARGUERITE", "NATHANIEL",
    "OCTAVIA", "PERCIVAL", "ROSALIND", "SEBASTIAN", "THEODORA", "ULRICH", "VALENTINA",
    "WINIFRED", "XAVIER", "YOLANDA", "ZACHARIAS", "AUGUSTINE", "BEATRIX", "CASIMIR",
    "DULCIE", "EZEKIEL", "FREDERIKA", "GIDEON", "HENRIETTA", "IGNATIUS", "JOSEPHINE",
    "LAZARUS", "MIRABEL", "OSWALD", "PRUDENCE", "REGINALD", "SERAPHINA", "TOBIAS",
    "URSULA", "VIRGIL", "WILHELMINA", "ALOYSIUS", "BERNADETTE", "CLEMENTINE",
)  # fmt: skip
_INITIALS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAME_SPACE = len(_FAMILY) * len(_GIVEN) * len(_INITIALS)
#: Patient names are unique over all sites while a site has at most this many patients.
MAX_UNIQUE_PATIENTS = _NAME_SPACE // MAX_SITES
_TOWNS = (
    "Ashbury", "Brackenfield", "Corrowdale", "Dunmerrow", "Elverstone", "Fallowmere",
    "Glenharrow", "Hollinsworth",
)  # fmt: skip
_KINDS = (
    "General Hospital", "University Medical Center", "Royal Infirmary", "Memorial Hospital",
    "Regional Clinic", "Children's Hospital", "Cancer Institute", "District Hospital",
)  # fmt: skip
_STREETS = ("Harbour Road", "Kingsway", "Orchard Lane", "Mill Street", "Station Avenue")
_EPOCH = dt.date(2023, 1, 2)


@dataclass(frozen=True)
class SiteIdentity:
    """What a site's headers say about the hospital and its scanner room."""

    institution_name: str
    institution_address: str
    department: str
    station_name: str
    code: str


@dataclass(frozen=True)
class PatientIdentity:
    """One patient's identifying header values and the visit's dates and times."""

    patient_name: str
    birth_date: str
    accession_number: str
    referring_physician: str
    operator: str
    study_date: str
    study_time: str


def site_identity(site_code: str, seed: int) -> SiteIdentity:
    """The hospital of site ``SITE<n>``: one of 64 distinct institutions, rotated by seed."""
    index = int(site_code.removeprefix("SITE")) - 1
    slot = (index + seed) % (len(_TOWNS) * len(_KINDS))
    town, kind = _TOWNS[slot // len(_KINDS)], _KINDS[slot % len(_KINDS)]
    rng = _rng(seed, site_code)
    initials = "".join(word[0] for word in f"{town} {kind}".split() if word[0].isalpha())
    code = f"{initials}{slot:02d}"
    street = f"{int(rng.integers(2, 400))} {_STREETS[int(rng.integers(len(_STREETS)))]}"
    return SiteIdentity(
        institution_name=f"{town} {kind}",
        institution_address=f"{street}, {town} {code}-{int(rng.integers(1000, 9999))}",
        department=f"Radiology {code}",
        station_name=f"{code}CT{int(rng.integers(10, 99))}",
        code=code,
    )


def patient_identity(site_code: str, seed: int, number: int) -> PatientIdentity:
    """Patient ``number`` (1, 2, ...) of a site: a name no other site's patient has."""
    index = int(site_code.removeprefix("SITE")) - 1
    site = site_identity(site_code, seed)
    rng = _rng(seed, site_code, number)
    name = _person((index + MAX_SITES * (number - 1)) % _NAME_SPACE, seed)
    referring = _person(int(rng.integers(_NAME_SPACE)), seed + 1, doctor=True)
    operator = _person(int(rng.integers(_NAME_SPACE)), seed + 2)
    birth = dt.date(1935, 1, 1) + dt.timedelta(days=int(rng.integers(0, 65 * 365)))
    study = _EPOCH + dt.timedelta(days=int(rng.integers(0, 730)))
    # Scanners write fractions of seconds; they also make times unlikely to match by chance.
    clock = f"{int(rng.integers(7, 19)):02d}{int(rng.integers(60)):02d}{int(rng.integers(60)):02d}"
    return PatientIdentity(
        patient_name=name,
        birth_date=birth.strftime("%Y%m%d"),
        accession_number=f"{site.code}{study:%y}{number:06d}",
        referring_physician=referring,
        operator=operator,
        study_date=study.strftime("%Y%m%d"),
        study_time=f"{clock}.{int(rng.integers(1000, 1_000_000)):06d}",
    )


def skip_legacy_visit_draws(rng: np.random.Generator) -> None:
    """Draw what a CT patient's visit date and time once took from its pixel stream.

    Dates and times now come from the identity stream; drawing the old values (and
    dropping them) keeps every later draw, so every image and label, as it was.
    """
    rng.integers(0, 730)
    rng.integers(7, 19)
    rng.integers(0, 60)


def _person(slot: int, seed: int, doctor: bool = False) -> str:
    """A DICOM person name; a seeded bijection maps distinct slots to distinct names."""
    step = 7919  # prime, and no factor of the name space: slot -> name is one-to-one
    shuffled = (slot * step + seed * 104_729) % _NAME_SPACE
    family, rest = divmod(shuffled, len(_GIVEN) * len(_INITIALS))
    given, initial = divmod(rest, len(_INITIALS))
    name = f"{_FAMILY[family]}^{_GIVEN[given]}^{_INITIALS[initial]}"
    return f"{name}^DR" if doctor else name


def _rng(seed: int, site_code: str, *keys: int) -> np.random.Generator:
    """A stream of its own ("identity"), apart from every pixel and label stream."""
    return np.random.default_rng([seed, 1_000_003, *site_code.encode(), *keys])


def identifying_values(data_root: Path) -> dict[str, frozenset[str]]:
    """Every identifying header value generated for the sites under ``data_root``.

    Recomputed from each site's ``site.json`` (seed, site code, patient count), not read
    from the DICOM files, so a test can check the files against it and then search any
    output for these values.

    Returns
    -------
    dict[str, frozenset[str]]
        Site folder name -> patient names, birth dates, accession numbers, patient IDs,
        physicians, operators, study dates and times, institution name and address,
        department and station name.
    """
    values: dict[str, frozenset[str]] = {}
    for site_json in sorted(Path(data_root).glob("*/site.json")):
        summary = json.loads(site_json.read_text())
        code, seed = str(summary["profile"]["code"]), int(summary["seed"])
        site = site_identity(code, seed)
        found = {
            site.institution_name,
            site.institution_address,
            site.department,
            site.station_name,
        }
        for number in range(1, int(summary["counts"]["patients"]) + 1):
            person = patient_identity(code, seed, number)
            found.update(
                {
                    f"{code}-P{number:04d}",
                    person.patient_name,
                    person.birth_date,
                    person.accession_number,
                    person.referring_physician,
                    person.operator,
                    person.study_date,
                    person.study_time,
                }
            )
        values[site_json.parent.name] = frozenset(found)
    return values


def patient_record(code: str, seed: int, number: int, sex: str) -> PatientInfo:
    """The DICOM patient of site `code`'s patient `number`: its generated identity, kept."""
    person = patient_identity(code, seed, number)
    return PatientInfo(
        patient_id=f"{code}-P{number:04d}",
        patient_name=person.patient_name,
        sex=sex,
        birth_date=person.birth_date,
        identity_removed=False,
    )


def study_record(code: str, seed: int, number: int, uid: str, description: str) -> StudyInfo:
    """The DICOM study `uid` of site `code`'s patient `number`, dated by its identity."""
    person = patient_identity(code, seed, number)
    return StudyInfo(
        uid=uid,
        date=person.study_date,
        time=person.study_time,
        study_id=f"S{number:04d}",
        accession_number=person.accession_number,
        description=description,
        referring_physician=person.referring_physician,
        operator=person.operator,
    )


def study_context(
    key: tuple[object, ...],
    code: str,
    seed: int,
    number: int,
    sex: str,
    descriptions: tuple[str, str, str],
) -> tuple[PatientInfo, StudyInfo, SeriesInfo]:
    """Patient, study and series number 1 of one generated patient.

    `key` seeds the UIDs (study, series, frame of reference); `descriptions` are the
    study's, the series' and its modality.
    """
    study_description, series_description, modality = descriptions
    series = SeriesInfo(
        uid=make_uid(*key, "series"),
        number=1,
        modality=modality,
        description=series_description,
        frame_of_reference_uid=make_uid(*key, "frame-of-reference"),
    )
    study = study_record(code, seed, number, make_uid(*key, "study"), study_description)
    return patient_record(code, seed, number, sex), study, series
