# ruff: noqa: E501  (value tables read better unwrapped)
"""A labelled, hard-on-purpose set of synthetic US clinical notes (HIPAA Safe Harbor categories).

Deterministic: ``generate(split, n, seed)`` returns the same notes for the same arguments. Every value is drawn
from the lists in this file (names from many cultures, streets, towns including the US territories PR, GU, VI,
AS and MP, organisations) or built from digits by the seeded generator; nothing is real.

Two splits that share no value and no label wording:

- ``dev``: even-indexed entries of every pool and every label-style list, layout variant A of each note type;
- ``held-out``: odd-indexed entries and layout variant B, and a different seed stream.

Rules are written against ``dev`` only (``benchmarks/pii_accuracy.py --errors`` prints dev errors only); the
held-out figures are read as totals.

Records have the presidio-research layout: ``full_text``, ``spans[{entity_type, entity_value,
start_position, end_position}]``, ``template_id`` (note type and variant), so one scorer reads both sets.
Gold ``entity_type`` values are Safe Harbor categories (``CATEGORIES``) plus ``PROFESSION``, which is labelled
but is not PHI and is not counted.
"""

from __future__ import annotations

import calendar
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["CATEGORIES", "NOTE_TYPES", "generate"]

CATEGORIES = (
    "NAME",
    "GEOGRAPHIC",
    "ORGANIZATION",
    "DATE",
    "AGE",
    "PHONE_FAX",
    "EMAIL",
    "SSN",
    "MRN",
    "HEALTH_PLAN_ACCOUNT",
    "LICENSE",
    "DEVICE_VEHICLE",
    "URL_IP",
    "OTHER_ID",
)

# --- value pools (split by index parity: dev takes even entries, held-out odd) ------------------------
GIVEN = [
    "Maria",
    "Wei",
    "Aaliyah",
    "Dmitri",
    "Oluwaseun",
    "Priya",
    "José",
    "Hiroshi",
    "Fatima",
    "Liam",
    "Minh Anh",
    "Siosaia",
    "Chidinma",
    "Tomás",
    "Ji-woo",
    "Anastasia",
    "Mohammed",
    "Grace",
    "Rangi",
    "Keala",
    "Bartholomew",
    "Xiomara",
    "Yusuf",
    "Ingrid",
    "Kwame",
    "Leilani",
    "Rosa",
    "Arjun",
    "Hope",
    "Sung-min",
    "Bogdan",
    "Amara",
    "Joy",
    "Carmen",
    "Tevita",
    "Zainab",
    "Rahul",
    "Mei-Ling",
    "Faith",
    "Guadalupe",
    "Oksana",
    "Emeka",
    "Kai",
    "Lucía",
    "Abdirahman",
    "Precious",
    "Hemi",
    "Svetlana",
    "Dong-hyun",
    "Marisol",
    "Olamide",
    "Ruth",
    "Kenji",
    "Esperanza",
    "Magnus",
    "Ayesha",
    "Tiago",
    "Amelia",
    "Kalani",
    "Yaw",
    "Noor",
    "Kateryna",
    "Darnell",
    "Thandiwe",
    "Paulo",
    "Sione",
    "Ximena",
    "Baraka",
    "Lorenzo",
    "Mahina",
]
FAMILY = [
    "Rodríguez",
    "Zhang",
    "Okonkwo",
    "Petrov",
    "Adeyemi",
    "Raghunathan",
    "Tanaka",
    "Al-Sayed",
    "O'Brien",
    "Nguyen",
    "Fifita",
    "Eze",
    "Vázquez",
    "Kim",
    "Kuznetsova",
    "Haddad",
    "Mensah",
    "Kahananui",
    "Castillo",
    "Patel",
    "Young",
    "Cruz",
    "Kowalczyk",
    "Abebe",
    "Santos",
    "Park",
    "Hernández-Ortiz",
    "Mwangi",
    "Bell",
    "Tupou",
    "Sánchez",
    "Yamamoto",
    "Price",
    "Quiñones",
    "Iyer",
    "Lindqvist",
    "Baptiste",
    "Chamorro",
    "King",
    "Delgado",
    "Oyelaran",
    "Moreau",
    "Tagaloa",
    "Friedman",
    "Wójcik",
    "Mahmoud",
    "Figueroa",
    "Ramírez",
    "Nakamura",
    "Ahn",
    "Thompson",
    "Sablan",
    "Camacho",
    "Ortiz",
    "Charles",
    "Hassan",
    "Lee",
    "Leota",
    "Ferreira",
    "Gutiérrez",
    "Brown",
    "MacLeod",
    "Sato",
    "Ogunleye",
    "Torres",
    "Rosario",
    "Aguon",
    "Novak",
    "Flores",
    "Mendiola",
]
STREET_NAMES = [
    "Maple",
    "Calle Luna",
    "Marine Corps",
    "Kamehameha",
    "Oak Ridge",
    "Ponce de León",
    "Route 9",
    "Kingshill",
    "Lincoln",
    "Calle Loíza",
    "Farenholt",
    "Elm",
    "Ashford",
    "Chalan Pale Arnold",
    "Cedar Hollow",
    "Magnolia",
    "Calle Sol",
    "Beach Road",
    "Vista Verde",
    "Saint John",
    "Fountain",
    "Middle Road",
    "Pine",
    "Harmon Loop",
    "Martin Luther King Jr",
    "Calle San Francisco",
    "Riverside",
    "Estate Bovoni",
    "Bayview",
    "Veterans",
]
STREET_TYPES = [
    "St",
    "Street",
    "Ave",
    "Avenue",
    "Blvd",
    "Rd",
    "Road",
    "Dr",
    "Drive",
    "Ln",
    "Lane",
    "Ct",
    "Way",
    "Pl",
    "Hwy",
    "Pkwy",
    "Terrace",
    "Circle",
]
# (town, state or territory, ZIP prefix)
TOWNS = [
    ("San Juan", "PR", "009"),
    ("Hagåtña", "GU", "969"),
    ("Charlotte Amalie", "VI", "008"),
    ("Pago Pago", "AS", "967"),
    ("Saipan", "MP", "969"),
    ("Bayamón", "PR", "009"),
    ("Dededo", "GU", "969"),
    ("Christiansted", "VI", "008"),
    ("Tafuna", "AS", "967"),
    ("Ponce", "PR", "007"),
    ("Columbus", "OH", "432"),
    ("Tamuning", "GU", "969"),
    ("Frederiksted", "VI", "008"),
    ("Mayagüez", "PR", "006"),
    ("Albuquerque", "NM", "871"),
    ("Caguas", "PR", "007"),
    ("Springfield", "IL", "627"),
    ("Garapan", "MP", "969"),
    ("Hilo", "HI", "967"),
    ("Brownsville", "TX", "785"),
    ("Dearborn", "MI", "481"),
    ("Fresno", "CA", "937"),
    ("Lowell", "MA", "018"),
    ("Anchorage", "AK", "995"),
    ("Savannah", "GA", "314"),
    ("Minneapolis", "MN", "554"),
    ("Tulsa", "OK", "741"),
    ("Yonkers", "NY", "107"),
]
ORG_STEMS = [
    "Mercy",
    "Saint Brigid",
    "Guam Memorial",
    "Good Samaritan",
    "Ashford",
    "Pilar",
    "Kapiolani",
    "Lakeshore",
    "Schneider",
    "Auxilio",
    "Riverbend",
    "Northside",
    "Lyndon B. Johnson",
    "Evergreen",
    "San Lucas",
    "Harborview",
    "Commonwealth",
    "Sagrado Corazón",
    "Cedar Valley",
    "Pacific Islands",
    "Juan F. Luis",
    "Bluebonnet",
    "Presbyterian",
    "Tri-County",
]
ORG_KINDS = [
    "General Hospital",
    "Medical Center",
    "Regional Medical Center",
    "Community Health Center",
    "Family Practice",
    "Pediatrics, PLLC",
    "Imaging Associates",
    "Clinical Laboratories",
    "Health System",
    "Rehabilitation Institute",
    "Urgent Care",
    "Dialysis Center",
    "Cardiology Group",
    "Hospital",
    "Behavioral Health",
    "Women's Clinic",
]
INSURERS = [
    "Island Health Plan",
    "Blue Horizon Mutual",
    "Caribe Salud",
    "Pacific Coastal Health",
    "TriStar Benefit Plan",
    "Liberty Care Alliance",
    "Keystone Health Partners",
    "Medicaid",
    "Medicare Advantage",
    "Triple Peak Insurance",
]
PROFESSIONS = [
    "cardiologist",
    "registered nurse",
    "nurse practitioner",
    "physical therapist",
    "hospitalist",
    "social worker",
    "pharmacist",
    "radiologist",
    "case manager",
    "endocrinologist",
    "attending physician",
    "physician assistant",
]
DOMAINS = [
    "mail.example.com",
    "example.org",
    "clinic.example.net",
    "inbox.example.com",
    "correo.example.pr",
    "health.example.gu",
]
JOB_CONTEXT = [
    "retired teacher",
    "fisherman",
    "bus driver",
    "accountant",
    "student",
    "construction worker",
    "homemaker",
    "software engineer",
]

# Clinical vocabulary and hard negatives that are not PHI.
COMPLAINTS = [
    "chest pain",
    "shortness of breath",
    "abdominal pain",
    "dizziness",
    "fever and cough",
    "syncope",
    "low back pain",
    "palpitations",
    "headache",
    "hyperglycemia",
]
CONDITIONS = [
    "type 2 diabetes mellitus",
    "hypertension",
    "CKD stage 3",
    "COPD",
    "atrial fibrillation",
    "asthma",
    "hyperlipidemia",
    "GERD",
    "hypothyroidism",
    "major depressive disorder",
]
MEDS = [
    "metformin 500 mg PO BID",
    "lisinopril 10 mg daily",
    "atorvastatin 40 mg qHS",
    "apixaban 5 mg BID",
    "albuterol 90 mcg 2 puffs q4h PRN",
    "levothyroxine 75 mcg daily",
    "insulin glargine 20 units qHS",
    "sertraline 50 mg daily",
]
LABS = [
    "WBC 7.8 x10^3/uL",
    "Hgb 12.9 g/dL",
    "Plt 245",
    "Na 138",
    "K 4.1",
    "Cr 1.32",
    "BUN 22",
    "Glucose 212",
    "A1c 8.4%",
    "TSH 2.1",
    "Troponin I <0.01",
    "LDL 131",
]
VITALS = [
    "BP 142/88",
    "HR 96",
    "RR 18",
    "Temp 98.9 F",
    "SpO2 95% on RA",
    "Wt 84.2 kg",
    "BMI 31.4",
    "Pain 6/10",
]
CODES = ["ICD-10 E11.9", "ICD-10: I10", "CPT 99214", "CPT code 93000", "LOINC 4548-4", "NDC 0093-7214-01"]
HEADERS = [
    "Patient",
    "Email",
    "Laboratory",
    "Results",
    "Assessment",
    "Plan",
    "Medications",
    "Allergies",
    "History",
    "Impression",
    "Disposition",
    "Vitals",
    "Follow-up",
    "Review of Systems",
]


@dataclass
class _Ctx:
    rng: random.Random
    split: int  # 0 dev, 1 held-out

    def pick(self, options: Sequence[str]) -> str:
        half = list(options[self.split :: 2]) or list(options)
        return self.rng.choice(half)

    def style(self, options: Sequence[str]) -> str:
        return self.pick(options)

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def letters(self, n: int) -> str:
        return "".join(self.rng.choice(string.ascii_uppercase) for _ in range(n))


@dataclass
class _Note:
    parts: list[str] = field(default_factory=list)
    spans: list[dict[str, object]] = field(default_factory=list)
    length: int = 0

    def t(self, text: str) -> _Note:
        self.parts.append(text)
        self.length += len(text)
        return self

    def phi(self, category: str, value: str) -> _Note:
        self.spans.append(
            {
                "entity_type": category,
                "entity_value": value,
                "start_position": self.length,
                "end_position": self.length + len(value),
            }
        )
        return self.t(value)

    def text(self) -> str:
        return "".join(self.parts)


# --- value builders ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Person:
    given: str
    family: str
    initial: str


def _person(c: _Ctx) -> _Person:
    return _Person(c.pick(GIVEN), c.pick(FAMILY), c.rng.choice(string.ascii_uppercase))


def _name(c: _Ctx, p: _Person, style: str | None = None) -> str:
    style = style or c.rng.choice(
        ["first last", "first last", "last, first", "first m. last", "CAPS", "last, first m"]
    )
    if style == "first last":
        return f"{p.given} {p.family}"
    if style == "last, first":
        return f"{p.family}, {p.given}"
    if style == "first m. last":
        return f"{p.given} {p.initial}. {p.family}"
    if style == "last, first m":
        return f"{p.family}, {p.given} {p.initial}"
    return f"{p.family.upper()}, {p.given.upper()}"


def _date(c: _Ctx, year: int | None = None) -> str:
    y = year or c.rng.randint(2019, 2025)
    m, d = c.rng.randint(1, 12), c.rng.randint(1, 28)
    month = calendar.month_name[m]
    fmt = c.rng.randrange(12)
    return [
        f"{m:02d}/{d:02d}/{y}",
        f"{m}/{d}/{y % 100:02d}",
        f"{y}-{m:02d}-{d:02d}",
        f"{d:02d}-{month[:3]}-{y}",
        f"{month[:3]} {d}, {y}",
        f"{month} {d}, {y}",
        f"{d} {month} {y}",
        f"{m:02d}.{d:02d}.{y}",
        f"{y}{m:02d}{d:02d}",
        f"{month.upper()} {d}, {y}",
        f"{d}{month[:3].upper()}{y}",
        f"{m}/{d}",
    ][fmt]


def _dob(c: _Ctx) -> str:
    return _date(c, c.rng.randint(1931, 2004))


def _time(c: _Ctx) -> str:
    return f"{c.rng.randint(0, 23):02d}:{c.rng.randint(0, 59):02d}"


def _age(c: _Ctx) -> tuple[str, str, str]:
    """(before, age digits, after): the digits are the labelled span."""
    n = str(c.rng.choice([c.rng.randint(19, 88), c.rng.randint(90, 104)]))
    sex = c.rng.choice(["male", "female", "man", "woman"])
    letter = "F" if sex in {"female", "woman"} else "M"
    form = c.rng.randrange(10)
    return [
        ("", n, f"-year-old {sex}"),
        ("", n, f" year old {sex}"),
        ("", n, f" y/o {sex}"),
        ("", n, f"yo {letter}"),
        ("", n, f" yo {sex}"),
        ("", n, f"-yr-old {sex}"),
        ("", n, letter),
        ("aged ", n, f", {sex}"),
        ("", n, f" y.o. {sex}"),
        ("", n, f" years of age, {sex}"),
    ][form]


def _phone(c: _Ctx, area: str | None = None) -> str:
    a = area or c.rng.choice(["787", "939", "671", "340", "684", "670", "614", "505", "212", "907"])
    x, y = c.digits(3), c.digits(4)
    return c.rng.choice(
        [
            f"({a}) {x}-{y}",
            f"{a}-{x}-{y}",
            f"{a}.{x}.{y}",
            f"+1 {a} {x} {y}",
            f"1-{a}-{x}-{y}",
            f"({a}){x}-{y}",
            f"{a}-{x}-{y} x{c.digits(3)}",
        ]
    )


def _ssn(c: _Ctx) -> str:
    area = c.rng.choice([c.rng.randint(1, 665), c.rng.randint(667, 899)])
    g, s = c.rng.randint(1, 99), c.rng.randint(1, 9999)
    return c.rng.choice(
        [f"{area:03d}-{g:02d}-{s:04d}", f"{area:03d} {g:02d} {s:04d}", f"{area:03d}{g:02d}{s:04d}"]
    )


def _npi(c: _Ctx) -> str:
    while True:
        base = c.rng.choice("12") + c.digits(8)
        for check in string.digits:
            if _luhn("80840" + base + check):
                return base + check


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _mrn(c: _Ctx) -> str:
    return c.rng.choice(
        [
            c.digits(8),
            c.digits(7),
            f"{c.letters(1)}{c.digits(8)}",
            f"{c.digits(2)}-{c.digits(2)}-{c.digits(3)}",
            f"MR{c.digits(6)}",
            f"{c.digits(3)}-{c.digits(4)}",
            f"{c.letters(2)}{c.digits(6)}",
        ]
    )


def _account(c: _Ctx) -> str:
    return c.rng.choice(
        [
            c.digits(9),
            f"{c.digits(3)}-{c.digits(4)}-{c.digits(3)}",
            f"A{c.digits(7)}",
            f"{c.digits(10)}",
            f"ENC-{c.digits(8)}",
        ]
    )


def _member(c: _Ctx) -> str:
    return c.rng.choice(
        [
            f"{c.letters(3)}{c.digits(9)}",
            f"{c.letters(1)}{c.digits(4)} {c.digits(5)}",
            f"{c.letters(3)}-{c.digits(5)}-{c.digits(3)}",
            f"{c.digits(8)}{c.letters(1)}",
            f"{c.digits(1)}{c.letters(2)}{c.digits(1)}-{c.letters(2)}{c.digits(1)}-{c.letters(2)}{c.digits(2)}",
        ]
    )


def _licence(c: _Ctx) -> str:
    return c.rng.choice(
        [
            f"{c.letters(2)}-{c.digits(6)}",
            f"{c.letters(2)}{c.digits(7)}",
            f"RN{c.digits(7)}",
            f"{c.letters(1)}{c.digits(4)}-{c.digits(5)}-{c.digits(5)}",
            f"{c.digits(8)}",
        ]
    )


def _device(c: _Ctx) -> str:
    return c.rng.choice(
        [
            f"{c.letters(3)}{c.digits(6)}{c.letters(1)}",
            f"(01){c.digits(14)}(21){c.letters(2)}{c.digits(4)}",
            f"{c.digits(4)}-{c.letters(2)}-{c.digits(4)}",
            f"SN{c.digits(9)}",
        ]
    )


def _vin(c: _Ctx) -> str:
    alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    return "".join(c.rng.choice(alphabet) for _ in range(17))


def _plate(c: _Ctx) -> str:
    return c.rng.choice(
        [
            f"{c.letters(3)}-{c.digits(4)}",
            f"{c.digits(1)}{c.letters(3)}{c.digits(3)}",
            f"{c.letters(3)} {c.digits(3)}",
        ]
    )


def _other_id(c: _Ctx) -> str:
    return c.rng.choice(
        [
            f"S{c.digits(2)}-{c.digits(5)}",
            f"{c.digits(2)}-LAB-{c.digits(6)}",
            c.digits(8),
            f"{c.letters(2)}{c.digits(7)}",
            f"{c.digits(4)}-{c.digits(4)}",
        ]
    )


def _address(c: _Ctx, multiline: bool) -> str:
    town, state, prefix = c.pick(TOWNS)
    zip_code = f"{prefix}{c.digits(2)}" + (f"-{c.digits(4)}" if c.rng.random() < 0.2 else "")
    num = str(c.rng.randint(1, 9899))
    street = c.pick(STREET_NAMES)
    if street.startswith("Calle") or street.startswith("Ponce"):
        line1 = c.rng.choice(
            [
                f"{street} #{num}",
                f"{street} {num}",
                f"Urb. Villa {c.pick(['Carolina', 'Fontana', 'Nevárez', 'del Rey'])}, {street} {num}",
            ]
        )
    elif street.startswith("Route"):
        line1 = f"{num} {street}"
    else:
        direction = c.rng.choice(["", "", "N ", "NW ", "East "])
        line1 = f"{num} {direction}{street} {c.pick(STREET_TYPES)}"
    kind = c.rng.randrange(10)
    if kind == 0:
        line1 = f"PO Box {c.rng.randint(10, 99999)}"
    elif kind == 1:
        line1 = f"HC {c.rng.randint(1, 9):02d} Box {c.rng.randint(1000, 99999)}"
    unit = c.rng.choice(
        [
            "",
            "",
            f", Apt {c.rng.randint(1, 40)}{c.rng.choice(['', 'B'])}",
            f" Unit {c.rng.randint(1, 300)}",
            f", Suite {c.rng.randint(100, 900)}",
            f" #{c.rng.randint(2, 99)}",
        ]
    )
    sep = "\n" if multiline else ", "
    tail = c.rng.choice(
        [f"{town}, {state} {zip_code}", f"{town} {state} {zip_code}", f"{town.upper()}, {state} {zip_code}"]
    )
    return f"{line1}{unit}{sep}{tail}"


def _org(c: _Ctx) -> str:
    stem, kind = c.pick(ORG_STEMS), c.pick(ORG_KINDS)
    name = c.rng.choice(
        [f"{stem} {kind}", f"{stem} {kind}", f"Hospital {stem}" if kind == "Hospital" else f"{stem} {kind}"]
    )
    return name.upper() if c.rng.random() < 0.3 else name


def _email(c: _Ctx, p: _Person) -> str:
    fam = "".join(ch for ch in p.family.lower() if ch.isascii() and ch.isalpha())
    giv = "".join(ch for ch in p.given.lower() if ch.isascii() and ch.isalpha())
    return c.rng.choice(
        [
            f"{giv}.{fam}@{c.pick(DOMAINS)}",
            f"{giv[0]}{fam}{c.digits(2)}@{c.pick(DOMAINS)}",
            f"{fam}_{giv}@{c.pick(DOMAINS)}",
        ]
    )


def _url(c: _Ctx) -> str:
    host = c.rng.choice(["portal", "mychart", "records", "www"])
    return c.rng.choice(
        [
            f"https://{host}.{c.pick(['mercy-example', 'islandhealth-example', 'ashford-example'])}.org/patient/{c.digits(6)}",
            f"www.{c.pick(['tricountycare', 'pacificlabs', 'caribeclinic'])}-example.com/results?id={c.digits(5)}",
        ]
    )


def _ip(c: _Ctx) -> str:
    return c.rng.choice(
        [
            f"10.{c.rng.randint(0, 255)}.{c.rng.randint(0, 255)}.{c.rng.randint(1, 254)}",
            f"192.168.{c.rng.randint(0, 255)}.{c.rng.randint(1, 254)}",
            f"172.{c.rng.randint(16, 31)}.{c.rng.randint(0, 255)}.{c.rng.randint(1, 254)}",
        ]
    )


# --- labelled fields ----------------------------------------------------------------------------
def _label(c: _Ctx, options: Sequence[str]) -> str:
    label = c.style(options)
    r = c.rng.random()
    if r < 0.15:
        return label.upper()
    if r < 0.2:
        return label.lower()
    return label


def _field(n: _Note, c: _Ctx, labels: Sequence[str], category: str, value: str, end: str = "\n") -> None:
    label = _label(c, labels)
    sep = (
        c.rng.choice(["", " ", ": "])
        if label.endswith("#")
        else c.rng.choice([": ", ": ", " ", ":  ", " - ", "\t"])
    )
    n.t(label + sep).phi(category, value).t(end)


MRN_LABELS = [
    "MRN",
    "Medical Record #",
    "MR#",
    "Med Rec No.",
    "Medical Record Number",
    "Patient ID",
    "Chart #",
    "Hospital No.",
]
ACCT_LABELS = [
    "Acct",
    "Account No.",
    "Billing Account #",
    "Account Number",
    "Encounter #",
    "FIN",
    "Visit ID",
    "Acct #",
]
PLAN_LABELS = [
    "Member ID",
    "Health Plan ID",
    "Policy #",
    "Subscriber ID",
    "Insurance ID",
    "Medicaid ID",
    "Group No.",
    "Beneficiary No.",
]
LIC_LABELS = [
    "State License No.",
    "DEA #",
    "License #",
    "Lic. No.",
    "Licence Number",
    "Certificate No.",
    "Board Cert #",
    "Medical License",
]
NPI_LABELS = ["NPI", "NPI #", "NPI No.", "National Provider ID"]
PROF_ID_LABELS = ["Professional ID", "Provider ID", "Employee ID", "Staff ID", "Clinician ID", "Badge #"]
OTHER_LABELS = ["Accession #", "Specimen ID", "Order #", "Requisition No.", "Sample ID", "Case #"]
DEVICE_LABELS = ["Device serial", "Pacemaker SN", "Device ID", "Pump serial no.", "UDI", "Implant serial #"]
SSN_LABELS = ["SSN", "Social Security No.", "SS#", "Social Security Number", "SSN #", "Soc. Sec. #"]
PHONE_LABELS = ["Phone", "Tel", "Home phone", "Cell", "Contact number", "Mobile", "Ph", "Telephone"]
FAX_LABELS = ["Fax", "Fax #", "Fax No.", "FAX"]
DOB_LABELS = ["DOB", "Date of Birth", "D.O.B.", "Birth date", "Born"]
DATE_LABELS = [
    "Date of Service",
    "Admission Date",
    "Visit date",
    "Date",
    "Collected",
    "Discharge Date",
    "Encounter date",
    "Reported",
]


def _header(n: _Note, c: _Ctx, p: _Person, org: str) -> None:
    """The demographics block: each field in a label style of this split, sometimes on one line."""
    n.phi("ORGANIZATION", org).t("\n")
    if c.rng.random() < 0.5:
        n.t(_label(c, ["Patient", "Patient Name", "Name", "Pt"]) + ": ").phi("NAME", _name(c, p)).t("\n")
    else:
        n.t(_label(c, ["Patient", "Pt Name", "Patient name", "PATIENT"]) + ": ").phi("NAME", _name(c, p)).t(
            "    "
        )
        n.t(_label(c, DOB_LABELS) + ": ").phi("DATE", _dob(c)).t("\n")
        _field(n, c, MRN_LABELS, "MRN", _mrn(c))
        return
    _field(n, c, DOB_LABELS, "DATE", _dob(c))
    _field(n, c, MRN_LABELS, "MRN", _mrn(c))


def _insurer(n: _Note, c: _Ctx) -> None:
    """A named payer is an organisation; the public programmes (Medicaid, Medicare) identify nobody."""
    name = c.pick(INSURERS)
    if name.startswith("Medica"):
        n.t(name)
    else:
        n.phi("ORGANIZATION", name)


def _sections(c: _Ctx) -> tuple[str, str]:
    """(header wording, separator after it) in this split's style: 'Assessment:', 'ASSESSMENT', '## Assessment'."""
    return c.style([":", "", ":", " -"]), c.rng.choice(["\n", " "])


def _sec(n: _Note, c: _Ctx, title: str) -> None:
    colon, after = _sections(c)
    form = c.rng.randrange(3)
    text = title.upper() if form == 0 else title
    n.t(f"\n{text}{colon}{after}")


def _clin(c: _Ctx) -> str:
    return f"{c.rng.choice(VITALS)}, {c.rng.choice(VITALS)}. Labs: {c.rng.choice(LABS)}, {c.rng.choice(LABS)}, {c.rng.choice(LABS)}. {c.rng.choice(CODES)}."


# --- note types ---------------------------------------------------------------------------------
def _clinic(n: _Note, c: _Ctx, variant: int) -> None:
    p, doc = _person(c), _person(c)
    _header(n, c, p, _org(c))
    _field(n, c, DATE_LABELS, "DATE", _date(c))
    before, age, after = _age(c)
    _sec(n, c, "History of Present Illness")
    if variant == 0:
        n.t(before).t("Ms. " if "fem" in after or "wom" in after else "Mr. ").phi("NAME", p.family).t(
            " is a "
        )
    else:
        n.t("The patient, ").phi("NAME", p.given).t(", is a ")
    n.t(before).phi("AGE", age).t(
        f"{after} with {c.rng.choice(CONDITIONS)} presenting with {c.rng.choice(COMPLAINTS)} since "
    ).phi("DATE", _date(c)).t(". ")
    n.t(f"Works as a {c.rng.choice(JOB_CONTEXT)}. Lives at ").phi(
        "GEOGRAPHIC", _address(c, multiline=False)
    ).t(" with her daughter ").phi("NAME", f"{c.pick(GIVEN)}").t(".\n")
    _sec(n, c, "Medications")
    n.t(f"{c.rng.choice(MEDS)}; {c.rng.choice(MEDS)}.\n")
    _sec(n, c, "Results")
    n.t(_clin(c) + "\n")
    _sec(n, c, "Plan")
    n.t("Follow up with ").t("Dr. ").phi("NAME", _name(c, doc, "first last")).t(", ").phi(
        "PROFESSION", c.rng.choice(PROFESSIONS)
    ).t(", on ").phi("DATE", _date(c)).t(". ")
    n.t("Call ").phi("PHONE_FAX", _phone(c)).t(" with questions.\n")
    n.t(f"Electronically signed: {doc.given} {doc.family}, MD")
    n.spans.append(
        {
            "entity_type": "NAME",
            "entity_value": f"{doc.given} {doc.family}",
            "start_position": n.length - len(f"{doc.given} {doc.family}, MD"),
            "end_position": n.length - 4,
        }
    )
    n.t("  ")
    _field(n, c, NPI_LABELS, "OTHER_ID", _npi(c), "")


def _discharge(n: _Note, c: _Ctx, variant: int) -> None:
    p, att = _person(c), _person(c)
    org = _org(c)
    n.t("DISCHARGE SUMMARY\n" if variant == 0 else "Discharge Summary - ")
    _header(n, c, p, org)
    _field(n, c, ["Admission Date", "Admitted", "Date of Admission", "Admit"], "DATE", _date(c))
    _field(n, c, ["Discharge Date", "Discharged", "Date of Discharge", "D/C date"], "DATE", _date(c))
    _field(n, c, ACCT_LABELS, "HEALTH_PLAN_ACCOUNT", _account(c))
    n.t(_label(c, ["Attending", "Attending Physician", "Attending MD", "Discharging physician"]) + ": ").phi(
        "NAME", _name(c, att)
    ).t(", MD\n")
    before, age, after = _age(c)
    _sec(n, c, "Hospital Course")
    n.t(before).phi("AGE", age).t(f"{after} admitted to ").phi(
        "ORGANIZATION", org.title() if c.rng.random() < 0.5 else org
    ).t(f" for {c.rng.choice(COMPLAINTS)}. Hx {c.rng.choice(CONDITIONS)}. ")
    n.t(f"{_clin(c)} Seen by ").phi("PROFESSION", c.rng.choice(PROFESSIONS)).t(" ").phi(
        "NAME", f"{c.pick(GIVEN)} {c.pick(FAMILY)}"
    ).t(".\n")
    _sec(n, c, "Discharge Medications")
    n.t(f"{c.rng.choice(MEDS)}\n{c.rng.choice(MEDS)}\n")
    _sec(n, c, "Disposition")
    n.t("Home with family. Daughter ").phi("NAME", f"{c.pick(GIVEN)} {p.family}").t(" (").phi(
        "PHONE_FAX", _phone(c)
    ).t(") will assist. Address on file: ").phi("GEOGRAPHIC", _address(c, multiline=c.rng.random() < 0.5)).t(
        "\n"
    )
    _field(n, c, PLAN_LABELS, "HEALTH_PLAN_ACCOUNT", _member(c))
    n.t("Insurer: ")
    _insurer(n, c)
    n.t("\n")
    n.t("Follow-up appointment with ").phi("NAME", _name(c, att, "first last")).t(" on ").phi(
        "DATE", _date(c)
    ).t(" at ").phi("DATE", _time(c)).t(".")


def _emergency(n: _Note, c: _Ctx, variant: int) -> None:
    p = _person(c)
    org = _org(c)
    n.t("EMERGENCY DEPARTMENT NOTE\n" if variant == 0 else "ED Provider Note | ")
    _header(n, c, p, org)
    n.t("Arrival: ").phi("DATE", f"{_date(c)} {_time(c)}").t(" via EMS, vehicle plate ").phi(
        "DEVICE_VEHICLE", _plate(c)
    ).t("\n")
    before, age, after = _age(c)
    _sec(n, c, "Chief Complaint")
    n.t(f"{c.rng.choice(COMPLAINTS)}\n")
    _sec(n, c, "HPI")
    n.t(before).phi("AGE", age).t(
        f"{after} brought in by {c.rng.choice(['wife', 'husband', 'son', 'neighbor'])} "
    ).phi("NAME", f"{c.pick(GIVEN)} {c.pick(FAMILY)}").t(f" after {c.rng.choice(COMPLAINTS)} at home (").phi(
        "GEOGRAPHIC", _address(c, multiline=False)
    ).t("). ")
    n.t(f"{_clin(c)}\n")
    _field(n, c, SSN_LABELS, "SSN", _ssn(c))
    n.t("Emergency contact: ").phi("NAME", _name(c, _person(c), "first last")).t(", ").phi(
        "PHONE_FAX", _phone(c)
    ).t("\n")
    n.t("Pt portal: ").phi("URL_IP", _url(c)).t("\n")
    _sec(n, c, "Disposition")
    n.t("Admit to telemetry. Discussed with ").phi("PROFESSION", c.rng.choice(PROFESSIONS)).t(" Dr. ").phi(
        "NAME", c.pick(FAMILY)
    ).t(".")


def _referral(n: _Note, c: _Ctx, variant: int) -> None:
    p, ref, to = _person(c), _person(c), _person(c)
    n.t("REFERRAL\n" if variant == 0 else "Referral Letter\n\n")
    n.phi("ORGANIZATION", _org(c)).t("\n").phi("GEOGRAPHIC", _address(c, multiline=True)).t("\n")
    _field(n, c, PHONE_LABELS, "PHONE_FAX", _phone(c))
    _field(n, c, FAX_LABELS, "PHONE_FAX", _phone(c))
    n.t("\n").phi("DATE", _date(c)).t("\n\n")
    n.t("Dear Dr. ").phi("NAME", to.family).t(",\n\n")
    before, age, after = _age(c)
    n.t("I am referring ").phi("NAME", _name(c, p, "first last")).t(" (DOB ").phi("DATE", _dob(c)).t(", ").t(
        _label(c, MRN_LABELS) + " "
    ).phi("MRN", _mrn(c)).t("), a ")
    n.t(before).phi("AGE", age).t(f"{after} with {c.rng.choice(CONDITIONS)}, to ").phi(
        "ORGANIZATION", _org(c)
    ).t(f" for evaluation of {c.rng.choice(COMPLAINTS)}. ")
    n.phi("NAME", p.given).t(f" has tried {c.rng.choice(MEDS)}. ").t(_clin(c)).t("\n")
    n.t("Insurance: ")
    _insurer(n, c)
    n.t(", ").t(_label(c, PLAN_LABELS) + " ").phi("HEALTH_PLAN_ACCOUNT", _member(c)).t("\n")
    n.t("Please send the report to ").phi("EMAIL", _email(c, ref)).t(".\n\nSincerely,\n\n").phi(
        "NAME", f"{ref.given} {ref.initial}. {ref.family}"
    ).t(", MD\n")
    _field(n, c, NPI_LABELS, "OTHER_ID", _npi(c))
    _field(n, c, LIC_LABELS, "LICENSE", _licence(c), "")


def _lab(n: _Note, c: _Ctx, variant: int) -> None:
    p, path = _person(c), _person(c)
    n.phi("ORGANIZATION", _org(c)).t("\nLABORATORY REPORT\n" if variant == 0 else " - Laboratory Results\n")
    n.t(_label(c, ["Patient", "Name", "Patient Name"]) + ": ").phi("NAME", _name(c, p)).t("\n")
    _field(n, c, DOB_LABELS, "DATE", _dob(c))
    age = _age(c)[1]
    n.t("Age/Sex: ").phi("AGE", age).t(f" {c.rng.choice(['M', 'F'])}\n")
    _field(n, c, MRN_LABELS, "MRN", _mrn(c))
    _field(n, c, OTHER_LABELS, "OTHER_ID", _other_id(c))
    _field(
        n,
        c,
        ["Collected", "Collection Date", "Drawn", "Specimen collected"],
        "DATE",
        f"{_date(c)} {_time(c)}",
    )
    _field(n, c, ["Reported", "Report Date", "Resulted", "Final"], "DATE", _date(c))
    n.t("Ordering provider: ").phi("NAME", _name(c, _person(c))).t(", ").t(_label(c, NPI_LABELS) + " ").phi(
        "OTHER_ID", _npi(c)
    ).t("\n")
    _sec(n, c, "Results")
    for lab in c.rng.sample(LABS, 5):
        n.t(f"{lab}\n")
    n.t(f"{c.rng.choice(CODES)}\n")
    n.t("Results viewable at ").phi("URL_IP", _url(c)).t(" (uploaded from ").phi("URL_IP", _ip(c)).t(")\n")
    n.t("Verified by ").phi("NAME", _name(c, path, "first last")).t(", ").phi("PROFESSION", "pathologist").t(
        ", "
    ).t(_label(c, PROF_ID_LABELS) + ": ").phi("OTHER_ID", f"{c.letters(1)}{c.digits(5)}")


def _nursing(n: _Note, c: _Ctx, variant: int) -> None:
    p, nurse = _person(c), _person(c)
    n.t("Nursing Progress Note\n" if variant == 0 else "NURSING NOTE - ")
    _header(n, c, p, _org(c))
    n.phi("DATE", f"{_date(c)} {_time(c)}").t(" ")
    if variant == 0:
        n.t("Pt ").phi("NAME", p.given).t(" resting comfortably. ")
    else:
        n.t("Patient ").phi("NAME", f"{p.given} {p.family}").t(" alert and oriented x3. ")
    before, age, after = _age(c)
    n.t(before).phi("AGE", age).t(f"{after}. {c.rng.choice(VITALS)}, {c.rng.choice(VITALS)}. ")
    n.t("Insulin pump ").t(_label(c, DEVICE_LABELS) + " ").phi("DEVICE_VEHICLE", _device(c)).t(" checked. ")
    n.t("Family (").phi("NAME", f"{c.pick(GIVEN)} {c.pick(FAMILY)}").t(", ").phi("EMAIL", _email(c, p)).t(
        ") updated by phone "
    ).phi("PHONE_FAX", _phone(c)).t(".\n")
    n.t(f"Pain {c.rng.randint(0, 10)}/10. Turned q2h. ")
    if c.rng.random() < 0.5:
        n.t("Car in lot, VIN ").phi("DEVICE_VEHICLE", _vin(c)).t(". ")
    n.t("\n").phi("NAME", _name(c, nurse, "first last")).t(", ").phi("PROFESSION", "RN").t(" ").t(
        _label(c, LIC_LABELS) + " "
    ).phi("LICENSE", _licence(c))


# Hard negatives: eponyms, brand names, ethnicity and religion words (not PHI under Safe Harbor).
EPONYMS = [
    "Parkinson disease",
    "Hodgkin lymphoma",
    "a Foley catheter",
    "Bell's palsy",
    "Crohn's disease",
    "Glasgow Coma Scale 15",
    "Cushing syndrome",
    "Graves disease",
    "a Holter monitor",
    "Homans sign negative",
]
BRANDS = ["Lasix", "Eliquis", "Tylenol", "Zofran", "Keppra", "Coumadin", "Humalog", "Xarelto"]
CULTURE = [
    "Hispanic",
    "Samoan",
    "Chamorro",
    "Catholic",
    "Muslim",
    "Filipino",
    "Puerto Rican",
    "Jehovah's Witness",
]


def _narrative(n: _Note, c: _Ctx, p: _Person) -> None:
    """Free text with few cues: names without labels, a town alone, a number in prose, words that look like names."""
    relative = _person(c)
    form = c.rng.choice([0, 2, 4] if c.split == 0 else [1, 3, 5])  # each split has its own forms
    n.t("\n")
    if form == 0:
        n.t("Spoke with ").phi("NAME", f"{relative.given} {relative.family}").t(" at bedside; ").phi(
            "NAME", p.given
        ).t(" agrees with plan. ")
    elif form == 1:
        n.t(f"{c.rng.choice(CULTURE)} patient, originally from ").phi("GEOGRAPHIC", c.pick(TOWNS)[0]).t(
            f", history of {c.rng.choice(EPONYMS)}. "
        )
    elif form == 2:
        n.t("Per ").phi("NAME", relative.given).t(f", {c.rng.choice(BRANDS)} was stopped on ").phi(
            "DATE", _date(c)
        ).t(". ")
    elif form == 3:
        n.t("Can be reached at ").phi("PHONE_FAX", _phone(c)).t(" or ").phi("EMAIL", _email(c, p)).t(
            f". Takes {c.rng.choice(BRANDS)}. "
        )
    elif form == 4:
        n.t("Works at ").phi(
            "ORGANIZATION",
            c.pick(ORG_STEMS)
            + " "
            + c.pick(["Foods", "Logistics", "Elementary School", "Shipyard", "Hotel"]),
        ).t(f"; {c.rng.choice(CULTURE)}; {c.rng.choice(EPONYMS)}. ")
    else:
        n.phi("NAME", p.given).t(f" last seen here {c.rng.randint(2, 9)} weeks ago; lives in ").phi(
            "GEOGRAPHIC", c.pick(TOWNS)[0]
        ).t(" with ").phi("NAME", relative.given).t(". ")
    n.t(f"{c.rng.choice(EPONYMS).capitalize()} ruled out.")


NOTE_TYPES: dict[str, Callable[[_Note, _Ctx, int], None]] = {
    "clinic": _clinic,
    "discharge": _discharge,
    "emergency": _emergency,
    "referral": _referral,
    "lab": _lab,
    "nursing": _nursing,
}
SPLITS = {"dev": 0, "held-out": 1}


def generate(split: str, n: int = 200, seed: int = 0) -> list[dict[str, object]]:
    """``n`` notes of ``split`` ("dev" or "held-out"), cycling through the note types."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    s = SPLITS[split]
    out: list[dict[str, object]] = []
    kinds = list(NOTE_TYPES)
    for i in range(n):
        rng = random.Random(f"{split}:{seed}:{i}")
        kind = kinds[i % len(kinds)]
        note = _Note()
        ctx = _Ctx(rng, s)
        NOTE_TYPES[kind](note, ctx, s)
        _narrative(note, ctx, _person(ctx))
        text = note.text()
        spans = sorted(note.spans, key=lambda x: int(str(x["start_position"])))
        for sp in spans:
            assert text[int(str(sp["start_position"])) : int(str(sp["end_position"]))] == sp["entity_value"]
        out.append({"full_text": text, "spans": spans, "template_id": f"{kind}-{'AB'[s]}"})
    return out


if __name__ == "__main__":
    import sys

    for rec in generate(
        sys.argv[1] if len(sys.argv) > 1 else "dev", int(sys.argv[2]) if len(sys.argv) > 2 else 3
    ):
        print(rec["full_text"], "\n-----")
