# ruff: noqa: E501  (regex tables read better unwrapped)
"""Clinical-note recognizers: labelled identifiers, US address grammar, dates, ages, healthcare organisations.

Mechanisms, not memorised values:

- a label-aware identifier rule: whatever code follows a label ("MRN", "Acct #", "Member ID", "DEA No.",
  "Device serial", "VIN", "Professional ID", a bare "ID", "No." or "#") is reported, typed by the label;
- the US postal grammar: a delivery line (number and street type, PO Box, rural route, Spanish "Calle"),
  an optional unit, a town, a state or territory code (the 50 states, DC, PR, GU, VI, AS, MP, military APO
  codes) and a ZIP code, on one line or several;
- every common date shape (numeric with any separator, month names in any case, 14-Mar-2024, 14MAR2024,
  YYYYMMDD, month/day without a year where a date word precedes it) with a time of day joined on;
- ages in clinical shorthand ("67yo F", "67M", "Age/Sex: 67 F", "67 years of age");
- organisation names by their head noun ("... Medical Center", "... Pediatrics, PLLC", "Hospital ..."), in
  any case.

``NEVER_NAMES`` lists clinical words, section headers and field labels: a name, place or organisation span made
only of them is dropped (``Patient``, ``Results``, ``Laboratory``, ``EMERGENCY DEPARTMENT``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from enclavia.protect import validators as v
from enclavia.protect.recognizers import Rule

__all__ = ["CLINICAL_RULES", "NEVER_NAMES", "after_code_system", "all_never_names", "eponym_or_drug"]

_I = re.IGNORECASE
# A code: starts with a letter or digit, holds a digit, runs on through - . / and one inner space before a
# digit-bearing part ("W2234 88100"); GS1 device identifiers keep their "(01)" application identifiers.
_CODE = r"(?:\(\d{2}\)[0-9A-Za-z]+){1,4}|(?=[A-Za-z0-9./-]*(?:[ ][A-Za-z0-9-]*)?\d)[A-Za-z0-9](?:[A-Za-z0-9]|[-./](?=[A-Za-z0-9]))*(?:[ ](?=[A-Za-z0-9-]*\d)[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9]))*)?"
# After the label: ":", "#", "No.", "Number", "is", "-", "=", tabs; a line break only after ":" or "#"
# ("MRN:\n0048..."; "Cardiology Group\n6744 Main St" is a practice and its street, not a group number).
_AFTER = (
    r"(?:[ \t]*(?:[:#=]|-(?=[ \t])|\b(?:No|Nbr|Num)\b\.?|\bNumber\b|\bis\b|\(s\))){0,3}[ \t]*"
    r"(?:(?<=[:#])\n[ \t]*|(?<=[:#][ \t])\n[ \t]*)?"
)


def _labelled(
    entity: str,
    labels: str,
    score: float = 0.92,
    min_digits: int = 2,
    classify: Callable[[str], str | None] | None = None,
) -> Rule:
    def has_digits(value: str) -> bool:
        return sum(c.isdigit() for c in value) >= min_digits

    return Rule(
        entity,
        re.compile(
            rf"(?<![\w/?&=.])(?:{labels})(?:(?<=[#.])|(?![\w]))" + _AFTER + rf"(?<![\w])({_CODE})(?![\w])", _I
        ),
        score,
        group=1,
        validator=has_digits,
        classify=classify,
    )


_NO = r"(?:[ ]?(?:no\.?|number|nbr|#|id))?"
_MRN_LABELS = rf"MRN|MR[ ]?#|MR[ ]no\.?|med(?:ical)?\.?[ ]rec(?:ord)?\.?{_NO}|patient[ ](?:id|no\.?|number|#)|pt\.?[ ](?:id|no\.?|#)|chart{_NO}|hospital[ ](?:no\.?|number|#|id)|unit[ ](?:no\.?|number)|EMPI|MPI"
_ACCOUNT_LABELS = rf"acct\.?{_NO}|account{_NO}|billing[ ](?:acct|account)\.?{_NO}|encounter{_NO}|FIN|CSN|HAR|visit[ ](?:id|no\.?|number|#)|admission[ ](?:no\.?|#|id)|claim{_NO}|invoice{_NO}"
_PLAN_LABELS = rf"member{_NO}|health[ ]plan(?:[ ](?:id|no\.?|number|#))?|policy{_NO}|subscriber{_NO}|insurance[ ](?:id|no\.?|number|#)|medicaid{_NO}|medicare{_NO}|MBI|group{_NO}|beneficiary{_NO}|plan[ ](?:id|no\.?|#)|payer[ ]id"
_DL_LABELS = rf"driver'?s?[ ]licen[cs]e{_NO}|driving[ ]licen[cs]e{_NO}|DL{_NO}|CDL{_NO}"
_LICENCE_LABELS = rf"(?:state[ ]|medical[ ]|nursing[ ]|professional[ ]|board[ ])?licen[cs]e(?![ ]plate){_NO}|lic\.?{_NO}|DEA{_NO}|certificate{_NO}|cert\.?[ ]?#|board[ ]cert(?:ification)?\.?{_NO}|registration{_NO}"
_NPI_LABELS = r"NPI(?:[ ]?(?:no\.?|number|#))?|national[ ]provider[ ](?:id(?:entifier)?|no\.?|number)"
_DEVICE_LABELS = rf"device(?:[ ](?:id|serial|sn|s/n|no\.?|number|#))?|(?:pump|implant|pacemaker|icd|monitor|meter)[ ](?:serial|sn|s/n|id)(?:[ ](?:no\.?|number|#))?|serial{_NO}|S/?N|UDI|IMEI|MAC|lot{_NO}|model[ ](?:no\.?|#)"
_VEHICLE_LABELS = r"VIN|(?:licen[cs]e[ ])?plate(?:[ ](?:no\.?|number|#))?|tag[ ](?:no\.?|#)"
_OTHER_LABELS = r"(?:professional|provider|employee|staff|clinician|physician|prescriber|badge|user|member|specimen|sample|order|requisition|accession|case|reference|ref|confirmation|ticket|record|report|study|trial|subject|participant|biometric|photo|image)[ ]?(?:id|no\.?|number|#)|accession|specimen|requisition|badge|ID|ID#|No\.|#"
_SSN_LABELS = (
    r"SSN(?:[ ]?#)?|SS[ ]?#|social[ ]security(?:[ ](?:no\.?|number|#))?|soc\.?[ ]sec\.?(?:[ ](?:no\.?|#))?"
)

_LABEL_RULES: Final = (
    _labelled("MRN", _MRN_LABELS, 0.93, min_digits=3),
    _labelled("ACCOUNT_NUMBER", _ACCOUNT_LABELS, min_digits=3),
    _labelled("HEALTH_PLAN_ID", _PLAN_LABELS, min_digits=3),
    _labelled("MEDICAL_LICENSE", _LICENCE_LABELS, min_digits=3),
    _labelled("US_DRIVER_LICENSE", _DL_LABELS, 0.93, min_digits=3),
    # A labelled value that fails the NPI checksum is still an identifier, reported as ID, not as an NPI.
    _labelled("NPI", _NPI_LABELS, 0.95, min_digits=6, classify=lambda s: "NPI" if v.npi_valid(s) else "ID"),
    _labelled("DEVICE_ID", _DEVICE_LABELS, min_digits=3),
    _labelled("VEHICLE_ID", _VEHICLE_LABELS, min_digits=2),
    # Generic labels: below the specific ones (a "Member ID" is a plan ID, not an "ID"), more digits needed.
    _labelled("ID", _OTHER_LABELS, 0.9, min_digits=4),
    # A labelled SSN is an SSN even when it fails the issuance rules (redact what the note says it is).
    Rule(
        "US_SSN",
        re.compile(
            rf"(?<![\w])(?:{_SSN_LABELS})(?:(?<=#)|(?![\w]))" + _AFTER + r"(\d{3}[- ]?\d{2}[- ]?\d{4})(?!\d)",
            _I,
        ),
        0.97,
        group=1,
    ),
    # A vehicle identification number: 17 characters, no I, O or Q, letters and digits mixed.
    Rule(
        "VEHICLE_ID",
        re.compile(r"\b(?=[A-HJ-NPR-Z0-9]*[A-Z])(?=[A-HJ-NPR-Z0-9]*\d)[A-HJ-NPR-Z0-9]{17}\b"),
        0.6,
        context=("vin", "vehicle", "car", "truck", "auto"),
        needs_context=True,
        context_score=0.85,
        window=40,
    ),
)

# --- addresses -------------------------------------------------------------------------------------
STATES: Final = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH "
    "OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR GU VI AS MP AA AE AP FM MH PW"
)
_STATE = "(?:" + "|".join(STATES.split()) + ")"
_ZIP = r"\d{5}(?:-\d{4})?"
_W = r"[A-ZÀ-ÖØ-Þ][A-Za-zÀ-ÖØ-öø-ÿ'’.-]{0,40}"  # bounded: see recognizers._CAP
_STREET_TYPE = (
    r"(?:Street|St|Avenue|Ave|Av|Boulevard|Blvd|Road|Rd|Drive|Dr|Lane|Ln|Court|Ct|Way|Place|Pl|Highway|Hwy|"
    r"Parkway|Pkwy|Terrace|Ter|Circle|Cir|Loop|Trail|Trl|Square|Sq|Plaza|Pike|Row|Alley|Expressway|Expy|"
    r"Freeway|Fwy|Turnpike|Tpke|Crescent|Path|Walk|Run|Pass|Point|Heights|Hts|Estates?)"
)
_STREET_TYPE_CASED = "(?:" + "|".join(f"{t}|{t.upper()}" for t in _STREET_TYPE.strip("(?:)").split("|")) + ")"
_DIRECTION = r"(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West|Northeast|Northwest|Southeast|Southwest)\.?"
_UNIT_WORD = r"(?:Apt|Apartment|Suite|Ste|Unit|Bldg|Building|Floor|Fl|Rm|Room|Lot|Space|Trlr|Depto|Edif|Cond)"
_UNIT = rf"(?:[ \t]*,?[ \t]*(?:{_UNIT_WORD}\.?[ \t]*#?[ \t]*[A-Za-z0-9-]{{1,6}}|#[ \t]?[A-Za-z0-9-]{{1,6}}))"
_NUMBER = r"\d{1,6}(?:-?[A-Z])?(?:[ ]\d/\d)?"
_LINE1 = (
    r"(?:"
    # 123 N Main St, 77 Route 9, 12 East Martin Luther King Jr Blvd
    rf"{_NUMBER}[ \t]+(?:{_DIRECTION}[ \t]+)?(?:(?:Route|Rte|Highway|Hwy|Road|Rd|Carretera|Carr\.?|County[ ]Road|State[ ]Road|PR)[ \t-]+\d{{1,4}}[A-Z]?|(?:{_W}[ \t]+){{1,4}}{_STREET_TYPE_CASED}\b\.?)(?:[ \t]+{_DIRECTION}(?![\w]))?(?:[ \t]+(?:Km\.?|KM)[ \t]*\d+(?:\.\d+)?)?"
    # 190 Chalan Santo Papa (Guam), 8 Estate Thomas (USVI), 1207 Calle Estrella
    rf"|{_NUMBER}[ \t]+(?:Calle|Chalan|Estate|Avenida|Camino|Paseo|Carretera|Carr\.)[ \t]+(?:(?:de|del|la|las|los|el)[ \t]+)?(?:{_W}[ \t]+){{0,3}}{_W}"
    # PO Box 12, P.O. Box 12, HC 02 Box 1234, RR 1 Box 22, PSC 1234 Box 5678
    r"|(?:P\.?[ ]?O\.?[ ]?Box|Post[ ]Office[ ]Box|(?:HC|RR|PSC|CMR|Unit)[ ]?\d{1,4}[ ,]+Box)[ \t]*\d{1,6}"
    # Calle Luna #12, Calle Sol 45, Ave. Ponce de León 1010, Carr. 2 Km 11.5, Urb. Villa X, Calle Y 3
    rf"|(?:(?:Urb\.?|Urbanización|Bo\.?|Barrio|Cond\.?|Condominio|Res\.?|Residencial|Ext\.?|Parc\.?)[ \t]+(?:{_W}[ \t]+){{0,4}}{_W}[ \t]*,[ \t]*)?(?:Calle|Ave\.?|Avenida|Carr\.?|Carretera|Paseo|Camino|Callejón|Chalan)[ \t]+(?:(?:de|del|la|las|los|el)[ \t]+)?(?:{_W}[ \t]+){{0,4}}(?:{_W}|\d{{1,4}})(?:[ \t]+(?:Km\.?|KM)[ \t]*\d+(?:\.\d+)?)?(?:[ \t]*,?[ \t]*#?[ \t]*\d{{1,5}}[A-Z]?)?"
    # Urb. Villa Carolina 12, Bo. Palmas
    rf"|(?:Urb\.?|Urbanización|Bo\.?|Barrio|Cond\.?|Condominio|Res\.?|Residencial)[ \t]+(?:{_W}[ \t]+){{0,4}}{_W}(?:[ \t]*,?[ \t]*#?[ \t]*\d{{1,5}}[A-Z]?)?"
    r")"
)
_TOWN = rf"(?:{_W}|de|del|la|el)(?:[ \t]+(?:{_W}|de|del|la|el)){{0,3}}"
_CITY_LINE = rf"{_TOWN}[ \t]*,?[ \t]+{_STATE}\.?(?:[ \t]*,?[ \t]*{_ZIP})?(?![\w])"
_SEP = r"(?:[ \t]*,[ \t]*|[ \t]*\n[ \t]*|[ \t]+)"
_ADDRESS_RULES: Final = (
    # Delivery line, unit, town, state or territory, ZIP: the whole block is one span.
    Rule(
        "STREET_ADDRESS",
        re.compile(rf"(?<![\w]){_LINE1}{_UNIT}*(?:{_SEP}{_CITY_LINE}|{_SEP}{_TOWN}[ \t]*,?[ \t]+{_ZIP}\b)?"),
        0.9,
        validator=lambda s: any(c.isdigit() for c in s),
    ),
    # A town line alone: "Hagåtña, GU 96910", "SAN JUAN PR 00901-1234".
    Rule(
        "STREET_ADDRESS",
        re.compile(
            rf"(?<![\w]){_TOWN}[ \t]*,[ \t]*{_STATE}[ \t]+{_ZIP}\b|(?<![\w]){_TOWN}[ \t]+{_STATE}[ \t]+{_ZIP}\b"
        ),
        0.88,
    ),
)

# --- dates, times, ages ----------------------------------------------------------------------------
_MON = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_TIME = r"(?:[ \t]*(?:,|at|@)?[ \t]*(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:[ ]?[AaPp]\.?[Mm]\.?)?(?![\d:])|[ \t]+(?:[01]?\d|2[0-3])[0-5]\d[ ]?(?:h|hrs|hours)\b)"
_DATE_RULES: Final = (
    # 14-Mar-2024, 14 Mar 24, Mar-14-2024, 14MAR2024, 2024-Mar-14, March 14th, 2024 at 10:15
    Rule(
        "DATE_TIME",
        re.compile(
            rf"(?<![\w])(?:\d{{1,2}}(?:st|nd|rd|th)?[ -]?{_MON}\.?[ ,-]*(?:\d{{4}}|\d{{2}})?|{_MON}\.?[ -]\d{{1,2}}(?:st|nd|rd|th)?(?:[ ,-]+\d{{4}}|-\d{{2}})?|\d{{4}}-{_MON}-\d{{1,2}})(?![\w])(?:{_TIME})?",
            _I,
        ),
        0.86,
        validator=lambda s: any(c.isdigit() for c in s) and s[:3] not in {"may", "mar"},
    ),
    # Numeric: 3/14/2024, 03-14-24, 14.03.2024, 2024/03/14, with a time joined on.
    Rule(
        "DATE_TIME",
        re.compile(
            rf"(?<![\w/.-])(?:\d{{1,2}}[/.-]\d{{1,2}}[/.-](?:\d{{4}}|\d{{2}})|\d{{4}}[/.-]\d{{1,2}}[/.-]\d{{1,2}})(?![\w/-]|\.\d)(?:{_TIME}|T\d{{2}}:\d{{2}}(?::\d{{2}})?(?:Z|[+-]\d{{2}}:?\d{{2}})?)?"
        ),
        0.91,
        validator=v.date_valid,
    ),
    # YYYYMMDD after a date word or label.
    Rule(
        "DATE_TIME",
        re.compile(
            rf"(?<![\w-])(?:19|20)\d{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?![\w-])(?:{_TIME})?"
        ),
        0.5,
        context=(
            "since",
            "date",
            "dob",
            "d.o.b",
            "born",
            "collected",
            "reported",
            "resulted",
            "drawn",
            "admitted",
            "discharged",
            "on",
            "seen",
            "visit",
            "final",
            "service",
        ),
        needs_context=True,
        context_score=0.87,
        window=24,
    ),
    # Month/day without a year after a date word: "Discharge Date 2/20", "seen on 3/4" (not "Pain 6/10").
    Rule(
        "DATE_TIME",
        re.compile(
            rf"(?<![\w/.-])(?<!pain[ ])(?<!Pain[ ])(?<!PAIN[ ])(?<!score[ ])(?<!grade[ ])(?<!Grade[ ])(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])(?![\w/]|\.\d)(?:{_TIME})?"
        ),
        0.5,
        context=(
            "date",
            "dob",
            "d.o.b",
            "born",
            "on",
            "since",
            "seen",
            "until",
            "from",
            "by",
            "due",
            "admitted",
            "admission",
            "discharged",
            "discharge",
            "d/c",
            "visit",
            "collected",
            "drawn",
            "reported",
            "resulted",
            "final",
            "follow-up",
            "f/u",
            "last",
            "next",
            "as of",
            "dated",
            "service",
            "arrival",
            "onset",
        ),
        needs_context=True,
        context_score=0.86,
        window=24,
    ),
    # A month/day alone on its line: the date line of a letter.
    Rule(
        "DATE_TIME",
        re.compile(r"(?m)^[ \t]*((?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))[ \t]*$"),
        0.84,
        group=1,
    ),
    # A date and a time together need no date word: "20220527 04:39", "6/25 18:28".
    Rule(
        "DATE_TIME",
        re.compile(
            r"(?<![\w/.-])(?:(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])|(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))[ ](?:[01]?\d|2[0-3]):[0-5]\d(?![\d:])"
        ),
        0.86,
    ),
    # A time of day after "at", "@", a time label or a date word: "at 14:30", "Arrival 02:29".
    Rule(
        "DATE_TIME",
        re.compile(r"(?<![\w:.])(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:[ ]?[AaPp]\.?[Mm]\.?)?(?![\w:])"),
        0.5,
        context=(
            "at",
            "@",
            "time",
            "arrival",
            "arrived",
            "collected",
            "drawn",
            "reported",
            "admitted",
            "discharged",
            "seen",
            "on",
            "am",
            "pm",
        ),
        needs_context=True,
        context_score=0.82,
        window=12,
    ),
)


def _age_class(text: str) -> str | None:
    n = int(text)
    if n > 125:
        return None
    return "AGE_OVER_89" if n > 89 else "AGE"


def _age(pattern: str, score: float, flags: int = 0, **context: Any) -> Rule:
    return Rule("AGE", re.compile(pattern, flags), score, group=1, classify=_age_class, **context)


_AGE_RULES: Final = (
    _age(r"\b(\d{1,3})[ -]?(?:years?|yrs?|y)[ -]?(?:of[ ]age|old|o)\b", 0.88, _I),
    _age(r"\b(\d{1,3})[ ]?(?:y/o|yo|y\.o\.?|yrs?\.?[ ]old)(?=[ ]?[MF]\b|[^\w]|$)", 0.88, _I),
    # 67M, 67 F, 67yo F in a clinical opening, after "a"/"an"/"Age/Sex:"/"pt".
    _age(
        r"(?<![\w.])(\d{1,3})[ ]?(?:yo[ ]?)?[MF](?![\w])",
        0.5,
        context=("a", "an", "age", "sex", "age/sex", "pt", "patient", "is"),
        needs_context=True,
        context_score=0.86,
        window=12,
    ),
    # "42F.", "98M admitted": digits then the sex letter, not a temperature ("Temp 98F").
    _age(r"(?<![\w.])(?<!Temp[ ])(?<!Temp:[ ])(?<!T[ ])(\d{1,3})[MF](?![\w])", 0.7),
    _age(r"\b(?:age|aged|age/sex)\b[ \t:]*(?:of[ ])?(\d{1,3})\b(?![ ]?(?:%|percent|mg|kg|lb))", 0.86, _I),
)

# --- organisations ---------------------------------------------------------------------------------
_ORG_HEAD = (
    r"(?:General[ ]Hospital|Hospital|Medical[ ]Cent(?:er|re)|Health[ ]Cent(?:er|re)|Cent(?:er|re)|Clinic|Clinics|"
    r"Health[ ]System|Health[ ]Services|Healthcare|Health[ ]Care|Health|Family[ ]Practice|Practice|Pediatrics|"
    r"Associates|Laboratories|Laboratory|Labs|Diagnostics|Imaging|Radiology|Urgent[ ]Care|Dialysis|Group|Institute|"
    r"Pharmacy|Partners|Health[ ]Plan|Plan|Mutual|Insurance|Alliance|Foundation|University|College|Authority|"
    r"Hospice|Nursing[ ]Home|Rehabilitation|Rehab|Specialists|Surgical|Surgery|Oncology|Cardiology|Orthopedics|"
    r"Behavioral[ ]Health|Mental[ ]Health|Medicine|Medical|Care|Benefit[ ]Plan|Consultants|Physicians|Network|"
    # Employers and other organisations a note names
    r"School|Academy|Hotel|Resort|Foods|Logistics|Shipyard|Company|Corporation|Industries|Enterprises|Bank|"
    r"Church|Restaurant|Market|Airlines|Construction|Services|Agency|Department[ ]of[ ]\w+)"
)
_ORG_LEGAL = r"(?:,?[ ](?:PLLC|LLC|L\.L\.C\.|P\.C\.|PC|P\.A\.|PA|Inc\.?|LLP|Ltd\.?|Corp\.?))"
_ORG_WORD = r"(?:[A-ZÀ-ÖØ-Þ][\w'’&.-]{0,40}|of|the|de|del|la|los|las|and|&|[A-Z]\.)"
_ORG_SUFFIX_RULES: Final = (
    Rule(
        "ORGANIZATION",
        re.compile(
            rf"(?<![\w])(?=[A-ZÀ-ÖØ-Þ])(?:{_ORG_WORD}[ ]){{1,5}}(?i:{_ORG_HEAD}){_ORG_LEGAL}?(?![\w])"
        ),
        0.86,
    ),
    Rule(
        "ORGANIZATION",
        re.compile(
            rf"(?<![\w])(?i:Hospital|Cl[ií]nica|Centro[ ]M[ée]dico|Centro[ ]de[ ]Salud|Hospicio)[ ](?:{_ORG_WORD}[ ]){{0,4}}[A-ZÀ-ÖØ-Þ][\w'’.-]+"
        ),
        0.83,
    ),
)

# A payer, facility or employer named after its label, whatever its words: "Insurer: Caribe Salud".
_ORG_LABELS = r"insurer|insurance(?:[ ](?:company|carrier|provider))?|payer|payor|carrier|health[ ]plan|facility|hospital|clinic|practice|employer|pharmacy|laboratory|lab|referred[ ]to|transferred[ ](?:to|from)|admitted[ ]to"
_ORG_RULES: Final = (
    *_ORG_SUFFIX_RULES,
    Rule(
        "ORGANIZATION",
        re.compile(
            rf"(?i:\b(?:{_ORG_LABELS}))[ \t]*:[ \t]*((?=[A-ZÀ-ÖØ-Þ])(?:{_ORG_WORD})(?:[ ](?:{_ORG_WORD})){{0,6}})"
        ),
        0.84,
        group=1,
    ),
)

CLINICAL_RULES: Final[tuple[Rule, ...]] = (
    _LABEL_RULES + _ADDRESS_RULES + _DATE_RULES + _AGE_RULES + _ORG_RULES
)

# Section headers, field labels and clinical words: never a name, a place or an organisation on their own.
_NEVER_NAMES_TABLE: Final = """
patient patients pt pts name names email e-mail phone tel fax mobile cell address date dates time dob
laboratory laboratories lab labs result results report reports summary note notes history present illness
hpi ros pmh psh fhx shx assessment plan impression diagnosis diagnoses dx problem problems list medications
medication meds allergies allergy nkda vitals vital signs exam examination physical review systems
disposition discharge discharged admission admitted admit instructions follow-up followup follow up course
hospital clinic department dept emergency ed er icu ccu picu nicu ward unit floor room bed nursing nurse
progress procedure procedures operative op consult consultation referral referring attending resident
physician provider signed electronically signature sincerely dear regards thanks chief complaint cc
subjective objective social family surgical past medical record records chart id mrn npi ssn dea acct
account member policy group insurance insurer plan payer medicaid medicare coverage subscriber
collected collection drawn specimen sample accession order ordered ordering requisition resulted final
verified reviewed pending normal abnormal high low critical reference range units value values test tests
wbc rbc hgb hct plt mcv na k cl co2 bun cr glucose a1c hba1c tsh ldl hdl alt ast inr ptt troponin bnp
bp hr rr temp spo2 sao2 wt ht bmi pain ra o2 iv po bid tid qid prn qhs qd daily mg mcg ml kg lb units
icd icd-10 cpt loinc ndc snomed hcpcs drg vin device serial udi sn imei model lot
labs/imaging imaging radiology ct mri xray x-ray ekg ecg echo ultrasound cxr
male female man woman boy girl infant child adult sex gender age years year old yo
home family wife husband son daughter mother father sister brother spouse partner contact emergency
next kin nok guardian caregiver self
alert oriented resting comfortably stable afebrile denies reports states presents presented
type diabetes mellitus hypertension copd chf ckd cad afib gerd asthma hyperlipidemia hypothyroidism
stage disorder major depressive syndrome disease
insulin pump pacemaker metformin lisinopril atorvastatin apixaban albuterol levothyroxine sertraline
glargine aspirin heparin
telemetry ems via arrival arrived transfer transferred lives works seen call discussed insurer
turned car verified education sincerely dear hx number reported born security phi pii hipaa allergic allergies spoke called met noted informed explained advised
counseled instructed billing state license licence
no clinician d.o.b dr mr mrs ms prof service services professional y.o advantage part
results: patient: name: note: plan: assessment:
electronically signed on by at to of the and for with in a an no yes none other
md do rn np pa pa-c lpn cna phd pharmd
primary internal intensive critical urgent skilled palliative respiratory occupational therapy
wound diabetic prenatal postoperative outpatient inpatient general
"""
NEVER_NAMES: Final = frozenset(_NEVER_NAMES_TABLE.split())


_NUMERIC = re.compile(r"^[\d.,%<>=+^x-]+$")


def all_never_names(value: str) -> bool:
    """True when every word of ``value`` is a clinical word, header, label, number or initial (names nobody)."""
    words = [w.strip(".,:;()#/'’-").lower() for w in re.split(r"[\s/]+", value)]
    words = [w for w in words if w]
    return bool(words) and all(w in NEVER_NAMES or len(w) == 1 or _NUMERIC.match(w) for w in words)


# Eponyms ("Bell's palsy", "a Foley catheter", "Glasgow Coma Scale") and drugs in their grammar ("Zofran was
# stopped", "takes Keppra", "Lasix 40 mg"): the capitalised word names a disease, a device or a medicine.
_EPONYM_AFTER = re.compile(
    r"(?i:(?:['’]s?)?[ ](?:disease|syndrome|palsy|lymphoma|sarcoma|sign|catheter|monitor|coma|scale|test|"
    r"maneuver|manoeuvre|procedure|criteria|classification|score|fracture|ulcer|tube|operation|reflex|"
    r"phenomenon|triad|murmur|node|cyst|tumou?r|block|repair|stocking|boot|splint|needle|line|bag|mask|"
    r"was[ ](?:stopped|held|discontinued|restarted|resumed|increased|decreased|titrated|tapered|prescribed|"
    r"administered|started|changed|switched)|\d+(?:\.\d+)?[ ]?(?:mg|mcg|g|units?|ml|mL|meq|mEq|%)\b))"
)
_DRUG_BEFORE = re.compile(
    r"(?i:\b(?:takes|taking|took|continue[sd]?|resume[sd]?|started[ ]on|restarted[ ]on|switched[ ]to|"
    r"stopped|held|discontinued?|prescribed|dose[ ]of|allergic[ ]to|allergy[ ]to)[ ])$"
)


# A multi-word span ending in an eponym's head noun: "Glasgow Coma Scale", "Bell's Palsy".
EPONYM_LAST: Final = re.compile(
    r"(?i:[ ](?:disease|syndrome|palsy|lymphoma|sarcoma|sign|catheter|monitor|scale|score|test|maneuver|"
    r"criteria|classification|fracture|ulcer|tube|operation|reflex|phenomenon|triad|murmur))$"
)


def eponym_or_drug(text: str, start: int, end: int) -> bool:
    """True when the capitalised words at ``start:end`` are used as an eponym or a medicine name."""
    return bool(
        _EPONYM_AFTER.match(text, end)
        or _DRUG_BEFORE.search(text, max(0, start - 24), start)
        or EPONYM_LAST.search(text[start:end])
    )


# Standard code systems: what follows their label is a billing or terminology code, never PHI.
_CODE_SYSTEM = re.compile(
    r"(?i:\b(?:NDC|CPT|ICD(?:-?(?:9|10))?(?:-CM|-PCS)?|LOINC|SNOMED(?:[ ]CT)?|HCPCS|DRG|RxNorm|ATC)(?:[ ]code)?s?)[ \t:#]*$"
)


def after_code_system(text: str, start: int) -> bool:
    """True when the span at ``start`` follows a code-system label ("NDC 0093-7214-01", "CPT 99214")."""
    return bool(_CODE_SYSTEM.search(text[max(0, start - 16) : start]))
